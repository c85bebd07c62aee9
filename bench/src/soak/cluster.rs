//! The soak's deployment: one `redis-server` with AOF persistence and three omnicast nodes on
//! it, each its own process on a free loopback port, and the faults done to them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::target::{self, API_KEY, SECRET};

/// What the nodes are told beyond the defaults.
pub struct NodeSettings {
    /// Frames a connection may have queued (small, so that stalled readers are closed soon).
    pub queue_capacity: usize,
    /// How far behind a resuming client may be (large: the soak's clients never are).
    pub max_recovery: u64,
    /// Every connection's kernel send buffer (small: loopback's autotuned one holds megabytes).
    pub send_buffer_bytes: u32,
}

pub struct Cluster {
    pub nodes: Vec<SocketAddr>,
    children: Vec<Option<Child>>,
    redis: Option<Child>,
    redis_port: u16,
    redis_dir: PathBuf,
    settings: NodeSettings,
}

impl Cluster {
    /// Redis (AOF on, every write synced before it is answered) in a fresh directory, then
    /// `nodes` nodes, each ready.
    pub fn start(nodes: usize, settings: NodeSettings) -> Result<Cluster, String> {
        let redis_dir = std::env::temp_dir().join(format!("omnicast-soak-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&redis_dir);
        std::fs::create_dir_all(&redis_dir).map_err(|e| e.to_string())?;
        let mut cluster = Cluster {
            nodes: Vec::new(),
            children: Vec::new(),
            redis: None,
            redis_port: target::free_port()?,
            redis_dir,
            settings,
        };
        cluster.start_redis()?;
        for _ in 0..nodes {
            let addr = SocketAddr::from(([127, 0, 0, 1], target::free_port()?));
            cluster.nodes.push(addr);
            cluster.children.push(None);
        }
        for k in 0..nodes {
            cluster.start_node(k)?;
        }
        for k in 0..nodes {
            cluster.wait_ready(k)?;
        }
        Ok(cluster)
    }

    fn start_redis(&mut self) -> Result<(), String> {
        let port = self.redis_port.to_string();
        let child = Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(&self.redis_dir)
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start redis-server: {e}"))?;
        self.redis = Some(child);
        target::wait_listening(
            SocketAddr::from(([127, 0, 0, 1], self.redis_port)),
            "redis-server",
        )
    }

    fn start_node(&mut self, k: usize) -> Result<(), String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let child = Command::new(exe)
            .arg(crate::SERVE)
            .args(["--bind", &self.nodes[k].to_string()])
            .env("OMNICAST_JWT_SECRET", SECRET)
            .env("OMNICAST_API_KEY", API_KEY)
            .env(
                "OMNICAST_BROKER",
                format!("redis://127.0.0.1:{}", self.redis_port),
            )
            .env(
                "OMNICAST_QUEUE_CAPACITY",
                self.settings.queue_capacity.to_string(),
            )
            .env(
                "OMNICAST_MAX_RECOVERY",
                self.settings.max_recovery.to_string(),
            )
            .env(
                "OMNICAST_SEND_BUFFER_BYTES",
                self.settings.send_buffer_bytes.to_string(),
            )
            .env(
                "RUST_LOG",
                std::env::var("OMNICAST_SOAK_RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .env_remove("OMNICAST_CONFIG")
            .stdout(node_log(k))
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start node {k}: {e}"))?;
        self.children[k] = Some(child);
        Ok(())
    }

    fn wait_ready(&mut self, k: usize) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !target::ready(self.nodes[k]) {
            if Instant::now() > deadline {
                return Err(format!(
                    "node {k} did not become ready on {}",
                    self.nodes[k]
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn redis_pid(&self) -> u32 {
        self.redis.as_ref().map_or(0, Child::id)
    }

    /// Redis stops answering (SIGSTOP) for `pause`, then goes on as if nothing happened.
    pub fn pause_redis(&self, pause: Duration) {
        signal(self.redis_pid(), "STOP");
        std::thread::sleep(pause);
        signal(self.redis_pid(), "CONT");
    }

    /// Redis killed (SIGKILL) and started again after `down`; with `keep_data`, from its AOF
    /// (every answered write survives, the epochs too), else from nothing (a Redis without
    /// persistence: every namespace starts a new epoch).
    pub fn restart_redis(&mut self, down: Duration, keep_data: bool) -> Result<(), String> {
        if let Some(mut child) = self.redis.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if !keep_data {
            let _ = std::fs::remove_dir_all(&self.redis_dir);
            std::fs::create_dir_all(&self.redis_dir).map_err(|e| e.to_string())?;
        }
        std::thread::sleep(down);
        self.start_redis()
    }

    /// Node `k` killed with SIGKILL (no shutdown, no goodbye to Redis) and started again after
    /// `down`.
    pub fn kill_node(&mut self, k: usize, down: Duration) -> Result<(), String> {
        if let Some(mut child) = self.children[k].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        std::thread::sleep(down);
        self.start_node(k)?;
        self.wait_ready(k)
    }

    /// Each node's memory with the allocator trimmed: gdb calls glibc's `malloc_trim(0)` in the
    /// node (what it holds, not the free pages it keeps after a peak), then `malloc_stats()`
    /// with the node's stderr sent to a file for the moment, for the bytes in live allocations.
    /// The live heap is what a leak grows; the trimmed RSS also counts pages a few live
    /// allocations keep resident (fragmentation). Plain RSS, and no heap, where gdb is not at hand.
    pub fn memory(&self) -> Vec<Memory> {
        self.children
            .iter()
            .enumerate()
            .map(|(k, child)| {
                let Some(child) = child else {
                    return Memory::default();
                };
                let stats = self.redis_dir.join(format!("malloc-stats-{k}.txt"));
                let _ = std::fs::remove_file(&stats);
                let open = format!("set $fd = (int) open(\"{}\", 577, 384)", stats.display());
                let _ = Command::new("gdb")
                    .args(["-p", &child.id().to_string(), "-batch", "-nx"])
                    .args(["-ex", "call (int) malloc_trim(0)"])
                    .args(["-ex", &open, "-ex", "set $err = (int) dup(2)"])
                    .args(["-ex", "call (int) dup2($fd, 2)"])
                    .args(["-ex", "call (void) malloc_stats()"])
                    .args(["-ex", "call (int) dup2($err, 2)"])
                    .args([
                        "-ex",
                        "call (int) close($err)",
                        "-ex",
                        "call (int) close($fd)",
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                let heap = std::fs::read_to_string(&stats)
                    .ok()
                    .and_then(|text| heap_in_use(&text));
                Memory {
                    rss: rss_of(child.id()),
                    heap,
                }
            })
            .collect()
    }

    /// Each node's resident memory, in bytes (0 for a node not running).
    pub fn rss(&self) -> Vec<u64> {
        self.children
            .iter()
            .map(|child| child.as_ref().map_or(0, |c| rss_of(c.id())))
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self
            .children
            .iter_mut()
            .flatten()
            .chain(self.redis.as_mut())
        {
            // A paused Redis would not die of SIGKILL before it is continued.
            signal(child.id(), "CONT");
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.redis_dir);
    }
}

/// Where node `k` logs: `$OMNICAST_SOAK_LOGS/node-<k>.log` (appended to across restarts) when
/// that is set, else nowhere.
fn node_log(k: usize) -> Stdio {
    let Some(dir) = std::env::var_os("OMNICAST_SOAK_LOGS") else {
        return Stdio::null();
    };
    let path = std::path::Path::new(&dir).join(format!("node-{k}.log"));
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_or_else(|_| Stdio::null(), Stdio::from)
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

/// A node's memory, in bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub rss: u64,
    /// In live allocations, by glibc's own count; `None` when it could not be read.
    pub heap: Option<u64>,
}

/// The total "in use bytes" of `malloc_stats()`'s report (every arena and mmapped chunks).
fn heap_in_use(report: &str) -> Option<u64> {
    let (_, total) = report.split_once("Total (incl. mmap):")?;
    total
        .lines()
        .find_map(|l| l.trim().strip_prefix("in use bytes"))
        .and_then(|v| v.trim().trim_start_matches('=').trim().parse().ok())
}

fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
