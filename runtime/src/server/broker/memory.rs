//! The single-node broker: positions and history in memory, publications straight to the
//! local hub.

use std::sync::{Arc, Mutex};

use crate::event::OutgoingEvent;
use crate::position::Position;
use crate::server::broker::idempotency::{Keys, Seen};
use crate::server::broker::streams::{self, Streams};
use crate::server::broker::{
    Batch, BoxFuture, Broker, BrokerError, PresenceChange, ResumeRequest, Resumed, new_epoch,
};
use crate::server::hub::Hub;
use crate::server::publication::{Publication, now_ms};
use crate::server::revocation::RightsChange;

/// The single-node broker. Its epoch is new with every process, so positions from before a
/// restart are answered with `recovered: false`.
pub struct InMemoryBroker {
    hub: Arc<Hub>,
    epoch: String,
    streams: Streams,
    keys: Mutex<Keys>,
}

impl std::fmt::Debug for InMemoryBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryBroker")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl InMemoryBroker {
    /// A broker delivering into `hub`, keeping each namespace's history as its catalog says.
    pub fn new(hub: Arc<Hub>) -> Self {
        let epoch = new_epoch();
        InMemoryBroker {
            streams: Streams::new(hub.catalog(), &epoch),
            hub,
            epoch,
            keys: Mutex::new(Keys::default()),
        }
    }

    /// Numbers, keeps and delivers one event.
    fn publish_one(&self, event: OutgoingEvent, now_ms: u64) -> Result<String, BrokerError> {
        let namespace = self
            .hub
            .catalog()
            .namespace_index(event.namespace())
            .ok_or_else(|| BrokerError::new(format!("no namespace `{}`", event.namespace())))?;
        let mut stream = self.streams.lock(namespace);
        let mut position = stream.position();
        position.offset += 1;
        let publication = Arc::new(Publication::at(
            event,
            &position,
            now_ms,
            self.hub.positions(),
        ));
        stream.append(publication.clone(), now_ms);
        // Delivered under the stream's lock: every hub sees a namespace's events in offset
        // order, and a resuming connection is attached between two of them, never during one.
        self.hub.deliver(&publication);
        Ok(publication.id.clone())
    }
}

impl Broker for InMemoryBroker {
    fn publish(&self, batch: Batch) -> BoxFuture<'_, Result<Vec<String>, BrokerError>> {
        let now = now_ms();
        let publish_all = |events: Vec<OutgoingEvent>| {
            self.hub.begin_round();
            let last = events.len().saturating_sub(1);
            events
                .into_iter()
                .enumerate()
                .map(|(i, event)| {
                    self.hub.set_more_coming(i < last);
                    self.publish_one(event, now)
                })
                .collect::<Result<Vec<String>, BrokerError>>()
        };
        let ids = match batch.idempotency {
            None => publish_all(batch.events),
            Some(idempotency) => {
                // Held while the batch publishes: a concurrent retry waits for the result
                // instead of publishing again. Publishes without a key never take it.
                let mut keys = self.keys.lock().expect("idempotency lock");
                match keys.get(&idempotency.key, &idempotency.fingerprint, now) {
                    Seen::Same(ids) => Ok(ids),
                    Seen::Reused => Err(BrokerError::key_reused()),
                    Seen::New => publish_all(batch.events).inspect(|ids| {
                        keys.insert(
                            idempotency.key,
                            idempotency.fingerprint,
                            ids.clone(),
                            idempotency.window,
                            now,
                        );
                    }),
                }
            }
        };
        Box::pin(std::future::ready(ids))
    }

    fn resume<'a>(
        &'a self,
        requests: &'a [ResumeRequest],
        max_behind: u64,
        attach: &'a mut (dyn FnMut(&[Resumed]) + Send),
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        let mut locked = self.streams.lock_all(requests);
        let now = now_ms();
        let resumed: Vec<Resumed> = requests
            .iter()
            .map(|request| {
                let stream = locked.get(request.namespace);
                // This node holds the whole stream: what it cannot replay is lost.
                let local = request
                    .since
                    .as_ref()
                    .map(|since| stream.decide(since, max_behind, now));
                streams::resumed(request, stream, local)
            })
            .collect();
        attach(&resumed);
        drop(locked);
        Box::pin(std::future::ready(Ok(())))
    }

    fn presence(&self, _change: PresenceChange<'_>) -> BoxFuture<'_, bool> {
        // One node: its first or last connection is the user's.
        Box::pin(std::future::ready(true))
    }

    fn change_rights(
        &self,
        change: RightsChange,
        until_ms: u64,
    ) -> BoxFuture<'_, Result<usize, BrokerError>> {
        Box::pin(std::future::ready(Ok(self
            .hub
            .change_rights(change, until_ms))))
    }

    fn positions<'a>(
        &'a self,
        namespaces: &'a [usize],
    ) -> BoxFuture<'a, Result<Vec<Position>, BrokerError>> {
        let positions = namespaces
            .iter()
            .map(|&ns| self.streams.lock(ns).position())
            .collect();
        Box::pin(std::future::ready(Ok(positions)))
    }

    fn ready(&self) -> bool {
        true
    }
}
