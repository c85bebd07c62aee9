//! The boundary every publication crosses on its way to the hubs that hold connections: where
//! it gets its position in its namespace's stream, where the namespace's history is kept, and
//! where a resuming connection is attached to the streams without a gap or a duplicate.
//!
//! Two brokers implement it: [`InMemoryBroker`] (one node, the default) and [`RedisBroker`]
//! (several nodes sharing one Redis). Both keep each namespace's recent stream on the node in
//! [`streams`], under one lock per namespace that delivery to the hub also holds: that lock is
//! the seam between a replay and the live events after it.

mod idempotency;
mod memory;
mod redis;
mod streams;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use memory::InMemoryBroker;
pub use redis::{RedisBroker, RedisConfig, RedisSink};

/// How many times a sink (Redis, HTTP) tries one event before it reports the failure.
pub(crate) const SINK_ATTEMPTS: u32 = 3;

/// The longest a sink waits between two attempts.
pub(crate) const SINK_MAX_WAIT: Duration = Duration::from_secs(2);

use crate::event::OutgoingEvent;
use crate::position::Position;
use crate::server::publication::Publication;

/// A boxed, sendable future: what the broker's methods return, so the trait stays
/// object-safe (`Arc<dyn Broker>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Carries publications to every hub serving clients: in memory for one node, through Redis
/// when several nodes serve the same clients.
pub trait Broker: Send + Sync + 'static {
    /// Gives each event of `batch`, in order, the next position in its namespace's stream,
    /// keeps it in the namespace's history and has it delivered to every hub; returns their ids.
    /// All or nothing: an error means none of them was stored. A batch carrying an idempotency
    /// key already seen within the broker's window returns the ids of that first publish and
    /// publishes nothing.
    fn publish(&self, batch: Batch) -> BoxFuture<'_, Result<Vec<String>, BrokerError>>;

    /// Attaches a connection to the streams of `requests`: decides, for each request with a
    /// `since`, whether everything after it can be replayed, and calls `attach` with the
    /// outcome while no live event of those namespaces reaches this node's hub. What `attach`
    /// does there (register or subscribe the connection, queue its replay) therefore meets the
    /// live stream with no gap and no duplicate. `attach` is called exactly once.
    fn resume<'a>(
        &'a self,
        requests: &'a [ResumeRequest],
        max_behind: u64,
        attach: &'a mut (dyn FnMut(&[Resumed]) + Send),
    ) -> BoxFuture<'a, ()>;

    /// Tells the broker a user's first connection on this node opened (`joined`) or their last
    /// one closed; answers whether that was their first (or last) on every node, so that
    /// presence events are emitted once however many nodes serve the user.
    fn presence(&self, change: PresenceChange<'_>) -> BoxFuture<'_, bool>;

    /// Whether the broker can take publications and deliver them now (`GET /readyz`).
    fn ready(&self) -> bool;
}

/// Events to publish together.
#[derive(Debug)]
pub struct Batch {
    /// The events, in order; their timestamps are set.
    pub events: Vec<OutgoingEvent>,
    /// The publisher's `Idempotency-Key`, if it sent one.
    pub idempotency_key: Option<String>,
}

/// A user's first connection on this node opened, or their last one closed.
#[derive(Debug, Clone, Copy)]
pub struct PresenceChange<'a> {
    /// The user.
    pub user_id: &'a str,
    /// Their role's index in the catalog.
    pub role: u32,
    /// `true` when the connection opened, `false` when it closed.
    pub joined: bool,
}

/// Why a publication could not be handed over.
#[derive(Debug, Clone, thiserror::Error)]
#[error("broker unavailable: {message}")]
pub struct BrokerError {
    /// What failed.
    pub message: String,
    /// When a publisher may try again.
    pub retry_after: Duration,
}

impl BrokerError {
    /// The broker failed for this reason; retry after a second.
    pub fn new(message: impl Into<String>) -> Self {
        BrokerError {
            message: message.into(),
            retry_after: Duration::from_secs(1),
        }
    }
}

/// One namespace a connection attaches to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeRequest {
    /// The namespace's index in the catalog.
    pub namespace: usize,
    /// The last position the client saw, if it resumes.
    pub since: Option<Position>,
}

/// What attaching to one namespace found.
#[derive(Debug, Clone)]
pub struct Resumed {
    /// The namespace's index in the catalog.
    pub namespace: usize,
    /// The last position this node delivered: every live event after the attachment comes
    /// after it.
    pub top: Position,
    /// For a request with `since`: whether everything after it is in `replay`.
    pub recovered: Option<bool>,
    /// Every event after `since` up to `top`, in order, when recovered (unfiltered: the
    /// caller applies the delivery rules for its connection).
    pub replay: Vec<Arc<Publication>>,
}

/// A fresh random epoch: 8 characters of `[0-9a-z]`.
pub fn new_epoch() -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed).expect("the OS provides randomness");
    seed.iter()
        .map(|b| DIGITS[*b as usize % DIGITS.len()] as char)
        .collect()
}
