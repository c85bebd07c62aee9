//! `omnicast-echo`: the WebSocket conformance echo, for the Autobahn TestSuite
//! (`bench/autobahn/run.sh`). Every text or binary message is sent back to its sender by
//! omnicast's own handshake checks, connection driver and frame queue, the code `/ws` runs
//! (`omnicast_runtime::server::harness::serve_echo`). Test-only: it authenticates nobody.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "omnicast-echo",
    about = "omnicast's WebSocket conformance echo (test only)"
)]
struct Args {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:9001")]
    listen: SocketAddr,
    /// The largest message accepted, in bytes (the suite's section 9 sends 16 MiB).
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    max_message_bytes: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(listener) => listener,
            Err(err) => {
                eprintln!("error: cannot listen on {}: {err}", args.listen);
                return ExitCode::FAILURE;
            }
        };
        println!("omnicast-echo listening on {}", args.listen);
        omnicast_runtime::server::harness::serve_echo(
            &omnicast::CATALOG,
            listener,
            args.max_message_bytes,
        )
        .await;
        ExitCode::SUCCESS
    })
}
