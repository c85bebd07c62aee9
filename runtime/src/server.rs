//! The HTTP side: `GET /ws` (authenticated upgrade), `POST /api/events`, `GET /healthz`, and
//! serving with graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::json;
use tokio::net::{TcpListener, TcpSocket};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::auth::{AuthError, Authenticator, JwtConfig, KeyError};
use crate::broker::{Broker, InMemoryBroker};
use crate::catalog::Catalog;
use crate::connection;
use crate::http::{self, ApiError};
use crate::hub::Hub;
use crate::protocol::close;
use crate::publication::IdGenerator;
use crate::publish::Publisher;
use crate::role::RoleMask;

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
    /// How long shutdown waits for connections to finish their close handshake.
    pub shutdown_timeout: Duration,
}

impl ServerConfig {
    /// Defaults for one machine: 64 KiB messages, 1 MiB publish bodies, 1024-frame queues,
    /// 30 s heartbeats, 75 s idle timeout, any origin, 10 s shutdown grace (longer than a
    /// connection's own 5 s close grace, so even clients that never answer are gone by then).
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
    pub(crate) shutting_down: AtomicBool,
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
        let hub = Arc::new(Hub::new(catalog, config.queue_capacity));
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
                config,
                publisher: Publisher::new(broker),
                hub,
                auth,
                sessions: IdGenerator::new("ses"),
                shutting_down: AtomicBool::new(false),
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

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight publishes finish,
    /// closes every WebSocket with 1001 and waits (up to the configured grace) for them to end.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let state = self.state.clone();
        let signal = async move {
            shutdown.await;
            state.shutting_down.store(true, Ordering::SeqCst);
            state.hub.close_all(close::GOING_AWAY);
            tracing::info!("shutting down: closing connections");
        };
        // Events are small frames that must leave at once: no Nagle delay on any connection.
        let listener = listener.tap_io(|tcp| {
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::debug!(%err, "TCP_NODELAY not set");
            }
        });
        axum::serve(listener, self.router())
            .with_graceful_shutdown(signal)
            .await?;
        let grace = self.state.config.shutdown_timeout;
        if tokio::time::timeout(grace, self.state.hub.emptied())
            .await
            .is_err()
        {
            tracing::warn!(
                remaining = self.state.hub.stats().connections,
                "connections still open after the shutdown grace period"
            );
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
    Query(params): Query<ConnectParams>,
    request: Request,
) -> Response {
    let (mut parts, _body) = request.into_parts();
    let headers = &parts.headers;
    if state.shutting_down.load(Ordering::SeqCst) {
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
        .ok_or(NotWebSocket {
            status: StatusCode::BAD_REQUEST,
            message: "the Sec-WebSocket-Key header is missing",
        })?;
    Ok(
        HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
            .expect("base64 is a valid header"),
    )
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    let status = if state.shutting_down.load(Ordering::SeqCst) {
        "shutting_down"
    } else {
        "ok"
    };
    Json(json!({ "status": status, "stats": state.hub.stats() })).into_response()
}
