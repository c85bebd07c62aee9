//! `POST /api/explain` (an API key): would a connection get an event, and if not, which rule
//! says so. The event is described (`{type, data, options}`, checked like a publish) or named by
//! the id of a published one still in its namespace's history; the connection is described
//! (`userId`, `role`, `namespaces`) or is a live session (`sessionId`). The answer also counts
//! the live connections that would receive the event now, by role, and with `userId`, gives the
//! decision for each of that user's sessions. The decisions are `server::explain::decide`'s.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalog::Catalog;
use crate::delivery::Audience;
use crate::event::OutgoingEvent;
use crate::namespaces::NamespaceSet;
use crate::position::Position;
use crate::role::RoleMask;
use crate::server::broker::ResumeRequest;
use crate::server::explain::{Decision, Subject, decide, refusal};
use crate::server::http::events::{PublishRequest, decode};
use crate::server::http::{ApiError, require_api_key};
use crate::server::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ExplainRequest {
    /// An event described as the publish API takes it.
    event: Option<PublishRequest>,
    /// Or the id of a published event.
    id: Option<String>,
    /// The connection asked about.
    subject: Option<SubjectRequest>,
    /// A user whose live sessions each get a decision.
    user_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SubjectRequest {
    user_id: Option<String>,
    role: Option<String>,
    namespaces: Option<Vec<String>>,
    session_id: Option<String>,
}

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

pub(crate) async fn explain(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refusal) = require_api_key(&headers, &state.config.api_keys) {
        return refusal.into_response();
    }
    match answer(&state, &body).await {
        Ok(answer) => Json(answer).into_response(),
        Err(err) => err.into_response(),
    }
}

async fn answer(state: &AppState, body: &[u8]) -> Result<Value, ApiError> {
    let request: ExplainRequest = serde_json::from_slice(body).map_err(|err| {
        bad(
            "invalid_request",
            format!("{err}; expected {{\"event\": {{type, data, options?}} or \"id\", \"subject\"?: {{userId, role, namespaces?}} or {{sessionId}}, \"userId\"?}}"),
        )
    })?;
    let catalog = state.hub.catalog();
    let event = match (request.event, request.id) {
        (Some(event), None) => decode(catalog, event)?,
        (None, Some(id)) => published(state, &id).await?,
        _ => return Err(bad("invalid_request", "give either `event` or `id`")),
    };
    let mut answer = json!({
        "event": { "type": event.descriptor.name, "namespace": event.namespace() },
        "recipients": recipients(catalog, &event, &state.hub.connections()),
    });
    if let Some(subject) = request.subject {
        let decision = match (subject.session_id, subject.role) {
            (Some(session_id), None) => {
                let live = state
                    .hub
                    .connections()
                    .into_iter()
                    .find(|c| c.session_id == session_id)
                    .ok_or_else(|| {
                        ApiError::new(
                            StatusCode::NOT_FOUND,
                            "unknown_session",
                            format!("no live session `{session_id}` on this node"),
                        )
                    })?;
                decide(catalog, &event, &subject_of(&live))
            }
            (session_id, Some(role)) => {
                let user_id = subject.user_id.ok_or_else(|| {
                    bad(
                        "invalid_request",
                        "a subject needs `userId` and `role`, or a live `sessionId`",
                    )
                })?;
                let role = catalog.role_index(&role).ok_or_else(|| {
                    let known: Vec<&str> = catalog.roles.iter().map(|r| r.name).collect();
                    bad(
                        "unknown_role",
                        format!("unknown role `{role}`; roles are {}", known.join(", ")),
                    )
                })?;
                let namespaces = match subject.namespaces {
                    None => catalog.namespaces_visible_to(RoleMask::single(role)),
                    Some(names) => catalog
                        .namespace_set(names.iter().map(String::as_str))
                        .map_err(|unknown| {
                            bad(
                                "unknown_namespace",
                                format!("unknown namespace `{unknown}`"),
                            )
                        })?,
                };
                let session_id = session_id.unwrap_or_default();
                decide(
                    catalog,
                    &event,
                    &Subject {
                        user_id: &user_id,
                        role,
                        namespaces,
                        session_id: &session_id,
                    },
                )
            }
            (None, None) => {
                return Err(bad(
                    "invalid_request",
                    "a subject needs `userId` and `role`, or a live `sessionId`",
                ));
            }
        };
        answer["decision"] = json!(decision);
    }
    if let Some(user_id) = request.user_id {
        let sessions: Vec<Value> = state
            .hub
            .connections_of(&user_id)
            .iter()
            .map(|c| {
                let decision: Decision = decide(catalog, &event, &subject_of(c));
                json!({
                    "sessionId": c.session_id,
                    "role": catalog.roles[c.role as usize].name,
                    "namespaces": namespace_names(catalog, c.namespaces),
                    "decision": decision,
                })
            })
            .collect();
        answer["sessions"] = Value::Array(sessions);
    }
    Ok(answer)
}

/// The event `id` names, from its namespace's history (the node's, or Redis').
async fn published(state: &AppState, id: &str) -> Result<OutgoingEvent, ApiError> {
    let catalog = state.hub.catalog();
    let position = state
        .hub
        .positions()
        .open(id)
        .ok()
        .filter(|p| p.offset > 0)
        .ok_or_else(|| bad("invalid_id", format!("`{id}` is not an event id")))?;
    let namespace = catalog
        .namespace_index(&position.namespace)
        .ok_or_else(|| {
            bad(
                "invalid_id",
                format!("`{id}` names no namespace of the catalog"),
            )
        })?;
    let since = Position {
        offset: position.offset - 1,
        ..position.clone()
    };
    let requests = [ResumeRequest {
        namespace,
        since: Some(since),
    }];
    let mut found = None;
    let mut attach = |resumed: &[crate::server::broker::Resumed]| {
        found = resumed
            .iter()
            .flat_map(|r| &r.replay)
            .find(|p| p.id == id)
            .map(|p| p.event.clone());
    };
    let broker = state.publisher.broker();
    broker
        .resume(&requests, u64::MAX, &mut attach)
        .await
        .map_err(|err| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "broker_unavailable",
                format!("the history could not be read: {err}"),
            )
        })?;
    found.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "event_not_found",
            format!("`{id}` is not in its namespace's history (any more)"),
        )
    })
}

fn subject_of(c: &crate::server::hub::ConnectionInfo) -> Subject<'_> {
    Subject {
        user_id: &c.user_id,
        role: c.role,
        namespaces: c.namespaces,
        session_id: &c.session_id,
    }
}

fn namespace_names(catalog: &Catalog, namespaces: NamespaceSet) -> Vec<&'static str> {
    namespaces
        .indexes()
        .map(|i| catalog.namespaces[i].name)
        .collect()
}

/// The live connections that would receive `event` now, by role.
fn recipients(
    catalog: &Catalog,
    event: &OutgoingEvent,
    connections: &[crate::server::hub::ConnectionInfo],
) -> Value {
    // Counted, not worded: one audience for every connection, no sentence per connection.
    let audience = Audience::of(catalog, event);
    let mut by_role: BTreeMap<&str, usize> = BTreeMap::new();
    for c in connections {
        if refusal(catalog, event, &audience, &subject_of(c)).is_none() {
            *by_role
                .entry(catalog.roles[c.role as usize].name)
                .or_default() += 1;
        }
    }
    let total: usize = by_role.values().sum();
    json!({ "total": total, "byRole": by_role })
}
