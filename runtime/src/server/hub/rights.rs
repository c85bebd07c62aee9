//! What a connection may see, changed while it is open: revocations close it, a refresh gives
//! it another role and validity, a re-authorization request asks it for a fresh token by a
//! deadline. Each change holds the hub's write lock (or, for requests, its read lock, which a
//! refresh's write lock excludes), so that a delivery sees a connection's rights before or after
//! a change, never halfway.

use crate::namespaces::NamespaceSet;
use crate::protocol::{ControlMessage, close};
use crate::role::RoleMask;
use crate::server::frame::Frame;
use crate::server::mailbox::Mailbox;
use crate::server::revocation::{Reauthorization, Revocation, Revocations, RightsChange};

use super::{ConnId, Hub};

/// What a refresh changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refreshed {
    /// The subscription now.
    pub namespaces: NamespaceSet,
    /// The namespaces it lost: the old role saw something in them, the new one nothing.
    pub dropped: NamespaceSet,
    /// The old role, when it changed and no connection of the user holds it on this hub any more
    /// (as if its last connection with that role had closed).
    pub left: Option<u32>,
    /// Whether the role changed and this is the user's only connection with the new one here
    /// (as if its first connection with that role had opened).
    pub joined: bool,
}

/// Why a refresh did not take effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RefreshRefused {
    /// The connection is gone.
    #[error("the connection is closed")]
    Gone,
    /// A re-authorization is pending and the token was issued before it was asked for.
    #[error(
        "a re-authorization was asked for at {asked_ms} ms: the token must be issued since (its `iat`)"
    )]
    Stale {
        /// When the re-authorization was asked for (ms since the Unix epoch).
        asked_ms: u64,
    },
}

impl Hub {
    /// The revocations in force on this node, and its connections' credentials.
    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    /// Applies a revocation or a re-authorization request, in force until `until_ms`; how many
    /// connections it closed or asked.
    pub fn change_rights(&self, change: RightsChange, until_ms: u64) -> usize {
        match change {
            RightsChange::Revoke(revocation) => self.revoke(revocation, until_ms),
            RightsChange::Reauthorize { reauthorize } => self.reauthorize(reauthorize, until_ms),
        }
    }

    /// Puts `revocation` in force until `until_ms` and closes the connections it matches (4003);
    /// how many it closed.
    pub fn revoke(&self, revocation: Revocation, until_ms: u64) -> usize {
        self.revocations.add(revocation.clone(), until_ms);
        let registry = self.registry.read().expect("hub lock");
        registry
            .conns
            .values()
            .filter(|e| e.conn.revoked_by(&revocation) && e.conn.close(close::REVOKED))
            .count()
    }

    /// Gives connection `id` the rights of a fresh token of its user: `role` until
    /// `valid_until_ms`. The namespaces its old role saw something in and `role` sees nothing
    /// in are dropped from its subscription. While a re-authorization is pending, only a token issued since it was asked
    /// for (`issued_at`, seconds) answers it.
    ///
    /// Every event delivered after this returns is filtered with the new role; those queued
    /// before were allowed by the old one.
    pub fn refresh(
        &self,
        id: ConnId,
        role: u32,
        issued_at: Option<u64>,
        valid_until_ms: u64,
    ) -> Result<Refreshed, RefreshRefused> {
        assert!((role as usize) < self.roles, "role index out of range");
        let mut registry = self.registry.write().expect("hub lock");
        let registry = &mut *registry;
        let entry = registry.conns.get_mut(&id).ok_or(RefreshRefused::Gone)?;
        let conn = entry.conn.clone();
        if let Some(asked_ms) = conn.pending_reauthorization_ms()
            && issued_at.is_none_or(|iat| iat < asked_ms / 1000)
        {
            return Err(RefreshRefused::Stale { asked_ms });
        }
        let old_role = conn.role();
        // What the old role saw something in and the new one sees nothing in. (A subscription
        // to a namespace the role never saw anything in is the client's own business.)
        let visible = |role| self.catalog.namespaces_visible_to(RoleMask::single(role));
        let lost = visible(old_role).difference(visible(role));
        let dropped = entry.namespaces.intersection(lost);
        let kept = entry.namespaces.difference(lost);
        for ns in entry.namespaces.indexes() {
            registry.buckets[self.bucket(ns, old_role)].swap_remove(&id);
        }
        for ns in kept.indexes() {
            registry.buckets[self.bucket(ns, role)].insert(id, conn.clone());
        }
        entry.namespaces = kept;
        let (mut left, mut joined) = (None, false);
        if role != old_role
            && let Some(user) = registry.users.get_mut(&conn.user_id)
        {
            left = (user.count(old_role, -1) == 0).then_some(old_role);
            joined = user.count(role, 1) == 1;
        }
        conn.refreshed(role, issued_at, valid_until_ms);
        Ok(Refreshed {
            namespaces: kept,
            dropped,
            left,
            joined,
        })
    }

    /// Asks every connection of the request's user on this node to re-authorize (a
    /// `reauthorize` message): each must refresh with a token issued at `asked_ms` or later
    /// before `deadline_ms`, or is closed then (4001). The request is kept until then for the
    /// connections opened meanwhile ([`Hub::reauthorize_new`]). The same request applied twice
    /// asks once. Returns how many it asked.
    pub fn reauthorize(&self, request: Reauthorization, deadline_ms: u64) -> usize {
        // Kept first, scanned second: a connection registered meanwhile is either scanned here
        // or finds the request when its session checks after registering.
        self.revocations
            .add_reauthorization(request.clone(), deadline_ms);
        let registry = self.registry.read().expect("hub lock");
        let Some(user) = registry.users.get(request.user_id.as_str()) else {
            return 0;
        };
        let asked = user
            .conns
            .iter()
            .filter(|(_, conn)| self.ask(conn, request.asked_ms, deadline_ms))
            .count();
        self.metrics.reauthorizations.inc_by(asked as u64);
        asked
    }

    /// Asks a connection just opened to re-authorize if a request in force predates its token;
    /// whether it did.
    pub(crate) fn reauthorize_new(&self, mailbox: &Mailbox, issued_at: Option<u64>) -> bool {
        let pending = self
            .revocations
            .reauthorization_for(&mailbox.user_id, issued_at);
        let asked = pending
            .is_some_and(|(request, deadline)| self.ask(mailbox, request.asked_ms, deadline));
        if asked {
            self.metrics.reauthorizations.inc();
        }
        asked
    }

    /// Applies a request to one connection and tells it; whether it was asked.
    fn ask(&self, conn: &Mailbox, asked_ms: u64, deadline_ms: u64) -> bool {
        if conn.close_reason().is_some() || !conn.ask_reauthorization(asked_ms, deadline_ms) {
            return false;
        }
        let message = ControlMessage::Reauthorize {
            deadline: deadline_ms,
        };
        if conn.push(Frame::text(&message.to_json())).is_err() {
            self.close_slow_consumer(conn);
        }
        true
    }
}
