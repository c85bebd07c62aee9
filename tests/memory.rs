//! Memory a client controls stays bounded by configuration: for each kind of message a client
//! can send, connections that send it as fast as they can and never read keep the server's
//! peak RSS within `ServerConfig::connection_memory_bound` per connection (plus a margin for the
//! allocator), and a client that would make the server hold more is closed as a slow consumer
//! (4008) and counted, or not read until it reads.
//!
//! The server runs in this test process, so its RSS is this process's; the tests take turns.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::SinkExt;
use omnicast::CATALOG;
use serde_json::json;
use support::redis::Redis;
use support::{API_KEY, TestServer};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Attacking connections per kind of message: one customer's, within the per-user limits.
const CONNECTIONS: usize = 4;
/// A connection that the server should stop reading stops flooding once it stalls this long.
const STALLED: Duration = Duration::from_millis(500);
/// The longest a connection floods in any case.
const FLOOD: Duration = Duration::from_secs(15);
/// Room for the allocator (arenas, fragmentation) and the test's own clients.
const MARGIN_KB: usize = 8 * 1024;
/// Events kept in `products`' history: what every `subscribe` with `since` replays.
const HISTORY: usize = 1000;

/// The tests measure this process's memory: one at a time.
static MEMORY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn rss_kb() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A customer connection whose socket takes in only 4 KiB before it reads (and it never
/// reads): what the server sends it backs up into the server at once.
async fn never_reading(server: &TestServer, user: &str) -> Socket {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.addr).await.unwrap();
    let token = server.token(user, "customer");
    let url = server.ws_url(&format!("token={token}&namespaces=orders"));
    let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
        .await
        .unwrap();
    ws
}

/// Starts a server whose `products` history holds [`HISTORY`] events; returns it with the
/// largest event frame it keeps and the position before the first of them. With `redis`, the
/// server is a node started after another node published them: every resume it answers is read
/// from Redis and its frames rebuilt, the review's costliest case.
async fn server_with_history(redis: Option<&Redis>) -> (TestServer, usize, String) {
    let publisher = match redis {
        None => TestServer::start().await,
        Some(redis) => TestServer::node(support::config(), &redis.url()).await,
    };
    let event = |i: usize| {
        json!({"type": "product:price_changed", "data": {
            "productId": format!("PROD-{i:06}"), "productName": "Wireless Headphones",
            "sku": "WH-001", "oldPrice": 3000, "newPrice": 2500}})
    };
    let batch: Vec<_> = (0..HISTORY).map(event).collect();
    let (status, reply) = publisher
        .post(Some(API_KEY), serde_json::to_string(&batch).unwrap())
        .await;
    assert_eq!(status, 202, "{reply}");
    let first = reply["ids"][0].as_str().unwrap();
    let (ns, rest) = first.split_once('.').unwrap();
    let (epoch, _) = rest.split_once('.').unwrap();
    // Each frame: the envelope (type, namespace, data with the computed field, timestamp, id).
    let largest = event(HISTORY).to_string().len() + 160;
    let server = match redis {
        None => publisher,
        Some(redis) => TestServer::node(support::config(), &redis.url()).await,
    };
    (server, largest, support::sealed(&format!("{ns}.{epoch}.0")))
}

/// What a flooding connection sends, message after message.
type Flood = Box<dyn Fn(usize) -> Message + Send + Sync>;

/// What the server does to a flooding connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Closes it as a slow consumer (4008), counted.
    Closed,
    /// Stops reading it until it reads.
    NotRead,
}

/// Floods from [`CONNECTIONS`] connections, never reading, until the server closes them or
/// stops reading them; checks the server's peak growth against the bound and what it did.
async fn attack(kind: &str, expected: Outcome, flood: impl Fn(&str) -> Flood) {
    attack_on(None, kind, expected, flood).await;
}

/// [`attack`] on the embedded broker, or on a node of `redis`.
async fn attack_on(
    redis: Option<&Redis>,
    kind: &str,
    expected: Outcome,
    flood: impl Fn(&str) -> Flood,
) {
    let _alone = MEMORY.lock().await;
    let (server, largest, since) = server_with_history(redis).await;
    let config = support::config();
    let bound = config.connection_memory_bound(CATALOG.namespaces.len(), largest) / 1024;
    let limit = CONNECTIONS * bound + MARGIN_KB;
    let before = rss_kb();
    // The peak is what counts: sampled while the floods run. A server that grows past twice
    // the limit has failed already: the floods stop there rather than exhaust the machine.
    let peak = Arc::new(AtomicUsize::new(before));
    let over = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn({
        let (peak, over) = (peak.clone(), over.clone());
        async move {
            loop {
                let now = rss_kb();
                peak.fetch_max(now, Ordering::Relaxed);
                if now > before + 2 * limit {
                    over.store(true, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let mut floods = Vec::new();
    for i in 0..CONNECTIONS {
        let mut ws = never_reading(&server, &format!("attacker-{i}")).await;
        let next = flood(&since);
        let over = over.clone();
        // A connection the server keeps reading floods until it is closed; one it stops reading
        // is done once it stalls.
        let stalled = match expected {
            Outcome::Closed => FLOOD,
            Outcome::NotRead => STALLED,
        };
        floods.push(tokio::spawn(async move {
            let sending = async {
                for n in 0.. {
                    if over.load(Ordering::Relaxed) {
                        break;
                    }
                    match tokio::time::timeout(stalled, ws.feed(next(n))).await {
                        Ok(Ok(())) => {}
                        // Closed by the server, or not read any more.
                        Ok(Err(_)) | Err(_) => break,
                    }
                }
            };
            let _ = tokio::time::timeout(FLOOD, sending).await;
            // Held open (and unread) until every flood is over.
            ws
        }));
    }
    let mut held = Vec::new();
    for flood in floods {
        held.push(flood.await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    sampler.abort();
    let grown = peak.load(Ordering::Relaxed) - before;
    let slow = || server.server.hub().stats().slow_consumers_closed;
    if expected == Outcome::Closed {
        support::wait_until(|| slow() == CONNECTIONS as u64).await;
    }
    println!(
        "{kind}: the server grew by {grown} KB at most for {CONNECTIONS} connections; \
         bound {bound} KB per connection, limit {limit} KB; {} closed as slow consumers",
        slow()
    );
    assert!(
        grown <= limit,
        "{kind}: the server grew by {grown} KB, over {limit} KB ({CONNECTIONS} × {bound} KB + {MARGIN_KB} KB)"
    );
    if expected == Outcome::NotRead {
        assert_eq!(slow(), 0, "{kind}: not read, not closed");
    }
    drop(held);
}

fn text(value: serde_json::Value) -> Message {
    Message::Text(value.to_string().into())
}

/// `subscribe` to `products` with `since` (every event of its history to replay), then
/// `unsubscribe`, again and again.
fn resubscribe(since: &str) -> Flood {
    let since = since.to_owned();
    Box::new(move |n| {
        if n % 2 == 0 {
            text(json!({"type": "subscribe", "namespaces": ["products"], "since": [since]}))
        } else {
            text(json!({"type": "unsubscribe", "namespaces": ["products"]}))
        }
    })
}

/// The review's replay amplification: `subscribe` with `since` (1,000 events to replay), then
/// `unsubscribe`, again and again. Replays no longer stack: the second `subscribe` waits for the
/// first replay to be written, and the client is not read meanwhile.
#[tokio::test(flavor = "multi_thread")]
async fn subscribe_with_since_and_unsubscribe_over_and_over() {
    attack(
        "subscribe with since / unsubscribe",
        Outcome::NotRead,
        resubscribe,
    )
    .await;
}

/// The same on a Redis node started after the events: each replay is read from Redis and its
/// frames rebuilt, so the connection's one replay is its own memory; the node reads at most four
/// resumes at once.
#[tokio::test(flavor = "multi_thread")]
async fn subscribe_with_since_over_and_over_on_a_redis_node() {
    let redis = Redis::start();
    attack_on(
        Some(&redis),
        "subscribe with since / unsubscribe (Redis)",
        Outcome::NotRead,
        resubscribe,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unsubscribe_over_and_over() {
    attack("unsubscribe", Outcome::Closed, |_| {
        Box::new(|_| text(json!({"type": "unsubscribe", "namespaces": ["products"]})))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn text_pings_with_the_longest_id() {
    attack("ping (text)", Outcome::Closed, |_| {
        Box::new(|_| text(json!({"type": "ping", "id": "y".repeat(64)})))
    })
    .await;
}

/// The review's pongs: a 125-byte ping (the most a control frame holds) answered by a pong the
/// client never reads. Past `max-message-bytes` of pongs the client is a slow consumer.
#[tokio::test(flavor = "multi_thread")]
async fn protocol_pings_of_125_bytes() {
    attack("ping (protocol)", Outcome::Closed, |_| {
        Box::new(|_| Message::Ping(vec![7u8; 125].into()))
    })
    .await;
}

/// Garbage: text that is not JSON, and JSON whose unknown `type` an error would quote in full.
#[tokio::test(flavor = "multi_thread")]
async fn garbage_and_long_unknown_types() {
    attack("garbage", Outcome::Closed, |_| {
        Box::new(|n| {
            if n % 64 == 0 {
                text(json!({"type": "z".repeat(60 * 1024)}))
            } else {
                Message::Text(format!("{{\"type\": {n}").into())
            }
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_frames() {
    attack("binary", Outcome::Closed, |_| {
        Box::new(|_| Message::Binary(vec![1u8; 1024].into()))
    })
    .await;
}
