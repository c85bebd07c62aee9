//! The servers under test: omnicast itself and the peers, each started as its own process pinned
//! to the server core, with its PID kept for memory and CPU readings.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
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
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Omnicast => "omnicast",
            Kind::Ws => "node ws",
            Kind::Socketio => "socket.io",
            Kind::Socketioxide => "socketioxide",
            Kind::Yardstick => "yardstick",
        }
    }

    /// Whether clients speak Socket.IO (Engine.IO v4 over the WebSocket).
    pub fn socket_io(self) -> bool {
        matches!(self, Kind::Socketio | Kind::Socketioxide)
    }

    /// Whether the server filters by role and owner (the targeted and mixed scenarios need it).
    pub fn filters(self) -> bool {
        self == Kind::Omnicast
    }
}

/// A running server process.
pub struct Target {
    pub kind: Kind,
    pub addr: SocketAddr,
    child: Child,
}

impl Target {
    /// Starts `kind` on `port`, pinned to `core` when given, and waits until it accepts.
    pub fn start(
        kind: Kind,
        port: u16,
        core: Option<usize>,
        peers: &Path,
    ) -> Result<Target, String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut command = match core {
            Some(core) => {
                let mut c = Command::new("taskset");
                c.args(["-c", &core.to_string()]);
                c
            }
            None => Command::new("env"),
        };
        match kind {
            Kind::Omnicast => {
                let exe = std::env::current_exe().map_err(|e| e.to_string())?;
                command
                    .arg(exe)
                    .args([crate::SERVE, "--bind", &addr.to_string()])
                    .env("OMNICAST_JWT_SECRET", SECRET)
                    .env("OMNICAST_API_KEY", API_KEY)
                    // Bursts of a whole run's events are queued at once; see the README.
                    .env("OMNICAST_QUEUE_CAPACITY", "8192")
                    .env("RUST_LOG", "warn")
                    .env_remove("OMNICAST_CONFIG");
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
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", kind.name()))?;
        let mut target = Target { kind, addr, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline {
                return Err(format!("{} did not start listening on {addr}", kind.name()));
            }
            if let Ok(Some(status)) = target.child.try_wait() {
                return Err(format!("{} exited: {status}", kind.name()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(target)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory in bytes (`VmRSS`).
    pub fn rss(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// CPU time used so far (user + system), in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds_of(&self.pid().to_string())
    }

    /// Starts counting the server's write system calls (`perf stat` on the syscall
    /// tracepoints); `None` when `perf` is not available here.
    pub fn count_writes(&self) -> Option<WriteCount> {
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
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
