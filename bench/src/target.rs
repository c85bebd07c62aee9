//! The servers under test: omnicast itself and the peers, each started as its own process pinned
//! to the server core, with its PID kept for memory and CPU readings.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The shared secret and key every target is started with.
pub const SECRET: &str = "bench-secret-0123456789abcdef";
pub const API_KEY: &str = "bench-api-key-0123456789";

/// A kind of server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// This project's server (JWT auth and permission filtering on).
    Omnicast,
    /// A plain Node.js `ws` broadcast server.
    Ws,
    /// A Socket.IO 4.8 server (websocket transport only).
    Socketio,
    /// socketioxide, a Rust Socket.IO server (websocket transport).
    Socketioxide,
    /// The yardstick: axum + `tokio::sync::broadcast`, no auth, no filtering.
    Yardstick,
    /// omnicast with the Redis broker: one node and a `redis-server`, on the server core.
    OmnicastRedis,
    /// Two omnicast nodes on one Redis (clients spread over them), on the server core.
    OmnicastRedis2,
    /// Three omnicast nodes on one Redis, on the server core.
    OmnicastRedis3,
    /// One omnicast node on a Redis Cluster of three shards (three `redis-server`s, no
    /// replicas), all on the server core.
    OmnicastRedisCluster,
    /// Another build of omnicast (`--baseline <omnicast binary>`), embedded broker: the same
    /// invocation measures a change against what came before it.
    Baseline,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Omnicast => "omnicast",
            Kind::Ws => "node ws",
            Kind::Socketio => "socket.io",
            Kind::Socketioxide => "socketioxide",
            Kind::Yardstick => "yardstick",
            Kind::OmnicastRedis => "omnicast+redis",
            Kind::OmnicastRedis2 => "omnicast+redis ×2",
            Kind::OmnicastRedis3 => "omnicast+redis ×3",
            Kind::OmnicastRedisCluster => "omnicast+redis cluster (3 shards)",
            Kind::Baseline => "omnicast (baseline)",
        }
    }

    /// Whether it is omnicast (any broker): the same protocol and publish API.
    pub fn is_omnicast(self) -> bool {
        self.nodes() > 0
    }

    /// How many omnicast nodes it runs (0 for the peers).
    pub fn nodes(self) -> usize {
        match self {
            Kind::Omnicast | Kind::OmnicastRedis | Kind::OmnicastRedisCluster | Kind::Baseline => 1,
            Kind::OmnicastRedis2 => 2,
            Kind::OmnicastRedis3 => 3,
            _ => 0,
        }
    }

    /// Whether it runs a `redis-server`.
    pub fn redis(self) -> bool {
        matches!(
            self,
            Kind::OmnicastRedis
                | Kind::OmnicastRedis2
                | Kind::OmnicastRedis3
                | Kind::OmnicastRedisCluster
        )
    }

    /// How many `redis-server`s it runs (a cluster's shards).
    pub fn redis_servers(self) -> usize {
        match self {
            Kind::OmnicastRedisCluster => 3,
            kind if kind.redis() => 1,
            _ => 0,
        }
    }

    /// Whether clients speak Socket.IO (Engine.IO v4 over the WebSocket).
    pub fn socket_io(self) -> bool {
        matches!(self, Kind::Socketio | Kind::Socketioxide)
    }

    /// Whether the server filters by role and owner (the targeted and mixed scenarios need it).
    pub fn filters(self) -> bool {
        self.is_omnicast()
    }
}

/// A running server: its process (or, with Redis, its nodes' processes and the Redis').
pub struct Target {
    pub kind: Kind,
    /// The first node's address (the only one but for several nodes).
    pub addr: SocketAddr,
    /// Every node's address.
    pub addrs: Vec<SocketAddr>,
    children: Vec<Child>,
    /// The `redis-server`s (one, or a cluster's shards) and their ports.
    redis: Vec<Child>,
    redis_ports: Vec<u16>,
    /// Where a cluster's nodes keep their `nodes.conf`.
    redis_dir: Option<PathBuf>,
    core: Option<usize>,
    /// The executable of [`Kind::Baseline`].
    baseline: Option<PathBuf>,
}

impl Target {
    /// Starts `kind` on free loopback ports, pinned to `core` when given, and waits until it
    /// accepts (with Redis: Redis first, then every node, each ready). `baseline` is the
    /// `omnicast` binary [`Kind::Baseline`] runs.
    pub fn start(
        kind: Kind,
        core: Option<usize>,
        peers: &Path,
        baseline: Option<&Path>,
    ) -> Result<Target, String> {
        if kind == Kind::Baseline && baseline.is_none() {
            return Err("`--targets baseline` needs `--baseline <omnicast binary>`".into());
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let mut target = Target {
            kind,
            addr,
            addrs: Vec::new(),
            children: Vec::new(),
            redis: Vec::new(),
            redis_ports: Vec::new(),
            redis_dir: None,
            core,
            baseline: baseline.map(Path::to_path_buf),
        };
        let cluster = kind == Kind::OmnicastRedisCluster;
        if cluster {
            let dir = std::env::temp_dir().join(format!("omnicast-bench-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            target.redis_dir = Some(dir);
        }
        for k in 0..kind.redis_servers() {
            let port = free_port()?;
            let mut command = pinned(core);
            command
                .args(["redis-server", "--port", &port.to_string()])
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
            if let Some(dir) = &target.redis_dir {
                command
                    .args(["--cluster-enabled", "yes", "--cluster-config-file"])
                    .arg(format!("nodes-{k}.conf"))
                    .arg("--dir")
                    .arg(dir);
            }
            let child = command
                .stdout(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start redis-server: {e}"))?;
            target.redis.push(child);
            target.redis_ports.push(port);
            wait_listening(SocketAddr::from(([127, 0, 0, 1], port)), "redis-server")?;
        }
        if cluster {
            create_cluster(&target.redis_ports)?;
        }
        let nodes = kind.nodes().max(1);
        for k in 0..nodes {
            let addr = if k == 0 {
                addr
            } else {
                SocketAddr::from(([127, 0, 0, 1], free_port()?))
            };
            target.addrs.push(addr);
            target.children.push(target.spawn(addr, peers)?);
        }
        for k in 0..nodes {
            target.wait_ready(k)?;
        }
        Ok(target)
    }

    /// Starts the process serving `addr`.
    fn spawn(&self, addr: SocketAddr, peers: &Path) -> Result<Child, String> {
        let (kind, port) = (self.kind, addr.port());
        let mut command = pinned(self.core);
        match kind {
            Kind::Omnicast
            | Kind::OmnicastRedis
            | Kind::OmnicastRedis2
            | Kind::OmnicastRedis3
            | Kind::OmnicastRedisCluster
            | Kind::Baseline => {
                match &self.baseline {
                    // `omnicast serve`, from another build.
                    Some(exe) if kind == Kind::Baseline => command.arg(exe).arg("serve"),
                    // This very build: `omnicast-bench serve-omnicast` runs `omnicast serve`.
                    _ => command
                        .arg(std::env::current_exe().map_err(|e| e.to_string())?)
                        .arg(crate::SERVE),
                };
                command
                    .args(["--bind", &addr.to_string()])
                    .env("OMNICAST_JWT_SECRET", SECRET)
                    .env("OMNICAST_API_KEY", API_KEY)
                    // Bursts of a whole run's events are queued at once; see the README.
                    .env("OMNICAST_QUEUE_CAPACITY", "8192")
                    .env("RUST_LOG", "warn")
                    .env_remove("OMNICAST_CONFIG");
                if kind == Kind::OmnicastRedisCluster {
                    let seeds: Vec<String> = self
                        .redis_ports
                        .iter()
                        .map(|p| format!("127.0.0.1:{p}"))
                        .collect();
                    command.env(
                        "OMNICAST_BROKER",
                        format!("redis-cluster://{}", seeds.join(",")),
                    );
                } else if kind.redis() {
                    let redis = self.redis_ports[0];
                    command.env("OMNICAST_BROKER", format!("redis://127.0.0.1:{redis}"));
                } else {
                    command.env_remove("OMNICAST_BROKER");
                }
            }
            Kind::Yardstick => {
                command
                    .arg(peers.join("yardstick/target/release/yardstick-peer"))
                    .env("PORT", port.to_string());
            }
            Kind::Socketioxide => {
                command
                    .arg(peers.join("socketioxide/target/release/socketioxide-peer"))
                    .env("PORT", port.to_string())
                    .env("JWT_SECRET", SECRET);
            }
            Kind::Ws | Kind::Socketio => {
                let script = if kind == Kind::Ws {
                    "ws-server.js"
                } else {
                    "socketio-server.js"
                };
                command
                    .arg("node")
                    .arg(peers.join(script))
                    .env("PORT", port.to_string())
                    .env("JWT_SECRET", SECRET);
            }
        }
        command
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", kind.name()))
    }

    /// Waits until node `k` accepts connections (an omnicast node: until `/readyz` says ready).
    fn wait_ready(&mut self, k: usize) -> Result<(), String> {
        let (addr, name) = (self.addrs[k], self.kind.name());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let up = if self.kind.is_omnicast() {
                ready(addr)
            } else {
                TcpStream::connect(addr).is_ok()
            };
            if up {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("{name} did not become ready on {addr}"));
            }
            if let Ok(Some(status)) = self.children[k].try_wait() {
                return Err(format!("{name} exited: {status}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Restarts every node (Redis keeps running): the nodes come back knowing nothing of the
    /// streams but what Redis holds.
    pub fn restart_nodes(&mut self, peers: &Path) -> Result<(), String> {
        for k in 0..self.children.len() {
            let _ = self.children[k].kill();
            let _ = self.children[k].wait();
            self.children[k] = self.spawn(self.addrs[k], peers)?;
        }
        for k in 0..self.children.len() {
            self.wait_ready(k)?;
        }
        Ok(())
    }

    /// The node client `i` connects to: round robin over the nodes.
    pub fn addr_for(&self, i: usize) -> SocketAddr {
        self.addrs[i % self.addrs.len()]
    }

    /// CPU time the Redis servers used so far, in seconds (0 without Redis).
    pub fn redis_cpu_seconds(&self) -> f64 {
        self.redis_cpu_per_server().iter().sum()
    }

    /// CPU time each Redis server used so far, in seconds.
    pub fn redis_cpu_per_server(&self) -> Vec<f64> {
        self.redis
            .iter()
            .map(|r| cpu_seconds_of(&r.id().to_string()))
            .collect()
    }

    /// The first node's process id.
    pub fn pid(&self) -> u32 {
        self.children[0].id()
    }

    /// Resident memory in bytes (`VmRSS`), of every node.
    pub fn rss(&self) -> u64 {
        self.children
            .iter()
            .map(|child| {
                let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
                    .unwrap_or_default();
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
                    .map_or(0, |kb| kb * 1024)
            })
            .sum()
    }

    /// CPU time every node used so far (user + system), in seconds (Redis' is apart).
    pub fn cpu_seconds(&self) -> f64 {
        self.children
            .iter()
            .map(|child| cpu_seconds_of(&child.id().to_string()))
            .sum()
    }

    /// Starts counting the server's write system calls (`perf stat` on the syscall
    /// tracepoints); `None` when `perf` is not available here.
    pub fn count_writes(&self) -> Option<WriteCount> {
        if self.children.len() > 1 {
            return None; // one perf per process would be needed
        }
        let output = std::env::temp_dir().join(format!("omnicast-bench-perf-{}", self.pid()));
        let events = WRITE_SYSCALLS
            .iter()
            .map(|s| format!("syscalls:sys_enter_{s}"))
            .collect::<Vec<_>>()
            .join(",");
        let perf = self.perf(&["stat", "-x", ",", "-e", &events], &output)?;
        Some(WriteCount { perf, output })
    }

    /// Starts sampling the server's stacks into `output` (`perf record -e cpu-clock -g`), for
    /// `perf report -i <output>`; `None` when `perf` is not available here.
    pub fn record_profile(&self, output: &Path) -> Option<Perf> {
        self.perf(&["record", "-q", "-e", "cpu-clock", "-g"], output)
    }

    fn perf(&self, args: &[&str], output: &Path) -> Option<Perf> {
        let child = Command::new("perf")
            .args(args)
            .args(["-p", &self.pid().to_string()])
            .arg("-o")
            .arg(output)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        // perf attaches to every thread before it counts; give it the time to.
        std::thread::sleep(Duration::from_millis(300));
        Some(Perf(child))
    }
}

/// A `perf` attached to a server, until [`finish`](Perf::finish)ed.
pub struct Perf(Child);

impl Perf {
    /// Detaches perf, which then writes its output.
    pub fn finish(mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// The system calls a server may write a socket with.
const WRITE_SYSCALLS: [&str; 4] = ["write", "writev", "sendto", "sendmsg"];

/// A running `perf stat` on a server's write system calls.
pub struct WriteCount {
    perf: Perf,
    output: std::path::PathBuf,
}

impl WriteCount {
    /// Stops counting; the number of write system calls since [`Target::count_writes`], or
    /// `None` if perf counted nothing readable (no permission, no tracepoints).
    pub fn finish(self) -> Option<u64> {
        self.perf.finish();
        let text = std::fs::read_to_string(&self.output).ok()?;
        let _ = std::fs::remove_file(&self.output);
        // CSV lines: count,unit,event,...; "<not supported>" or "<not counted>" when perf
        // could not count.
        let counts: Vec<u64> = text
            .lines()
            .filter(|l| l.contains("syscalls:sys_enter_"))
            .map(|l| l.split(',').next().unwrap_or("").trim().parse::<u64>())
            .collect::<Result<_, _>>()
            .ok()?;
        (counts.len() == WRITE_SYSCALLS.len()).then(|| counts.iter().sum())
    }
}

/// How long `core` has been busy so far, in seconds (`/proc/stat`: user, nice, system, irq and
/// softirq time). With the server pinned alone to its core, this is all it costs, including the
/// receiving side's TCP work that loopback runs in softirq context, which the kernel may charge
/// to `ksoftirqd` rather than to the server process.
pub fn core_busy_seconds(core: usize) -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&format!("cpu{core}")))?;
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    // user nice system idle iowait irq softirq ...
    let busy = [0, 1, 2, 5, 6]
        .iter()
        .filter_map(|&i| ticks.get(i))
        .sum::<f64>();
    Some(busy / clock_ticks())
}

/// The load tool's own CPU time so far (user + system), in seconds: what its clients pay to
/// receive.
pub fn own_cpu_seconds() -> f64 {
    cpu_seconds_of("self")
}

/// CPU time of process `pid` (a number or `self`) so far, user + system, in seconds.
fn cpu_seconds_of(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / clock_ticks()
}

impl Drop for Target {
    fn drop(&mut self) {
        for child in self.children.iter_mut().chain(self.redis.iter_mut()) {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dir) = &self.redis_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Joins the `redis-server`s on `ports` into a cluster (`redis-cli --cluster create`, a
/// primary each) and waits until every one reports it `ok`.
pub(crate) fn create_cluster(ports: &[u16]) -> Result<(), String> {
    let addresses: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let status = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addresses)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run redis-cli: {e}"))?;
    if !status.success() {
        return Err("redis-cli --cluster create failed".into());
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = ports.iter().all(|port| {
            Command::new("redis-cli")
                .args(["-p", &port.to_string(), "cluster", "info"])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
        });
        if ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("the Redis Cluster did not come up".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A loopback port free now (the kernel's pick), for a server about to bind it.
pub(crate) fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// A command run on `core` when given.
fn pinned(core: Option<usize>) -> Command {
    match core {
        Some(core) => {
            let mut c = Command::new("taskset");
            c.args(["-c", &core.to_string()]);
            c
        }
        None => Command::new("env"),
    }
}

pub(crate) fn wait_listening(addr: SocketAddr, name: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            return Err(format!("{name} did not start listening on {addr}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Whether the omnicast node at `addr` answers `GET /readyz` with 200.
pub(crate) fn ready(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return false;
    };
    let request = format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut response = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut response).is_ok()
        && response.starts_with("HTTP/1.1 200")
}

fn clock_ticks() -> f64 {
    // `getconf CLK_TCK` is 100 on every Linux this runs on; ask anyway.
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}
