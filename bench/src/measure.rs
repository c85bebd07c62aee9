//! One run of one scenario: connect the clients, drive the load ([`crate::loads`]), and
//! measure what it cost the server and the load tool ([`Meter`]).

use std::path::PathBuf;
use std::time::Duration;

use crate::client::{self, Clients, Sources, Tally};
use crate::loads::{self, MIXED_ROLES};
use crate::publish;
use crate::scenarios::{Load, Scenario};
use crate::target::{self, Target};

/// Runs `scenario` against a started `target`.
pub async fn measure(
    target: &mut Target,
    peers: &std::path::Path,
    scenario: &Scenario,
    per_source_address: usize,
    probes: &Probes,
) -> Result<Metrics, String> {
    let sources = Sources::new(per_source_address);
    let mut metrics = Metrics::default();
    let rss_before = target.rss();
    let clients = connect(target, &sources, scenario).await;
    metrics.connected = clients.sockets.len() as f64;
    metrics.failed = clients.failed as f64;
    metrics.connect_ms = clients.elapsed.as_secs_f64() * 1000.0;
    let connected = clients.sockets.len() as u64;
    let agent = publish::agent();
    let run = loads::Run {
        target,
        probes,
        agent: &agent,
    };
    let tallies = match scenario.load {
        Load::Idle { cpu_seconds } => {
            tokio::time::sleep(Duration::from_millis(500)).await;
            metrics.rss_per_conn =
                target.rss().saturating_sub(rss_before) as f64 / connected.max(1) as f64;
            // Then reading (answering the server's pings) for a while: what idleness costs.
            let running =
                client::start_draining(target.kind, clients.sockets, "\"scheduledAt\"", |_| None)
                    .await;
            let before = target.cpu_seconds();
            tokio::time::sleep(Duration::from_secs(cpu_seconds)).await;
            let spent = target.cpu_seconds() - before;
            metrics.idle_cpu_us_per_conn_s =
                spent * 1e6 / cpu_seconds.max(1) as f64 / connected.max(1) as f64;
            running.finish().await;
            Vec::new()
        }
        Load::Fanout {
            events,
            batch,
            publishers,
        } => loads::fanout(&run, clients, events, batch, publishers, &mut metrics).await?,
        Load::Fixed {
            per_second,
            seconds,
            batch,
        } => loads::fixed(&run, clients, per_second, seconds, batch, &mut metrics).await?,
        Load::Targeted { events } => {
            loads::targeted(&run, clients, scenario.clients, events, &mut metrics).await?
        }
        Load::Mixed { events } => loads::mixed(&run, clients, events, &mut metrics).await?,
        Load::Publish {
            events,
            publishers,
            spread,
        } => {
            drop(clients);
            loads::publish_only(&run, events, publishers, spread, &mut metrics).await?
        }
        Load::Recover { missed, trials } => {
            drop(clients);
            loads::recover(target, peers, missed, trials, &agent, probes, &mut metrics).await?
        }
    };
    metrics.latencies(&tallies);
    Ok(metrics)
}

/// Opens the scenario's clients: admins on `system`, customers on `payments`, or (mixed) every
/// role in turn on its default namespaces.
async fn connect(target: &Target, sources: &Sources, scenario: &Scenario) -> Clients {
    let n = scenario.clients;
    match scenario.load {
        Load::Targeted { .. } => {
            client::open(target, sources, n, |i| {
                (format!("cust-{i}"), "customer", "payments")
            })
            .await
        }
        Load::Mixed { .. } => {
            // Customers first: their presence events then reach nobody and do not blur the count.
            let mut customers = client::open(target, sources, n / 4, |i| {
                (format!("u{}", i * 4 + 3), "customer", "")
            })
            .await;
            let others = client::open(target, sources, n - n / 4, |i| {
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
            client::open(target, sources, n, |i| {
                (format!("admin-{i}"), "admin", "system")
            })
            .await
        }
    }
}

/// What one run measured. Latencies in microseconds.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    pub connected: f64,
    pub failed: f64,
    pub connect_ms: f64,
    pub deliveries_per_s: f64,
    pub events_per_s: f64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub lost: f64,
    pub wrong: f64,
    pub rss_per_conn: f64,
    /// Idle: the server's CPU per connection per second of idleness, in µs.
    pub idle_cpu_us_per_conn_s: f64,
    pub cpu_us_per_delivery: f64,
    /// The server core's busy time per delivery (NaN when the server is not pinned).
    pub core_us_per_delivery: f64,
    /// The load tool's CPU per delivery: what receiving the stream costs a client.
    pub tool_cpu_us_per_delivery: f64,
    /// Deliveries per write system call of the server's (NaN when perf could not count).
    pub frames_per_write: f64,
    /// Publish and recovery: the nodes' CPU per event published (or replayed).
    pub cpu_us_per_event: f64,
    /// Publish: Redis' CPU per event (0 without Redis).
    pub redis_cpu_us_per_event: f64,
    /// Publish: the busiest Redis server's share of Redis' CPU (1 with one Redis).
    pub redis_busiest_share: f64,
}

/// What the server and the load tool spent while one scenario's events were delivered.
pub struct Costs {
    pub server_cpu: f64,
    core_busy: Option<f64>,
    tool_cpu: f64,
    writes: Option<u64>,
}

/// Measures [`Costs`] from [`start`](Meter::start) to [`stop`](Meter::stop).
pub struct Meter<'t> {
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
pub struct Probes {
    /// The core the server is pinned to, if it is.
    pub core: Option<usize>,
    pub count_writes: bool,
    /// Where to write a `perf record` of this run, if anywhere.
    pub profile: Option<PathBuf>,
}

impl<'t> Meter<'t> {
    pub fn start(target: &'t Target, probes: &Probes) -> Self {
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

    pub fn stop(self) -> Costs {
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
    /// The latency percentiles and wrong deliveries over every client's tally.
    fn latencies(&mut self, tallies: &[Tally]) {
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
        self.p50 = pct(0.50);
        self.p99 = pct(0.99);
        self.p999 = pct(0.999);
        self.max = latencies.last().copied().unwrap_or(0) as f64;
        self.wrong += tallies.iter().map(|t| t.wrong).sum::<u64>() as f64;
    }

    /// Throughput, losses and CPU per delivery from what the clients counted.
    pub fn record(
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
