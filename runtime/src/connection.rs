//! One WebSocket connection: a writer task that owns the socket's sending half (event frames in
//! batches, heartbeats, the close frame) and a reader loop for client messages.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;

use crate::auth::Identity;
use crate::catalog::PresenceTrigger;
use crate::hub::{ConnId, ConnectionInfo, Mailbox};
use crate::protocol::{ClientMessage, ControlMessage, close};
use crate::publication::now_ms;
use crate::role::RoleMask;
use crate::server::AppState;

/// Frames written before one flush.
const BATCH: usize = 64;
/// How long a closing connection waits for the peer's close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Serves one upgraded connection until it closes.
///
/// The socket is split before the future is built: an async fn keeps its arguments for its whole
/// life, and the unsplit socket would cost every idle connection several hundred bytes.
pub(crate) fn run(
    socket: WebSocket,
    state: Arc<AppState>,
    identity: Identity,
    namespaces: u64,
) -> impl std::future::Future<Output = ()> + Send {
    let (sink, stream) = socket.split();
    serve(sink, stream, state, identity, namespaces)
}

async fn serve(
    sink: SplitSink<WebSocket, Message>,
    stream: SplitStream<WebSocket>,
    state: Arc<AppState>,
    identity: Identity,
    namespaces: u64,
) {
    let session_id = state.sessions.next();
    let catalog = state.hub.catalog();
    let ready = ControlMessage::Ready {
        session_id: session_id.clone(),
        user_id: identity.user_id.clone(),
        role: catalog.roles[identity.role as usize].name.to_owned(),
        namespaces: names(&state, namespaces),
    };
    let registration = state.hub.register_with(
        ConnectionInfo {
            session_id: session_id.clone(),
            user_id: identity.user_id.clone(),
            role: identity.role,
            namespaces,
        },
        Some(ready.to_json().into()),
    );
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
    let last_seen = AtomicU64::new(now_ms());

    let expires_at = identity
        .expires_at
        .map(|exp| Instant::now() + Duration::from_millis((exp * 1000).saturating_sub(now_ms())));
    // Reader and writer share this task: one task per connection, and neither can outlive the
    // other (both end within the close grace period once the connection closes).
    let timers = Timers {
        heartbeat: state.config.heartbeat_interval,
        idle_timeout: state.config.idle_timeout,
        expires_at,
        last_seen: &last_seen,
    };
    tokio::join!(
        write(sink, &mailbox, timers),
        read(stream, &state, id, &mailbox, &last_seen),
    );

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
        if rule.on == trigger
            && rule.roles.contains(RoleMask::single(role))
            && let Err(err) = state.publisher.publish((rule.build)(user_id, now_ms()))
        {
            tracing::warn!(event = rule.event, %err, "presence event not published");
        }
    }
}

fn names(state: &AppState, mask: u64) -> Vec<String> {
    let names = state.hub.catalog().namespace_names(mask);
    names.into_iter().map(str::to_owned).collect()
}

struct Timers<'a> {
    heartbeat: Duration,
    idle_timeout: Duration,
    expires_at: Option<Instant>,
    last_seen: &'a AtomicU64,
}

/// Owns the sending half: queued frames (events and replies, in order) in batches with one flush
/// each; pings on every heartbeat; the close frame when the connection is asked to close.
async fn write(mut sink: SplitSink<WebSocket, Message>, mailbox: &Mailbox, timers: Timers<'_>) {
    // One timer for both the next heartbeat and the token's expiry: the earlier of the two.
    let deadline = |next_ping: Instant| timers.expires_at.map_or(next_ping, |e| e.min(next_ping));
    let timer = tokio::time::sleep_until(deadline(Instant::now() + timers.heartbeat));
    tokio::pin!(timer);
    let reason = loop {
        enum Step {
            Frame(Utf8Bytes),
            Ping,
        }
        let step = tokio::select! {
            biased;
            reason = mailbox.closed() => break reason,
            frame = mailbox.pop() => Step::Frame(frame),
            () = &mut timer => {
                let now = Instant::now();
                if timers.expires_at.is_some_and(|at| now >= at) {
                    break close::TOKEN_EXPIRED;
                }
                let idle = now_ms().saturating_sub(timers.last_seen.load(Ordering::Relaxed));
                if idle > timers.idle_timeout.as_millis() as u64 {
                    break close::IDLE_TIMEOUT;
                }
                timer.as_mut().reset(deadline(now + timers.heartbeat));
                Step::Ping
            }
        };
        let write = async {
            match step {
                Step::Ping => sink.send(Message::Ping(Default::default())).await,
                Step::Frame(first) => {
                    sink.feed(Message::Text(first)).await?;
                    for _ in 1..BATCH {
                        let Some(frame) = mailbox.try_pop() else {
                            break;
                        };
                        sink.feed(Message::Text(frame)).await?;
                    }
                    sink.flush().await
                }
            }
        };
        // A write waits while the client is not reading; a close request (a full queue, above
        // all) must not wait behind it.
        let result = tokio::select! {
            biased;
            reason = mailbox.closed() => break reason,
            result = write => result,
        };
        if result.is_err() {
            // The socket is gone; nothing more can be written.
            mailbox.close(close::PROTOCOL_ERROR);
            return;
        }
    };
    // First reason wins: if another close was already under way, that one is sent.
    mailbox.close(reason);
    let reason = mailbox.close_reason().unwrap_or(reason);
    // A client that never reads again cannot take the close frame: give up after the grace period.
    // Boxed: the close handshake happens once, and keeping its timer out of the idle state keeps
    // every connection's task smaller.
    let _ = Box::pin(tokio::time::timeout(CLOSE_GRACE, async {
        if reason != close::NORMAL {
            let frame = CloseFrame {
                code: reason.code,
                reason: reason.reason.into(),
            };
            let _ = sink.send(Message::Close(Some(frame))).await;
        }
        // For a client-initiated close the library has answered already; this completes it.
        let _ = sink.close().await;
    }))
    .await;
}

/// Reads client messages until the client closes, the socket fails, or the connection is asked
/// to close (then keeps reading, for at most the grace period, until the peer's close arrives).
async fn read(
    mut stream: SplitStream<WebSocket>,
    state: &AppState,
    id: ConnId,
    mailbox: &Mailbox,
    last_seen: &AtomicU64,
) {
    loop {
        let message = tokio::select! {
            biased;
            _ = mailbox.closed() => break,
            message = stream.next() => message,
        };
        last_seen.store(now_ms(), Ordering::Relaxed);
        let reply = match message {
            None => {
                mailbox.close(close::NORMAL);
                return;
            }
            Some(Err(err)) => {
                tracing::debug!(%err, "read failed");
                mailbox.close(if is_capacity_error(err) {
                    close::MESSAGE_TOO_BIG
                } else {
                    close::PROTOCOL_ERROR
                });
                break;
            }
            Some(Ok(Message::Text(text))) => handle(state, id, &text),
            Some(Ok(Message::Binary(_))) => Some(ControlMessage::error(
                "binary_not_supported",
                "binary frames are not supported; send JSON text",
            )),
            Some(Ok(Message::Close(_))) => {
                mailbox.close(close::NORMAL);
                break;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => None,
        };
        if let Some(reply) = reply
            && mailbox.push(reply.to_json().into()).is_err()
        {
            // The client sends faster than it reads its replies.
            mailbox.close(close::SLOW_CONSUMER);
        }
    }
    // Drain until the peer's close frame (or the end of the stream), so the handshake completes.
    let _ = Box::pin(tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                // Keep polling: the library sends its queued reply while the stream is read.
                continue;
            }
        }
    }))
    .await;
}

/// Whether a read failed because a frame or message exceeded the configured limit.
fn is_capacity_error(err: axum::Error) -> bool {
    err.into_inner()
        .downcast::<tokio_tungstenite::tungstenite::Error>()
        .is_ok_and(|err| matches!(*err, tokio_tungstenite::tungstenite::Error::Capacity(_)))
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
    let catalog = state.hub.catalog();
    match message {
        ClientMessage::Ping { id } => Some(ControlMessage::Pong { id }),
        ClientMessage::Subscribe { namespaces } => {
            let mask = match mask_of(catalog, &namespaces) {
                Ok(mask) => mask,
                Err(reply) => return Some(reply),
            };
            let current = state.hub.namespaces(id).unwrap_or(0);
            let now = state.hub.set_namespaces(id, current | mask).unwrap_or(0);
            Some(ControlMessage::Subscribed {
                namespaces: names(state, now),
            })
        }
        ClientMessage::Unsubscribe { namespaces } => {
            let mask = match mask_of(catalog, &namespaces) {
                Ok(mask) => mask,
                Err(reply) => return Some(reply),
            };
            let current = state.hub.namespaces(id).unwrap_or(0);
            let now = state.hub.set_namespaces(id, current & !mask).unwrap_or(0);
            Some(ControlMessage::Unsubscribed {
                namespaces: names(state, now),
            })
        }
    }
}

fn mask_of(
    catalog: &crate::catalog::Catalog,
    namespaces: &[String],
) -> Result<u64, ControlMessage> {
    catalog
        .namespace_mask(namespaces.iter().map(String::as_str))
        .map_err(|name| {
            ControlMessage::error("unknown_namespace", format!("unknown namespace `{name}`"))
        })
}
