//! The hub: the connections of this node, indexed so that each publication finds its recipients
//! without scanning every connection, and delivered by cloning one shared frame into bounded
//! per-connection queues.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use axum::extract::ws::Utf8Bytes;
use indexmap::IndexMap;
use tokio::sync::{Notify, mpsc, watch};

use crate::catalog::Catalog;
use crate::protocol::{CloseReason, close};
use crate::publication::Publication;
use crate::role::RoleMask;

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
    /// Subscribed namespaces, one bit per catalog namespace.
    pub namespaces: u64,
}

/// Ends a connection once, with the first reason given.
#[derive(Debug)]
pub struct Closer {
    reason: watch::Sender<Option<CloseReason>>,
}

impl Closer {
    fn new() -> Self {
        Closer {
            reason: watch::Sender::new(None),
        }
    }

    /// Asks the connection to close; returns false if it was already closing.
    pub fn close(&self, reason: CloseReason) -> bool {
        self.reason.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        })
    }

    /// Why the connection is closing, once it is.
    pub fn reason(&self) -> Option<CloseReason> {
        *self.reason.borrow()
    }

    /// Resolves when the connection is asked to close.
    pub async fn closed(&self) -> CloseReason {
        let mut rx = self.reason.subscribe();
        let reason = rx
            .wait_for(Option::is_some)
            .await
            .expect("the sender lives in self");
        reason.expect("waited for Some")
    }
}

/// What registering a connection gives its owner.
#[derive(Debug)]
pub struct Registration {
    /// The id to unregister with.
    pub id: ConnId,
    /// The connection's outbound queue: event frames to write.
    pub outbox: mpsc::Receiver<Utf8Bytes>,
    /// A sender into that same queue, for the connection's own replies, so that replies and
    /// events reach the client in the order they were queued.
    pub sender: mpsc::Sender<Utf8Bytes>,
    /// Where the hub (or anyone) asks the connection to close.
    pub closer: Arc<Closer>,
    /// Whether this is the user's only connection with this role on this hub.
    pub first_of_user: bool,
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

struct Conn {
    session_id: Box<str>,
    user_id: Arc<str>,
    role: u32,
    tx: mpsc::Sender<Utf8Bytes>,
    closer: Arc<Closer>,
}

struct Entry {
    conn: Arc<Conn>,
    namespaces: u64,
}

#[derive(Default)]
struct Registry {
    conns: HashMap<ConnId, Entry>,
    /// Index `namespace * roles + role`: the subscribers of a namespace holding a role.
    buckets: Vec<IndexMap<ConnId, Arc<Conn>>>,
    /// Every connection of a user, for ownership and `userIds` targeting.
    users: HashMap<Arc<str>, IndexMap<ConnId, Arc<Conn>>>,
}

/// The connections of one node and the delivery of publications to them.
pub struct Hub {
    catalog: &'static Catalog,
    roles: usize,
    all_roles: RoleMask,
    own_only: RoleMask,
    queue_capacity: usize,
    registry: RwLock<Registry>,
    next_id: AtomicU64,
    published: AtomicU64,
    delivered: AtomicU64,
    slow_closed: AtomicU64,
    emptied: Notify,
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
            all_roles: catalog.all_roles(),
            own_only: catalog.own_events_only(),
            queue_capacity: queue_capacity.max(1),
            registry: RwLock::new(registry),
            next_id: AtomicU64::new(1),
            published: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            slow_closed: AtomicU64::new(0),
            emptied: Notify::new(),
        }
    }

    /// The catalog this hub serves.
    pub fn catalog(&self) -> &'static Catalog {
        self.catalog
    }

    /// Adds a connection.
    ///
    /// # Panics
    /// When `info.role` is not a role index of the catalog.
    pub fn register(&self, info: ConnectionInfo) -> Registration {
        assert!((info.role as usize) < self.roles, "role index out of range");
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, outbox) = mpsc::channel(self.queue_capacity);
        let closer = Arc::new(Closer::new());
        let mut registry = self.registry.write().expect("hub lock");
        let user_id: Arc<str> = registry
            .users
            .get_key_value(info.user_id.as_str())
            .map_or_else(|| Arc::from(info.user_id.as_str()), |(k, _)| k.clone());
        let conn = Arc::new(Conn {
            session_id: info.session_id.into(),
            user_id: user_id.clone(),
            role: info.role,
            tx: tx.clone(),
            closer: closer.clone(),
        });
        let namespaces = info.namespaces & self.namespace_mask();
        for ns in bits(namespaces) {
            let bucket = self.bucket(ns, info.role);
            registry.buckets[bucket].insert(id, conn.clone());
        }
        let user = registry.users.entry(user_id).or_default();
        user.insert(id, conn.clone());
        let first_of_user = user.values().filter(|c| c.role == info.role).count() == 1;
        registry.conns.insert(id, Entry { conn, namespaces });
        Registration {
            id,
            outbox,
            sender: tx,
            closer,
            first_of_user,
        }
    }

    /// Removes a connection; `None` if it was not registered.
    pub fn unregister(&self, id: ConnId) -> Option<Unregistered> {
        let mut registry = self.registry.write().expect("hub lock");
        let entry = registry.conns.remove(&id)?;
        let conn = entry.conn;
        for ns in bits(entry.namespaces) {
            let bucket = self.bucket(ns, conn.role);
            registry.buckets[bucket].swap_remove(&id);
        }
        let mut last_of_user = true;
        if let Some(user) = registry.users.get_mut(&conn.user_id) {
            user.swap_remove(&id);
            last_of_user = !user.values().any(|c| c.role == conn.role);
            if user.is_empty() {
                registry.users.remove(&conn.user_id);
            }
        }
        if registry.conns.is_empty() {
            self.emptied.notify_waiters();
        }
        Some(Unregistered {
            user_id: conn.user_id.to_string(),
            role: conn.role,
            last_of_user,
        })
    }

    /// Replaces a connection's subscriptions; returns the mask now in force (unknown bits dropped).
    pub fn set_namespaces(&self, id: ConnId, namespaces: u64) -> Option<u64> {
        let namespaces = namespaces & self.namespace_mask();
        let mut registry = self.registry.write().expect("hub lock");
        let registry = &mut *registry;
        let entry = registry.conns.get_mut(&id)?;
        let (old, role) = (entry.namespaces, entry.conn.role);
        for ns in bits(old & !namespaces) {
            registry.buckets[ns * self.roles + role as usize].swap_remove(&id);
        }
        for ns in bits(namespaces & !old) {
            registry.buckets[ns * self.roles + role as usize].insert(id, entry.conn.clone());
        }
        entry.namespaces = namespaces;
        Some(namespaces)
    }

    /// A connection's subscriptions.
    pub fn namespaces(&self, id: ConnId) -> Option<u64> {
        let registry = self.registry.read().expect("hub lock");
        registry.conns.get(&id).map(|e| e.namespaces)
    }

    /// Queues the publication's frame to every connection allowed to receive it (DESIGN.md's four
    /// rules) and returns how many that was. A connection whose queue is full is closed as a slow
    /// consumer; nothing here waits.
    pub fn deliver(&self, publication: &Publication) -> usize {
        self.published.fetch_add(1, Ordering::Relaxed);
        let event = &publication.event;
        let Some(ns) = self.catalog.namespace_index(event.namespace()) else {
            return 0;
        };
        let allowed = event.allowed_roles() & self.all_roles;
        if allowed.is_empty() {
            return 0;
        }
        let has_owner = event.descriptor.owner_field.is_some();
        let excluded = |conn: &Conn| {
            event
                .options
                .exclude_user_ids
                .iter()
                .any(|u| **u == *conn.user_id)
                || event
                    .options
                    .exclude_session_ids
                    .iter()
                    .any(|s| **s == *conn.session_id)
        };
        let mut sent = 0;
        let mut send = |conn: &Conn| {
            if excluded(conn) {
                return;
            }
            match conn.tx.try_send(publication.frame.clone()) {
                Ok(()) => sent += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    if conn.closer.close(close::SLOW_CONSUMER) {
                        self.slow_closed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        };

        let registry = self.registry.read().expect("hub lock");
        if let Some(user_ids) = &event.options.user_ids {
            let mut users: Vec<&str> = user_ids.iter().map(String::as_str).collect();
            users.sort_unstable();
            users.dedup();
            for user in users {
                let Some(conns) = registry.users.get(user) else {
                    continue;
                };
                for (id, conn) in conns {
                    let role = RoleMask::single(conn.role);
                    let subscribed = registry.conns[id].namespaces & (1 << ns) != 0;
                    let owns = !has_owner || event.owner.as_deref() == Some(user);
                    if subscribed
                        && allowed.contains(role)
                        && (!self.own_only.contains(role) || owns)
                    {
                        send(conn);
                    }
                }
            }
        } else {
            for role in allowed.indexes() {
                if self.own_only.contains(RoleMask::single(role)) && has_owner {
                    let Some(conns) = event.owner.as_deref().and_then(|o| registry.users.get(o))
                    else {
                        continue;
                    };
                    for (id, conn) in conns {
                        if conn.role == role && registry.conns[id].namespaces & (1 << ns) != 0 {
                            send(conn);
                        }
                    }
                } else {
                    for conn in registry.buckets[self.bucket(ns, role)].values() {
                        send(conn);
                    }
                }
            }
        }
        drop(registry);
        self.delivered.fetch_add(sent as u64, Ordering::Relaxed);
        sent
    }

    /// Asks every connection to close (server shutdown).
    pub fn close_all(&self, reason: CloseReason) {
        let registry = self.registry.read().expect("hub lock");
        for entry in registry.conns.values() {
            entry.conn.closer.close(reason);
        }
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
            published: self.published.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            slow_consumers_closed: self.slow_closed.load(Ordering::Relaxed),
        }
    }

    fn bucket(&self, namespace: usize, role: u32) -> usize {
        namespace * self.roles + role as usize
    }

    fn namespace_mask(&self) -> u64 {
        match self.catalog.namespaces.len() {
            64 => u64::MAX,
            n => (1 << n) - 1,
        }
    }
}

fn bits(mask: u64) -> impl Iterator<Item = usize> {
    (0..64).filter(move |i| mask & (1 << i) != 0)
}
