//! Explain: would this connection get this event, and if not, which rule says so, with the
//! values it compared. The decision is [`Audience::refusal`], the code the hub delivers with,
//! after rule 1 (the subscription); this module only words it.

use serde::Serialize;
use serde_json::{Value, json};

use crate::catalog::Catalog;
use crate::delivery::{Audience, Refusal};
use crate::event::OutgoingEvent;
use crate::namespaces::NamespaceSet;
use crate::role::RoleMask;

/// Who might receive an event: a live connection, or one described.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    /// The token's subject.
    pub user_id: &'a str,
    /// The role's index in the catalog.
    pub role: u32,
    /// The namespaces subscribed.
    pub namespaces: NamespaceSet,
    /// The session id (what `excludeSessionIds` names); empty when not a live connection.
    pub session_id: &'a str,
}

/// What explain answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// Whether the connection receives the event.
    pub delivered: bool,
    /// The rule that kept it from the connection (`not_owner` ...), if one did.
    pub rule: Option<&'static str>,
    /// That rule's number (1 to 4, as ARCHITECTURE.md numbers them).
    pub rule_number: Option<u8>,
    /// The decision in a sentence.
    pub because: String,
    /// The values the rule compared.
    pub compared: Value,
}

/// The rule that keeps `event` from `subject`, if one does: rule 1 (the subscription), then
/// `audience` (the event's, prepared once by a caller deciding for many connections).
pub fn refusal(
    catalog: &Catalog,
    event: &OutgoingEvent,
    audience: &Audience<'_>,
    subject: &Subject<'_>,
) -> Option<Refusal> {
    match catalog.namespace_index(event.namespace()) {
        Some(ns) if subject.namespaces.contains(ns) => {
            audience.refusal(subject.role, || (subject.user_id, subject.session_id))
        }
        _ => Some(Refusal::NotSubscribed),
    }
}

/// Whether `subject` receives `event`, and why.
pub fn decide(catalog: &Catalog, event: &OutgoingEvent, subject: &Subject<'_>) -> Decision {
    let role = catalog.roles[subject.role as usize].name;
    let addressed = event.namespace();
    let subscribed: Vec<&str> = subject
        .namespaces
        .indexes()
        .map(|i| catalog.namespaces[i].name)
        .collect();
    let refusal = refusal(catalog, event, &Audience::of(catalog, event), subject);
    let names = |mask: RoleMask| -> Vec<&str> {
        mask.indexes()
            .filter_map(|i| catalog.roles.get(i as usize).map(|r| r.name))
            .collect()
    };
    let (because, compared) = match refusal {
        None => (
            format!(
                "delivered: `{role}` may see `{}`, and no rule keeps it from this connection",
                event.descriptor.name
            ),
            json!({ "role": role, "namespace": addressed }),
        ),
        Some(Refusal::NotSubscribed) => (
            format!("not subscribed to `{addressed}`, the namespace the event is addressed to"),
            json!({ "namespace": addressed, "subscribed": subscribed }),
        ),
        Some(Refusal::Role) => {
            let roles = names(event.descriptor.roles & catalog.all_roles());
            (
                format!(
                    "the event's roles ({}) do not include `{role}`",
                    roles.join(", ")
                ),
                json!({ "role": role, "eventRoles": roles }),
            )
        }
        Some(Refusal::TargetRoles) => {
            let target = names(event.target_roles.unwrap_or(RoleMask::EMPTY));
            let field = event
                .descriptor
                .target_roles_field
                .unwrap_or("target roles");
            (
                format!(
                    "the payload's `{field}` ({}) leaves out `{role}`",
                    target.join(", ")
                ),
                json!({ "role": role, "targetRoles": target }),
            )
        }
        Some(Refusal::PublisherRoles) => {
            let roles = names(event.options.roles.unwrap_or(RoleMask::EMPTY));
            (
                format!(
                    "the publisher's `roles` ({}) leave out `{role}`",
                    roles.join(", ")
                ),
                json!({ "role": role, "publisherRoles": roles }),
            )
        }
        Some(Refusal::NotOwner) => {
            let owner = event.owner.as_deref().unwrap_or_default();
            (
                format!(
                    "`{role}` sees only its own events, and this one's owner is `{owner}`, not `{}`",
                    subject.user_id
                ),
                json!({ "role": role, "owner": owner, "userId": subject.user_id }),
            )
        }
        Some(Refusal::NotNamedUser) => {
            let users = event.options.user_ids.clone().unwrap_or_default();
            (
                format!(
                    "the publisher's `userIds` do not name `{}`",
                    subject.user_id
                ),
                json!({ "userId": subject.user_id, "userIds": users }),
            )
        }
        Some(Refusal::ExcludedUser) => (
            format!(
                "the publisher's `excludeUserIds` name `{}`",
                subject.user_id
            ),
            json!({ "userId": subject.user_id, "excludeUserIds": event.options.exclude_user_ids }),
        ),
        Some(Refusal::ExcludedSession) => (
            format!(
                "the publisher's `excludeSessionIds` name `{}`",
                subject.session_id
            ),
            json!({ "sessionId": subject.session_id, "excludeSessionIds": event.options.exclude_session_ids }),
        ),
    };
    Decision {
        delivered: refusal.is_none(),
        rule: refusal.map(Refusal::name),
        rule_number: refusal.map(Refusal::rule),
        because,
        compared,
    }
}
