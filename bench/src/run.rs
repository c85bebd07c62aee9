//! The scenarios, their measurements and the report.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use omnicast::CATALOG;
use omnicast::runtime::delivery::Audience;
use omnicast::runtime::{EmitOptions, OutgoingEvent, mint_hs256};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::client::{self, Check, Socket, Sources, Tally};
pub use crate::target::Kind;
use crate::target::{self, Target};

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

#[derive(Debug, Clone, Copy)]
enum Load {
    /// Every client receives every event, published as fast as the publish API takes them:
    /// `batch` events per request, from `publishers` concurrent publishers (each one request
    /// at a time, over its own keep-alive connection).
    Fanout {
        events: usize,
        batch: usize,
        publishers: usize,
    },
    /// Events at a fixed rate, for latency and CPU per delivery, `batch` per request.
    Fixed {
        per_second: usize,
        seconds: usize,
        batch: usize,
    },
    /// Connections that only sit there: memory per connection.
    Idle,
    /// `events` payments, round robin over the customers: each receives only its own
    /// `payment:received`. Both sizes publish the same number, so their rates compare.
    Targeted { events: usize },
    /// All roles, a stream of the catalog's events, every delivery checked.
    Mixed { events: usize },
    /// No clients: `events` published one per request from `publishers` concurrent publishers,
    /// each answered 202 before its next: the publish path's own rate (through Redis, the
    /// requests of one node are pipelined on its one connection).
    Publish { events: usize, publishers: usize },
    /// A client that missed `missed` events resumes, `trials` times (on each node in turn):
    /// how long from the connect until the whole replay arrived. With Redis the nodes are
    /// restarted first, so the replay is read from Redis, not from a node's own recent stream.
    Recover { missed: usize, trials: usize },
}

#[derive(Debug, Clone, Copy)]
struct Scenario {
    name: &'static str,
    clients: usize,
    load: Load,
}

const SCENARIOS: [Scenario; 13] = [
    Scenario {
        name: "fanout-1k",
        clients: 1_000,
        load: Load::Fanout {
            events: 1_000,
            batch: 20,
            publishers: 1,
        },
    },
    // The shape services have: one event per request, from several processes at once.
    Scenario {
        name: "fanout-1k-single",
        clients: 1_000,
        load: Load::Fanout {
            events: 1_000,
            batch: 1,
            publishers: 4,
        },
    },
    Scenario {
        name: "fixed-1k",
        clients: 1_000,
        load: Load::Fixed {
            per_second: 100,
            seconds: 10,
            batch: 1,
        },
    },
    // The same rate, 10 events per request (10 requests a second).
    Scenario {
        name: "fixed-1k-batch",
        clients: 1_000,
        load: Load::Fixed {
            per_second: 100,
            seconds: 10,
            batch: 10,
        },
    },
    // A lone event at a time: what coalescing must not delay.
    Scenario {
        name: "lone-1k",
        clients: 1_000,
        load: Load::Fixed {
            per_second: 1,
            seconds: 10,
            batch: 1,
        },
    },
    Scenario {
        name: "fanout-10k",
        clients: 10_000,
        load: Load::Fanout {
            events: 100,
            batch: 20,
            publishers: 1,
        },
    },
    Scenario {
        name: "fanout-10k-single",
        clients: 10_000,
        load: Load::Fanout {
            events: 100,
            batch: 1,
            publishers: 4,
        },
    },
    Scenario {
        name: "idle-10k",
        clients: 10_000,
        load: Load::Idle,
    },
    Scenario {
        name: "targeted-1k",
        clients: 1_000,
        load: Load::Targeted { events: 10_000 },
    },
    Scenario {
        name: "targeted-10k",
        clients: 10_000,
        load: Load::Targeted { events: 10_000 },
    },
    Scenario {
        name: "mixed-10k",
        clients: 10_000,
        load: Load::Mixed { events: 200 },
    },
    Scenario {
        name: "publish-16",
        clients: 0,
        load: Load::Publish {
            events: 20_000,
            publishers: 16,
        },
    },
    Scenario {
        name: "recover-1k",
        clients: 0,
        load: Load::Recover {
            missed: 1_000,
            trials: 50,
        },
    },
];

/// What one run measured. Latencies in microseconds.
#[derive(Debug, Default, Clone)]
struct Metrics {
    connected: f64,
    failed: f64,
    connect_ms: f64,
    deliveries_per_s: f64,
    events_per_s: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
    lost: f64,
    wrong: f64,
    rss_per_conn: f64,
    cpu_us_per_delivery: f64,
    /// The server core's busy time per delivery (NaN when the server is not pinned).
    core_us_per_delivery: f64,
    /// The load tool's CPU per delivery: what receiving the stream costs a client.
    tool_cpu_us_per_delivery: f64,
    /// Deliveries per write system call of the server's (NaN when perf could not count).
    frames_per_write: f64,
    /// Publish and recovery: the nodes' CPU per event published (or replayed).
    cpu_us_per_event: f64,
    /// Publish: Redis' CPU per event (0 without Redis).
    redis_cpu_us_per_event: f64,
}

/// What the server and the load tool spent while one scenario's events were delivered.
struct Costs {
    server_cpu: f64,
    core_busy: Option<f64>,
    tool_cpu: f64,
    writes: Option<u64>,
}

/// Measures [`Costs`] from [`start`](Meter::start) to [`stop`](Meter::stop).
struct Meter<'t> {
    target: &'t Target,
    server_cpu: f64,
    core_busy: Option<f64>,
    tool_cpu: f64,
    writes: Option<target::WriteCount>,
    profile: Option<target::Perf>,
    core: Option<usize>,
}

/// What to attach to a server while it delivers, besides its CPU time.
#[derive(Debug, Clone)]
struct Probes {
    /// The core the server is pinned to, if it is.
    core: Option<usize>,
    count_writes: bool,
    /// Where to write a `perf record` of this run, if anywhere.
    profile: Option<PathBuf>,
}

impl<'t> Meter<'t> {
    fn start(target: &'t Target, probes: &Probes) -> Self {
        // perf first: it takes a moment to attach, which must not be charged to anyone.
        let writes = probes.count_writes.then(|| target.count_writes()).flatten();
        let profile = probes
            .profile
            .as_deref()
            .and_then(|path| target.record_profile(path));
        Meter {
            target,
            server_cpu: target.cpu_seconds(),
            core_busy: probes.core.and_then(target::core_busy_seconds),
            core: probes.core,
            tool_cpu: target::own_cpu_seconds(),
            writes,
            profile,
        }
    }

    fn stop(self) -> Costs {
        let server_cpu = self.target.cpu_seconds() - self.server_cpu;
        let core_busy = self
            .core
            .and_then(target::core_busy_seconds)
            .zip(self.core_busy)
            .map(|(now, before)| now - before);
        let tool_cpu = target::own_cpu_seconds() - self.tool_cpu;
        if let Some(profile) = self.profile {
            profile.finish();
        }
        Costs {
            server_cpu,
            core_busy,
            tool_cpu,
            writes: self.writes.and_then(target::WriteCount::finish),
        }
    }
}

impl Metrics {
    /// Throughput, losses and CPU per delivery from what the clients counted.
    fn record(
        &mut self,
        tallies: &[Tally],
        elapsed: Duration,
        events: usize,
        expected: u64,
        costs: Option<Costs>,
    ) {
        let received: u64 = tallies.iter().map(|t| t.received).sum();
        self.deliveries_per_s = received as f64 / elapsed.as_secs_f64();
        self.events_per_s = events as f64 / elapsed.as_secs_f64();
        self.lost = expected.saturating_sub(received) as f64;
        self.frames_per_write = f64::NAN;
        self.core_us_per_delivery = f64::NAN;
        if let Some(costs) = costs {
            let per_delivery = |seconds: f64| seconds * 1e6 / received.max(1) as f64;
            self.cpu_us_per_delivery = per_delivery(costs.server_cpu);
            self.tool_cpu_us_per_delivery = per_delivery(costs.tool_cpu);
            if let Some(busy) = costs.core_busy {
                self.core_us_per_delivery = per_delivery(busy);
            }
            if let Some(writes) = costs.writes {
                self.frames_per_write = received as f64 / writes.max(1) as f64;
            }
        }
    }
}

pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Runs the benchmark and prints the report.
pub fn run(args: BenchArgs) -> Result<(), String> {
    let scenarios: Vec<Scenario> = SCENARIOS
        .iter()
        .filter(|s| args.scenarios.is_empty() || args.scenarios.iter().any(|n| n == s.name))
        .map(|s| {
            let mut s = *s;
            if args.quick {
                s.clients = (s.clients / 10).max(1);
                s.load = match s.load {
                    Load::Fanout {
                        events,
                        batch,
                        publishers,
                    } => Load::Fanout {
                        events: (events / 10).max(1),
                        batch,
                        publishers,
                    },
                    Load::Fixed {
                        per_second, batch, ..
                    } => Load::Fixed {
                        per_second,
                        seconds: 2,
                        batch,
                    },
                    Load::Mixed { events } => Load::Mixed {
                        events: (events / 10).max(1),
                    },
                    Load::Targeted { events } => Load::Targeted {
                        events: (events / 10).max(1),
                    },
                    Load::Publish { events, publishers } => Load::Publish {
                        events: (events / 10).max(1),
                        publishers,
                    },
                    Load::Recover { missed, trials } => Load::Recover {
                        missed,
                        trials: (trials / 10).max(2),
                    },
                    other => other,
                };
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
            for run in 0..args.runs {
                eprint!(
                    "{} on {} (run {}/{}) ... ",
                    scenario.name,
                    kind.name(),
                    run + 1,
                    args.runs
                );
                let mut target = Target::start(kind, core, &args.peers)?;
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

struct Clients {
    sockets: Vec<(usize, Socket)>,
    failed: usize,
    elapsed: Duration,
}

/// Opens `n` connections, 256 handshakes in flight; `who(i)` gives user, role and namespaces.
async fn open(
    target: &Target,
    sources: &Sources,
    n: usize,
    who: impl Fn(usize) -> (String, &'static str, &'static str),
) -> Clients {
    let started = Instant::now();
    let results: Vec<(usize, Result<Socket, String>)> = futures_util::stream::iter(0..n)
        .map(|i| {
            let (user, role, namespaces) = who(i);
            let token = mint_hs256(target::SECRET.as_bytes(), &user, role, 3600);
            let (kind, addr) = (target.kind, target.addr_for(i));
            let source = sources.next(addr);
            async move {
                (
                    i,
                    client::connect(kind, addr, source, &token, namespaces).await,
                )
            }
        })
        .buffer_unordered(256)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let mut sockets = Vec::with_capacity(n);
    let mut failed = 0;
    for (i, result) in results {
        match result {
            Ok(socket) => sockets.push((i, socket)),
            Err(err) => {
                failed += 1;
                if failed <= 3 {
                    eprintln!("connection {i} failed: {err}");
                }
            }
        }
    }
    let mut used: Vec<_> = sockets
        .iter()
        .filter_map(|(_, ws)| ws.get_ref().local_addr().ok())
        .map(|local| local.ip())
        .collect();
    used.sort_unstable();
    used.dedup();
    if used.len() > 1 {
        eprint!(
            "{} connections from {} source addresses, ",
            sockets.len(),
            used.len()
        );
    }
    Clients {
        sockets,
        failed,
        elapsed,
    }
}

struct Running {
    counters: Arc<client::Counters>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<Tally>>,
}

async fn start_draining(
    kind: Kind,
    clients: Vec<(usize, Socket)>,
    stamp: &'static str,
    check: impl Fn(usize) -> Option<Check>,
) -> Running {
    let counters = Arc::new(client::Counters::default());
    let (stop, stopped) = watch::channel(false);
    let tasks = clients
        .into_iter()
        .map(|(i, socket)| {
            tokio::spawn(client::drain(
                socket,
                kind,
                stamp,
                counters.clone(),
                check(i),
                stopped.clone(),
            ))
        })
        .collect();
    let running = Running {
        counters,
        stop,
        tasks,
    };
    running.listening().await;
    running
}

impl Running {
    /// Waits until every client's reading loop has started. Publishing earlier would charge the
    /// load tool's own start-up (10,000 first polls take milliseconds) to the first events'
    /// latency.
    async fn listening(&self) {
        let all = self.tasks.len() as u64;
        let limit = Instant::now() + Duration::from_secs(30);
        while self.counters.listening.load(Ordering::Relaxed) < all && Instant::now() < limit {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Waits until `expected` deliveries arrived (or `limit` passed); returns when the last came.
    async fn until(&self, expected: u64, started: Instant, limit: Duration) -> Duration {
        let mut last = (0, started.elapsed());
        while started.elapsed() < limit {
            let now = self.counters.received.load(Ordering::Relaxed);
            if now != last.0 {
                last = (now, started.elapsed());
            }
            if now >= expected {
                break;
            }
            // Nothing new for 3 s after publishing ended: the rest is lost.
            if started.elapsed() - last.1 > Duration::from_secs(3) && now > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        last.1
    }

    async fn finish(self) -> Vec<Tally> {
        let _ = self.stop.send(true);
        let mut tallies = Vec::with_capacity(self.tasks.len());
        for task in self.tasks {
            tallies.push(task.await.unwrap_or_default());
        }
        tallies
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        // One keep-alive connection per concurrent publisher (ureq keeps 3 per host by
        // default: 16 publishers would otherwise reconnect on most requests).
        .max_idle_connections_per_host(64)
        .max_idle_connections(256)
        .build()
        .into()
}

/// Stands for the send time in prepared request bodies; replaced (same width) right before each
/// request is sent, so building bodies is not part of the measured latency.
const STAMP: &str = "9999999999999999";

fn maintenance() -> Value {
    json!({ "type": "system:maintenance", "data": { "message": "bench", "scheduledAt": STAMP.parse::<u64>().unwrap() } })
}

/// Request bodies of `size` events each, serialized ahead of time; a lone event (not an array)
/// when `size` is 1.
fn prepare(events: &[Value], size: usize) -> Vec<String> {
    if size == 1 {
        // The publish APIs take a single event as well as a batch.
        return events.iter().map(Value::to_string).collect();
    }
    events
        .chunks(size)
        .map(|chunk| serde_json::to_string(chunk).expect("JSON"))
        .collect()
}

/// Sends the bodies from `publishers` threads at once, each taking every `publishers`-th body in
/// turn over its own keep-alive connection (the agent pools one per thread), so that several
/// requests are in flight as when several services publish. With several nodes, publisher `k`
/// publishes through node `k` (round robin).
async fn publish_concurrently(
    target: &Target,
    agent: &ureq::Agent,
    bodies: Vec<String>,
    publishers: usize,
) -> Result<(), String> {
    if publishers <= 1 {
        return publish_all(target, target.addr, agent, bodies).await;
    }
    let mut shares = vec![Vec::new(); publishers];
    for (i, body) in bodies.into_iter().enumerate() {
        shares[i % publishers].push(body);
    }
    let sent = futures_util::future::join_all(
        shares
            .into_iter()
            .enumerate()
            .map(|(k, share)| publish_all(target, target.addr_for(k), agent, share)),
    )
    .await;
    sent.into_iter().collect()
}

/// Sends prepared bodies one after another from a blocking thread, stamping each at send time.
async fn publish_all(
    target: &Target,
    addr: std::net::SocketAddr,
    agent: &ureq::Agent,
    bodies: Vec<String>,
) -> Result<(), String> {
    let (kind, agent) = (target.kind, agent.clone());
    tokio::task::spawn_blocking(move || {
        bodies.iter().try_for_each(|body| {
            let sent = post_to((kind, addr), &agent, body);
            // The readers share this core: let them run between requests rather than wait for
            // the scheduler to preempt a publisher that never sleeps.
            std::thread::yield_now();
            sent
        })
    })
    .await
    .map_err(|e| e.to_string())?
}

async fn measure(
    target: &mut Target,
    peers: &std::path::Path,
    scenario: &Scenario,
    per_source_address: usize,
    probes: &Probes,
) -> Result<Metrics, String> {
    let n = scenario.clients;
    let sources = Sources::new(per_source_address);
    let mut metrics = Metrics::default();
    let rss_before = target.rss();
    let clients = match scenario.load {
        Load::Targeted { .. } => {
            open(target, &sources, n, |i| {
                (format!("cust-{i}"), "customer", "payments")
            })
            .await
        }
        Load::Mixed { .. } => {
            // Customers first: their presence events then reach nobody and do not blur the count.
            let mut customers = open(target, &sources, n / 4, |i| {
                (format!("u{}", i * 4 + 3), "customer", "")
            })
            .await;
            let others = open(target, &sources, n - n / 4, |i| {
                let i = i + i / 3; // skip every fourth index: those are the customers
                (format!("u{i}"), MIXED_ROLES[i % 4], "")
            })
            .await;
            customers
                .sockets
                .iter_mut()
                .for_each(|(i, _)| *i = *i * 4 + 3);
            let mut sockets = customers.sockets;
            sockets.extend(others.sockets.into_iter().map(|(i, s)| (i + i / 3, s)));
            Clients {
                sockets,
                failed: customers.failed + others.failed,
                elapsed: customers.elapsed + others.elapsed,
            }
        }
        _ => {
            open(target, &sources, n, |i| {
                (format!("admin-{i}"), "admin", "system")
            })
            .await
        }
    };
    metrics.connected = clients.sockets.len() as f64;
    metrics.failed = clients.failed as f64;
    metrics.connect_ms = clients.elapsed.as_secs_f64() * 1000.0;
    let connected = clients.sockets.len() as u64;
    let agent = agent();

    let tallies = match scenario.load {
        Load::Idle => {
            tokio::time::sleep(Duration::from_millis(500)).await;
            metrics.rss_per_conn =
                target.rss().saturating_sub(rss_before) as f64 / connected.max(1) as f64;
            drop(clients);
            Vec::new()
        }
        Load::Fanout {
            events,
            batch,
            publishers,
        } => {
            let running =
                start_draining(target.kind, clients.sockets, "\"scheduledAt\"", |_| None).await;
            let bodies = prepare(&vec![maintenance(); events], batch);
            let meter = Meter::start(target, probes);
            let started = Instant::now();
            publish_concurrently(target, &agent, bodies, publishers).await?;
            let elapsed = running
                .until(connected * events as u64, started, Duration::from_secs(120))
                .await;
            let costs = meter.stop();
            let tallies = running.finish().await;
            metrics.record(
                &tallies,
                elapsed,
                events,
                connected * events as u64,
                Some(costs),
            );
            tallies
        }
        Load::Fixed {
            per_second,
            seconds,
            batch,
        } => {
            let running =
                start_draining(target.kind, clients.sockets, "\"scheduledAt\"", |_| None).await;
            let requests = per_second * seconds / batch;
            let total = requests * batch;
            let meter = Meter::start(target, probes);
            let started = Instant::now();
            let addr_target = (target.kind, target.addr);
            let body = prepare(&vec![maintenance(); batch], batch).remove(0);
            let per_request = batch as f64 / per_second as f64;
            let publisher = tokio::task::spawn_blocking(move || -> Result<(), String> {
                for i in 0..requests {
                    let due = started + Duration::from_secs_f64(i as f64 * per_request);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    post_to(addr_target, &agent, &body)?;
                }
                Ok(())
            });
            let elapsed = running
                .until(
                    connected * total as u64,
                    started,
                    Duration::from_secs(seconds as u64 + 60),
                )
                .await;
            publisher.await.unwrap()?;
            let costs = meter.stop();
            let tallies = running.finish().await;
            metrics.record(
                &tallies,
                elapsed,
                total,
                connected * total as u64,
                Some(costs),
            );
            tallies
        }
        Load::Targeted { events } => {
            // Payment `e` belongs to customer `e % n`.
            let owed = |i: usize| (events / n + usize::from(i < events % n)) as u64;
            let indices: Vec<usize> = clients.sockets.iter().map(|&(i, _)| i).collect();
            let expected: u64 = indices.iter().map(|&i| owed(i)).sum();
            // Every delivery must be the receiving customer's own.
            let running = start_draining(target.kind, clients.sockets, "\"amount\"", |i| {
                let own = format!("cust-{i}");
                Some(Arc::new(move |event: &Value| event["data"]["customerId"] == *own) as Check)
            })
            .await;
            let stamp: u64 = STAMP.parse().unwrap();
            let payments: Vec<Value> = (0..events)
                .map(|e| {
                    json!({"type": "payment:received", "data": {
                        "paymentId": format!("PAY-{e}"), "orderId": format!("ORD-{e}"), "customerId": format!("cust-{}", e % n),
                        "amount": stamp, "method": "card", "status": "success"}})
                })
                .collect();
            let bodies = prepare(&payments, 10);
            let started = Instant::now();
            publish_all(target, target.addr, &agent, bodies).await?;
            let elapsed = running
                .until(expected, started, Duration::from_secs(120))
                .await;
            let tallies = running.finish().await;
            metrics.record(&tallies, elapsed, events, expected, None);
            // More than a customer's own payments is a wrong delivery too.
            metrics.wrong = tallies
                .iter()
                .zip(&indices)
                .map(|(t, &i)| t.received.saturating_sub(owed(i)))
                .sum::<u64>() as f64;
            tallies
        }
        Load::Mixed { events } => {
            mixed(target, clients.sockets, events, &agent, &mut metrics).await?
        }
        Load::Publish { events, publishers } => {
            drop(clients);
            let bodies = prepare(&vec![maintenance(); events], 1);
            let meter = Meter::start(target, probes);
            let redis_before = target.redis_cpu_seconds();
            let started = Instant::now();
            publish_concurrently(target, &agent, bodies, publishers).await?;
            let elapsed = started.elapsed();
            let costs = meter.stop();
            metrics.events_per_s = events as f64 / elapsed.as_secs_f64();
            metrics.cpu_us_per_event = costs.server_cpu * 1e6 / events as f64;
            metrics.redis_cpu_us_per_event =
                (target.redis_cpu_seconds() - redis_before) * 1e6 / events as f64;
            Vec::new()
        }
        Load::Recover { missed, trials } => {
            drop(clients);
            recover(target, peers, missed, trials, &agent, probes, &mut metrics).await?
        }
    };
    let mut latencies: Vec<u32> = tallies
        .iter()
        .flat_map(|t| t.latencies_us.iter().copied())
        .collect();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
    };
    metrics.p50 = pct(0.50);
    metrics.p99 = pct(0.99);
    metrics.p999 = pct(0.999);
    metrics.max = latencies.last().copied().unwrap_or(0) as f64;
    metrics.wrong += tallies.iter().map(|t| t.wrong).sum::<u64>() as f64;
    Ok(metrics)
}

/// Publishes a batch of `{type, data}` through the target's publish endpoint.
fn post_to(
    (kind, addr): (Kind, std::net::SocketAddr),
    agent: &ureq::Agent,
    body: &str,
) -> Result<(), String> {
    let (path, auth) = if kind.is_omnicast() {
        ("/api/events", Some(format!("Bearer {}", target::API_KEY)))
    } else {
        ("/publish", None)
    };
    let mut request = agent
        .post(format!("http://{addr}{path}"))
        .header("Content-Type", "application/json");
    if let Some(auth) = &auth {
        request = request.header("Authorization", auth);
    }
    let mut response = request
        .send(body.replace(STAMP, &format!("{:016}", now_us())))
        .map_err(|e| e.to_string())?;
    // Read to the end, so that the connection goes back to the agent's pool: otherwise every
    // request would pay for a new TCP connection (and so would the server).
    let body = response.body_mut().read_to_string().unwrap_or_default();
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("publish failed: {}: {body}", response.status()))
    }
}

/// Publishes one event; its id.
fn publish_id(
    addr: std::net::SocketAddr,
    agent: &ureq::Agent,
    body: &str,
) -> Result<String, String> {
    let mut response = agent
        .post(format!("http://{addr}/api/events"))
        .header("Content-Type", "application/json")
        .header("Authorization", &format!("Bearer {}", target::API_KEY))
        .send(body)
        .map_err(|e| e.to_string())?;
    let reply: Value = response.body_mut().read_json().map_err(|e| e.to_string())?;
    reply["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("publish failed: {reply}"))
}

/// The recovery scenario: `missed` payments after a first one, then `trials` resumes from the
/// first, each timed from the connect until the last replayed payment arrived.
async fn recover(
    target: &mut Target,
    peers: &std::path::Path,
    missed: usize,
    trials: usize,
    agent: &ureq::Agent,
    probes: &Probes,
    metrics: &mut Metrics,
) -> Result<Vec<Tally>, String> {
    let payment = |n: usize| {
        json!({"type": "payment:received", "data": {
            "paymentId": format!("PAY-{n}"), "orderId": format!("ORD-{n}"), "customerId": "cust-0",
            "amount": n, "method": "card", "status": "success"}})
    };
    let addr = target.addr;
    let (first, agent_) = (payment(0).to_string(), agent.clone());
    let since = tokio::task::spawn_blocking(move || publish_id(addr, &agent_, &first))
        .await
        .map_err(|e| e.to_string())??;
    let payments: Vec<Value> = (1..=missed).map(payment).collect();
    publish_all(target, addr, agent, prepare(&payments, 100)).await?;
    if target.kind.redis() {
        target.restart_nodes(peers)?;
    }
    let meter = Meter::start(target, probes);
    let mut latencies = Vec::with_capacity(trials);
    for trial in 0..trials {
        // A user per resume: one user reconnecting 50 times at once meets the connect rate.
        let token = mint_hs256(
            target::SECRET.as_bytes(),
            &format!("admin-{trial}"),
            "admin",
            3600,
        );
        let addr = target.addr_for(trial);
        let started = Instant::now();
        // The namespaces parameter carries `since` along.
        let query = format!("payments&since={since}");
        let mut socket = client::connect(target.kind, addr, None, &token, &query).await?;
        let mut replayed = 0;
        while replayed < missed {
            let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
                .await
                .map_err(|_| format!("only {replayed} of {missed} events replayed"))?
                .ok_or("the connection closed during the replay")?
                .map_err(|e| e.to_string())?;
            if message
                .to_text()
                .is_ok_and(|text| text.contains("\"payment:received\""))
            {
                replayed += 1;
            }
        }
        latencies.push(started.elapsed().as_micros() as u32);
    }
    let costs = meter.stop();
    metrics.cpu_us_per_event = costs.server_cpu * 1e6 / (missed * trials) as f64;
    Ok(vec![Tally {
        received: 0,
        wrong: 0,
        latencies_us: latencies,
    }])
}

/// The role of client `i` in the mixed scenario: admin, manager, staff, customer in turn.
const MIXED_ROLES: [&str; 4] = ["admin", "manager", "staff", "customer"];

/// The catalog's events in turn, each with the catalog's example and a random customer as its
/// owner. Each request's `timestamp` is its index, so a client can tell which one it received
/// and check it with the runtime's own delivery rules ([`Audience`]) over the compiled catalog.
async fn mixed(
    target: &Target,
    sockets: Vec<(usize, Socket)>,
    events: usize,
    agent: &ureq::Agent,
    metrics: &mut Metrics,
) -> Result<Vec<Tally>, String> {
    let clients: Vec<usize> = sockets.iter().map(|(i, _)| *i).collect();
    let customers: Vec<usize> = clients.iter().copied().filter(|i| i % 4 == 3).collect();
    let mut stream = Vec::with_capacity(events);
    let mut decoded = Vec::with_capacity(events);
    for k in 0..events {
        let entry = &CATALOG.events[k % CATALOG.events.len()];
        let mut data: Value = serde_json::from_str(entry.example()).map_err(|e| e.to_string())?;
        if let Some(owner) = entry.descriptor.owner_field
            && !customers.is_empty()
        {
            data[owner] = json!(format!("u{}", customers[(k * 7919) % customers.len()]));
        }
        let raw = serde_json::value::to_raw_value(&data).map_err(|e| e.to_string())?;
        let event = CATALOG
            .decode(entry.descriptor.name, &raw, EmitOptions::default())
            .map_err(|e| format!("{}: {e}", entry.descriptor.name))?;
        decoded.push(event);
        stream.push(json!({ "type": entry.descriptor.name, "data": data, "timestamp": k }));
    }
    let decoded = Arc::new(decoded);
    let role_of = |i: usize| {
        CATALOG
            .role_index(MIXED_ROLES[i % 4])
            .expect("the catalog has the reference's four roles")
    };
    let admits = |event: &OutgoingEvent, role: u32, user: &str| {
        Audience::of(&CATALOG, event).admits(role, || (user, ""))
    };
    let who: Vec<(u32, String)> = clients
        .iter()
        .map(|&i| (role_of(i), format!("u{i}")))
        .collect();
    let expected: u64 = decoded
        .iter()
        .map(|event| {
            who.iter()
                .filter(|(role, user)| admits(event, *role, user))
                .count() as u64
        })
        .sum();
    let running = start_draining(target.kind, sockets, "\"never-present\"", |i| {
        let decoded = decoded.clone();
        // Built once per client: the check runs for every delivery it receives.
        let (role, user) = (role_of(i), format!("u{i}"));
        Some(Arc::new(move |event: &Value| {
            let k = event["timestamp"].as_u64().map(|k| k as usize);
            k.and_then(|k| decoded.get(k))
                .is_some_and(|event| admits(event, role, &user))
        }) as Check)
    })
    .await;
    let bodies = prepare(&stream, 20);
    let started = Instant::now();
    publish_all(target, target.addr, agent, bodies).await?;
    let elapsed = running
        .until(expected, started, Duration::from_secs(120))
        .await;
    let tallies = running.finish().await;
    metrics.record(&tallies, elapsed, events, expected, None);
    Ok(tallies)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn report(
    scenarios: &[Scenario],
    targets: &[Kind],
    results: &BTreeMap<(usize, usize), Vec<Metrics>>,
    runs: usize,
) -> String {
    let mut out = format!("Medians of {runs} run(s); [min–max] spread of the headline figure.\n");
    for (si, scenario) in scenarios.iter().enumerate() {
        if let Load::Publish { .. } | Load::Recover { .. } = scenario.load {
            out.push_str(&broker_report(si, scenario, targets, results));
            continue;
        }
        out.push_str(&format!(
            "\n### {} ({} clients)\n\n",
            scenario.name, scenario.clients
        ));
        out.push_str("| server | connected/failed | connect ms | deliveries/s | events/s | p50 ms | p99 ms | p99.9 ms | max ms | lost | wrong | RSS/conn KB | CPU µs/delivery | core µs/delivery | frames/write | tool CPU µs/delivery |\n");
        out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for (ti, kind) in targets.iter().enumerate() {
            let Some(runs) = results.get(&(si, ti)) else {
                continue;
            };
            let m = |f: fn(&Metrics) -> f64| median(&mut runs.iter().map(f).collect::<Vec<_>>());
            let spread = |f: fn(&Metrics) -> f64| {
                let values: Vec<f64> = runs.iter().map(f).collect();
                let (lo, hi) = values
                    .iter()
                    .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
                (lo, hi)
            };
            let (headline, (lo, hi)) = match scenario.load {
                Load::Idle => (m(|x| x.rss_per_conn) / 1024.0, {
                    let (a, b) = spread(|x| x.rss_per_conn);
                    (a / 1024.0, b / 1024.0)
                }),
                _ => (m(|x| x.deliveries_per_s), spread(|x| x.deliveries_per_s)),
            };
            let dps = if matches!(scenario.load, Load::Idle) {
                "–".to_owned()
            } else {
                format!("{headline:.0} [{lo:.0}–{hi:.0}]")
            };
            let rss = if matches!(scenario.load, Load::Idle) {
                format!("{headline:.1} [{lo:.1}–{hi:.1}]")
            } else {
                "–".to_owned()
            };
            let costed = matches!(scenario.load, Load::Fixed { .. } | Load::Fanout { .. });
            let cost = |f: fn(&Metrics) -> f64, digits: usize| {
                let value = m(f);
                if costed && value.is_finite() {
                    format!("{value:.digits$}")
                } else {
                    "–".to_owned()
                }
            };
            let cpu = cost(|x| x.cpu_us_per_delivery, 2);
            let ms = |f: fn(&Metrics) -> f64| {
                if matches!(scenario.load, Load::Idle) {
                    "–".to_owned()
                } else {
                    format!("{:.2}", m(f) / 1000.0)
                }
            };
            out.push_str(&format!(
                "| {} | {:.0}/{:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {:.0} | {:.0} | {} | {} | {} | {} | {} |\n",
                kind.name(),
                m(|x| x.connected),
                m(|x| x.failed),
                m(|x| x.connect_ms),
                dps,
                if matches!(scenario.load, Load::Idle) { "–".to_owned() } else { format!("{:.0}", m(|x| x.events_per_s)) },
                ms(|x| x.p50),
                ms(|x| x.p99),
                ms(|x| x.p999),
                ms(|x| x.max),
                m(|x| x.lost),
                m(|x| x.wrong),
                rss,
                cpu,
                cost(|x| x.core_us_per_delivery, 2),
                cost(|x| x.frames_per_write, 1),
                cost(|x| x.tool_cpu_us_per_delivery, 2),
            ));
        }
    }
    out
}

/// The publish and recovery scenarios' tables.
fn broker_report(
    si: usize,
    scenario: &Scenario,
    targets: &[Kind],
    results: &BTreeMap<(usize, usize), Vec<Metrics>>,
) -> String {
    let mut out = match scenario.load {
        Load::Publish { events, publishers } => format!(
            "\n### {} ({events} events, one per request, {publishers} publishers, no clients)\n\n\
             | server | events/s [min–max] | nodes' CPU µs/event | Redis CPU µs/event |\n|---|---|---|---|\n",
            scenario.name
        ),
        Load::Recover { missed, trials } => format!(
            "\n### {} ({missed} missed events, {trials} resumes; with Redis, replayed from Redis)\n\n\
             | server | p50 ms | p99 ms | max ms | replayed events/s (p50) | nodes' CPU µs/replayed event |\n|---|---|---|---|---|---|\n",
            scenario.name
        ),
        _ => unreachable!("only the broker scenarios"),
    };
    for (ti, kind) in targets.iter().enumerate() {
        let Some(runs) = results.get(&(si, ti)) else {
            continue;
        };
        let m = |f: fn(&Metrics) -> f64| median(&mut runs.iter().map(f).collect::<Vec<_>>());
        match scenario.load {
            Load::Publish { .. } => {
                let rates: Vec<f64> = runs.iter().map(|x| x.events_per_s).collect();
                let lo = rates.iter().copied().fold(f64::MAX, f64::min);
                let hi = rates.iter().copied().fold(f64::MIN, f64::max);
                out.push_str(&format!(
                    "| {} | {:.0} [{lo:.0}–{hi:.0}] | {:.1} | {:.1} |\n",
                    kind.name(),
                    m(|x| x.events_per_s),
                    m(|x| x.cpu_us_per_event),
                    m(|x| x.redis_cpu_us_per_event),
                ));
            }
            Load::Recover { missed, .. } => {
                let p50 = m(|x| x.p50);
                out.push_str(&format!(
                    "| {} | {:.2} | {:.2} | {:.2} | {:.0} | {:.2} |\n",
                    kind.name(),
                    p50 / 1000.0,
                    m(|x| x.p99) / 1000.0,
                    m(|x| x.max) / 1000.0,
                    missed as f64 / (p50 / 1e6),
                    m(|x| x.cpu_us_per_event),
                ));
            }
            _ => {}
        }
    }
    out
}
