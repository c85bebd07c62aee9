//! A published event: id and timestamp fixed, the client envelope serialized once.

use std::borrow::Cow;

use crate::event::OutgoingEvent;
use crate::position::Position;
use crate::protocol::Envelope;
use crate::server::frame::Frame;
use crate::server::positions::PositionKey;

/// An event on its way to the hub(s): routing facts plus the frame every recipient gets.
#[derive(Debug, Clone)]
pub struct Publication {
    /// The event's unique id: its position, sealed (`orders.k3v9q2mf.<seal>`), once a broker
    /// gave it one.
    pub id: String,
    /// Its offset in its namespace's stream; 0 for a publication a broker did not number.
    pub offset: u64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: u64,
    /// Descriptor, owner, target roles and options: what filtering reads.
    pub event: OutgoingEvent,
    /// `{type, namespace, data, timestamp, id}` as a WebSocket text frame, shared by every
    /// recipient.
    pub frame: Frame,
}

impl Publication {
    /// Fixes the id and the timestamp (the emitter's, or `now_ms`) and serializes the envelope.
    pub fn new(event: OutgoingEvent, id: String, now_ms: u64) -> Self {
        let timestamp = event.timestamp.unwrap_or(now_ms);
        let envelope = Envelope {
            kind: Cow::Borrowed(event.descriptor.name),
            namespace: Cow::Borrowed(event.namespace()),
            data: &event.data,
            timestamp,
            id: Cow::Borrowed(&id),
        };
        let json = serde_json::to_string(&envelope).expect("an envelope of JSON values serializes");
        Publication {
            id,
            offset: 0,
            timestamp,
            event,
            frame: Frame::text(&json),
        }
    }
}

impl Publication {
    /// A publication at `position` in its namespace's stream: its id is the position, sealed
    /// with `key` (once per event, whatever the recipients).
    pub fn at(event: OutgoingEvent, position: &Position, now_ms: u64, key: &PositionKey) -> Self {
        let mut publication = Publication::new(event, key.seal(position), now_ms);
        publication.offset = position.offset;
        publication
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Unique ids (sessions): a random per-process prefix and a counter, so ids from several nodes
/// never clash.
#[derive(Debug)]
pub struct IdGenerator {
    prefix: String,
    next: std::sync::atomic::AtomicU64,
}

impl IdGenerator {
    /// A generator whose ids start with `kind` (`evt`, `ses`).
    pub fn new(kind: &str) -> Self {
        let mut seed = [0u8; 6];
        getrandom::fill(&mut seed).expect("the OS provides randomness");
        let prefix = seed.iter().map(|b| format!("{b:02x}")).collect::<String>();
        IdGenerator {
            prefix: format!("{kind}_{prefix}"),
            next: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// The next id (`ses_3fa1c09b22e4_1f`).
    pub fn next(&self) -> String {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{}_{n:x}", self.prefix)
    }
}
