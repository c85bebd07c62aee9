//! An event as it travels through Redis: everything a node needs to rebuild the publication and
//! filter it exactly as the publishing node would (the owner, target roles and options), by
//! name rather than by catalog index, so a node reads it without trusting another node's
//! indexes.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::catalog::Catalog;
use crate::event::OutgoingEvent;
use crate::options::EmitOptions;
use crate::position::Position;
use crate::role::RoleMask;
use crate::server::positions::PositionKey;
use crate::server::publication::Publication;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    #[serde(rename = "type")]
    kind: String,
    timestamp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target_roles: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    roles: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    exclude_user_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    exclude_session_ids: Vec<String>,
    /// The addressed namespace, when the emitter chose one other than the event's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    data: Box<RawValue>,
}

/// The record of `event`, whose timestamp is set.
pub(super) fn encode(catalog: &Catalog, event: &OutgoingEvent, now_ms: u64) -> String {
    let names = |mask: RoleMask| {
        catalog
            .role_names(mask)
            .into_iter()
            .map(str::to_owned)
            .collect()
    };
    let record = Record {
        kind: event.descriptor.name.to_owned(),
        timestamp: event.timestamp.unwrap_or(now_ms),
        owner: event.owner.clone(),
        target_roles: event.target_roles.map(names),
        roles: event.options.roles.map(names),
        user_ids: event.options.user_ids.clone(),
        exclude_user_ids: event.options.exclude_user_ids.clone(),
        exclude_session_ids: event.options.exclude_session_ids.clone(),
        namespace: event.options.namespace.map(str::to_owned),
        data: event.data.clone(),
    };
    serde_json::to_string(&record).expect("a record of JSON values serializes")
}

/// Rebuilds the publication at `offset` of `epoch` from its record.
pub(super) fn decode(
    catalog: &'static Catalog,
    key: &PositionKey,
    epoch: &str,
    offset: u64,
    record: &str,
) -> Result<Publication, String> {
    let record: Record =
        serde_json::from_str(record).map_err(|err| format!("unreadable record: {err}"))?;
    let entry = catalog
        .event(&record.kind)
        .ok_or_else(|| format!("event type `{}` is not in this catalog", record.kind))?;
    let mask = |names: Vec<String>| -> Result<RoleMask, String> {
        names.iter().try_fold(RoleMask::EMPTY, |mask, name| {
            let role = catalog
                .role(name)
                .ok_or_else(|| format!("role `{name}` is not in this catalog"))?;
            Ok(mask | role)
        })
    };
    let namespace = match record.namespace {
        None => None,
        Some(name) => Some(
            catalog
                .namespace(&name)
                .ok_or_else(|| format!("namespace `{name}` is not in this catalog"))?,
        ),
    };
    let event = OutgoingEvent {
        descriptor: entry.descriptor,
        data: record.data,
        owner: record.owner,
        target_roles: record.target_roles.map(mask).transpose()?,
        timestamp: Some(record.timestamp),
        options: EmitOptions {
            roles: record.roles.map(mask).transpose()?,
            user_ids: record.user_ids,
            exclude_user_ids: record.exclude_user_ids,
            exclude_session_ids: record.exclude_session_ids,
            namespace,
        },
    };
    let position = Position {
        namespace: event.namespace().to_owned(),
        epoch: epoch.to_owned(),
        offset,
    };
    Ok(Publication::at(event, &position, record.timestamp, key))
}
