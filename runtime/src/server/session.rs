//! A session: one authenticated client from its registration to its end. It owns the protocol
//! above the frames (`ready`, subscribe, unsubscribe, ping) and the presence events of its
//! user; the socket itself is driven by [`connection`](super::connection).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::catalog::PresenceTrigger;
use crate::namespaces::NamespaceSet;
use crate::protocol::{ClientMessage, ControlMessage, close};
use crate::role::RoleMask;
use crate::server::auth::Identity;
use crate::server::connection::{self, Socket, Timing};
use crate::server::frame::Frame;
use crate::server::hub::{ConnId, ConnectionInfo};
use crate::server::publication::now_ms;
use crate::server::publish::PublishError;
use crate::server::state::AppState;

/// Serves one upgraded connection until it closes.
pub(crate) async fn run(
    socket: Socket,
    config: WebSocketConfig,
    state: Arc<AppState>,
    identity: Identity,
    namespaces: NamespaceSet,
) {
    let session_id = state.sessions.next();
    let catalog = state.hub.catalog();
    let ready = ControlMessage::Ready {
        session_id: session_id.clone(),
        user_id: identity.user_id.clone(),
        role: catalog.roles[identity.role as usize].name.to_owned(),
        namespaces: names(&state, namespaces),
    };
    let registration = match state.hub.register_with(
        ConnectionInfo {
            session_id: session_id.clone(),
            user_id: identity.user_id.clone(),
            role: identity.role,
            namespaces,
        },
        Some(Frame::text(&ready.to_json())),
    ) {
        Ok(registration) => registration,
        Err(err) => {
            // Another handshake of this user got in between the upgrade's check and now.
            tracing::debug!(user = %identity.user_id, %err, "refused after the upgrade");
            // Boxed: this rare path must not grow every connection's task (its buffers and
            // timer would otherwise be part of the task's size).
            Box::pin(connection::refuse(
                socket,
                config,
                close::TOO_MANY_CONNECTIONS,
            ))
            .await;
            return;
        }
    };
    let id = registration.id;
    let mailbox = registration.mailbox;
    if registration.first_of_user {
        presence(
            &state,
            PresenceTrigger::FirstConnect,
            &identity.user_id,
            identity.role,
        );
    }
    tracing::debug!(session = %session_id, user = %identity.user_id, "connected");

    // Too far ahead for an `Instant` (an `exp` centuries away): never expires.
    let expires_at = Instant::now().checked_add(Duration::from_millis(
        identity.valid_until_ms.saturating_sub(now_ms()),
    ));
    let timing = Timing {
        heartbeat: state.config.heartbeat_interval,
        idle_timeout: state.config.idle_timeout,
        expires_at,
    };
    let mut on_text = |text: &str| handle(&state, id, text);
    let peers = connection::Peers {
        hub: &state.hub,
        publisher: &state.publisher,
    };
    connection::drive(socket, config, &mailbox, peers, timing, &mut on_text).await;

    if let Some(gone) = state.hub.unregister(id)
        && gone.last_of_user
    {
        presence(
            &state,
            PresenceTrigger::LastDisconnect,
            &gone.user_id,
            gone.role,
        );
    }
    tracing::debug!(session = %session_id, reason = ?mailbox.close_reason(), "disconnected");
}

/// Emits the catalog's presence events for this trigger and role.
fn presence(state: &AppState, trigger: PresenceTrigger, user_id: &str, role: u32) {
    for rule in state.hub.catalog().presence {
        if rule.on != trigger || !rule.roles.contains(RoleMask::single(role)) {
            continue;
        }
        let published = (rule.build)(user_id, now_ms())
            .map_err(PublishError::from)
            .and_then(|event| state.publisher.publish(event));
        match published {
            // Closes caused by the shutdown itself announce nothing: everyone is leaving.
            Ok(_) | Err(PublishError::ShuttingDown) => {}
            Err(err) => tracing::warn!(event = rule.event, %err, "presence event not published"),
        }
    }
}

fn names(state: &AppState, mask: NamespaceSet) -> Vec<String> {
    let names = state.hub.catalog().namespace_names(mask);
    names.into_iter().map(str::to_owned).collect()
}

/// Handles one text message; returns the reply.
fn handle(state: &AppState, id: ConnId, text: &str) -> Option<ControlMessage> {
    let message: ClientMessage = match serde_json::from_str(text) {
        Ok(message) => message,
        Err(err) if err.is_syntax() || err.is_eof() => {
            return Some(ControlMessage::error("invalid_json", err.to_string()));
        }
        Err(err) => {
            return Some(ControlMessage::error(
                "invalid_message",
                format!(
                    "{err}; expected {{\"type\": \"subscribe\" | \"unsubscribe\" | \"ping\", ...}}"
                ),
            ));
        }
    };
    match message {
        ClientMessage::Ping { id } => Some(ControlMessage::Pong { id }),
        ClientMessage::Subscribe { namespaces } => Some(
            resubscribe(state, id, &namespaces, NamespaceSet::union).map_or_else(
                |error| error,
                |now| ControlMessage::Subscribed { namespaces: now },
            ),
        ),
        ClientMessage::Unsubscribe { namespaces } => Some(
            resubscribe(state, id, &namespaces, NamespaceSet::difference).map_or_else(
                |error| error,
                |now| ControlMessage::Unsubscribed { namespaces: now },
            ),
        ),
    }
}

/// Applies `change` (add or remove) of the named namespaces to the connection's subscription;
/// the names now subscribed to, or the error reply for an unknown namespace.
fn resubscribe(
    state: &AppState,
    id: ConnId,
    namespaces: &[String],
    change: fn(NamespaceSet, NamespaceSet) -> NamespaceSet,
) -> Result<Vec<String>, ControlMessage> {
    let named = mask_of(state.hub.catalog(), namespaces)?;
    let current = state.hub.namespaces(id).unwrap_or_default();
    let now = state
        .hub
        .set_namespaces(id, change(current, named))
        .unwrap_or_default();
    Ok(names(state, now))
}

fn mask_of(
    catalog: &crate::catalog::Catalog,
    namespaces: &[String],
) -> Result<NamespaceSet, ControlMessage> {
    catalog
        .namespace_set(namespaces.iter().map(String::as_str))
        .map_err(|name| {
            ControlMessage::error("unknown_namespace", format!("unknown namespace `{name}`"))
        })
}
