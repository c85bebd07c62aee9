//! `omnicast-bench soak`: three nodes on one `redis-server`, thousands of clients of the four
//! roles (a tenth of them stalling readers, a hundredth reconnecting every second with resume),
//! publishers at a fixed rate through every node with `Idempotency-Key`s, and faults on a
//! schedule: Redis paused for 5 s, Redis killed and restarted from its AOF, a node killed with
//! SIGKILL and restarted, Redis killed and restarted without its data. Then the checker
//! (`check.rs`) goes through everything every client was told.
//!
//!   omnicast-bench soak --short             # about a minute, 300 clients (CI)
//!   omnicast-bench soak --seconds 600       # the long run, 10,000 clients
//!
//! Exits 1 on any finding. Latencies are reported, never asserted.

mod check;
mod clients;
mod cluster;
mod publishers;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use omnicast::runtime::server::PositionKey;
use tokio::sync::watch;

use crate::target::SECRET;
use clients::{Shared, Spec};
use cluster::{Cluster, Memory, NodeSettings};
use publishers::Ledger;

#[derive(Parser, Debug)]
#[command(
    name = "omnicast-bench soak",
    about = "A soak with faults, and a loss checker"
)]
pub struct SoakArgs {
    /// How long the publishers run, faults included.
    #[arg(long, default_value_t = 600)]
    seconds: u64,
    /// Clients, a quarter of each role.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Events published per second, over every node.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Percent of clients that stop reading for 12 s every 20 s.
    #[arg(long, default_value_t = 10)]
    slow_percent: usize,
    /// Percent of clients that close and resume every second.
    #[arg(long, default_value_t = 1)]
    reconnect_percent: usize,
    /// The CI shape: 60 s, 300 clients, 40 events/s, queues of 256 frames (so that stalled
    /// readers fill theirs within the minute).
    #[arg(long)]
    short: bool,
    /// Frames a node queues per connection before closing it (4008): the product's default.
    #[arg(long, default_value_t = 1024)]
    queue_capacity: usize,
    /// Run the nodes on a Redis Cluster of three shards (primaries with AOF, no replicas)
    /// instead of one Redis; each Redis fault hits one shard, in turn.
    #[arg(long)]
    redis_cluster: bool,
}

/// The nodes of the soak.
const NODES: usize = 3;
/// The node the soak kills.
const KILLED: usize = 1;

pub fn main(args: Vec<std::ffi::OsString>) -> Result<(), String> {
    let mut args = SoakArgs::parse_from(args);
    if args.short {
        args.seconds = 60;
        args.connections = 300;
        args.rate = 40.0;
        args.queue_capacity = 256;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(soak(args))
}

/// A fault and how long it takes.
#[derive(Debug, Clone, Copy)]
enum Fault {
    PauseRedis,
    RestartRedisFromAof,
    KillNode,
    RestartRedisWithoutData,
}

const FAULTS: [Fault; 4] = [
    Fault::PauseRedis,
    Fault::RestartRedisFromAof,
    Fault::KillNode,
    Fault::RestartRedisWithoutData,
];

async fn soak(args: SoakArgs) -> Result<(), String> {
    let started = Instant::now();
    let settings = NodeSettings {
        queue_capacity: args.queue_capacity,
        max_recovery: 1_000_000,
        send_buffer_bytes: 32 * 1024,
    };
    let shards = if args.redis_cluster { 3 } else { 1 };
    let cluster = tokio::task::spawn_blocking(move || Cluster::start(NODES, shards, settings))
        .await
        .map_err(|e| e.to_string())??;
    let cluster = Arc::new(std::sync::Mutex::new(cluster));
    let nodes = cluster.lock().expect("cluster").nodes.clone();
    let specs = specs(&args);
    let customers: Vec<String> = specs
        .iter()
        .filter(|s| s.role == "customer")
        .map(|s| s.user.clone())
        .collect();
    eprintln!(
        "soak: {} clients on {NODES} nodes and {}, {} events/s for {} s",
        specs.len(),
        redis_name(&args),
        args.rate,
        args.seconds
    );

    // The warm-up: every client through a shorter run of the same load without faults, then
    // gone, and every history filled. What the allocator keeps of that is in the baseline.
    let warm_seconds = (args.seconds / 4).clamp(20, 90);
    let warm = wave(
        &args,
        &specs,
        &cluster,
        &customers,
        warm_seconds,
        Vec::new(),
    )
    .await?;
    eprintln!(
        "soak: warm-up done after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop(warm);
    let (node, owners) = (nodes[0], customers.clone());
    tokio::task::spawn_blocking(move || publishers::fill_histories(node, &owners))
        .await
        .map_err(|e| e.to_string())??;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let baseline = cluster.lock().expect("cluster").memory();

    let run = wave(
        &args,
        &specs,
        &cluster,
        &customers,
        args.seconds,
        schedule(&args),
    )
    .await?;
    let Wave {
        logs,
        ledger,
        key: shared_key,
        faults: done,
        connected_rss: peak_before,
        published_rss: peak,
        began_us: run_began_us,
    } = run;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let untrimmed = cluster.lock().expect("cluster").rss();
    // The histories full again, as at the baseline (a fault may have emptied them), so that
    // what remains to compare is what the clients and faults left.
    let (node, owners) = (nodes[0], customers.clone());
    tokio::task::spawn_blocking(move || publishers::fill_histories(node, &owners))
        .await
        .map_err(|e| e.to_string())??;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let end = cluster.lock().expect("cluster").memory();

    let records = std::mem::take(&mut *ledger.records.lock().expect("ledger"));
    let sent: Vec<u64> = ledger
        .sent_us
        .iter()
        .map(|s| s.load(Ordering::Relaxed))
        .collect();
    let losses: Vec<u64> = done
        .iter()
        .filter(|(_, fault)| matches!(fault, Fault::RestartRedisWithoutData))
        .map(|(at, _)| run_began_us + at.as_micros() as u64)
        .collect();
    let verdict = check::check(&specs, &logs, &records, &sent, &losses, &shared_key);
    if std::env::var_os("OMNICAST_SOAK_DEBUG").is_some() {
        let firsts: Vec<i64> = logs
            .iter()
            .map(|l| l.first_ready_us as i64 - run_began_us as i64)
            .collect();
        eprintln!(
            "first readies relative to publishing: {:?} .. {:?} ms",
            firsts.iter().min().map(|us| us / 1000),
            firsts.iter().max().map(|us| us / 1000)
        );
    }
    let report = Report {
        args: &args,
        specs: &specs,
        logs: &logs,
        verdict: &verdict,
        published: ledger.published(),
        faults: &done,
        memory: Memories {
            baseline,
            connected: peak_before,
            published: peak,
            left: untrimmed,
            end,
        },
        elapsed: started.elapsed(),
    };
    let leaks = report.print();
    drop(cluster);
    if verdict.violations.is_empty() && leaks.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} findings{}",
            verdict.violations.len(),
            if leaks.is_empty() {
                String::new()
            } else {
                format!("; {}", leaks.join("; "))
            }
        ))
    }
}

/// What one wave of the clients left: their logs, the publishes, and the nodes' memory with
/// every client connected and at the end of publishing.
struct Wave {
    logs: Vec<clients::Log>,
    ledger: Arc<Ledger>,
    key: PositionKey,
    faults: Vec<(Duration, Fault)>,
    connected_rss: Vec<u64>,
    published_rss: Vec<u64>,
    /// When publishing began (µs since the Unix epoch): what the faults' times count from.
    began_us: u64,
}

/// Every client connects and stays (reconnecting, resuming) while the publishers run for
/// `seconds` and `faults` happen, then catches up and leaves.
async fn wave(
    args: &SoakArgs,
    specs: &[Spec],
    cluster: &Arc<std::sync::Mutex<Cluster>>,
    customers: &[String],
    seconds: u64,
    faults: Vec<(Duration, Fault)>,
) -> Result<Wave, String> {
    let started = Instant::now();
    let nodes = cluster.lock().expect("cluster").nodes.clone();
    let capacity = (args.rate * (seconds as f64 + 120.0)) as usize + 16;
    let ledger = Ledger::new(capacity);
    let shared = Arc::new(Shared {
        nodes: nodes.clone(),
        key: PositionKey::derive(SECRET.as_bytes()),
        ledger: ledger.clone(),
        received: AtomicU64::new(0),
        ready: AtomicU64::new(0),
        finishing: AtomicBool::new(false),
        last_fault_ms: AtomicU64::new(0),
    });
    let (stop_clients, stop_rx) = watch::channel(false);
    let tasks: Vec<_> = specs
        .iter()
        .cloned()
        .map(|spec| tokio::spawn(clients::run(spec, shared.clone(), stop_rx.clone())))
        .collect();
    // Every client connected (its first `ready` read) before publishing starts.
    let deadline = Instant::now() + Duration::from_secs(120);
    while shared.ready.load(Ordering::Relaxed) < specs.len() as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connected_rss = cluster.lock().expect("cluster").rss();
    eprintln!(
        "soak: clients connected after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let stop_publishing = Arc::new(AtomicBool::new(false));
    let publishing = publishers::start(
        &nodes,
        args.rate,
        2,
        Arc::new(customers.to_vec()),
        ledger.clone(),
        stop_publishing.clone(),
        20,
    );
    let run_started = Instant::now();
    let began_us = crate::publish::now_us();
    let mut done = Vec::new();
    for (at, fault) in faults {
        tokio::time::sleep_until((run_started + at).into()).await;
        let cluster = cluster.clone();
        let began = run_started.elapsed();
        let now_ms = || crate::publish::now_us() / 1000;
        shared.last_fault_ms.store(now_ms(), Ordering::Relaxed);
        tokio::task::spawn_blocking(move || do_fault(&cluster, fault))
            .await
            .map_err(|e| e.to_string())??;
        shared.last_fault_ms.store(now_ms(), Ordering::Relaxed);
        eprintln!("soak: {:>5.1} s {fault:?}", began.as_secs_f64());
        done.push((began, fault));
    }
    tokio::time::sleep_until((run_started + Duration::from_secs(seconds)).into()).await;
    stop_publishing.store(true, Ordering::Relaxed);
    for thread in publishing {
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
    let published_rss = cluster.lock().expect("cluster").rss();
    // Slow readers catch up; then wait until nothing has arrived for 3 s.
    shared.finishing.store(true, Ordering::Relaxed);
    let mut last = shared.received.load(Ordering::Relaxed);
    let mut quiet = 0;
    let drain_deadline = Instant::now() + Duration::from_secs(120);
    while quiet < 6 && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = shared.received.load(Ordering::Relaxed);
        quiet = if now == last { quiet + 1 } else { 0 };
        last = now;
    }
    let _ = stop_clients.send(true);
    let mut logs = Vec::with_capacity(tasks.len());
    for task in tasks {
        logs.push(task.await.map_err(|e| e.to_string())?);
    }
    Ok(Wave {
        logs,
        ledger,
        key: PositionKey::derive(SECRET.as_bytes()),
        faults: done,
        connected_rss,
        published_rss,
        began_us,
    })
}

/// The clients: roles in turn; a tenth slow (by default), a hundredth reconnecting.
fn specs(args: &SoakArgs) -> Vec<Spec> {
    const ROLES: [&str; 4] = ["admin", "manager", "staff", "customer"];
    let every = |percent: usize| 100usize.checked_div(percent).unwrap_or(usize::MAX);
    let (slow_every, reconnect_every) = (every(args.slow_percent), every(args.reconnect_percent));
    (0..args.connections)
        .map(|i| Spec {
            index: i,
            role: ROLES[i % 4],
            user: format!("u{i}"),
            // Alike for every role (client i is the (i / 4)-th of its role), never both.
            slow: args.slow_percent > 0 && (i / 4) % slow_every == i % 4,
            reconnecting: args.reconnect_percent > 0
                && (i / 4) % reconnect_every == (reconnect_every / 2 + 5 + i % 4) % reconnect_every
                && (i / 4) % slow_every != i % 4,
        })
        .collect()
}

/// What the nodes run on, as the report says it.
fn redis_name(args: &SoakArgs) -> &'static str {
    if args.redis_cluster {
        "a Redis Cluster of three shards"
    } else {
        "one redis-server"
    }
}

/// When each fault happens, from the start of publishing: the four in turn, once per 150 s of
/// run (at least once), evenly spaced.
fn schedule(args: &SoakArgs) -> Vec<(Duration, Fault)> {
    let cycles = (args.seconds / 150).max(1) as usize;
    let slots = FAULTS.len() * cycles;
    let step = Duration::from_secs(args.seconds) / (slots as u32 + 1);
    (0..slots)
        .map(|k| (step * (k as u32 + 1) - step / 2, FAULTS[k % FAULTS.len()]))
        .collect()
}

fn do_fault(cluster: &std::sync::Mutex<Cluster>, fault: Fault) -> Result<(), String> {
    match fault {
        Fault::PauseRedis => {
            cluster
                .lock()
                .expect("cluster")
                .pause_redis(Duration::from_secs(5));
            Ok(())
        }
        Fault::RestartRedisFromAof => cluster
            .lock()
            .expect("cluster")
            .restart_redis(Duration::from_secs(1), true),
        Fault::KillNode => cluster
            .lock()
            .expect("cluster")
            .kill_node(KILLED, Duration::from_secs(2)),
        Fault::RestartRedisWithoutData => cluster
            .lock()
            .expect("cluster")
            .restart_redis(Duration::from_secs(1), false),
    }
}

struct Report<'a> {
    args: &'a SoakArgs,
    specs: &'a [Spec],
    logs: &'a [clients::Log],
    verdict: &'a check::Verdict,
    published: u64,
    faults: &'a [(Duration, Fault)],
    memory: Memories,
    elapsed: Duration,
}

/// Each node's memory through the run.
struct Memories {
    /// After the warm-up wave left, with the histories full (trimmed).
    baseline: Vec<Memory>,
    /// RSS with every client connected, at the end of publishing, after every client left.
    connected: Vec<u64>,
    published: Vec<u64>,
    left: Vec<u64>,
    /// Then with the histories full again (trimmed).
    end: Vec<Memory>,
}

impl Report<'_> {
    /// How many of the slow (or fast) readers' closes, as `pick` lists them, had `code`.
    fn closes(&self, slow: bool, code: u16, pick: fn(&clients::Log) -> &Vec<u16>) -> usize {
        self.specs
            .iter()
            .zip(self.logs)
            .filter(|(s, _)| s.slow == slow)
            .map(|(_, l)| pick(l).iter().filter(|c| **c == code).count())
            .sum()
    }

    /// Prints the report; returns the memory findings (a node not back within 10% of its
    /// baseline once every client left).
    fn print(&self) -> Vec<String> {
        let v = self.verdict;
        let closes = |slow: bool, code: u16| self.closes(slow, code, |l| &l.closes);
        let steady_closes = |slow: bool, code: u16| self.closes(slow, code, |l| &l.steady_closes);
        let latencies = |pick: fn(&clients::Log) -> &Vec<u32>| {
            let mut all: Vec<u32> = self
                .specs
                .iter()
                .zip(self.logs)
                .filter(|(s, _)| !s.slow)
                .flat_map(|(_, l)| pick(l).iter().copied())
                .collect();
            all.sort_unstable();
            all
        };
        let steady = latencies(|l| &l.latencies_us);
        let recovering = latencies(|l| &l.latencies_recovering_us);
        let pct = |all: &[u32], p: f64| {
            all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
                .map_or(0.0, |us| *us as f64 / 1000.0)
        };
        let connections: u32 = self.logs.iter().map(|l| l.connections).sum();
        let refused: u32 = self.logs.iter().map(|l| l.refused).sum();
        println!(
            "## Soak: {} s, {} clients, {} events/s, 3 nodes on {}",
            self.args.seconds,
            self.specs.len(),
            self.args.rate,
            redis_name(self.args)
        );
        println!();
        println!(
            "- ran {:.0} s in all; faults (seconds after publishing began):",
            self.elapsed.as_secs_f64()
        );
        for (at, fault) in self.faults {
            println!("  - {:>5.1} s: {fault:?}", at.as_secs_f64());
        }
        println!(
            "- publishes: {} ({} accepted, {} refused to the end, {} of unknown outcome, {} of them stored); {} needed retries ({} also stored by an attempt whose answer was lost, in an epoch Redis then lost); {} deliberate repeats answered the same id, {} another epoch's (after Redis lost its data)",
            self.published,
            v.accepted,
            v.refused,
            v.unknown,
            v.unknown_stored,
            v.retried,
            v.stored_before_data_loss,
            v.repeats_same_id,
            v.repeats_after_data_loss
        );
        println!(
            "- deliveries checked: {} received of {} owed (exactly once, in order, each allowed)",
            v.deliveries, v.expected
        );
        println!(
            "- connections: {connections} opened, {refused} handshakes refused or failed (retried); `recovered: false`: {} from a new epoch, {} from being behind the history",
            v.unrecovered_new_epoch, v.unrecovered_behind
        );
        println!(
            "- stored events owed to no client: {} lost with Redis's data (restarted without persistence), {} early in a new epoch, before where clients told `recovered: false` rejoined",
            v.lost_with_redis_data, v.before_rejoin
        );
        println!(
            "- closes: slow readers {} × 4008 of {} slow; fast readers {} × 4008, {} × 4010 (resume required), {} without a close frame (node killed)",
            closes(true, 4008),
            self.specs.iter().filter(|s| s.slow).count(),
            closes(false, 4008),
            closes(false, 4010) + closes(true, 4010),
            closes(false, 0) + closes(true, 0)
        );
        println!(
            "- latency, fast readers (publish sent to event read): steady p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} deliveries; within {} s of a fault p50 {:.1} ms, p99 {:.1} ms over {}",
            pct(&steady, 0.5),
            pct(&steady, 0.99),
            pct(&steady, 1.0),
            steady.len(),
            clients::RECOVERY.as_secs(),
            pct(&recovering, 0.5),
            pct(&recovering, 0.99),
            recovering.len()
        );
        println!(
            "- in steady state: slow readers {} × 4008, fast readers {} × 4008",
            steady_closes(true, 4008),
            steady_closes(false, 4008)
        );
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let mut leaks = Vec::new();
        let m = &self.memory;
        for k in 0..m.baseline.len() {
            let (base, end) = (m.baseline[k], m.end[k]);
            let note = if k == KILLED {
                " (killed and restarted: not compared)"
            } else {
                ""
            };
            let heap = |m: Memory| {
                m.heap
                    .map_or("unknown".into(), |h| format!("{:.1}", mib(h)))
            };
            println!(
                "- node {k} memory (MiB): RSS {:.1} after the warm-up (trimmed; live heap {}), {:.1} with every client, {:.1} at the end of publishing, {:.1} after every client left, {:.1} trimmed (live heap {}){note}",
                mib(base.rss),
                heap(base),
                mib(m.connected[k]),
                mib(m.published[k]),
                mib(m.left[k]),
                mib(end.rss),
                heap(end),
            );
            if k == KILLED {
                continue;
            }
            // A leak grows the live heap; the trimmed RSS also holds pages that a few live
            // allocations pin after a peak (fragmentation), which is reported, not judged.
            match (base.heap, end.heap) {
                (Some(base), Some(end)) if end as f64 > base as f64 * 1.10 => leaks.push(format!(
                    "node {k} holds {:.1} MiB of live allocations after every client left, over 110% of its {:.1} MiB baseline",
                    mib(end),
                    mib(base)
                )),
                (Some(_), Some(_)) => {}
                _ if end.rss as f64 > base.rss as f64 * 1.10 => leaks.push(format!(
                    "node {k} RSS {:.1} MiB after every client left, over 110% of its {:.1} MiB baseline (no live heap to judge by: is gdb installed?)",
                    mib(end.rss),
                    mib(base.rss)
                )),
                _ => {}
            }
        }
        if steady_closes(false, 4008) > 0 {
            leaks.push(format!(
                "{} closes of fast readers as slow consumers in steady state",
                steady_closes(false, 4008)
            ));
        }
        if closes(true, 4008) == 0 && self.specs.iter().any(|s| s.slow) {
            leaks.push("no slow reader was closed with 4008".to_owned());
        }
        println!();
        if v.violations.is_empty() {
            println!("checker: nothing lost, repeated, reordered or wrongly delivered");
        } else {
            // By kind (the message without its numbers and names), each with its first example.
            let mut kinds: std::collections::BTreeMap<String, (usize, &String)> =
                Default::default();
            for violation in &v.violations {
                let kind: String = violation
                    .split_once(": ")
                    .filter(|(who, _)| who.starts_with("client "))
                    .map_or(violation.as_str(), |(_, what)| what)
                    .chars()
                    .filter(|c| !c.is_ascii_digit())
                    .collect();
                let kind = kind
                    .split(['(', '"', '`'])
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                kinds.entry(kind).or_insert((0, violation)).0 += 1;
            }
            println!("checker: {} findings, by kind:", v.violations.len());
            for (kind, (count, example)) in &kinds {
                println!("  - {count} × {kind}… e.g. {example}");
            }
        }
        for leak in &leaks {
            println!("finding: {leak}");
        }
        leaks
    }
}
