//! `GET /ws`: the authenticated WebSocket handshake, answered by the runtime itself (RFC 6455,
//! HTTP/1.1), and the spawn of the session.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use serde::Deserialize;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::role::RoleMask;
use crate::server::auth::AuthError;
use crate::server::http::{ApiError, bearer};
use crate::server::limits::{Full, Peer};
use crate::server::session;
use crate::server::state::AppState;

/// Bytes read from a socket at a time, preallocated per connection.
const READ_BUFFER: usize = 128;

#[derive(Deserialize)]
pub(crate) struct ConnectParams {
    token: Option<String>,
    namespaces: Option<String>,
    since: Option<String>,
}

pub(crate) async fn upgrade(
    State(state): State<Arc<AppState>>,
    params: Result<Query<ConnectParams>, QueryRejection>,
    request: Request,
) -> Response {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let mut response = match handshake(&state, params, request) {
        Ok(response) => response,
        Err(refusal) => {
            state.hub.metrics().connect_refused(refusal.code);
            refusal.into_response()
        }
    };
    // A browser's WebSocket never shows why a handshake was refused; a client learns it by
    // asking the same URL with `fetch`, which may read the answer only with this header.
    if response.status() != StatusCode::SWITCHING_PROTOCOLS
        && let Some(origin) = origin
        && origin_allowed(&state, &origin)
    {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(header::VARY, HeaderValue::from_static("origin"));
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("retry-after"),
        );
    }
    response
}

fn origin_allowed(state: &AppState, origin: &HeaderValue) -> bool {
    let allowed = &state.config.allowed_origins;
    allowed.is_empty() || allowed.iter().any(|a| origin.as_bytes() == a.as_bytes())
}

fn handshake(
    state: &Arc<AppState>,
    params: Result<Query<ConnectParams>, QueryRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let params = match params {
        Ok(Query(params)) => params,
        Err(rejection) => {
            let message = format!(
                "{}; expected `token`, `namespaces` and `since` at most once each",
                rejection.body_text()
            );
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                message,
            ));
        }
    };
    let (mut parts, _body) = request.into_parts();
    let headers = &parts.headers;
    if state.shutting_down() {
        let message = "the server is shutting down";
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            message,
        ));
    }
    if !state.publisher.broker().ready() {
        // A node that cannot follow its broker would serve a connection no event reaches.
        let message = "this node cannot reach its broker; retry later, or another node";
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "broker_unavailable",
            message,
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1")));
    }
    // A request carrying two origins is no browser's: which one would be checked is a guess.
    if headers.get_all(header::ORIGIN).iter().nth(1).is_some() {
        let message = "a request may carry one `Origin` header, not several";
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            message,
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN)
        && !origin_allowed(state, origin)
    {
        let message = "this origin may not connect";
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            message,
        ));
    }
    // Counted from here to the end of the session; a refusal below gives the place back.
    let peer = parts.extensions.get::<Peer>().map(|peer| peer.0);
    let admission = state.admissions.admit(peer).map_err(full)?;
    let token = bearer(headers).or(params.token.as_deref());
    let identity = match token {
        None => return Err(AuthError::Missing.into()),
        Some(token) => state.auth.verify(token)?,
    };
    if state.hub.revocations().refuses(&(&identity).into()) {
        return Err(AuthError::Revoked.into());
    }
    if let Some(refusal) = over_user_limits(state, &identity.user_id) {
        return Err(refusal);
    }
    let catalog = state.hub.catalog();
    let namespaces = match params.namespaces.as_deref().filter(|s| !s.is_empty()) {
        None => catalog.namespaces_visible_to(RoleMask::single(identity.role)),
        Some(list) => match catalog.namespace_set(list.split(',').map(str::trim)) {
            Ok(mask) => mask,
            Err(unknown) => {
                let message = format!("unknown namespace `{unknown}`");
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    crate::protocol::error_code::UNKNOWN_NAMESPACE,
                    message,
                ));
            }
        },
    };
    let since = params.since.as_deref().filter(|s| !s.is_empty());
    let since = match session::since_positions(
        catalog,
        state.hub.positions(),
        since.into_iter().flat_map(|s| s.split(',')),
        namespaces,
    ) {
        Ok(since) => since,
        Err(message) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                crate::protocol::error_code::INVALID_SINCE,
                message,
            ));
        }
    };
    let accept = accept_key(&parts)?;
    let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
        return Err(upgrade_required());
    };
    let config = socket_config(state.config.max_message_bytes);
    let accepted = Box::new(session::Accepted {
        config,
        state: Arc::clone(state),
        identity,
        namespaces,
        since,
        admission,
    });
    tokio::spawn(session::run(on_upgrade, accepted));
    Ok(switching_protocols(accept))
}

/// How a connection's frames are read: messages up to `limit` bytes.
pub(crate) fn socket_config(limit: usize) -> WebSocketConfig {
    // Clients send little: a small read buffer (tungstenite preallocates 128 KiB by default)
    // keeps idle connections cheap.
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit))
}

/// The 101 answer to a handshake whose key answers to `accept`.
pub(crate) fn switching_protocols(accept: HeaderValue) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    response
}

/// The refusal of a connection the node, or its source address, has no room for.
fn full(full: Full) -> ApiError {
    let (status, code, message) = match full {
        Full::Node(limit) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "server_full",
            format!(
                "this node holds {limit} connections, the most it takes; retry later, or another node"
            ),
        ),
        Full::Address(limit) => (
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_connections_from_address",
            format!("this address already holds {limit} connections, the most allowed"),
        ),
    };
    ApiError::new(status, code, message)
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("5"))
}

/// The refusal, if the user is over a per-user limit: connections held, or the connect rate.
fn over_user_limits(state: &AppState, user_id: &str) -> Option<ApiError> {
    let limit = state.config.max_connections_per_user;
    if state.hub.user_connections(user_id) >= limit {
        let message = format!("this user already holds {limit} connections, the most allowed");
        return Some(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_connections",
            message,
        ));
    }
    if let Err(wait) = state.connects.acquire(user_id, Instant::now().into_std()) {
        let who = "this user connects";
        return Some(ApiError::rate_exceeded("connect_rate_exceeded", who, wait));
    }
    None
}

/// Not a WebSocket (version 13) upgrade (RFC 6455, 4.2.2): 426 with the version expected.
pub(crate) fn upgrade_required() -> ApiError {
    let message = "this endpoint takes WebSocket (version 13) upgrades over HTTP/1.1";
    ApiError::new(StatusCode::UPGRADE_REQUIRED, "not_websocket", message)
        .with_header(header::UPGRADE, HeaderValue::from_static("websocket"))
        .with_header(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        )
}

/// Checks the handshake's headers and answers its key.
pub(crate) fn accept_key(parts: &Parts) -> Result<HeaderValue, ApiError> {
    let lists = |name| {
        parts
            .headers
            .get_all(name)
            .into_iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
    };
    if !lists(header::CONNECTION).any(|token| token.eq_ignore_ascii_case("upgrade"))
        || !lists(header::UPGRADE).any(|token| token.eq_ignore_ascii_case("websocket"))
    {
        return Err(upgrade_required());
    }
    if parts.headers.get(header::SEC_WEBSOCKET_VERSION) != Some(&HeaderValue::from_static("13")) {
        return Err(upgrade_required());
    }
    let key = parts
        .headers
        .get(header::SEC_WEBSOCKET_KEY)
        .filter(|key| is_handshake_key(key.as_bytes()))
        .ok_or_else(|| {
            let message =
                "the Sec-WebSocket-Key header must be 16 random bytes in base64 (24 characters)";
            ApiError::new(StatusCode::BAD_REQUEST, "not_websocket", message)
        })?;
    Ok(
        HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
            .expect("base64 is a valid header"),
    )
}

/// Whether `key` is what RFC 6455 (4.1) asks a client to send: 16 bytes in base64, which is 22
/// alphabet characters (the last one holding only 2 of its 6 bits) and `==`.
fn is_handshake_key(key: &[u8]) -> bool {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let value = |c: &u8| ALPHABET.iter().position(|a| a == c);
    let [body @ .., last, b'=', b'='] = key else {
        return false;
    };
    body.len() == 21
        && body.iter().all(|c| value(c).is_some())
        && value(last).is_some_and(|v| v & 0xF == 0)
}
