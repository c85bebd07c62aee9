//! The load tool's clients: real WebSocket connections to any target, reading as cheaply as
//! possible (no JSON parsing on the hot path unless deliveries are being checked).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use omnicast::runtime::mint_hs256;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::target::{self, Kind, Target};

pub type Socket = WebSocketStream<TcpStream>;

/// Hands out client source addresses: a loopback server is reached from 127.0.0.1, then .2 and
/// on, `per_address` connections each, since one source address has only about 28,000 ephemeral
/// ports towards one server port.
#[derive(Debug)]
pub struct Sources {
    per_address: usize,
    next: AtomicUsize,
}

impl Sources {
    pub fn new(per_address: usize) -> Self {
        Sources {
            per_address: per_address.max(1),
            next: AtomicUsize::new(0),
        }
    }

    /// The source address to bind the next connection to `server` to: `None` for the first
    /// `per_address` (the kernel picks 127.0.0.1 itself, and a port by the whole address pair,
    /// whereas binding first picks a port alone, slowly once thousands are in TIME_WAIT), then
    /// 127.0.0.2, .3 and on. Always `None` off loopback.
    pub fn next(&self, server: SocketAddr) -> Option<IpAddr> {
        let n = self.next.fetch_add(1, Ordering::Relaxed) / self.per_address;
        // 127.0.0.1 ..= 127.0.0.254, then 127.0.1.1 and on: never a .0 or .255 host.
        let [b, c] = u16::try_from(n / 254).ok()?.to_be_bytes();
        let d = (n % 254) as u8 + 1;
        (n > 0 && server.ip().is_loopback()).then_some(IpAddr::V4(Ipv4Addr::new(127, b, c, d)))
    }
}

/// Opens one authenticated connection from `source` (if given) and waits until the server says
/// it is ready.
pub async fn connect(
    kind: Kind,
    addr: SocketAddr,
    source: Option<IpAddr>,
    token: &str,
    namespaces: &str,
) -> Result<Socket, String> {
    let url = match kind {
        k if k.is_omnicast() => {
            format!("ws://{addr}/ws?token={token}&namespaces={namespaces}")
        }
        Kind::Ws | Kind::Yardstick => format!("ws://{addr}/?token={token}"),
        _ => format!("ws://{addr}/socket.io/?EIO=4&transport=websocket&token={token}"),
    };
    // tungstenite preallocates (and zeroes on reads) a 128 KiB read buffer by default: with
    // thousands of clients that alone would saturate the load tool.
    let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| e.to_string())?;
    if let Some(source) = source {
        socket
            .bind(SocketAddr::new(source, 0))
            .map_err(|e| format!("binding {source}: {e}"))?;
    }
    let stream = socket.connect(addr).await.map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config))
        .await
        .map_err(|e| e.to_string())?;
    if kind.socket_io() {
        // Engine.IO open packet, then connect to the default namespace.
        expect_prefix(&mut ws, "0").await?;
        ws.send(Message::Text("40".into()))
            .await
            .map_err(|e| e.to_string())?;
        expect_prefix(&mut ws, "40").await?;
    } else {
        expect_prefix(&mut ws, "{\"type\":\"ready\"").await?;
    }
    Ok(ws)
}

async fn expect_prefix(ws: &mut Socket, prefix: &str) -> Result<(), String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) if text.starts_with(prefix) => return Ok(()),
            // An Engine.IO ping may come first under load: answer it and keep waiting.
            Some(Ok(Message::Text(text))) if text.as_str() == "2" => {
                ws.send(Message::Text("3".into()))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            other => return Err(format!("expected `{prefix}...`, got {other:?}")),
        }
    }
}

/// What a client counted.
#[derive(Debug, Default)]
pub struct Tally {
    pub received: u64,
    pub wrong: u64,
    pub latencies_us: Vec<u32>,
}

/// What all of a scenario's clients count together.
#[derive(Debug, Default)]
pub struct Counters {
    /// Clients whose reading loop has started.
    pub listening: AtomicU64,
    /// Events received, over all clients.
    pub received: AtomicU64,
}

/// Decides whether a delivered event was allowed for this client (mixed scenario).
pub type Check = Arc<dyn Fn(&serde_json::Value) -> bool + Send + Sync>;

/// Reads until `stop`, counting events into `received` and recording the latency from the
/// microsecond stamp stored under `stamp_key` in each event. Counts itself into `listening` when
/// it first runs.
pub async fn drain(
    mut ws: Socket,
    kind: Kind,
    stamp_key: &'static str,
    counters: Arc<Counters>,
    check: Option<Check>,
    mut stop: watch::Receiver<bool>,
) -> Tally {
    counters.listening.fetch_add(1, Ordering::Relaxed);
    let mut tally = Tally::default();
    loop {
        let message = tokio::select! {
            biased;
            _ = stop.changed() => break,
            message = ws.next() => message,
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => break,
        };
        if kind.socket_io() && text.as_str() == "2" {
            let _ = ws.send(Message::Text("3".into())).await;
            continue;
        }
        if let Some(stamp) = stamp(&text, stamp_key) {
            let latency = crate::publish::now_us().saturating_sub(stamp);
            tally.latencies_us.push(latency.min(u32::MAX as u64) as u32);
        }
        if let Some(check) = &check {
            let json = text
                .strip_prefix("42[\"event\",")
                .map_or(text.as_str(), |t| &t[..t.len() - 1]);
            let ok = serde_json::from_str(json)
                .map(|v| check(&v))
                .unwrap_or(false);
            tally.wrong += u64::from(!ok);
        }
        tally.received += 1;
        counters.received.fetch_add(1, Ordering::Relaxed);
    }
    tally
}

/// The integer after `"key":`.
fn stamp(text: &str, key: &str) -> Option<u64> {
    let at = text.find(key)? + key.len();
    let digits = text[at..].trim_start_matches([':', ' ']);
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// The connections a scenario opened.
pub struct Clients {
    pub sockets: Vec<(usize, Socket)>,
    pub failed: usize,
    pub elapsed: Duration,
}

/// Opens `n` connections, 256 handshakes in flight; `who(i)` gives user, role and namespaces.
pub async fn open(
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
            async move { (i, connect(kind, addr, source, &token, namespaces).await) }
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

/// Clients reading their streams, each in its own task.
pub struct Running {
    counters: Arc<Counters>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<Tally>>,
}

/// Starts every client reading; returns once all of them listen.
pub async fn start_draining(
    kind: Kind,
    clients: Vec<(usize, Socket)>,
    stamp: &'static str,
    check: impl Fn(usize) -> Option<Check>,
) -> Running {
    let counters = Arc::new(Counters::default());
    let (stop, stopped) = watch::channel(false);
    let tasks = clients
        .into_iter()
        .map(|(i, socket)| {
            tokio::spawn(drain(
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
    pub async fn until(&self, expected: u64, started: Instant, limit: Duration) -> Duration {
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

    pub async fn finish(self) -> Vec<Tally> {
        let _ = self.stop.send(true);
        let mut tallies = Vec::with_capacity(self.tasks.len());
        for task in self.tasks {
            tallies.push(task.await.unwrap_or_default());
        }
        tallies
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, SocketAddr};

    use super::Sources;

    #[test]
    fn spreads_loopback_clients_over_source_addresses() {
        let sources = Sources::new(2);
        let server: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        let first: Vec<Option<IpAddr>> = (0..6).map(|_| sources.next(server)).collect();
        let expected: Vec<Option<IpAddr>> = [
            None,
            None,
            Some("127.0.0.2"),
            Some("127.0.0.2"),
            Some("127.0.0.3"),
            Some("127.0.0.3"),
        ]
        .iter()
        .map(|a| a.map(|a| a.parse().unwrap()))
        .collect();
        assert_eq!(first, expected);

        // Past 127.0.0.254 comes 127.0.1.1: no network or broadcast-looking host.
        let sources = Sources::new(1);
        let all: Vec<Option<IpAddr>> = (0..256).map(|_| sources.next(server)).collect();
        assert_eq!(all[253], Some("127.0.0.254".parse::<IpAddr>().unwrap()));
        assert_eq!(all[254], Some("127.0.1.1".parse::<IpAddr>().unwrap()));

        let remote: SocketAddr = "192.0.2.1:9000".parse().unwrap();
        assert_eq!(Sources::new(2).next(remote), None);
    }

    #[test]
    fn finds_the_stamp() {
        assert_eq!(
            super::stamp(r#"{"data":{"scheduledAt":1234,"x":1}}"#, "\"scheduledAt\""),
            Some(1234)
        );
        assert_eq!(super::stamp(r#"{"amount":99.0}"#, "\"amount\""), Some(99));
        assert_eq!(super::stamp("{}", "\"amount\""), None);
    }
}
