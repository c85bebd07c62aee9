//! The server: `GET /ws` (authenticated upgrade), `POST /api/events`, `GET /healthz` and
//! `GET /readyz`, served with a shutdown that loses nothing accepted. Everything here needs the
//! `server` feature; the crate's base layer (events, descriptors, emitters) does not.

mod accept;
mod auth;
mod broker;
mod config;
mod connection;
mod error;
pub mod explain;
mod frame;
#[cfg(feature = "harness")]
#[doc(hidden)]
pub mod harness;
mod http;
mod hub;
mod limits;
mod mailbox;
mod metrics;
mod positions;
mod presence;
mod publication;
mod publisher;
pub mod revocation;
mod session;
mod shrink;
mod sink;
mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::net::{TcpListener, TcpSocket};
use tokio::time::Instant;

pub use auth::{AuthError, Authenticator, Identity, JwtConfig, JwtKey, KeyError, mint_hs256};
pub use broker::{
    Batch, BoxFuture, Broker, BrokerError, Failure, IDEMPOTENCY_WINDOW, Idempotency,
    InMemoryBroker, PresenceChange, RedisBroker, RedisConfig, ResumeRequest, Resumed,
};
pub use config::ServerConfig;
pub use error::{ApiError, PublishError};
pub use frame::Frame;
pub use hub::{
    ConnId, ConnectionInfo, Hub, HubStats, RefreshRefused, Refreshed, Registration,
    TooManyConnections, Unregistered,
};
pub use limits::ConnectRate;
pub use metrics::Metrics;
pub use positions::PositionKey;
pub use publication::Publication;
pub use publisher::Publisher;
pub use sink::{HttpSink, HttpSinkError, RedisSink};

use crate::catalog::Catalog;
use crate::protocol::close;
use limits::{Admissions, ConnectLimiter};
use publication::IdGenerator;
use state::AppState;

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The token key is unusable.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The broker cannot be set up (a malformed Redis URL).
    #[error(transparent)]
    Broker(#[from] BrokerError),
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
        let hub = Self::hub_for(catalog, &config, false)?;
        let broker = Arc::new(InMemoryBroker::new(hub.clone()));
        Self::with_broker(hub, broker, config)
    }

    /// A node of several sharing the Redis of `redis`. Must be called within a Tokio runtime;
    /// the node is ready (`GET /readyz`) once Redis answered.
    pub fn with_redis(
        catalog: &'static Catalog,
        config: ServerConfig,
        redis: RedisConfig,
    ) -> Result<Self, StartError> {
        let hub = Self::hub_for(catalog, &config, true)?;
        let broker = Arc::new(RedisBroker::start(hub.clone(), redis)?);
        Ok(Self::with_broker(hub, broker, config)?)
    }

    /// The hub a server with `config` holds its connections in; `shared` when it is one node
    /// of several (see [`ServerConfig::position_key`]).
    pub fn hub_for(
        catalog: &'static Catalog,
        config: &ServerConfig,
        shared: bool,
    ) -> Result<Arc<Hub>, KeyError> {
        Ok(Arc::new(
            Hub::new(catalog, config.queue_capacity)
                .with_max_connections_per_user(config.max_connections_per_user)
                .with_position_key(config.position_key(shared)?),
        ))
    }

    /// Whether the broker takes publications now (what `GET /readyz` answers).
    pub fn ready(&self) -> bool {
        self.state.publisher.broker().ready()
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
                publishes: config.publish_rate.map(ConnectLimiter::new),
                admissions: Arc::new(Admissions::new(
                    config.max_connections,
                    config.max_connections_per_ip,
                )),
                config,
                publisher: Publisher::new(broker),
                hub,
                auth,
                sessions: IdGenerator::new("ses"),
                departures: Default::default(),
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

    /// The routes: `GET /ws`, `POST /api/events`, `GET /healthz`, `GET /readyz`, `GET /metrics`,
    /// `POST /api/explain`, `GET /console`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/ws", get(http::upgrade::upgrade))
            .route("/api/events", post(http::events::publish))
            .route("/healthz", get(http::health::health))
            .route("/readyz", get(http::health::ready))
            .route("/metrics", get(http::metrics::metrics))
            .route("/api/explain", post(http::explain::explain))
            .route("/api/revocations", post(http::revocations::revoke))
            .route("/api/positions", get(http::positions::positions))
            .route(
                "/api/reauthorizations",
                post(http::revocations::reauthorize),
            )
            .route("/console", get(http::console::page))
            .route("/console/console.js", get(http::console::script))
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

/// A listener with a deep accept backlog, so bursts of connections are not refused. With
/// `send_buffer`, every connection it accepts has that kernel send buffer (Linux hands the
/// listener's to the connections it accepts) instead of the kernel's autotuned one, which on
/// loopback grows to megabytes: memory a client that stops reading holds before its queue
/// fills and it is closed as a slow consumer.
pub fn bind(
    addr: SocketAddr,
    backlog: u32,
    send_buffer: Option<u32>,
) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    if let Some(bytes) = send_buffer {
        socket.set_send_buffer_size(bytes)?;
    }
    socket.bind(addr)?;
    socket.listen(backlog)
}
