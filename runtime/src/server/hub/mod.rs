//! The hub: the connections of this node, indexed so that each publication finds its recipients
//! without scanning every connection, and delivered by cloning one shared frame into bounded
//! per-connection queues.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use indexmap::IndexMap;
use tokio::sync::Notify;

use crate::catalog::Catalog;
use crate::delivery::{Audience, Refusal};
use crate::namespaces::NamespaceSet;
use crate::protocol::{CloseReason, close};
use crate::server::frame::Frame;
use crate::server::mailbox::{Full, Mailbox};
use crate::server::metrics::{Gauge, Metrics};
use crate::server::positions::PositionKey;
use crate::server::publication::Publication;
use crate::server::revocation::Revocations;
use crate::server::shrink::Shrink;

mod rights;
pub use rights::{RefreshRefused, Refreshed};

/// A connection's id within this hub.
pub type ConnId = u64;

/// Who a connection is and what it listens to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The connection's session id (what `excludeSessionIds` names).
    pub session_id: String,
    /// The token's subject.
    pub user_id: String,
    /// The role's index in the catalog.
    pub role: u32,
    /// Subscribed namespaces.
    pub namespaces: NamespaceSet,
}

/// What registering a connection gives its owner.
#[derive(Debug)]
pub struct Registration {
    /// The id to unregister with.
    pub id: ConnId,
    /// The connection's queue (events and its own replies, in order) and closing state.
    pub mailbox: Arc<Mailbox>,
    /// Whether this is the user's only connection with this role on this hub.
    pub first_of_user: bool,
}

/// The user already holds the most connections a user may hold on this hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the user already holds {limit} connections, the most allowed")]
pub struct TooManyConnections {
    /// The limit.
    pub limit: usize,
}

/// What unregistering tells its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unregistered {
    /// The connection's user.
    pub user_id: String,
    /// Its role index.
    pub role: u32,
    /// Whether no connection of that user with that role remains on this hub.
    pub last_of_user: bool,
}

/// Counters, for health checks and benchmarks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HubStats {
    /// Open connections.
    pub connections: u64,
    /// Publications delivered to this hub.
    pub published: u64,
    /// Frames queued to connections.
    pub delivered: u64,
    /// Connections closed because their queue was full.
    pub slow_consumers_closed: u64,
}

struct Entry {
    conn: Arc<Mailbox>,
    namespaces: NamespaceSet,
    /// Where the connection sits in its user's [`UserConns::conns`].
    user_slot: usize,
}

impl Entry {
    fn info(&self) -> ConnectionInfo {
        ConnectionInfo {
            session_id: self.conn.session_id.to_string(),
            user_id: self.conn.user_id.to_string(),
            role: self.conn.role(),
            namespaces: self.namespaces,
        }
    }
}

/// One user's connections on this hub. Adding and removing one is O(1) in how many the user
/// holds (a swap-remove, with each entry knowing its slot): a user with thousands of connections
/// cannot make churn quadratic under the hub's lock. Most users hold one connection, so nothing
/// here allocates beyond that one slot.
#[derive(Default)]
struct UserConns {
    conns: Vec<(ConnId, Arc<Mailbox>)>,
    /// How many connections hold each role (a user's tokens may carry different roles), as
    /// `(role, count)`: the first role inline (a count of 0 when none), others (rare) in
    /// `more`; at most one entry per role of the catalog. Small, as there is one per user.
    first: (u32, u32),
    more: Box<[(u32, u32)]>,
}

impl UserConns {
    /// Counts a connection of `role` in (`+1`) or out (`-1`); returns how many remain.
    fn count(&mut self, role: u32, delta: i32) -> usize {
        let slot = if self.first.1 == 0 || self.first.0 == role {
            self.first.0 = role;
            &mut self.first.1
        } else if let Some(i) = self.more.iter().position(|(r, _)| *r == role) {
            &mut self.more[i].1
        } else {
            let mut more = std::mem::take(&mut self.more).into_vec();
            more.push((role, 0));
            self.more = more.into_boxed_slice();
            &mut self.more.last_mut().expect("just pushed").1
        };
        *slot = slot.saturating_add_signed(delta);
        let remaining = *slot;
        if remaining == 0 {
            let mut more = std::mem::take(&mut self.more).into_vec();
            if self.first.0 == role {
                self.first = more.pop().unwrap_or_default();
            } else {
                more.retain(|(r, _)| *r != role);
            }
            self.more = more.into_boxed_slice();
        }
        remaining as usize
    }
}

#[derive(Default)]
struct Registry {
    conns: HashMap<ConnId, Entry>,
    /// Index `namespace * roles + role`: the subscribers of a namespace holding a role.
    buckets: Vec<IndexMap<ConnId, Arc<Mailbox>>>,
    /// Every connection of a user, for ownership and `userIds` targeting.
    users: HashMap<Arc<str>, UserConns>,
}

/// The connections of one node and the delivery of publications to them.
pub struct Hub {
    catalog: &'static Catalog,
    roles: usize,
    queue_capacity: usize,
    max_connections_per_user: usize,
    registry: RwLock<Registry>,
    next_id: AtomicU64,
    published: AtomicU64,
    /// Delivery rounds begun: one per publish request's events (see [`Hub::begin_round`]).
    rounds: AtomicU64,
    /// Whether the events being delivered are followed at once by more of their batch.
    more_coming: AtomicBool,
    delivered: AtomicU64,
    slow_closed: AtomicU64,
    emptied: Notify,
    metrics: Arc<Metrics>,
    revocations: Revocations,
    positions: PositionKey,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("stats", &self.stats()).finish()
    }
}

impl Hub {
    /// A hub for `catalog` whose connections queue at most `queue_capacity` frames each.
    pub fn new(catalog: &'static Catalog, queue_capacity: usize) -> Self {
        let roles = catalog.roles.len();
        let registry = Registry {
            buckets: (0..roles * catalog.namespaces.len())
                .map(|_| IndexMap::new())
                .collect(),
            ..Registry::default()
        };
        Hub {
            catalog,
            roles,
            queue_capacity: queue_capacity.max(1),
            max_connections_per_user: usize::MAX,
            registry: RwLock::new(registry),
            next_id: AtomicU64::new(1),
            published: AtomicU64::new(0),
            rounds: AtomicU64::new(0),
            more_coming: AtomicBool::new(false),
            delivered: AtomicU64::new(0),
            slow_closed: AtomicU64::new(0),
            emptied: Notify::new(),
            metrics: Arc::new(Metrics::new(catalog)),
            revocations: Revocations::default(),
            positions: PositionKey::random(),
        }
    }

    /// Seals and opens event ids with `key` (every node of a deployment holds the same; a hub
    /// of its own has a random one).
    pub fn with_position_key(mut self, key: PositionKey) -> Self {
        self.positions = key;
        self
    }

    /// What seals the ids of this hub's events and opens the ids its clients send back.
    pub fn positions(&self) -> &PositionKey {
        &self.positions
    }

    /// This node's metrics (the hub holds them: everything that records has the hub).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// `/metrics`' text: the recorded metrics, and the connections and subscriptions now.
    pub fn render_metrics(&self) -> String {
        let registry = self.registry.read().expect("hub lock");
        let mut held = vec![0u64; self.roles];
        for entry in registry.conns.values() {
            held[entry.conn.role() as usize] += 1;
        }
        let connections = self
            .catalog
            .roles
            .iter()
            .zip(held)
            .map(|(role, n)| (role.name, n))
            .collect();
        let subscriptions = self
            .catalog
            .namespaces
            .iter()
            .enumerate()
            .map(|(ns, namespace)| {
                let n: usize = (0..self.roles)
                    .map(|r| registry.buckets[self.bucket(ns, r as u32)].len())
                    .sum();
                (namespace.name, n as u64)
            })
            .collect();
        drop(registry);
        self.metrics.render(&[
            Gauge {
                name: "omnicast_connections",
                help: "Open connections on this node, by role.",
                label: "role",
                values: connections,
            },
            Gauge {
                name: "omnicast_subscriptions",
                help: "Connections subscribed to each namespace on this node.",
                label: "namespace",
                values: subscriptions,
            },
        ])
    }

    /// Limits how many connections one user may hold on this hub (unlimited by default).
    pub fn with_max_connections_per_user(mut self, limit: usize) -> Self {
        self.max_connections_per_user = limit.max(1);
        self
    }

    /// How many connections `user_id` holds on this hub.
    pub fn user_connections(&self, user_id: &str) -> usize {
        let registry = self.registry.read().expect("hub lock");
        registry
            .users
            .get(user_id)
            .map_or(0, |user| user.conns.len())
    }

    /// Every connection now: who it is and what it subscribed (for explain; O(connections)).
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        let registry = self.registry.read().expect("hub lock");
        registry.conns.values().map(Entry::info).collect()
    }

    /// The connections of one user now.
    pub fn connections_of(&self, user_id: &str) -> Vec<ConnectionInfo> {
        let registry = self.registry.read().expect("hub lock");
        registry.users.get(user_id).map_or_else(Vec::new, |user| {
            user.conns
                .iter()
                .filter_map(|(id, _)| registry.conns.get(id).map(Entry::info))
                .collect()
        })
    }

    /// The catalog this hub serves.
    pub fn catalog(&self) -> &'static Catalog {
        self.catalog
    }

    /// Adds a connection.
    ///
    /// # Panics
    /// When `info.role` is not a role index of the catalog.
    pub fn register(&self, info: ConnectionInfo) -> Result<Registration, TooManyConnections> {
        self.register_with(info, Vec::new())
    }

    /// Adds a connection whose queue starts with `initial` (the `ready` message, then a resuming
    /// client's replay), so that no event published meanwhile can reach the client before them.
    ///
    /// # Panics
    /// When `info.role` is not a role index of the catalog.
    pub fn register_with(
        &self,
        info: ConnectionInfo,
        initial: Vec<Frame>,
    ) -> Result<Registration, TooManyConnections> {
        assert!((info.role as usize) < self.roles, "role index out of range");
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut registry = self.registry.write().expect("hub lock");
        let held = registry
            .users
            .get(info.user_id.as_str())
            .map_or(0, |user| user.conns.len());
        if held >= self.max_connections_per_user {
            return Err(TooManyConnections {
                limit: self.max_connections_per_user,
            });
        }
        let user_id: Arc<str> = registry
            .users
            .get_key_value(info.user_id.as_str())
            .map_or_else(|| Arc::from(info.user_id.as_str()), |(k, _)| k.clone());
        let conn = Arc::new(Mailbox::new(
            info.session_id.into(),
            user_id.clone(),
            info.role,
            self.queue_capacity,
            initial,
        ));
        let namespaces = info.namespaces.intersection(self.catalog.all_namespaces());
        for ns in namespaces.indexes() {
            let bucket = self.bucket(ns, info.role);
            registry.buckets[bucket].insert(id, conn.clone());
        }
        let user = registry.users.entry(user_id).or_default();
        let user_slot = user.conns.len();
        if user_slot == 0 {
            // One slot, not the four a first push makes room for.
            user.conns.reserve_exact(1);
        }
        user.conns.push((id, conn.clone()));
        let first_of_user = user.count(info.role, 1) == 1;
        registry.conns.insert(
            id,
            Entry {
                conn: conn.clone(),
                namespaces,
                user_slot,
            },
        );
        Ok(Registration {
            id,
            mailbox: conn,
            first_of_user,
        })
    }

    /// Removes a connection; `None` if it was not registered.
    pub fn unregister(&self, id: ConnId) -> Option<Unregistered> {
        let mut registry = self.registry.write().expect("hub lock");
        let entry = registry.conns.remove(&id)?;
        let conn = entry.conn;
        registry.conns.shrink_when_sparse();
        for ns in entry.namespaces.indexes() {
            let bucket = &mut registry.buckets[self.bucket(ns, conn.role())];
            bucket.swap_remove(&id);
            bucket.shrink_when_sparse();
        }
        let mut last_of_user = true;
        if let Some(user) = registry.users.get_mut(&conn.user_id) {
            user.conns.swap_remove(entry.user_slot);
            last_of_user = user.count(conn.role(), -1) == 0;
            if let Some((moved, _)) = user.conns.get(entry.user_slot) {
                let moved = *moved;
                registry
                    .conns
                    .get_mut(&moved)
                    .expect("a user's connections are registered")
                    .user_slot = entry.user_slot;
            } else if user.conns.is_empty() {
                registry.users.remove(&conn.user_id);
                registry.users.shrink_when_sparse();
            }
        }
        if registry.conns.is_empty() {
            self.emptied.notify_waiters();
        }
        Some(Unregistered {
            user_id: conn.user_id.to_string(),
            role: conn.role(),
            last_of_user,
        })
    }

    /// Replaces a connection's subscriptions; returns the mask now in force (unknown bits dropped).
    pub fn set_namespaces(&self, id: ConnId, namespaces: NamespaceSet) -> Option<NamespaceSet> {
        let namespaces = namespaces.intersection(self.catalog.all_namespaces());
        let mut registry = self.registry.write().expect("hub lock");
        let registry = &mut *registry;
        let entry = registry.conns.get_mut(&id)?;
        let (old, role) = (entry.namespaces, entry.conn.role());
        for ns in old.difference(namespaces).indexes() {
            let bucket = &mut registry.buckets[ns * self.roles + role as usize];
            bucket.swap_remove(&id);
            bucket.shrink_when_sparse();
        }
        for ns in namespaces.difference(old).indexes() {
            registry.buckets[ns * self.roles + role as usize].insert(id, entry.conn.clone());
        }
        entry.namespaces = namespaces;
        Some(namespaces)
    }

    /// A connection's subscriptions.
    pub fn namespaces(&self, id: ConnId) -> Option<NamespaceSet> {
        let registry = self.registry.read().expect("hub lock");
        registry.conns.get(&id).map(|e| e.namespaces)
    }

    /// Queues the publication's frame to every connection allowed to receive it (the four
    /// delivery rules of ARCHITECTURE.md) and returns how many that was. A connection whose queue
    /// is full is closed as a slow consumer; nothing here waits.
    pub fn deliver(&self, publication: &Publication) -> usize {
        let started = std::time::Instant::now();
        let sent = self.fan_out(publication);
        self.metrics
            .fanout_seconds
            .observe(started.elapsed().as_secs_f64());
        tracing::debug!(
            event_id = %publication.id,
            event = publication.event.descriptor.name,
            sent,
            "delivered on this node"
        );
        self.delivered.fetch_add(sent as u64, Ordering::Relaxed);
        // Counted once every recipient has it queued, so `published` tells an observer (a test,
        // a health check) that the publication's deliveries are all made.
        self.published.fetch_add(1, Ordering::Release);
        sent
    }

    /// Finds the candidates through the indexes (rule 1, the subscription, and the cheapest
    /// superset of the audience) and lets [`Audience::admits`] decide each one.
    fn fan_out(&self, publication: &Publication) -> usize {
        let event = &publication.event;
        let Some(ns) = self.catalog.namespace_index(event.namespace()) else {
            return 0;
        };
        let audience = Audience::of(self.catalog, event);
        let registry = self.registry.read().expect("hub lock");
        // Subscribers kept from the event, by the rule that decided (`Refusal as usize`). Rule
        // 2 keeps whole (namespace, role) buckets: counted by their sizes, never per connection.
        let mut refused = [0u64; Refusal::ALL.len()];
        let bucket_len = |role: u32| registry.buckets[self.bucket(ns, role)].len() as u64;
        for role in 0..self.roles as u32 {
            if let Some(refusal) = audience.role_refusal(role) {
                refused[refusal as usize] += bucket_len(role);
            }
        }
        // Connections of allowed roles the index offered, for the rules that find recipients
        // through the user index (the others of those roles were kept by that rule).
        let (mut sent, mut offered) = (0u64, 0u64);
        // `role` is the connection's, known from the index where it is.
        let offer = |role: u32, conn: &Mailbox, tally: (&mut u64, &mut u64, &mut [u64])| {
            let (sent, offered, refused) = tally;
            match audience.refusal(role, || (&conn.user_id, &conn.session_id)) {
                None => {}
                // Counted with its bucket above.
                Some(refusal) if refusal.rule() == 2 => return,
                Some(refusal) => {
                    *offered += 1;
                    refused[refusal as usize] += 1;
                    return;
                }
            }
            *offered += 1;
            // A connection asked to close once drained takes nothing more: after an epoch
            // change, an event of the new epoch ahead of the close would move its client's
            // position past events this node never delivered, and its resume would say
            // `recovered: true` without them. It resumes from what it has instead.
            if conn.close_reason().is_some() || conn.drained_close_reason().is_some() {
                return;
            }
            match conn.push(publication.frame.clone()) {
                Ok(()) => *sent += 1,
                Err(Full) => self.close_slow_consumer(conn),
            }
        };
        let subscribed = |id: &ConnId| registry.conns[id].namespaces.contains(ns);
        if let Some(user_ids) = audience.user_ids() {
            // Named users: their connections, each user once.
            let mut users: Vec<&str> = user_ids.iter().map(String::as_str).collect();
            users.sort_unstable();
            users.dedup();
            for conns in users.into_iter().filter_map(|u| registry.users.get(u)) {
                for (id, conn) in &conns.conns {
                    if subscribed(id) {
                        offer(conn.role(), conn, (&mut sent, &mut offered, &mut refused));
                    }
                }
            }
            let allowed: u64 = audience.roles().indexes().map(bucket_len).sum();
            refused[Refusal::NotNamedUser as usize] += allowed.saturating_sub(offered);
        } else {
            for role in audience.roles().indexes() {
                if audience.is_owned_by_role(role) {
                    // Only the owner's connections can be admitted.
                    let before = offered;
                    let owner = audience.owner().and_then(|o| registry.users.get(o));
                    for (id, conn) in owner.into_iter().flat_map(|u| &u.conns) {
                        if conn.role() == role && subscribed(id) {
                            offer(role, conn, (&mut sent, &mut offered, &mut refused));
                        }
                    }
                    let others = bucket_len(role).saturating_sub(offered - before);
                    refused[Refusal::NotOwner as usize] += others;
                } else {
                    for conn in registry.buckets[self.bucket(ns, role)].values() {
                        offer(role, conn, (&mut sent, &mut offered, &mut refused));
                    }
                }
            }
        }
        drop(registry);
        if let Some(index) = self
            .catalog
            .events
            .iter()
            .position(|e| e.descriptor.name == event.descriptor.name)
        {
            self.metrics.deliveries().add(index, sent, &refused);
        }
        sent as usize
    }

    /// Marks the start of one publish request's deliveries (a lone event or a whole batch).
    /// Connections that find several rounds begun since their last write are behind
    /// concurrent publishers, and wait a scheduler turn for more (`Connection::poll_write`).
    pub fn begin_round(&self) {
        self.rounds.fetch_add(1, Ordering::Relaxed);
    }

    /// Delivery rounds begun so far.
    pub(crate) fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }

    /// Says whether the next deliveries are the rest of the batch being delivered (set before
    /// each of a batch's events): a connection woken meanwhile waits a scheduler turn for them
    /// rather than write the first alone (`Connection::poll_write`).
    pub fn set_more_coming(&self, more: bool) {
        self.more_coming.store(more, Ordering::Relaxed);
    }

    /// Whether more of a batch is being delivered.
    pub(crate) fn more_coming(&self) -> bool {
        self.more_coming.load(Ordering::Relaxed)
    }

    /// Closes a connection whose queue is full (4008) and counts it, once.
    pub fn close_slow_consumer(&self, mailbox: &Mailbox) {
        if mailbox.close(close::SLOW_CONSUMER) {
            self.slow_closed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Asks every connection to close at once.
    pub fn close_all(&self, reason: CloseReason) {
        let registry = self.registry.read().expect("hub lock");
        for entry in registry.conns.values() {
            entry.conn.close(reason);
        }
    }

    /// Asks every connection to close once it has written what is queued for it (server
    /// shutdown: events accepted before are delivered, then the close); none is given more.
    pub fn close_all_when_drained(&self, reason: CloseReason) {
        let registry = self.registry.read().expect("hub lock");
        for entry in registry.conns.values() {
            entry.conn.close_when_drained(reason);
        }
    }

    /// Asks every connection subscribed to `namespace` to close once it has written what is
    /// queued for it, and gives them nothing more; returns how many.
    pub fn close_subscribers_when_drained(&self, namespace: usize, reason: CloseReason) -> usize {
        let registry = self.registry.read().expect("hub lock");
        let mut closed = 0;
        for role in 0..self.roles as u32 {
            for conn in registry.buckets[self.bucket(namespace, role)].values() {
                conn.close_when_drained(reason);
                closed += 1;
            }
        }
        closed
    }

    /// Resolves once no connection is registered.
    pub async fn emptied(&self) {
        loop {
            let notified = self.emptied.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.registry.read().expect("hub lock").conns.is_empty() {
                return;
            }
            notified.await;
        }
    }

    /// Current counters.
    pub fn stats(&self) -> HubStats {
        HubStats {
            connections: self.registry.read().expect("hub lock").conns.len() as u64,
            published: self.published.load(Ordering::Acquire),
            delivered: self.delivered.load(Ordering::Relaxed),
            slow_consumers_closed: self.slow_closed.load(Ordering::Relaxed),
        }
    }

    fn bucket(&self, namespace: usize, role: u32) -> usize {
        namespace * self.roles + role as usize
    }
}

#[cfg(test)]
mod tests;
