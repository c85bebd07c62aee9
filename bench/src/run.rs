//! The benchmark's arguments and its loop: every selected scenario on every selected server,
//! `--runs` times, each run on a freshly started server; then the report.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::measure::{Metrics, Probes, measure};
use crate::report::report;
use crate::scenarios::{Load, SCENARIOS, Scenario};
use crate::target::{Kind, Target};

/// `omnicast-bench` options.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Servers to measure.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "omnicast,ws,socketio,socketioxide,yardstick"
    )]
    targets: Vec<Kind>,
    /// Scenarios to run (default: all): fanout-1k, fanout-1k-single, fixed-1k, fixed-1k-batch,
    /// lone-1k, fanout-10k, fanout-10k-single, idle-10k, targeted-1k, targeted-10k, mixed-10k.
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Runs per cell; the report gives the median and the spread.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// The core the servers are pinned to (`taskset`); pin the load tool elsewhere.
    #[arg(long, default_value_t = 0)]
    server_core: usize,
    /// Do not pin the servers.
    #[arg(long)]
    no_pin: bool,
    /// Do not count the servers' write system calls with `perf stat` (frames per write).
    #[arg(long)]
    no_syscall_count: bool,
    /// Record each run's server with `perf record -e cpu-clock -g` while it delivers, into
    /// `<dir>/<scenario>-<server>-<run>.perf.data` (read with `perf report -i`).
    #[arg(long, value_name = "DIR")]
    profile: Option<PathBuf>,
    /// The `omnicast` binary of another build, measured as the `baseline` target alongside this
    /// one (e.g. `--baseline /tmp/omnicast-before --targets baseline,omnicast`).
    #[arg(long, value_name = "OMNICAST")]
    baseline: Option<PathBuf>,
    /// Where the peers' scripts are (npm-installed).
    #[arg(long, default_value = "bench/peers")]
    peers: PathBuf,
    /// Client connections per loopback source address (127.0.0.1, then .2 and on): one address
    /// has about 28,000 ephemeral ports towards one server.
    #[arg(long, default_value_t = 20_000)]
    per_source_address: usize,
    /// Divide every client and event count by 10 (a quick smoke run).
    #[arg(long)]
    quick: bool,
    /// Also write the report here.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs the benchmark and prints the report.
pub fn run(args: BenchArgs) -> Result<(), String> {
    let scenarios: Vec<Scenario> = SCENARIOS
        .iter()
        .filter(|s| args.scenarios.is_empty() || args.scenarios.iter().any(|n| n == s.name))
        .map(|s| {
            let mut s = *s;
            if args.quick {
                s = s.quick();
            }
            s
        })
        .collect();
    if scenarios.is_empty() {
        return Err("no scenario matches --scenarios".into());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let core = (!args.no_pin).then_some(args.server_core);
    let mut results: BTreeMap<(usize, usize), Vec<Metrics>> = BTreeMap::new();
    for (si, scenario) in scenarios.iter().enumerate() {
        for (ti, &kind) in args.targets.iter().enumerate() {
            if matches!(scenario.load, Load::Targeted { .. } | Load::Mixed { .. })
                && !kind.filters()
            {
                continue;
            }
            // The peers keep no history to recover from.
            if matches!(scenario.load, Load::Recover { .. }) && !kind.is_omnicast() {
                continue;
            }
            for run in 0..args.runs {
                eprint!(
                    "{} on {} (run {}/{}) ... ",
                    scenario.name,
                    kind.name(),
                    run + 1,
                    args.runs
                );
                let mut target = Target::start(kind, core, &args.peers, args.baseline.as_deref())?;
                let probes = Probes {
                    core,
                    count_writes: !args.no_syscall_count,
                    profile: args.profile.as_ref().map(|dir| {
                        let server = kind.name().replace(' ', "-");
                        dir.join(format!("{}-{server}-{}.perf.data", scenario.name, run + 1))
                    }),
                };
                let metrics = runtime.block_on(measure(
                    &mut target,
                    &args.peers,
                    scenario,
                    args.per_source_address,
                    &probes,
                ))?;
                eprintln!(
                    "{:.0} deliveries/s, p99 {:.1} ms, lost {}, wrong {}",
                    metrics.deliveries_per_s,
                    metrics.p99 / 1000.0,
                    metrics.lost,
                    metrics.wrong
                );
                results.entry((si, ti)).or_default().push(metrics);
            }
        }
    }
    let report = report(&scenarios, &args.targets, &results, args.runs);
    println!("{report}");
    if let Some(out) = args.out {
        std::fs::write(&out, &report).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    Ok(())
}
