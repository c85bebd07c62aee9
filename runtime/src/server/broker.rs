//! The boundary every publication crosses on its way to the hubs that hold connections: where
//! it gets its position in its namespace's stream, where the namespace's history is kept, and
//! where a resuming connection is attached to the streams without a gap or a duplicate.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::catalog::{Catalog, HistoryPolicy};
use crate::event::OutgoingEvent;
use crate::position::Position;
use crate::server::hub::Hub;
use crate::server::publication::{Publication, now_ms};

/// Carries publications to every hub serving clients: in memory for one node; a distributed
/// broker (Redis) implements the same trait when several nodes serve the same clients.
pub trait Broker: Send + Sync + 'static {
    /// Gives the event the next position in its namespace's stream, keeps it in the
    /// namespace's history, and delivers it to every hub, in offset order per namespace.
    /// Must not block for long.
    fn publish(&self, event: OutgoingEvent, now_ms: u64) -> Result<Arc<Publication>, BrokerError>;

    /// Attaches a connection to the streams of `requests`: decides, for each request with a
    /// `since`, whether everything after it can be replayed, and calls `attach` with the
    /// outcome while no live event of those namespaces reaches this node's hub. What `attach`
    /// does there (register or subscribe the connection, queue its replay) therefore meets the
    /// live stream with no gap and no duplicate.
    fn resume(
        &self,
        requests: &[ResumeRequest],
        max_behind: u64,
        attach: &mut dyn FnMut(&[Resumed]),
    );
}

/// Why a publication could not be handed over.
#[derive(Debug, thiserror::Error)]
#[error("broker unavailable: {0}")]
pub struct BrokerError(pub String);

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
    /// The stream's last position: every live event after the attachment comes after it.
    pub top: Position,
    /// For a request with `since`: whether everything after it is in `replay`.
    pub recovered: Option<bool>,
    /// Every event after `since` up to `top`, in order, when recovered (unfiltered: the
    /// caller applies the delivery rules for its connection).
    pub replay: Vec<Arc<Publication>>,
}

/// The single-node broker: positions and history in memory, publications straight to the
/// local hub. Its epoch is new with every process, so positions from before a restart are
/// answered with `recovered: false`.
pub struct InMemoryBroker {
    hub: Arc<Hub>,
    epoch: String,
    streams: Box<[Mutex<Stream>]>,
}

impl std::fmt::Debug for InMemoryBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryBroker")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// One namespace's stream.
struct Stream {
    namespace: &'static str,
    /// The last offset given out; 0 before the first event.
    top: u64,
    policy: Option<HistoryPolicy>,
    /// The kept events, oldest first, with the time each was kept.
    history: VecDeque<(u64, Arc<Publication>)>,
}

impl Stream {
    /// Drops what the policy no longer keeps at `now_ms`.
    fn trim(&mut self, now_ms: u64) {
        let Some(policy) = self.policy else {
            self.history.clear();
            return;
        };
        let ttl_ms = u64::from(policy.ttl_secs) * 1000;
        while self.history.len() > policy.size as usize
            || self
                .history
                .front()
                .is_some_and(|(kept, _)| now_ms.saturating_sub(*kept) >= ttl_ms)
        {
            self.history.pop_front();
        }
    }

    /// Whether everything after `since` is kept (all or nothing).
    fn recoverable(&self, epoch: &str, since: &Position, max_behind: u64) -> bool {
        if since.epoch != epoch || since.offset > self.top {
            return false;
        }
        let behind = self.top - since.offset;
        if behind == 0 {
            return true;
        }
        behind <= max_behind
            && self
                .history
                .front()
                .is_some_and(|(_, first)| first.offset <= since.offset + 1)
    }
}

impl InMemoryBroker {
    /// A broker delivering into `hub`, keeping each namespace's history as its catalog says.
    pub fn new(hub: Arc<Hub>) -> Self {
        let catalog: &'static Catalog = hub.catalog();
        let streams = catalog
            .namespaces
            .iter()
            .map(|ns| {
                Mutex::new(Stream {
                    namespace: ns.name,
                    top: 0,
                    policy: ns.history,
                    history: VecDeque::new(),
                })
            })
            .collect();
        InMemoryBroker {
            hub,
            epoch: new_epoch(),
            streams,
        }
    }

    fn stream(&self, namespace: usize) -> MutexGuard<'_, Stream> {
        self.streams[namespace].lock().expect("stream lock")
    }
}

impl Broker for InMemoryBroker {
    fn publish(&self, event: OutgoingEvent, now_ms: u64) -> Result<Arc<Publication>, BrokerError> {
        let namespace = self
            .hub
            .catalog()
            .namespace_index(event.namespace())
            .ok_or_else(|| BrokerError(format!("no namespace `{}`", event.namespace())))?;
        let mut stream = self.stream(namespace);
        stream.top += 1;
        let position = Position {
            namespace: stream.namespace.to_owned(),
            epoch: self.epoch.clone(),
            offset: stream.top,
        };
        let publication = Arc::new(Publication::at(event, &position, now_ms));
        if stream.policy.is_some() {
            stream.history.push_back((now_ms, publication.clone()));
        }
        stream.trim(now_ms);
        // Delivered under the stream's lock: every hub sees a namespace's events in offset
        // order, and a resuming connection is attached between two of them, never during one.
        self.hub.deliver(&publication);
        Ok(publication)
    }

    fn resume(
        &self,
        requests: &[ResumeRequest],
        max_behind: u64,
        attach: &mut dyn FnMut(&[Resumed]),
    ) {
        // Locked in namespace order (a publish holds one stream at a time), each once.
        let mut order: Vec<usize> = requests.iter().map(|r| r.namespace).collect();
        order.sort_unstable();
        order.dedup();
        let mut streams: Vec<(usize, MutexGuard<'_, Stream>)> =
            order.iter().map(|&ns| (ns, self.stream(ns))).collect();
        let now = now_ms();
        let resumed: Vec<Resumed> = requests
            .iter()
            .map(|request| {
                let (_, stream) = streams
                    .iter_mut()
                    .find(|(ns, _)| *ns == request.namespace)
                    .expect("every requested stream is locked");
                stream.trim(now);
                let top = Position {
                    namespace: stream.namespace.to_owned(),
                    epoch: self.epoch.clone(),
                    offset: stream.top,
                };
                let recovered = request
                    .since
                    .as_ref()
                    .map(|since| stream.recoverable(&self.epoch, since, max_behind));
                let replay = match (&request.since, recovered) {
                    (Some(since), Some(true)) => stream
                        .history
                        .iter()
                        .filter(|(_, p)| p.offset > since.offset)
                        .map(|(_, p)| p.clone())
                        .collect(),
                    _ => Vec::new(),
                };
                Resumed {
                    namespace: request.namespace,
                    top,
                    recovered,
                    replay,
                }
            })
            .collect();
        attach(&resumed);
        drop(streams);
    }
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
