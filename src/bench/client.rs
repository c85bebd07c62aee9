//! The load tool's clients: real WebSocket connections to any target, reading as cheaply as
//! possible (no JSON parsing on the hot path unless deliveries are being checked).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::target::Kind;

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens one authenticated connection and waits until the server says it is ready.
pub async fn connect(
    kind: Kind,
    addr: SocketAddr,
    token: &str,
    namespaces: &str,
) -> Result<Socket, String> {
    let url = match kind {
        Kind::Omnicast => format!("ws://{addr}/ws?token={token}&namespaces={namespaces}"),
        Kind::Ws => format!("ws://{addr}/?token={token}"),
        Kind::Socketio | Kind::Socketioxide => {
            format!("ws://{addr}/socket.io/?EIO=4&transport=websocket&token={token}")
        }
    };
    // tungstenite preallocates (and zeroes on reads) a 128 KiB read buffer by default: with
    // thousands of clients that alone would saturate the load tool.
    let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
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
            let latency = super::now_us().saturating_sub(stamp);
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
