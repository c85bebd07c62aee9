//! Each namespace's stream as this node knows it: the epoch, the last offset delivered to the
//! hub, and the recent history, behind one lock per namespace.
//!
//! Whoever delivers a namespace's publication to the hub holds that namespace's lock while it
//! does (the embedded broker when it numbers an event, the Redis subscriber when one arrives), and
//! a resuming connection is attached while holding the locks of its namespaces. A replay built
//! there ends exactly where the live stream the connection then receives begins.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::catalog::{Catalog, HistoryPolicy};
use crate::position::Position;
use crate::server::broker::{ResumeRequest, Resumed};
use crate::server::publication::Publication;

/// Every namespace's stream, indexed like the catalog's namespaces.
pub(crate) struct Streams {
    streams: Box<[Mutex<Stream>]>,
    /// Woken whenever a stream's top moves, for resumes waiting for this node to catch up.
    advanced: Notify,
}

/// One namespace's stream on this node.
pub(crate) struct Stream {
    pub(crate) namespace: &'static str,
    pub(crate) epoch: String,
    /// The last offset delivered to this node's hub; 0 before the first event.
    pub(crate) top: u64,
    policy: Option<HistoryPolicy>,
    /// The kept events, oldest first and contiguous up to `top`, with the time each was kept.
    history: VecDeque<(u64, Arc<Publication>)>,
}

/// What this node alone can tell about resuming a stream from a position.
#[derive(Debug)]
pub(crate) enum Local {
    /// Everything after the position, in order, up to the node's top.
    Recovered(Vec<Arc<Publication>>),
    /// Not recoverable: another epoch, or further behind than allowed.
    Lost,
    /// The position is past what this node has delivered.
    Ahead,
    /// The position is older than what this node keeps (the shared history may go further).
    Older,
}

/// History read from the shared store: the stream's epoch and top there, and every event after
/// the position asked about, contiguous up to that top (the reader checked).
pub(crate) struct Remote {
    pub(crate) epoch: String,
    pub(crate) top: u64,
    pub(crate) entries: Vec<Arc<Publication>>,
}

impl Stream {
    /// The position of the last event delivered.
    pub(crate) fn position(&self) -> Position {
        Position {
            namespace: self.namespace.to_owned(),
            epoch: self.epoch.clone(),
            offset: self.top,
        }
    }

    /// Records the next publication (`offset == top + 1`) as delivered, and keeps it.
    pub(crate) fn append(&mut self, publication: Arc<Publication>, now_ms: u64) {
        debug_assert_eq!(publication.offset, self.top + 1, "streams advance densely");
        self.top = publication.offset;
        if self.policy.is_some() {
            self.history.push_back((now_ms, publication));
        }
        self.trim(now_ms);
    }

    /// Starts over at `top` of `epoch`, keeping nothing: what came before cannot be replayed
    /// from this node.
    pub(crate) fn reset(&mut self, epoch: String, top: u64) {
        self.epoch = epoch;
        self.top = top;
        self.history.clear();
    }

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

    /// Whether the events after `since` can be replayed from this node alone.
    pub(crate) fn decide(&mut self, since: &Position, max_behind: u64, now_ms: u64) -> Local {
        self.trim(now_ms);
        if since.epoch != self.epoch {
            return Local::Lost;
        }
        if since.offset > self.top {
            return Local::Ahead;
        }
        let behind = self.top - since.offset;
        if behind > max_behind {
            return Local::Lost;
        }
        if behind == 0 {
            return Local::Recovered(Vec::new());
        }
        match self.history.front() {
            Some((_, first)) if first.offset <= since.offset + 1 => Local::Recovered(
                self.history
                    .iter()
                    .filter(|(_, p)| p.offset > since.offset)
                    .map(|(_, p)| p.clone())
                    .collect(),
            ),
            _ => Local::Older,
        }
    }

    /// Whether the events after `since` can be replayed from `remote` (read from the shared
    /// history a moment ago) joined with what this node delivered since.
    pub(crate) fn decide_with(
        &mut self,
        since: &Position,
        max_behind: u64,
        remote: &Remote,
    ) -> Local {
        if remote.epoch != since.epoch || remote.epoch != self.epoch {
            return Local::Lost;
        }
        if since.offset > self.top {
            return Local::Ahead;
        }
        if self.top - since.offset > max_behind {
            return Local::Lost;
        }
        let mut replay: Vec<Arc<Publication>> = remote
            .entries
            .iter()
            .filter(|p| p.offset > since.offset && p.offset <= self.top)
            .cloned()
            .collect();
        if self.top > remote.top {
            // Delivered here after the read: the node's own history must hold them.
            let joined = self
                .history
                .front()
                .is_some_and(|(_, first)| first.offset <= remote.top.max(since.offset) + 1);
            if !joined {
                return Local::Older;
            }
            let from = remote.top.max(since.offset);
            replay.extend(
                self.history
                    .iter()
                    .filter(|(_, p)| p.offset > from)
                    .map(|(_, p)| p.clone()),
            );
        }
        Local::Recovered(replay)
    }
}

impl Streams {
    /// Empty streams for every namespace of `catalog`, all in `epoch`.
    pub(crate) fn new(catalog: &'static Catalog, epoch: &str) -> Self {
        let streams = catalog
            .namespaces
            .iter()
            .map(|ns| {
                Mutex::new(Stream {
                    namespace: ns.name,
                    epoch: epoch.to_owned(),
                    top: 0,
                    policy: ns.history,
                    history: VecDeque::new(),
                })
            })
            .collect();
        Streams {
            streams,
            advanced: Notify::new(),
        }
    }

    /// Locks one namespace's stream.
    pub(crate) fn lock(&self, namespace: usize) -> MutexGuard<'_, Stream> {
        self.streams[namespace].lock().expect("stream lock")
    }

    /// Locks the streams of `requests`, each once, in namespace order (delivery holds one
    /// stream at a time, so this order cannot deadlock).
    pub(crate) fn lock_all(&self, requests: &[ResumeRequest]) -> Locked<'_> {
        let mut order: Vec<usize> = requests.iter().map(|r| r.namespace).collect();
        order.sort_unstable();
        order.dedup();
        Locked(order.into_iter().map(|ns| (ns, self.lock(ns))).collect())
    }

    /// Tells waiting resumes that a stream advanced.
    pub(crate) fn advanced(&self) {
        self.advanced.notify_waiters();
    }

    /// Waits until `namespace` has delivered `offset`, or `timeout` passed.
    pub(crate) async fn wait_for(
        &self,
        namespace: usize,
        offset: u64,
        timeout: std::time::Duration,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.advanced.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.lock(namespace).top >= offset {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }
}

/// The streams of one attachment, locked.
pub(crate) struct Locked<'s>(Vec<(usize, MutexGuard<'s, Stream>)>);

impl Locked<'_> {
    /// The locked stream of `namespace`.
    pub(crate) fn get(&mut self, namespace: usize) -> &mut Stream {
        self.0
            .iter_mut()
            .find(|(ns, _)| *ns == namespace)
            .map(|(_, s)| &mut **s)
            .expect("every requested stream is locked")
    }
}

/// The outcome for one request, from its stream's decision: `Ahead` and `Older` count as not
/// recovered (the caller decided it cannot learn more).
pub(crate) fn resumed(request: &ResumeRequest, stream: &Stream, local: Option<Local>) -> Resumed {
    let (recovered, replay) = match local {
        None => (None, Vec::new()),
        Some(Local::Recovered(replay)) => (Some(true), replay),
        Some(_) => (Some(false), Vec::new()),
    };
    Resumed {
        namespace: request.namespace,
        top: stream.position(),
        recovered,
        replay,
    }
}
