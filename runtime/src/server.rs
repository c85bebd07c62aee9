//! The HTTP side: `GET /ws` (authenticated upgrade), `POST /api/events`, `GET /healthz`, and
//! serving with graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::json;
use tokio::net::{TcpListener, TcpSocket};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::auth::{AuthError, Authenticator, JwtConfig, KeyError};
use crate::broker::{Broker, InMemoryBroker};
use crate::catalog::Catalog;
use crate::http::{self, ApiError};
use crate::hub::Hub;
use crate::limits::{ConnectLimiter, ConnectRate};
use crate::protocol::close;
use crate::publication::IdGenerator;
use crate::publish::Publisher;
use crate::role::RoleMask;
use crate::{accept, connection};

/// Bytes read from a socket at a time, preallocated per connection.
const READ_BUFFER: usize = 256;

/// Everything the server can be told.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// How connection tokens are verified.
    pub jwt: JwtConfig,
    /// Keys accepted by the publish API (`Authorization: Bearer <key>`).
    pub api_keys: Vec<String>,
    /// The largest client message (and frame) accepted; larger ones close the connection (1009).
    pub max_message_bytes: usize,
    /// The largest publish request body accepted (413 above).
    pub max_publish_bytes: usize,
    /// Frames a connection may have queued before it is closed as a slow consumer (4008).
    pub queue_capacity: usize,
    /// How often the server pings each connection.
    pub heartbeat_interval: Duration,
    /// A connection from which nothing (not even a pong) arrives for this long is closed (4002).
    pub idle_timeout: Duration,
    /// Browser origins allowed to connect; empty allows any. Requests without `Origin`
    /// (non-browser clients) are always allowed.
    pub allowed_origins: Vec<String>,
    /// How long shutdown may take in all: in-flight publishes finishing, every connection writing
    /// what is queued for it, and the close handshakes.
    pub shutdown_timeout: Duration,
    /// The most connections one user may hold on this node (429 `too_many_connections` beyond).
    pub max_connections_per_user: usize,
    /// How often one user may connect (429 `connect_rate_exceeded` beyond).
    pub connect_rate: ConnectRate,
    /// How long a client may take to send a request's headers, and a publish request's body.
    pub request_timeout: Duration,
}

impl ServerConfig {
    /// Defaults for one machine: 64 KiB messages, 1 MiB publish bodies, 1024-frame queues,
    /// 30 s heartbeats, 75 s idle timeout, any origin, 10 s for shutdown, 64 connections per
    /// user, 30 connects at once then 5 per second per user, 10 s to send a request.
    pub fn new(jwt: JwtConfig, api_keys: Vec<String>) -> Self {
        ServerConfig {
            jwt,
            api_keys,
            max_message_bytes: 64 * 1024,
            max_publish_bytes: 1024 * 1024,
            queue_capacity: 1024,
            heartbeat_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            allowed_origins: Vec::new(),
            shutdown_timeout: Duration::from_secs(10),
            max_connections_per_user: 64,
            connect_rate: ConnectRate::DEFAULT,
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// Shared by every request and connection.
pub(crate) struct AppState {
    pub(crate) config: ServerConfig,
    pub(crate) hub: Arc<Hub>,
    pub(crate) publisher: Publisher,
    pub(crate) auth: Authenticator,
    pub(crate) sessions: IdGenerator,
    connects: ConnectLimiter,
}

impl AppState {
    /// Whether shutdown has begun: new publishes and connections are refused.
    pub(crate) fn shutting_down(&self) -> bool {
        self.publisher.is_closed()
    }
}

/// An omnicast server for one catalog.
#[derive(Clone)]
pub struct Server {
    state: Arc<AppState>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("hub", &self.state.hub)
            .finish()
    }
}

impl Server {
    /// A single-node server: its hub behind the in-memory broker.
    pub fn new(catalog: &'static Catalog, config: ServerConfig) -> Result<Self, KeyError> {
        let hub = Arc::new(
            Hub::new(catalog, config.queue_capacity)
                .with_max_connections_per_user(config.max_connections_per_user),
        );
        let broker = Arc::new(InMemoryBroker::new(hub.clone()));
        Self::with_broker(hub, broker, config)
    }

    /// A server whose publications go through `broker` (which must deliver into `hub`, here or
    /// on every node).
    pub fn with_broker(
        hub: Arc<Hub>,
        broker: Arc<dyn Broker>,
        config: ServerConfig,
    ) -> Result<Self, KeyError> {
        let auth = Authenticator::new(hub.catalog(), &config.jwt)?;
        Ok(Server {
            state: Arc::new(AppState {
                connects: ConnectLimiter::new(config.connect_rate),
                config,
                publisher: Publisher::new(broker),
                hub,
                auth,
                sessions: IdGenerator::new("ses"),
            }),
        })
    }

    /// The hub holding this node's connections.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.state.hub
    }

    /// The publish path, for typed emitters: `Events::new(server.publisher())`.
    pub fn publisher(&self) -> Publisher {
        self.state.publisher.clone()
    }

    /// The routes: `GET /ws`, `POST /api/events`, `GET /healthz`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/ws", get(upgrade))
            .route("/api/events", post(http::publish))
            .route("/healthz", get(health))
            .layer(DefaultBodyLimit::max(self.state.config.max_publish_bytes))
            .with_state(self.state.clone())
    }

    /// Serves until `shutdown` resolves, then shuts down in the order that loses nothing
    /// accepted: new publishes and connections are refused (503 `shutting_down`), in-flight
    /// publishes finish, every connection writes what is queued for it and then closes with
    /// 1001. All of it within [`ServerConfig::shutdown_timeout`]; connections still open then
    /// are closed at once.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let state = self.state.clone();
        let grace = state.config.shutdown_timeout;
        let stop_accepting = async move {
            shutdown.await;
            let deadline = Instant::now() + grace;
            tracing::info!("shutting down: refusing new publishes and connections");
            // The listener stays open meanwhile, so late requests get a clear 503.
            if tokio::time::timeout_at(deadline, state.publisher.close())
                .await
                .is_err()
            {
                tracing::warn!("publishes still in flight at the shutdown deadline");
            }
            deadline
        };
        let deadline =
            accept::serve(listener, self.router(), &self.state.config, stop_accepting).await;
        let hub = &self.state.hub;
        tracing::info!(
            connections = hub.stats().connections,
            "shutting down: delivering what is queued, then closing connections"
        );
        hub.close_all_when_drained(close::GOING_AWAY);
        if tokio::time::timeout_at(deadline, hub.emptied())
            .await
            .is_err()
        {
            tracing::warn!(
                remaining = hub.stats().connections,
                "connections still writing at the shutdown deadline: closing them now"
            );
            hub.close_all(close::GOING_AWAY);
            let _ = tokio::time::timeout(Duration::from_secs(1), hub.emptied()).await;
        }
        Ok(())
    }
}

/// A listener with a deep accept backlog, so bursts of connections are not refused.
pub fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

#[derive(Deserialize)]
struct ConnectParams {
    token: Option<String>,
    namespaces: Option<String>,
}

async fn upgrade(
    State(state): State<Arc<AppState>>,
    params: Result<Query<ConnectParams>, QueryRejection>,
    request: Request,
) -> Response {
    let params = match params {
        Ok(Query(params)) => params,
        Err(rejection) => {
            return ApiError {
                status: StatusCode::BAD_REQUEST,
                code: "invalid_request",
                message: format!(
                    "{}; expected `token` and `namespaces` at most once each",
                    rejection.body_text()
                ),
                path: None,
            }
            .into_response();
        }
    };
    let (mut parts, _body) = request.into_parts();
    let headers = &parts.headers;
    if state.shutting_down() {
        return ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "shutting_down",
            message: "the server is shutting down".into(),
            path: None,
        }
        .into_response();
    }
    if let Some(origin) = headers.get(header::ORIGIN)
        && !state.config.allowed_origins.is_empty()
        && !state
            .config
            .allowed_origins
            .iter()
            .any(|allowed| origin.as_bytes() == allowed.as_bytes())
    {
        let body =
            json!({ "error": "origin_not_allowed", "message": "this origin may not connect" });
        return (StatusCode::FORBIDDEN, Json(body)).into_response();
    }
    let token = http::bearer(headers).or(params.token.as_deref());
    let identity = match token {
        None => return AuthError::Missing.into_response(),
        Some(token) => match state.auth.verify(token) {
            Ok(identity) => identity,
            Err(err) => return err.into_response(),
        },
    };
    if let Some(refusal) = over_user_limits(&state, &identity.user_id) {
        return refusal;
    }
    let catalog = state.hub.catalog();
    let namespaces = match params.namespaces.as_deref().filter(|s| !s.is_empty()) {
        None => catalog.namespaces_visible_to(RoleMask::single(identity.role)),
        Some(list) => match catalog.namespace_mask(list.split(',').map(str::trim)) {
            Ok(mask) => mask,
            Err(unknown) => {
                let body = json!({
                    "error": "unknown_namespace",
                    "message": format!("unknown namespace `{unknown}`"),
                });
                return (StatusCode::BAD_REQUEST, Json(body)).into_response();
            }
        },
    };
    let accept = match accept_key(&parts) {
        Ok(accept) => accept,
        Err(refusal) => return refusal.into_response(),
    };
    let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
        return NotWebSocket::UPGRADE_REQUIRED.into_response();
    };
    let limit = state.config.max_message_bytes;
    // Clients send little: a small read buffer (tungstenite preallocates 128 KiB by default)
    // keeps idle connections cheap.
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit));
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                connection::run(TokioIo::new(upgraded), config, state, identity, namespaces).await;
            }
            Err(err) => tracing::debug!(%err, "upgrade failed"),
        }
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    response
}

/// The refusal, if the user is over a per-user limit: connections held, or the connect rate.
fn over_user_limits(state: &AppState, user_id: &str) -> Option<Response> {
    let limit = state.config.max_connections_per_user;
    if state.hub.user_connections(user_id) >= limit {
        let message = format!("this user already holds {limit} connections, the most allowed");
        return Some(
            ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: "too_many_connections",
                message,
                path: None,
            }
            .into_response(),
        );
    }
    if let Err(wait) = state.connects.acquire(user_id, Instant::now().into_std()) {
        let secs = wait.as_secs_f64().ceil().clamp(1.0, 86_400.0) as u64;
        let mut response = ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "connect_rate_exceeded",
            message: format!("this user connects too often; retry in {secs} s"),
            path: None,
        }
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return Some(response);
    }
    None
}

/// Why a request to `/ws` is not a WebSocket handshake this server takes (RFC 6455, 4.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NotWebSocket {
    status: StatusCode,
    message: &'static str,
}

impl NotWebSocket {
    const UPGRADE_REQUIRED: NotWebSocket = NotWebSocket {
        status: StatusCode::UPGRADE_REQUIRED,
        message: "this endpoint takes WebSocket (version 13) upgrades over HTTP/1.1",
    };
}

impl IntoResponse for NotWebSocket {
    fn into_response(self) -> Response {
        let body = json!({ "error": "not_websocket", "message": self.message });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UPGRADE_REQUIRED {
            let headers = response.headers_mut();
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            headers.insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
        }
        response
    }
}

/// Checks the handshake's headers and answers its key.
fn accept_key(parts: &Parts) -> Result<HeaderValue, NotWebSocket> {
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
        return Err(NotWebSocket::UPGRADE_REQUIRED);
    }
    if parts.headers.get(header::SEC_WEBSOCKET_VERSION) != Some(&HeaderValue::from_static("13")) {
        return Err(NotWebSocket::UPGRADE_REQUIRED);
    }
    let key = parts
        .headers
        .get(header::SEC_WEBSOCKET_KEY)
        .filter(|key| is_handshake_key(key.as_bytes()))
        .ok_or(NotWebSocket {
            status: StatusCode::BAD_REQUEST,
            message: "the Sec-WebSocket-Key header must be 16 random bytes in base64 (24 characters)",
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

async fn health(State(state): State<Arc<AppState>>) -> Response {
    let status = if state.shutting_down() {
        "shutting_down"
    } else {
        "ok"
    };
    Json(json!({ "status": status, "stats": state.hub.stats() })).into_response()
}
