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

/// Why a connection does not receive an event: the rule that decided, in the order the rules
/// apply. What the explain API answers and the metrics count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refusal {
    /// Rule 1: the connection did not subscribe to the namespace the event is addressed to.
    NotSubscribed,
    /// Rule 2: the event's roles (events.yaml) do not include the connection's role.
    Role,
    /// Rule 2: the payload's target roles leave the role out.
    TargetRoles,
    /// Rule 2: the publisher's `roles` leave the role out.
    PublisherRoles,
    /// Rule 3: the role sees only its own events, and the user is not the event's owner.
    NotOwner,
    /// Rule 4: the publisher's `userIds` do not name the user.
    NotNamedUser,
    /// Rule 4: the publisher's `excludeUserIds` name the user.
    ExcludedUser,
    /// Rule 4: the publisher's `excludeSessionIds` name the session.
    ExcludedSession,
}

impl Refusal {
    /// Every refusal, in rule order.
    pub const ALL: [Refusal; 8] = [
        Refusal::NotSubscribed,
        Refusal::Role,
        Refusal::TargetRoles,
        Refusal::PublisherRoles,
        Refusal::NotOwner,
        Refusal::NotNamedUser,
        Refusal::ExcludedUser,
        Refusal::ExcludedSession,
    ];

    /// A stable name (`not_owner`): the metrics' `reason` label and the explain API's `rule`.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::NotSubscribed => "not_subscribed",
            Refusal::Role => "role",
            Refusal::TargetRoles => "target_roles",
            Refusal::PublisherRoles => "publisher_roles",
            Refusal::NotOwner => "not_owner",
            Refusal::NotNamedUser => "not_named_user",
            Refusal::ExcludedUser => "excluded_user",
            Refusal::ExcludedSession => "excluded_session",
        }
    }

    /// The rule's number (1 to 4, as above).
    pub fn rule(self) -> u8 {
        match self {
            Refusal::NotSubscribed => 1,
            Refusal::Role | Refusal::TargetRoles | Refusal::PublisherRoles => 2,
            Refusal::NotOwner => 3,
            Refusal::NotNamedUser | Refusal::ExcludedUser | Refusal::ExcludedSession => 4,
        }
    }
}

/// One event's audience, prepared once per publication: rules 2 to 4.
#[derive(Debug, Clone, Copy)]
pub struct Audience<'e> {
    allowed: RoleMask,
    /// The event's roles from the catalog, before the payload and the publisher narrow them.
    catalog_roles: RoleMask,
    /// The payload's target roles, if it set them.
    target_roles: Option<RoleMask>,
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
            catalog_roles: event.descriptor.roles & catalog.all_roles(),
            target_roles: event.target_roles,
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
        self.refusal(role, who).is_none()
    }

    /// Why rule 2 keeps `role` from the event, if it does: the one rule that needs nothing of a
    /// connection but its role.
    pub fn role_refusal(&self, role: u32) -> Option<Refusal> {
        let mask = RoleMask::single(role);
        if self.allowed.contains(mask) {
            None
        } else if !self.catalog_roles.contains(mask) {
            Some(Refusal::Role)
        } else if self.target_roles.is_some_and(|t| !t.contains(mask)) {
            Some(Refusal::TargetRoles)
        } else {
            Some(Refusal::PublisherRoles)
        }
    }

    /// What [`admits`](Self::admits) decides, with the rule that refused: `None` when the
    /// connection receives the event.
    pub fn refusal<'w>(
        &self,
        role: u32,
        who: impl FnOnce() -> (&'w str, &'w str),
    ) -> Option<Refusal> {
        let mask = RoleMask::single(role);
        if !self.allowed.contains(mask) {
            return self.role_refusal(role);
        }
        let owners_only = self.owners_only.contains(mask);
        if !owners_only
            && self.user_ids.is_none()
            && self.exclude_users.is_empty()
            && self.exclude_sessions.is_empty()
        {
            return None;
        }
        let (user_id, session_id) = who();
        if owners_only && self.owner != Some(user_id) {
            Some(Refusal::NotOwner)
        } else if self
            .user_ids
            .is_some_and(|users| !users.iter().any(|u| u == user_id))
        {
            Some(Refusal::NotNamedUser)
        } else if self.exclude_users.iter().any(|u| u == user_id) {
            Some(Refusal::ExcludedUser)
        } else if self.exclude_sessions.iter().any(|s| s == session_id) {
            Some(Refusal::ExcludedSession)
        } else {
            None
        }
    }
}
