//! `omnicast-bench`: the fan-out benchmark. Starts each target server (omnicast and the peers)
//! as its own process pinned to one core, drives it from this process with real WebSocket
//! clients and the publish API, and reports throughput, latency, memory and CPU, median over
//! several runs. Deliveries are checked with the runtime's own delivery rules over the compiled
//! catalog (`omnicast::CATALOG`).

mod client;
mod loads;
mod measure;
mod positions;
mod publish;
mod report;
mod run;
mod scenarios;
mod soak;
mod target;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "omnicast-bench",
    about = "omnicast's fan-out benchmark, side by side with its peers"
)]
struct Cli {
    #[command(flatten)]
    args: run::BenchArgs,
}

/// The argument that makes this binary the omnicast server under test: the same code as
/// `omnicast serve`, run as its own process so it can be pinned to its own core.
pub const SERVE: &str = "serve-omnicast";

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == SERVE) {
        args.splice(0..2, ["omnicast".into(), "serve".into()]);
        return omnicast_cli::run(args);
    }
    if args.get(1).is_some_and(|a| a == "soak") {
        return match soak::main(args.split_off(1)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::FAILURE
            }
        };
    }
    if args.get(1).is_some_and(|a| a == "positions") {
        positions::run();
        return ExitCode::SUCCESS;
    }
    match run::run(Cli::parse_from(args).args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
