//! The boundary every publication crosses on its way to the hubs that hold connections: where
//! it gets its position in its namespace's stream, where the namespace's history is kept, and
//! where a resuming connection is attached to the streams without a gap or a duplicate.
//!
//! Two brokers implement it: [`InMemoryBroker`] (one node, the default) and [`RedisBroker`]
//! (several nodes sharing one Redis). Both keep each namespace's recent stream on the node in
//! [`streams`], under one lock per namespace that delivery to the hub also holds: that lock is
//! the seam between a replay and the live events after it.

pub(crate) mod idempotency;
mod memory;
pub(crate) mod redis;
mod streams;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use idempotency::WINDOW as IDEMPOTENCY_WINDOW;
pub use memory::InMemoryBroker;
pub use redis::{RedisBroker, RedisConfig};

use crate::event::OutgoingEvent;
use crate::position::Position;
use crate::server::publication::Publication;
use crate::server::revocation::RightsChange;

/// A boxed, sendable future: what the broker's methods return, so the trait stays
/// object-safe (`Arc<dyn Broker>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Carries publications to every hub serving clients: in memory for one node, through Redis
/// when several nodes serve the same clients.
pub trait Broker: Send + Sync + 'static {
    /// Gives each event of `batch`, in order, the next position in its namespace's stream,
    /// keeps it in the namespace's history and has it delivered to every hub; returns their ids.
    /// All or nothing: an error is either certain that none of them was stored
    /// ([`Failure::Unavailable`]) or says it cannot tell ([`Failure::OutcomeUnknown`]). A batch
    /// carrying an idempotency key already seen within its window returns the ids of that
    /// first publish and publishes nothing, when it is the same request (by fingerprint); for
    /// another request it is [`Failure::KeyReused`].
    fn publish(&self, batch: Batch) -> BoxFuture<'_, Result<Vec<String>, BrokerError>>;

    /// Attaches a connection to the streams of `requests`: decides, for each request with a
    /// `since`, whether everything after it can be replayed, and calls `attach` with the
    /// outcome while no live event of those namespaces reaches this node's hub. What `attach`
    /// does there (register or subscribe the connection, queue its replay) therefore meets the
    /// live stream with no gap and no duplicate. `attach` is called exactly once, unless the
    /// broker could not tell what can be replayed (the shared history did not answer): then
    /// it is not called and the error says why, so that the client is told to try again
    /// rather than told, wrongly, that its events are lost.
    fn resume<'a>(
        &'a self,
        requests: &'a [ResumeRequest],
        max_behind: u64,
        attach: &'a mut (dyn FnMut(&[Resumed]) + Send),
    ) -> BoxFuture<'a, Result<(), BrokerError>>;

    /// Each of `namespaces`' current position, where every node numbers its events (Redis' top,
    /// not this node's view of it): every event published and answered before the call is at
    /// or before it, so a client resuming from it gets exactly the events after it.
    fn positions<'a>(
        &'a self,
        namespaces: &'a [usize],
    ) -> BoxFuture<'a, Result<Vec<Position>, BrokerError>>;

    /// Tells the broker a user's first connection on this node opened (`joined`) or their last
    /// one closed; answers whether that was their first (or last) on every node, so that
    /// presence events are emitted once however many nodes serve the user.
    fn presence(&self, change: PresenceChange<'_>) -> BoxFuture<'_, bool>;

    /// Whether the broker can take publications and deliver them now (`GET /readyz`).
    fn ready(&self) -> bool;

    /// Whether a publish can end with its outcome unknown ([`Failure::OutcomeUnknown`]): then
    /// publishes without a key of their own get one from the server, so that even their retry
    /// is safe.
    fn outcome_may_be_unknown(&self) -> bool {
        false
    }

    /// Puts a rights change (a revocation, a re-authorization request) in force on every node
    /// until `until_ms`: recorded where every node (and a node restarted meanwhile) will find
    /// it before this resolves, each node then applying it to the connections it matches
    /// ([`Hub::change_rights`](crate::server::hub::Hub::change_rights)). Resolves to how many
    /// connections of this node it closed or asked.
    fn change_rights(
        &self,
        change: RightsChange,
        until_ms: u64,
    ) -> BoxFuture<'_, Result<usize, BrokerError>>;
}

/// Events to publish together.
#[derive(Debug)]
pub struct Batch {
    /// The events, in order; their timestamps are set.
    pub events: Vec<OutgoingEvent>,
    /// The publisher's idempotency key, if the batch carries one.
    pub idempotency: Option<Idempotency>,
}

/// An idempotency key as a broker stores it: scoped to its publisher and bound to what was
/// published under it, so that a retry answers the first result, another publisher's key never
/// does, and the same key with another request is refused ([`Failure::KeyReused`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    /// `<scope>/<key>`: the publisher's scope (a digest of its API key, or the sink's) and
    /// the key it sent.
    pub key: String,
    /// A digest of the batch's events as the publisher sent them (type, data, options and an
    /// explicit timestamp, in order).
    pub fingerprint: String,
    /// How long the result is kept.
    pub window: Duration,
}

impl Idempotency {
    /// `key` from the publisher `scope`, for `events` as they were sent, kept for `window`.
    pub fn new(scope: &str, key: &str, events: &[OutgoingEvent], window: Duration) -> Self {
        Idempotency {
            key: format!("{scope}/{key}"),
            fingerprint: idempotency::fingerprint(events),
            window,
        }
    }
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
#[error("{message}")]
pub struct BrokerError {
    /// What a publisher may assume about the batch.
    pub failure: Failure,
    /// What failed.
    pub message: String,
    /// When a publisher may try again.
    pub retry_after: Duration,
}

/// What a failed publish leaves behind: what the publisher may assume, and whether to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Nothing was stored, certainly (Redis could not be reached, or refused the call before
    /// running it). Retry later.
    Unavailable,
    /// The batch may or may not have been stored: the call reached Redis but its answer did not
    /// come back. Retry under the same idempotency key, which answers the first result if it was
    /// stored and publishes it if not.
    OutcomeUnknown,
    /// The idempotency key was used within its window for another request: nothing was
    /// published, and a retry never will be. Use a new key for a new request.
    KeyReused,
}

impl BrokerError {
    /// Nothing was stored for this reason; retry after a second.
    pub fn new(message: impl Into<String>) -> Self {
        BrokerError {
            failure: Failure::Unavailable,
            message: message.into(),
            retry_after: Duration::from_secs(1),
        }
    }

    /// The batch may have been stored (its answer was lost); retry under the same key.
    pub fn outcome_unknown(message: impl Into<String>) -> Self {
        BrokerError {
            failure: Failure::OutcomeUnknown,
            ..BrokerError::new(message)
        }
    }

    /// The idempotency key was used for another request.
    pub fn key_reused() -> Self {
        BrokerError {
            failure: Failure::KeyReused,
            ..BrokerError::new(
                "the idempotency key was used for another request within its window; \
                 nothing was published (use a new key for a new request)",
            )
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

/// A fresh epoch: 8 characters of `[0-9a-z]`, as likely to repeat another (this process's or
/// another node's) as two random draws. A keyed hash (SipHash, under keys the OS gave this
/// process once) of a counter: every publish and every history read offers one, for a stream
/// that has none, and a system call for each was a few percent of a publish's CPU.
pub fn new_epoch() -> String {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    static DRAWN: AtomicU64 = AtomicU64::new(0);
    let mut bits = KEYS
        .get_or_init(RandomState::new)
        .hash_one(DRAWN.fetch_add(1, Ordering::Relaxed));
    (0..8)
        .map(|_| {
            let digit = DIGITS[(bits % 36) as usize];
            bits /= 36;
            char::from(digit)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    /// Epochs are 8 characters of `[0-9a-z]` and do not repeat (a repeat would let an old
    /// position name an event of a new epoch).
    #[test]
    fn epochs_are_short_and_do_not_repeat() {
        let drawn: std::collections::HashSet<String> =
            (0..100_000).map(|_| super::new_epoch()).collect();
        assert_eq!(drawn.len(), 100_000);
        assert!(drawn.iter().all(|epoch| {
            epoch.len() == 8
                && epoch
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
        }));
    }
}
