//! Who may receive an event: the delivery rules, in the one place the hub (both of its index
//! paths) and the benchmark's checker apply them. ARCHITECTURE.md states them as invariants;
//! `tests/permissions.rs` checks this code against an independent oracle.
//!
//! An event reaches a connection only when all hold:
//! 1. the connection subscribed to the addressed namespace (the caller's index decides this);
//! 2. its role is among the event's roles, narrowed by the payload's target roles and by the
//!    emitter's `roles`: nothing widens them;
//! 3. a role that sees only its own events sees an event with an owner only when it owns it;
//! 4. the emitter's `userIds` names its user (when given), and neither `excludeUserIds` nor
//!    `excludeSessionIds` names it.

use crate::catalog::Catalog;
use crate::event::OutgoingEvent;
use crate::role::RoleMask;

/// One event's audience, prepared once per publication: rules 2 to 4.
#[derive(Debug, Clone, Copy)]
pub struct Audience<'e> {
    allowed: RoleMask,
    /// Roles that must own the event to see it: empty when the event has no owner field.
    owners_only: RoleMask,
    owner: Option<&'e str>,
    user_ids: Option<&'e [String]>,
    exclude_users: &'e [String],
    exclude_sessions: &'e [String],
}

impl<'e> Audience<'e> {
    /// The audience of `event` under `catalog`'s roles.
    pub fn of(catalog: &Catalog, event: &'e OutgoingEvent) -> Self {
        let owners_only = if event.descriptor.owner_field.is_some() {
            catalog.own_events_only()
        } else {
            RoleMask::EMPTY
        };
        Audience {
            allowed: event.allowed_roles() & catalog.all_roles(),
            owners_only,
            owner: event.owner.as_deref(),
            user_ids: event.options.user_ids.as_deref(),
            exclude_users: &event.options.exclude_user_ids,
            exclude_sessions: &event.options.exclude_session_ids,
        }
    }

    /// The roles that may receive it at all (rule 2).
    pub fn roles(&self) -> RoleMask {
        self.allowed
    }

    /// Whether roles that see only their own events receive it only as its owner (rule 3), and
    /// so are found through the owner rather than through every subscriber.
    pub fn is_owned_by_role(&self, role: u32) -> bool {
        self.owners_only.contains(RoleMask::single(role))
    }

    /// The owner's user id, when the event has one.
    pub fn owner(&self) -> Option<&'e str> {
        self.owner
    }

    /// The users the emitter restricted it to, if it did.
    pub fn user_ids(&self) -> Option<&'e [String]> {
        self.user_ids
    }

    /// Rules 2 to 4 for one connection, given its role (an index into the catalog's roles) and
    /// a way to learn its user and session. `who` is asked only when a rule needs them (an
    /// owner, `userIds`, an exclusion): a plain broadcast to a role's subscribers reads nothing of
    /// a connection but its queue, which matters when there are ten thousand of them.
    pub fn admits<'w>(&self, role: u32, who: impl FnOnce() -> (&'w str, &'w str)) -> bool {
        let mask = RoleMask::single(role);
        if !self.allowed.contains(mask) {
            return false;
        }
        let owners_only = self.owners_only.contains(mask);
        if !owners_only
            && self.user_ids.is_none()
            && self.exclude_users.is_empty()
            && self.exclude_sessions.is_empty()
        {
            return true;
        }
        let (user_id, session_id) = who();
        (!owners_only || self.owner == Some(user_id))
            && self
                .user_ids
                .is_none_or(|users| users.iter().any(|u| u == user_id))
            && !self.exclude_users.iter().any(|u| u == user_id)
            && !self.exclude_sessions.iter().any(|s| s == session_id)
    }
}
