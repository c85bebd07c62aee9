//! What a server can be told, with defaults for one machine.

use std::time::Duration;

use crate::server::auth::JwtConfig;
use crate::server::limits::ConnectRate;

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
    /// The most events a resuming client may be behind in one namespace: further behind, it is
    /// told `recovered: false` and reloads instead.
    pub max_recovery: u64,
}

impl ServerConfig {
    /// Defaults for one machine: 64 KiB messages, 1 MiB publish bodies, 1024-frame queues,
    /// 30 s heartbeats, 75 s idle timeout, any origin, 10 s for shutdown, 64 connections per
    /// user, 30 connects at once then 5 per second per user, 10 s to send a request, recovery of
    /// at most 1000 missed events per namespace.
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
            max_recovery: 1000,
        }
    }
}
