//! The soak's deployment: one `redis-server` with AOF persistence (or a Redis Cluster of three
//! such servers, a shard each) and three omnicast nodes on it, each its own process on a free
//! loopback port, and the faults done to them.

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
    /// The `redis-server`s: one, or a cluster's shards (primaries without replicas).
    redis: Vec<Option<Child>>,
    redis_ports: Vec<u16>,
    /// The soak's directory: each Redis keeps its AOF (and a shard its `nodes.conf`) in
    /// `redis-<k>/` there.
    redis_dir: PathBuf,
    /// Whether the Redis servers form a cluster.
    sharded: bool,
    /// The shard the next Redis fault hits (in turn).
    next_shard: usize,
    settings: NodeSettings,
}

impl Cluster {
    /// Redis (AOF on, every write synced before it is answered) in a fresh directory, then
    /// `nodes` nodes, each ready.
    /// With `shards` > 1, that many `redis-server`s joined into a Redis Cluster.
    pub fn start(nodes: usize, shards: usize, settings: NodeSettings) -> Result<Cluster, String> {
        let redis_dir = std::env::temp_dir().join(format!("omnicast-soak-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&redis_dir);
        std::fs::create_dir_all(&redis_dir).map_err(|e| e.to_string())?;
        let shards = shards.max(1);
        let mut cluster = Cluster {
            nodes: Vec::new(),
            children: Vec::new(),
            redis: (0..shards).map(|_| None).collect(),
            redis_ports: (0..shards)
                .map(|_| target::free_port())
                .collect::<Result<_, _>>()?,
            redis_dir,
            sharded: shards > 1,
            next_shard: 0,
            settings,
        };
        for k in 0..shards {
            cluster.start_redis(k)?;
        }
        if cluster.sharded {
            target::create_cluster(&cluster.redis_ports)?;
        }
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

    fn shard_dir(&self, k: usize) -> PathBuf {
        self.redis_dir.join(format!("redis-{k}"))
    }

    fn start_redis(&mut self, k: usize) -> Result<(), String> {
        let port = self.redis_ports[k].to_string();
        let dir = self.shard_dir(k);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(&dir);
        if self.sharded {
            // A shard down leaves the others serving their slots.
            command
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
                .args(["--cluster-require-full-coverage", "no"]);
        }
        let child = command
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start redis-server: {e}"))?;
        self.redis[k] = Some(child);
        target::wait_listening(
            SocketAddr::from(([127, 0, 0, 1], self.redis_ports[k])),
            "redis-server",
        )
    }

    /// The broker URL the nodes are given.
    fn broker_url(&self) -> String {
        let hosts: Vec<String> = self
            .redis_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        if self.sharded {
            format!("redis-cluster://{}", hosts.join(","))
        } else {
            format!("redis://{}", hosts[0])
        }
    }

    fn start_node(&mut self, k: usize) -> Result<(), String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let child = Command::new(exe)
            .arg(crate::SERVE)
            .args(["--bind", &self.nodes[k].to_string()])
            .env("OMNICAST_JWT_SECRET", SECRET)
            .env("OMNICAST_API_KEY", API_KEY)
            .env("OMNICAST_BROKER", self.broker_url())
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
            .stderr(self.node_stderr(k)?)
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

    /// The Redis a fault hits next: the one, or each shard in turn.
    fn victim(&mut self) -> usize {
        let k = self.next_shard % self.redis.len();
        self.next_shard += 1;
        k
    }

    /// A Redis (a shard, in turn) stops answering (SIGSTOP) for `pause`, then goes on as if
    /// nothing happened.
    pub fn pause_redis(&mut self, pause: Duration) {
        let k = self.victim();
        let pid = self.redis[k].as_ref().map_or(0, Child::id);
        signal(pid, "STOP");
        std::thread::sleep(pause);
        signal(pid, "CONT");
    }

    /// A Redis (a shard, in turn) killed (SIGKILL) and started again after `down`; with
    /// `keep_data`, from its AOF (every answered write survives, the epochs too), else from
    /// nothing (a Redis without persistence: every namespace on it starts a new epoch; a shard
    /// keeps its `nodes.conf`, so it comes back as the same node with the same slots).
    pub fn restart_redis(&mut self, down: Duration, keep_data: bool) -> Result<(), String> {
        let k = self.victim();
        if let Some(mut child) = self.redis[k].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if !keep_data {
            let dir = self.shard_dir(k);
            let entries = std::fs::read_dir(&dir).map_err(|e| e.to_string())?;
            for entry in entries.flatten() {
                if entry.file_name() != "nodes.conf" {
                    let path = entry.path();
                    let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
                }
            }
        }
        std::thread::sleep(down);
        self.start_redis(k)
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

    /// Where node `k` writes its standard error (appended to across restarts): what it
    /// reports of a failure, and the allocator's account that [`memory`](Self::memory) asks for.
    fn stderr_path(&self, k: usize) -> PathBuf {
        self.redis_dir.join(format!("node-{k}.stderr"))
    }

    fn node_stderr(&self, k: usize) -> Result<Stdio, String> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.stderr_path(k))
            .map(Stdio::from)
            .map_err(|e| e.to_string())
    }

    /// What the nodes wrote to their standard error, the allocator's accounts left out.
    pub fn node_errors(&self) -> String {
        let mut out = String::new();
        for k in 0..self.nodes.len() {
            let text = std::fs::read_to_string(self.stderr_path(k)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().filter(|l| !is_malloc_stats(l)).collect();
            if !lines.is_empty() {
                out.push_str(&format!("node {k}:\n{}\n", lines.join("\n")));
            }
        }
        out
    }

    /// Each node's memory with the allocator trimmed: gdb calls glibc's `malloc_trim(0)` in the
    /// node (what it holds, not the free pages it keeps after a peak), then `malloc_stats()`,
    /// whose account of the bytes in live allocations the node writes to its standard error.
    /// The live heap is what a leak grows; the trimmed RSS also counts pages a few live
    /// allocations keep resident (fragmentation). Plain RSS, and no heap, where gdb is not at
    /// hand.
    pub fn memory(&self) -> Vec<Memory> {
        self.children
            .iter()
            .enumerate()
            .map(|(k, child)| {
                let Some(child) = child else {
                    return Memory::default();
                };
                let before = std::fs::metadata(self.stderr_path(k)).map_or(0, |m| m.len());
                let _ = Command::new("gdb")
                    .args(["-p", &child.id().to_string(), "-batch", "-nx"])
                    // A debug build's frames are Rust, and gdb would read the calls as Rust.
                    .args(["-ex", "set language c"])
                    .args(["-ex", "call (int) malloc_trim(0)"])
                    .args(["-ex", "call (void) malloc_stats()"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                let heap = std::fs::read(self.stderr_path(k)).ok().and_then(|bytes| {
                    let new = bytes.get(before as usize..)?;
                    heap_in_use(&String::from_utf8_lossy(new))
                });
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
        // What a node reported of a failure would go with the directory.
        let errors = self.node_errors();
        if !errors.is_empty() {
            eprintln!("soak: the nodes' standard error:\n{errors}");
        }
        for child in self
            .children
            .iter_mut()
            .chain(self.redis.iter_mut())
            .flatten()
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

/// Whether a line is part of `malloc_stats()`'s report.
fn is_malloc_stats(line: &str) -> bool {
    [
        "Arena ",
        "system bytes",
        "in use bytes",
        "Total (incl. mmap)",
        "max mmap",
    ]
    .iter()
    .any(|p| line.starts_with(p))
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
