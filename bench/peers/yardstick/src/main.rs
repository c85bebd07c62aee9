//! Peer for the benchmark: the yardstick. POST /publish with one {type, data} or a JSON array of
//! them; each event is serialized once and sent through a `tokio::sync::broadcast` channel to
//! every client. No auth, no filtering. With no client connected it is the publish yardstick:
//! the same HTTP stack as omnicast (axum on hyper) answering 202 once the body parsed, with no
//! validation and no broker, what omnicast's publish path is measured against. Each connection reads with a small buffer and writes
//! feed-then-flush: every frame waiting in its receiver, then one flush.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{any, post};
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// As deep a per-client buffer as omnicast and socketioxide get in the benchmark.
const CAPACITY: usize = 8192;

#[tokio::main]
async fn main() {
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(9004);
    let (tx, _) = broadcast::channel::<Utf8Bytes>(CAPACITY);
    let app = Router::new()
        .route("/", any(upgrade))
        .route("/publish", post(publish))
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    println!("yardstick peer on {port}");
    axum::serve(listener, app).await.unwrap();
}

async fn publish(State(tx): State<broadcast::Sender<Utf8Bytes>>, body: Bytes) -> impl IntoResponse {
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    if tx.receiver_count() == 0 {
        return StatusCode::ACCEPTED;
    }
    let events = match value {
        Value::Array(events) => events,
        one => vec![one],
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    for event in events {
        let frame = json!({"type": event["type"], "namespace": "system", "data": event["data"], "timestamp": now});
        // A receiver gone meanwhile is not an error for a broadcast.
        let _ = tx.send(Utf8Bytes::from(frame.to_string()));
    }
    StatusCode::ACCEPTED
}

async fn upgrade(
    State(tx): State<broadcast::Sender<Utf8Bytes>>,
    ws: WebSocketUpgrade,
) -> impl IntoResponse {
    ws.read_buffer_size(256)
        .on_upgrade(move |socket| serve(socket, tx.subscribe()))
}

async fn serve(mut socket: WebSocket, mut rx: broadcast::Receiver<Utf8Bytes>) {
    if socket.send(Message::Text(r#"{"type":"ready"}"#.into())).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            frame = rx.recv() => {
                let Ok(frame) = frame else { return }; // lagged or closed: the bench counts it lost
                if feed(&mut socket, frame).await.is_err() {
                    return;
                }
                // Everything else already waiting, then one flush.
                while let Ok(frame) = rx.try_recv() {
                    if feed(&mut socket, frame).await.is_err() {
                        return;
                    }
                }
                if socket.flush().await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Queues one frame: the shared text, cloned by reference count, never copied or re-validated.
async fn feed(socket: &mut WebSocket, frame: Utf8Bytes) -> Result<(), axum::Error> {
    socket.feed(Message::Text(frame)).await
}
