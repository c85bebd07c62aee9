//! A real `redis-server` on a free loopback port, started by the test and killed when dropped.
//! Without persistence, as in a cache deployment: a restart loses everything (a new epoch).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Redis {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// Extra arguments for `redis-server` (a cluster node's).
    args: Vec<String>,
}

impl Redis {
    /// Starts `redis-server` on a free port.
    pub fn start() -> Redis {
        Redis::start_with(Vec::new())
    }

    fn start_with(args: Vec<String>) -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir =
            std::env::temp_dir().join(format!("omnicast-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut redis = Redis {
            port,
            dir,
            child: None,
            args,
        };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL: no goodbye to its clients).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing is answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused server (SIGCONT): it runs what it was sent meanwhile.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("redis-server runs").id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(self.dir.join("nodes.conf"));
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "redis-server runs (install it: apt-get install -y redis-server; .ci/run does)",
            );
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.command(&["PING"]).as_deref() != Some("+PONG") {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs one command over a fresh connection; its first reply line, or `None` when Redis
    /// does not answer.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        use std::io::{BufRead, BufReader, Write};
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes()).ok()?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).ok()?;
        Some(line.trim_end().to_owned())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A real Redis Cluster on loopback: `redis-server` processes in cluster mode, joined by
/// `redis-cli --cluster create`, killed when dropped.
pub struct RedisCluster {
    pub nodes: Vec<Redis>,
}

impl RedisCluster {
    /// `primaries` shards (at least 3), each with `replicas` replicas; returns once every node
    /// reports the cluster `ok` (and every replica is in sync).
    pub fn start(primaries: usize, replicas: usize) -> RedisCluster {
        let nodes: Vec<Redis> = (0..primaries * (1 + replicas))
            .map(|_| {
                Redis::start_with(
                    [
                        "--cluster-enabled yes",
                        "--cluster-config-file nodes.conf",
                        "--cluster-node-timeout 1000",
                        // The shards left serve their slots when one is lost.
                        "--cluster-require-full-coverage no",
                    ]
                    .iter()
                    .flat_map(|a| a.split(' ').map(str::to_owned))
                    .collect(),
                )
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let status = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli runs (apt-get install -y redis-server; .ci/run does)");
        assert!(status.success(), "redis-cli --cluster create failed");
        let cluster = RedisCluster { nodes };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cluster.settled() {
            assert!(Instant::now() < deadline, "the cluster did not settle");
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis-cluster://{}", seeds.join(","))
    }

    /// Whether every running node says `cluster_state:ok` and every replica's link is up.
    pub fn settled(&self) -> bool {
        self.nodes.iter().filter(|n| n.child.is_some()).all(|n| {
            let info = cli(n.port, &["cluster", "info"]);
            let replication = cli(n.port, &["info", "replication"]);
            info.contains("cluster_state:ok")
                && (!replication.contains("role:slave")
                    || replication.contains("master_link_status:up"))
        })
    }

    /// The node serving `key`'s slot now (its primary).
    pub fn primary_of(&mut self, key: &str) -> &mut Redis {
        let slot: u16 = cli(self.nodes[0].port, &["cluster", "keyslot", key])
            .trim()
            .parse()
            .expect("a slot");
        let asked = self
            .nodes
            .iter()
            .find(|n| n.child.is_some())
            .expect("a node runs");
        let port = primary_port(&cli(asked.port, &["cluster", "nodes"]), slot)
            .expect("a primary serves the slot");
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("one of ours")
    }
}

/// From `cluster nodes` (`<id> <ip:port@bus> <flags> <primary> <ping> <pong> <epoch> <state>
/// <slots…>` per node): the port of the live primary serving `slot`.
fn primary_port(nodes: &str, slot: u16) -> Option<u16> {
    nodes.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let flags = fields.get(2)?;
        if !flags.contains("master") || flags.contains("fail") {
            return None;
        }
        let serves = fields.iter().skip(8).any(|range| {
            let (start, end) = range.split_once('-').unwrap_or((range, range));
            match (start.parse::<u16>(), end.parse::<u16>()) {
                (Ok(start), Ok(end)) => (start..=end).contains(&slot),
                _ => false,
            }
        });
        let port = fields.get(1)?.split('@').next()?.rsplit(':').next()?;
        serves.then(|| port.parse().ok()).flatten()
    })
}

/// `redis-cli -p <port> <args>`: what it printed, empty when it could not run.
fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// What a test of the Redis broker needs of the Redis it runs on, one server or a cluster.
pub trait Backend {
    /// The broker URL nodes are given.
    fn url(&self) -> String;
    /// Runs a command on every server (every node of a cluster); whether each answered.
    fn on_every_server(&self, args: &[&str]) -> bool;
    /// Kills every server.
    fn kill(&mut self);
}

impl Backend for Redis {
    fn url(&self) -> String {
        Redis::url(self)
    }
    fn on_every_server(&self, args: &[&str]) -> bool {
        self.command(args).is_some()
    }
    fn kill(&mut self) {
        Redis::kill(self);
    }
}

impl Backend for RedisCluster {
    fn url(&self) -> String {
        RedisCluster::url(self)
    }
    fn on_every_server(&self, args: &[&str]) -> bool {
        self.nodes.iter().all(|n| n.command(args).is_some())
    }
    fn kill(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }
}

/// Runs each named test body (`async fn name(redis: &mut impl Backend)`) twice: on one
/// `redis-server` and on a Redis Cluster of three shards.
#[macro_export]
macro_rules! on_one_redis_and_a_cluster {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn one_redis() {
                let mut redis = super::support::redis::Redis::start();
                super::$name(&mut redis).await;
            }

            #[tokio::test]
            async fn redis_cluster() {
                let mut cluster = super::support::redis::RedisCluster::start(3, 0);
                super::$name(&mut cluster).await;
            }
        }
    )*};
}
