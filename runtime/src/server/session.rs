//! A session: one authenticated client from its registration to its end. It owns the protocol
//! above the frames (`ready`, subscribe, unsubscribe, ping) and the presence events of its
//! user; the socket itself is driven by [`connection`](super::connection).

use std::collections::BTreeMap;
use std::sync::Arc;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::catalog::Catalog;
use crate::delivery::Audience;
use crate::namespaces::NamespaceSet;
use crate::position::Position;
use crate::protocol::{ClientMessage, ControlMessage, close, error_code};
use crate::server::auth::{AuthError, Identity};
use crate::server::broker::BoxFuture;
use crate::server::broker::{ResumeRequest, Resumed};
use crate::server::connection::{self, Handled, Incoming, Socket, Timing};
use crate::server::frame::Frame;
use crate::server::hub::{ConnId, ConnectionInfo, RefreshRefused};
use crate::server::limits::{Admission, Budget};
use crate::server::mailbox::Mailbox;
use crate::server::positions::PositionKey;
use crate::server::presence;
use crate::server::revocation::Credentials;
use crate::server::state::AppState;

/// What the handshake decided for a connection, handed to its session with the upgrade. Boxed:
/// the session's task lives as long as the connection, and what is only needed to open it must
/// not take room there.
pub(crate) struct Accepted {
    pub(crate) config: WebSocketConfig,
    pub(crate) state: Arc<AppState>,
    pub(crate) identity: Identity,
    /// The namespaces it subscribes to.
    pub(crate) namespaces: NamespaceSet,
    /// The positions the client resumes from (namespaces it subscribes to, each once).
    pub(crate) since: Vec<Position>,
    /// Counts it in the node's (and its address's) connections until the session ends.
    pub(crate) admission: Admission,
}

/// Serves one connection, once its upgrade completes, until it closes.
///
/// This future is held for every connection as long as it is open, so what only opening it
/// takes (the handshake's decisions, the resume, the presence announcement) lives in the boxed
/// [`open`], freed once the connection is registered, and the announcement at the end is boxed
/// too.
pub(crate) async fn run(upgrade: OnUpgrade, accepted: Box<Accepted>) {
    let Some(Open {
        socket,
        config,
        state,
        id,
        mailbox,
        admission,
    }) = Box::pin(open(upgrade, accepted)).await
    else {
        return;
    };
    let timing = Timing {
        heartbeat: state.config.heartbeat_interval,
        idle_timeout: state.config.idle_timeout,
        max_replies: state.config.max_message_bytes,
    };
    let mut budget = Budget::full(state.config.subscribe_rate);
    let mut on_message = |message: Incoming<'_>| match message {
        Incoming::Text(text) => handle(&state, id, &mailbox, &mut budget, text),
        Incoming::Binary(_) => Handled::Reply(Some(ControlMessage::error(
            error_code::BINARY_NOT_SUPPORTED,
            "binary frames are not supported; send JSON text",
        ))),
    };
    connection::drive(
        socket,
        config,
        &mailbox,
        &state.hub,
        timing,
        &mut on_message,
    )
    .await;
    let reason = mailbox.close_reason().unwrap_or(close::NORMAL);
    state.hub.metrics().closed(reason);
    // The node's count goes first: once the hub no longer has it, its place is free.
    drop(admission);

    if let Some(gone) = state.hub.unregister(id)
        && gone.last_of_user
    {
        Box::pin(presence::left(&state, &gone.user_id, gone.role)).await;
    }
    tracing::debug!(session = %mailbox.session_id, reason = ?mailbox.close_reason(), "disconnected");
}

/// A registered connection, ready to be served.
struct Open {
    socket: Socket,
    config: WebSocketConfig,
    state: Arc<AppState>,
    id: ConnId,
    mailbox: Arc<Mailbox>,
    admission: Admission,
}

/// Completes the upgrade, resumes and registers the connection, and announces its user if it
/// is their first; `None` if it was refused (and closed) meanwhile.
async fn open(upgrade: OnUpgrade, accepted: Box<Accepted>) -> Option<Open> {
    let upgraded = match upgrade.await {
        Ok(upgraded) => upgraded,
        Err(err) => {
            tracing::debug!(%err, "upgrade failed");
            return None;
        }
    };
    let socket = TokioIo::new(upgraded);
    let Accepted {
        config,
        state,
        identity,
        namespaces,
        since,
        admission,
    } = *accepted;
    let session_id = state.sessions.next();
    let catalog = state.hub.catalog();
    let requests = resume_requests(catalog, namespaces, since);
    let started = std::time::Instant::now();
    let mut registered = None;
    // The connection is registered inside the broker's attachment: its queue starts with
    // `ready`, then the replay, and every live event after them comes after the replay.
    let resumed = state
        .publisher
        .broker()
        .resume(
            &requests,
            state.config.max_recovery,
            &mut |resumed: &[Resumed]| {
                measure_resume(&state, resumed, started);
                let (recovered, positions) = outcome(catalog, state.hub.positions(), resumed);
                let ready = ControlMessage::Ready {
                    session_id: session_id.clone(),
                    user_id: identity.user_id.clone(),
                    role: catalog.roles[identity.role as usize].name.to_owned(),
                    catalog_version: catalog.version.to_owned(),
                    expires_at: expires_at(identity.valid_until_ms),
                    namespaces: names(&state, namespaces),
                    recovered,
                    positions,
                };
                let mut initial = vec![Frame::text(&ready.to_json())];
                initial.extend(replay(
                    catalog,
                    resumed,
                    identity.role,
                    &identity.user_id,
                    &session_id,
                ));
                registered = Some(state.hub.register_with(
                    ConnectionInfo {
                        session_id: session_id.clone(),
                        user_id: identity.user_id.clone(),
                        role: identity.role,
                        namespaces,
                    },
                    initial,
                ));
            },
        )
        .await;
    if let Err(err) = resumed {
        // The broker could not tell what can be replayed: the client resumes again shortly
        // rather than being told its events are lost.
        tracing::debug!(user = %identity.user_id, %err, "resume refused: try again later");
        state.hub.metrics().closed(close::TRY_AGAIN_LATER);
        connection::refuse(socket, config, close::TRY_AGAIN_LATER).await;
        return None;
    }
    let registration = match registered.expect("the broker attaches every connection it resumes") {
        Ok(registration) => registration,
        Err(err) => {
            // Another handshake of this user got in between the upgrade's check and now.
            tracing::debug!(user = %identity.user_id, %err, "refused after the upgrade");
            state.hub.metrics().closed(close::TOO_MANY_CONNECTIONS);
            connection::refuse(socket, config, close::TOO_MANY_CONNECTIONS).await;
            return None;
        }
    };
    let mailbox = registration.mailbox;
    // Held for revocations, then checked again: a revocation made since the handshake's check
    // either finds this connection holding its token (and closes it) or is found by this check.
    // The same for re-authorization requests, against the registration.
    let credentials = Credentials::from(&identity);
    mailbox.hold(&credentials, identity.valid_until_ms);
    if state.hub.revocations().refuses(&credentials) {
        mailbox.close(close::REVOKED);
    }
    state.hub.reauthorize_new(&mailbox, identity.issued_at);
    tracing::debug!(session = %session_id, user = %identity.user_id, "connected");
    if registration.first_of_user {
        presence::joined(&state, &identity.user_id, identity.role).await;
    }
    Some(Open {
        socket,
        config,
        state,
        id: registration.id,
        mailbox,
        admission,
    })
}

fn names(state: &AppState, mask: NamespaceSet) -> Vec<String> {
    let names = state.hub.catalog().namespace_names(mask);
    names.into_iter().map(str::to_owned).collect()
}

/// Handles one text message: the reply, or (a `subscribe`) the work that queues its own.
fn handle(
    state: &Arc<AppState>,
    id: ConnId,
    mailbox: &Arc<Mailbox>,
    budget: &mut Budget,
    text: &str,
) -> Handled {
    let message: ClientMessage = match serde_json::from_str(text) {
        Ok(message) => message,
        Err(err) if err.is_syntax() || err.is_eof() => {
            return Handled::Reply(Some(ControlMessage::error(
                error_code::INVALID_JSON,
                shortened(err.to_string()),
            )));
        }
        Err(err) => {
            return Handled::Reply(Some(ControlMessage::error(
                error_code::INVALID_MESSAGE,
                format!(
                    "{}; expected {{\"type\": \"subscribe\" | \"unsubscribe\" | \"refresh\" | \"ping\", ...}}",
                    shortened(err.to_string())
                ),
            )));
        }
    };
    // A refresh spends the same budget: a client holding tokens of two roles could otherwise
    // make the node publish presence events in a loop by flipping between them.
    if let ClientMessage::Refresh { .. } = &message
        && !budget.take(state.config.subscribe_rate, std::time::Instant::now())
    {
        state.hub.metrics().refresh("too_fast");
        return Handled::Reply(Some(ControlMessage::error(
            error_code::REFRESH_REFUSED,
            "refreshes come too fast; the connection keeps the rights it had",
        )));
    }
    if let ClientMessage::Subscribe { namespaces, .. } | ClientMessage::Unsubscribe { namespaces } =
        &message
    {
        let most = state.hub.catalog().namespaces.len();
        if namespaces.len() > most {
            return Handled::Reply(Some(ControlMessage::error(
                error_code::INVALID_MESSAGE,
                format!(
                    "name at most {most} namespaces (the catalog's), not {}",
                    namespaces.len()
                ),
            )));
        }
        if !budget.take(state.config.subscribe_rate, std::time::Instant::now()) {
            state.hub.metrics().subscribes_refused.inc();
            return Handled::Reply(Some(ControlMessage::error(
                error_code::SUBSCRIBE_RATE_EXCEEDED,
                "subscription changes come too fast; this one was not made (the subscription is as it was)",
            )));
        }
    }
    match message {
        ClientMessage::Ping { id } => Handled::Reply(Some(ControlMessage::Pong { id })),
        ClientMessage::Refresh { token } => refresh(state, id, mailbox, &token.0),
        ClientMessage::Subscribe { namespaces, since } => {
            match subscribe(state, id, mailbox, &namespaces, &since) {
                Ok(work) => Handled::Later(work),
                Err(error) => Handled::Reply(Some(*error)),
            }
        }
        ClientMessage::Unsubscribe { namespaces } => Handled::Reply(Some(
            resubscribe(state, id, &namespaces, NamespaceSet::difference).map_or_else(
                |error| *error,
                |now| ControlMessage::Unsubscribed { namespaces: now },
            ),
        )),
    }
}

/// Gives the connection the rights of a fresh token of its user: the `refreshed` reply, queued
/// after every event allowed by the old rights and before any filtered with the new ones; or
/// why not (the connection keeps its rights). A role change counts, for presence, as leaving the
/// old role and joining the new one: their presence events follow the reply.
fn refresh(state: &Arc<AppState>, id: ConnId, mailbox: &Arc<Mailbox>, token: &str) -> Handled {
    let metrics = state.hub.metrics();
    let refused = |outcome: &str, message: String| {
        metrics.refresh(outcome);
        Handled::Reply(Some(ControlMessage::error(
            error_code::REFRESH_REFUSED,
            message,
        )))
    };
    let identity = match state.auth.verify(token) {
        Ok(identity) => identity,
        Err(err) => return refused(err.code(), err.to_string()),
    };
    if *identity.user_id != *mailbox.user_id {
        let message = "the token is for another user: a connection keeps its user".to_owned();
        return refused("other_user", message);
    }
    let credentials = Credentials::from(&identity);
    let revocations = state.hub.revocations();
    if revocations.refuses(&credentials) {
        return refused("token_revoked", AuthError::Revoked.to_string());
    }
    let valid_until = identity.valid_until_ms;
    let refreshed = match state
        .hub
        .refresh(id, identity.role, identity.issued_at, valid_until)
    {
        Ok(refreshed) => refreshed,
        Err(err @ RefreshRefused::Stale { .. }) => return refused("stale_token", err.to_string()),
        // Closing: nothing more is written to it.
        Err(err @ RefreshRefused::Gone) => return refused("gone", err.to_string()),
    };
    // Held with the new credentials, then checked again, as at the connect: a revocation of
    // the new token made meanwhile either finds it held or is found here.
    mailbox.hold_token(&credentials);
    if revocations.refuses(&credentials) {
        mailbox.close(close::REVOKED);
    }
    metrics.refresh("refreshed");
    tracing::debug!(session = %mailbox.session_id, role = identity.role, "refreshed");
    let reply = ControlMessage::Refreshed {
        role: state.hub.catalog().roles[identity.role as usize]
            .name
            .to_owned(),
        expires_at: expires_at(valid_until),
        namespaces: names(state, refreshed.namespaces),
        dropped: names(state, refreshed.dropped),
    };
    if refreshed.left.is_none() && !refreshed.joined {
        return Handled::Reply(Some(reply));
    }
    let (state, mailbox) = (state.clone(), mailbox.clone());
    Handled::Later(Box::pin(async move {
        if mailbox.push(Frame::text(&reply.to_json())).is_err() {
            state.hub.close_slow_consumer(&mailbox);
        }
        let user = &mailbox.user_id;
        if let Some(old) = refreshed.left {
            presence::left(&state, user, old).await;
        }
        if refreshed.joined {
            presence::joined(&state, user, identity.role).await;
        }
    }))
}

/// What `ready` and `refreshed` say of a validity: `None` for never.
fn expires_at(valid_until_ms: u64) -> Option<u64> {
    (valid_until_ms != u64::MAX).then_some(valid_until_ms)
}

/// Adds the named namespaces to the connection's subscription, resuming those named in `since`:
/// the work that queues `subscribed` and the replay, or the error reply.
fn subscribe(
    state: &Arc<AppState>,
    id: ConnId,
    mailbox: &Arc<Mailbox>,
    namespaces: &[String],
    since: &[String],
) -> Result<BoxFuture<'static, ()>, Reply> {
    let catalog = state.hub.catalog();
    let named = mask_of(catalog, namespaces)?;
    let current = state.hub.namespaces(id).unwrap_or_default();
    let added = named.difference(current);
    let invalid = |message| {
        Box::new(ControlMessage::error(
            error_code::INVALID_SINCE,
            shortened(message),
        ))
    };
    let since = since_positions(
        catalog,
        state.hub.positions(),
        since.iter().map(String::as_str),
        named,
    )
    .map_err(invalid)?;
    if let Some(live) = since.iter().find(|p| {
        catalog
            .namespace_index(&p.namespace)
            .is_some_and(|ns| current.contains(ns))
    }) {
        return Err(invalid(format!(
            "`{}` is subscribed already: `since` resumes a namespace as it is subscribed",
            live.namespace
        )));
    }
    let requests = resume_requests(catalog, added, since);
    let (state, mailbox) = (state.clone(), mailbox.clone());
    Ok(Box::pin(async move {
        // One replay at a time: until the previous one is written, this subscribe (and every
        // message after it) waits, so a client that asks again and again without reading
        // holds one replay on the server, never a stack of them.
        mailbox.replay_written().await;
        let started = std::time::Instant::now();
        let mut attach = |resumed: &[Resumed]| {
            measure_resume(&state, resumed, started);
            // The subscription as it is now: an unsubscribe cannot have come in between, as the
            // connection reads its next message only once this is done.
            let current = state.hub.namespaces(id).unwrap_or_default();
            let now = state
                .hub
                .set_namespaces(id, current.union(named))
                .unwrap_or_default();
            let (recovered, positions) = outcome(catalog, state.hub.positions(), resumed);
            let reply = ControlMessage::Subscribed {
                namespaces: names(&state, now),
                recovered,
                positions,
            };
            let replay = replay(
                catalog,
                resumed,
                mailbox.role(),
                &mailbox.user_id,
                &mailbox.session_id,
            );
            mailbox.push_replay(std::iter::once(Frame::text(&reply.to_json())).chain(replay));
        };
        let broker = state.publisher.broker();
        let resumed = broker.resume(&requests, state.config.max_recovery, &mut attach);
        if resumed.await.is_err() {
            // As on connect: neither `recovered` answer would be certain. The client reconnects
            // and resumes every namespace, these included, from its positions.
            mailbox.close(close::TRY_AGAIN_LATER);
        }
    }))
}

/// One request per namespace of `namespaces`, with its `since` if the client gave one.
fn resume_requests(
    catalog: &Catalog,
    namespaces: NamespaceSet,
    since: Vec<Position>,
) -> Vec<ResumeRequest> {
    namespaces
        .indexes()
        .map(|namespace| ResumeRequest {
            namespace,
            since: since
                .iter()
                .find(|p| p.namespace == catalog.namespaces[namespace].name)
                .cloned(),
        })
        .collect()
}

/// Counts each namespace resumed with `since` as recovered or not, and the replay's size and
/// the time to read it (from the node's stream or from Redis) when there was one to read.
fn measure_resume(state: &AppState, resumed: &[Resumed], started: std::time::Instant) {
    let metrics = state.hub.metrics();
    let mut resuming = false;
    for r in resumed {
        if let Some(recovered) = r.recovered {
            resuming = true;
            metrics.recovered(state.hub.catalog().namespaces[r.namespace].name, recovered);
        }
    }
    if resuming {
        let events: usize = resumed.iter().map(|r| r.replay.len()).sum();
        metrics.replay_events.observe(events as f64);
        metrics
            .replay_seconds
            .observe(started.elapsed().as_secs_f64());
    }
}

/// `recovered` and `positions` for the client, by namespace name.
fn outcome(
    catalog: &Catalog,
    key: &PositionKey,
    resumed: &[Resumed],
) -> (BTreeMap<String, bool>, BTreeMap<String, String>) {
    let name = |r: &Resumed| catalog.namespaces[r.namespace].name.to_owned();
    let recovered = resumed
        .iter()
        .filter_map(|r| Some((name(r), r.recovered?)))
        .collect();
    let positions = resumed
        .iter()
        .map(|r| (name(r), key.seal(&r.top)))
        .collect();
    (recovered, positions)
}

/// The replayed events this connection may see now: the delivery rules applied with its
/// current role, user and session, in order, namespace by namespace.
fn replay<'r>(
    catalog: &'static Catalog,
    resumed: &'r [Resumed],
    role: u32,
    user_id: &'r str,
    session_id: &'r str,
) -> impl Iterator<Item = Frame> + 'r {
    resumed
        .iter()
        .flat_map(|r| &r.replay)
        .filter(move |p| Audience::of(catalog, &p.event).admits(role, || (user_id, session_id)))
        .map(|p| p.frame.clone())
}

/// Reads the `since` ids of a connect or a `subscribe`: each an event id of a namespace in
/// `subscribing`, each namespace at most once.
pub(crate) fn since_positions<'a>(
    catalog: &Catalog,
    key: &PositionKey,
    ids: impl Iterator<Item = &'a str>,
    subscribing: NamespaceSet,
) -> Result<Vec<Position>, String> {
    let mut positions: Vec<Position> = Vec::new();
    for id in ids {
        let position = key.open(id.trim()).map_err(|err| err.to_string())?;
        let Some(ns) = catalog.namespace_index(&position.namespace) else {
            return Err(format!(
                "`since` names namespace `{}`, which the catalog does not define",
                position.namespace
            ));
        };
        if !subscribing.contains(ns) {
            return Err(format!(
                "`since` names `{}`, which this connection does not subscribe to here",
                position.namespace
            ));
        }
        if positions.iter().any(|p| p.namespace == position.namespace) {
            return Err(format!(
                "`since` names `{}` twice; give one position per namespace",
                position.namespace
            ));
        }
        positions.push(position);
    }
    Ok(positions)
}

/// Applies `change` (add or remove) of the named namespaces to the connection's subscription;
/// the names now subscribed to, or the error reply for an unknown namespace.
fn resubscribe(
    state: &AppState,
    id: ConnId,
    namespaces: &[String],
    change: fn(NamespaceSet, NamespaceSet) -> NamespaceSet,
) -> Result<Vec<String>, Reply> {
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
) -> Result<NamespaceSet, Reply> {
    catalog
        .namespace_set(namespaces.iter().map(String::as_str))
        .map_err(|name| {
            Box::new(ControlMessage::error(
                error_code::UNKNOWN_NAMESPACE,
                shortened(format!("unknown namespace `{name}`")),
            ))
        })
}

/// An error reply, boxed: the `Ok` paths stay small.
type Reply = Box<ControlMessage>;

/// The longest part of a client's message an error reply quotes.
const MAX_QUOTED: usize = 200;

/// `message` cut to [`MAX_QUOTED`] bytes (at a character boundary): serde's errors quote what
/// the client sent (an unknown `type` of 60 KB), and every reply is held until the client
/// reads it, so what one reply holds stays small whatever the client sends.
fn shortened(mut message: String) -> String {
    if message.len() > MAX_QUOTED {
        let mut end = MAX_QUOTED;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}
