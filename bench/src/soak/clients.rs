//! The soak's clients: each a user that stays connected through the whole run, reconnecting
//! (to the next node) whenever a connection ends and resuming with `since` = the last id it
//! holds per namespace, and writing down everything it is told: every `ready` (what was
//! recovered, where each namespace starts), every event (its position and sequence number),
//! every close code, and how late each event arrived.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use omnicast::runtime::mint_hs256;
use omnicast::runtime::server::PositionKey;
use serde::Deserialize;
use tokio::net::TcpSocket;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::publishers::Ledger;
use crate::publish::now_us;
use crate::target::SECRET;

/// Who a client is and how it behaves.
#[derive(Debug, Clone)]
pub struct Spec {
    pub index: usize,
    pub role: &'static str,
    pub user: String,
    /// Stops reading for a while, now and then: its queue fills and the server closes it (4008).
    pub slow: bool,
    /// Closes and resumes every second.
    pub reconnecting: bool,
}

/// An unbroken run of one namespace's stream as one client saw it: from the position after
/// `from` in `epoch`, the events it received (offset, sequence number; 0 for events the soak did
/// not publish, such as presence).
#[derive(Debug)]
pub struct Segment {
    pub namespace: String,
    pub epoch: String,
    pub from: u64,
    pub events: Vec<(u64, u64)>,
    /// Whether a later `ready` ended it with `recovered: false` (else it runs to the end).
    pub ended_unrecovered: bool,
    /// Whether it began with `recovered: false` (the client reloads what came before).
    pub began_unrecovered: bool,
}

/// A `recovered: false` answer, and what the client asked: what explains it.
#[derive(Debug)]
pub struct Unrecovered {
    pub namespace: String,
    /// The epoch of the position it resumed from, and the stream's now.
    pub before: String,
    pub after: String,
    /// How many events it was behind (the stream's top less its position), in one epoch.
    pub behind: u64,
    /// How long ago it received the position it resumed from.
    pub age: Duration,
}

/// Everything one client was told.
#[derive(Debug, Default)]
pub struct Log {
    pub segments: Vec<Segment>,
    /// Close codes of the connections that ended (0: without a close frame).
    pub closes: Vec<u16>,
    /// Connections opened.
    pub connections: u32,
    /// Handshakes refused or failed (a node down, Redis away: retried).
    pub refused: u32,
    /// `recovered: false` answers.
    pub unrecovered: Vec<Unrecovered>,
    /// Delivery latencies (publish sent to event read), in microseconds: in steady state (no
    /// fault in the last [`RECOVERY`]), and while the deployment recovers from one.
    pub latencies_us: Vec<u32>,
    pub latencies_recovering_us: Vec<u32>,
    /// Close codes received in steady state (the others came while recovering from a fault).
    pub steady_closes: Vec<u16>,
    /// Whether it was connected when the run ended.
    pub connected_at_end: bool,
    /// When its first `ready` arrived (µs since the Unix epoch).
    pub first_ready_us: u64,
    /// What broke the protocol as the client sees it.
    pub anomalies: Vec<String>,
}

/// What every client shares.
pub struct Shared {
    pub nodes: Vec<SocketAddr>,
    pub key: PositionKey,
    pub ledger: Arc<Ledger>,
    /// Frames received by every client, for the end's quiescence.
    pub received: AtomicU64,
    /// Clients that have had their first `ready`.
    pub ready: AtomicU64,
    /// The run is ending: slow readers read at full speed from now on.
    pub finishing: AtomicBool,
    /// When the last fault ended (ms since the Unix epoch; 0 before the first).
    pub last_fault_ms: AtomicU64,
}

/// How long after a fault the deployment counts as recovering from it: reconnect storms,
/// resumes, the presence events of thousands of reconnecting customers.
pub const RECOVERY: Duration = Duration::from_secs(15);

impl Shared {
    /// Whether no fault ended within [`RECOVERY`].
    pub fn steady(&self) -> bool {
        let last = self.last_fault_ms.load(Ordering::Relaxed);
        now_us() / 1000 > last + RECOVERY.as_millis() as u64
    }
}

#[derive(Deserialize)]
struct Incoming {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    timestamp: Option<u64>,
    #[serde(default)]
    recovered: BTreeMap<String, bool>,
    #[serde(default)]
    positions: BTreeMap<String, String>,
}

/// Sequence numbers are below this; presence events carry a time in milliseconds instead.
const SEQ_LIMIT: u64 = 1 << 40;
/// How long a slow reader stops reading, and how often.
const STALL: Duration = Duration::from_secs(20);
const STALL_EVERY: Duration = Duration::from_secs(30);

/// Runs client `spec` until `stop`.
pub async fn run(spec: Spec, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) -> Log {
    let token = mint_hs256(SECRET.as_bytes(), &spec.user, spec.role, 4 * 3600);
    let mut log = Log::default();
    let mut state = State::default();
    let mut failures = 0usize;
    // Spread the slow readers' stalls over the run.
    let mut next_stall = Instant::now() + STALL_EVERY.mul_f64(0.3 + (spec.index % 7) as f64 / 10.0);
    while !*stop.borrow() {
        let node = shared.nodes[(spec.index + failures) % shared.nodes.len()];
        let mut url = format!("ws://{node}/ws?token={token}");
        if !state.since.is_empty() {
            let ids: Vec<&str> = state.since.values().map(String::as_str).collect();
            url.push_str(&format!("&since={}", ids.join(",")));
        }
        let mut ws = match open(&url, node, spec.slow).await {
            Ok(ws) => ws,
            Err(_) => {
                log.refused += 1;
                failures += 1;
                let wait = Duration::from_millis(100 * failures.min(10) as u64);
                tokio::select! {
                    () = tokio::time::sleep(wait) => continue,
                    _ = stop.changed() => break,
                }
            }
        };
        log.connections += 1;
        let mut reconnect = tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs(1),
            Duration::from_secs(1),
        );
        let ended = loop {
            if *stop.borrow() {
                log.connected_at_end = true;
                let _ = ws.close(None).await;
                return log;
            }
            if spec.slow
                && !shared.finishing.load(Ordering::Relaxed)
                && Instant::now() >= next_stall
            {
                next_stall = Instant::now() + STALL_EVERY;
                let until = Instant::now() + STALL;
                // Reading again once the run ends.
                while Instant::now() < until && !shared.finishing.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            tokio::select! {
                message = ws.next() => match message {
                    Some(Ok(Message::Text(text))) => {
                        shared.received.fetch_add(1, Ordering::Relaxed);
                        state.read(&text, &spec, &shared, &mut log);
                    }
                    Some(Ok(Message::Close(frame))) => {
                        break frame.map_or(1005, |f| u16::from(f.code));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break 0,
                },
                _ = reconnect.tick(), if spec.reconnecting && !shared.finishing.load(Ordering::Relaxed) => {
                    let _ = ws.close(None).await;
                    break 1000;
                }
                _ = stop.changed() => {
                    log.connected_at_end = true;
                    let _ = ws.close(None).await;
                    return log;
                }
            }
        };
        log.closes.push(ended);
        if shared.steady() {
            log.steady_closes.push(ended);
        }
        // A connection that broke without a close (a node killed) goes to the next node.
        if ended == 0 {
            failures += 1;
        } else {
            failures = 0;
        }
    }
    log
}

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn open(url: &str, node: SocketAddr, slow: bool) -> Result<Socket, String> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    if slow {
        // A small receive buffer: what the client does not read stays in the server's queue.
        socket
            .set_recv_buffer_size(4096)
            .map_err(|e| e.to_string())?;
    }
    let stream = tokio::time::timeout(Duration::from_secs(5), socket.connect(node))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
    let handshake = tokio_tungstenite::client_async_with_config(url, stream, Some(config));
    let (ws, _) = tokio::time::timeout(Duration::from_secs(10), handshake)
        .await
        .map_err(|_| "handshake timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// An event's id and timestamp, read off the end of its envelope.
fn quick_event(text: &str) -> Option<Incoming> {
    let id_at = text.rfind(r#","id":""#)? + r#","id":""#.len();
    let id = &text[id_at..id_at + text[id_at..].find('"')?];
    let at = text.rfind(r#","timestamp":"#)? + r#","timestamp":"#.len();
    let digits = text[at..].find(|c: char| !c.is_ascii_digit())?;
    Some(Incoming {
        kind: String::new(),
        id: Some(id.to_owned()),
        timestamp: text[at..at + digits].parse().ok(),
        recovered: BTreeMap::new(),
        positions: BTreeMap::new(),
    })
}

/// Where the client is in each namespace.
#[derive(Default)]
struct State {
    /// The id to resume each namespace from.
    since: BTreeMap<String, String>,
    /// Each namespace's current segment (an index into the log's).
    current: BTreeMap<String, usize>,
    /// When each `since` was received.
    since_at: BTreeMap<String, Instant>,
}

impl State {
    fn read(&mut self, text: &str, spec: &Spec, shared: &Shared, log: &mut Log) {
        // Events (nearly every frame) without parsing their payloads: the envelope ends with
        // `"timestamp":…,"id":"…"}` (an id that does not open is reported, so a change of the
        // envelope cannot pass unnoticed).
        if !text.starts_with(r#"{"type":"ready""#)
            && !text.starts_with(r#"{"type":"error""#)
            && !text.starts_with(r#"{"type":"pong""#)
            && let Some(event) = quick_event(text)
        {
            return self.event(&event, spec, shared, log);
        }
        let message: Incoming = match serde_json::from_str(text) {
            Ok(message) => message,
            Err(err) => {
                log.anomalies
                    .push(format!("unreadable frame ({err}): {text}"));
                return;
            }
        };
        match message.kind.as_str() {
            "ready" => self.ready(&message, shared, log),
            "error" | "pong" => log.anomalies.push(format!("unexpected: {text}")),
            _ => self.event(&message, spec, shared, log),
        }
    }

    fn ready(&mut self, ready: &Incoming, shared: &Shared, log: &mut Log) {
        if log.first_ready_us == 0 {
            log.first_ready_us = now_us();
            shared.ready.fetch_add(1, Ordering::Relaxed);
        }
        for (namespace, id) in &ready.positions {
            let Ok(top) = shared.key.open(id) else {
                log.anomalies
                    .push(format!("ready names an id that does not open: {id}"));
                continue;
            };
            let current = self.current.get(namespace).copied();
            let began_unrecovered = ready.recovered.get(namespace) == Some(&false);
            match (ready.recovered.get(namespace), current) {
                (Some(true), Some(_)) => continue,
                (Some(true), None) => {
                    log.anomalies
                        .push(format!("`{namespace}` recovered, never joined"));
                }
                (Some(false), Some(k)) => {
                    let segment = &mut log.segments[k];
                    segment.ended_unrecovered = true;
                    let position = segment.events.last().map_or(segment.from, |e| e.0);
                    let received = self.since_at.get(namespace).copied();
                    log.unrecovered.push(Unrecovered {
                        namespace: namespace.clone(),
                        before: segment.epoch.clone(),
                        after: top.epoch.clone(),
                        behind: top.offset.saturating_sub(position),
                        age: received.map_or(Duration::ZERO, |at| at.elapsed()),
                    });
                }
                (Some(false), None) => log
                    .anomalies
                    .push(format!("`{namespace}` unrecovered, never joined")),
                (None, Some(_)) => log.anomalies.push(format!("`{namespace}` not resumed")),
                (None, None) => {}
            }
            self.current.insert(namespace.clone(), log.segments.len());
            log.segments.push(Segment {
                namespace: namespace.clone(),
                epoch: top.epoch,
                from: top.offset,
                events: Vec::new(),
                ended_unrecovered: false,
                began_unrecovered,
            });
            self.since.insert(namespace.clone(), id.clone());
            self.since_at.insert(namespace.clone(), Instant::now());
        }
    }

    fn event(&mut self, event: &Incoming, spec: &Spec, shared: &Shared, log: &mut Log) {
        let Some(id) = &event.id else {
            log.anomalies
                .push(format!("an event without an id: {}", event.kind));
            return;
        };
        let Ok(position) = shared.key.open(id) else {
            log.anomalies
                .push(format!("an event id that does not open: {id}"));
            return;
        };
        let Some(&k) = self.current.get(&position.namespace) else {
            log.anomalies.push(format!(
                "an event of `{}`, never joined",
                position.namespace
            ));
            return;
        };
        let segment = &mut log.segments[k];
        if segment.epoch != position.epoch {
            // Not recorded, nor resumed from: the client goes on from what it had.
            log.anomalies.push(format!(
                "`{}` moved from epoch {} to {} without a new connection",
                position.namespace, segment.epoch, position.epoch
            ));
            return;
        }
        let seq = event.timestamp.filter(|t| *t < SEQ_LIMIT).unwrap_or(0);
        segment.events.push((position.offset, seq));
        self.since_at
            .insert(position.namespace.clone(), Instant::now());
        self.since.insert(position.namespace, id.clone());
        if seq > 0 && !spec.slow {
            let sent = shared
                .ledger
                .sent_us
                .get(seq as usize)
                .map_or(0, |s| s.load(Ordering::Relaxed));
            if sent > 0 {
                let latency = now_us().saturating_sub(sent).min(u32::MAX as u64) as u32;
                if shared.steady() {
                    log.latencies_us.push(latency);
                } else {
                    log.latencies_recovering_us.push(latency);
                }
            }
        }
    }
}
