//! The load tool's clients: real WebSocket connections to any target, reading as cheaply as
//! possible (no JSON parsing on the hot path unless deliveries are being checked).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::target::Kind;

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
            let latency = crate::run::now_us().saturating_sub(stamp);
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
