//! What a server can be told, with defaults for one machine.

use std::time::Duration;

use crate::server::auth::{JwtConfig, JwtKey, KeyError};
use crate::server::limits::ConnectRate;
use crate::server::positions::PositionKey;

/// Everything the server can be told. Its `Debug` never shows the API keys (nor the JWT key).
#[derive(Clone)]
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
    /// The longest a token this server accepts may be valid: how long a revocation is kept
    /// (after that, every token it could match has expired).
    pub max_token_lifetime: Duration,
    /// How many subscription changes (`subscribe`, `unsubscribe`) one connection may make (an
    /// `error` `subscribe_rate_exceeded` beyond, the change not made).
    pub subscribe_rate: ConnectRate,
    /// How many publish requests one API key may make (429 `publish_rate_exceeded` with
    /// `Retry-After` beyond; a batch is one request); `None`: no limit.
    pub publish_rate: Option<ConnectRate>,
    /// The most WebSocket connections this node holds; a handshake past it is refused with 503
    /// `server_full` and `Retry-After`.
    pub max_connections: usize,
    /// The most connections one source address may hold on this node (429
    /// `too_many_connections_from_address`); `None`: no limit (behind a proxy every client
    /// shares its address).
    pub max_connections_per_ip: Option<usize>,
    /// How long a user whose last connection closed may take to come back (to any node) before
    /// the catalog's offline event is emitted; zero: at once. A reconnect within it emits
    /// neither offline nor online.
    pub presence_grace: Duration,
    /// What the key sealing event ids is derived from (`server::positions`); every node of a
    /// deployment must have the same. `None`: the HS256 token secret.
    pub position_secret: Option<String>,
}

impl ServerConfig {
    /// Defaults for one machine: 64 KiB messages, 1 MiB publish bodies, 1024-frame queues,
    /// 30 s heartbeats, 75 s idle timeout, any origin, 10 s for shutdown, 64 connections per
    /// user, 30 connects at once then 5 per second per user, 10 s to send a request, recovery of
    /// at most 1000 missed events per namespace, revocations kept 24 h, event ids sealed with a
    /// key derived from the HS256 secret, 100,000 connections per node, none per address, offline
    /// events 5 s after a user's last connection closed.
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
            max_token_lifetime: Duration::from_secs(24 * 3600),
            position_secret: None,
            publish_rate: None,
            subscribe_rate: ConnectRate {
                burst: 100,
                per_second: 20.0,
            },
            max_connections: 100_000,
            max_connections_per_ip: None,
            presence_grace: Duration::from_secs(5),
        }
    }
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every field named, so that a new one must be placed here too.
        let ServerConfig {
            jwt,
            api_keys,
            max_message_bytes,
            max_publish_bytes,
            queue_capacity,
            heartbeat_interval,
            idle_timeout,
            allowed_origins,
            shutdown_timeout,
            max_connections_per_user,
            connect_rate,
            request_timeout,
            max_recovery,
            max_token_lifetime,
            position_secret,
            max_connections,
            max_connections_per_ip,
            publish_rate,
            subscribe_rate,
            presence_grace,
        } = self;
        f.debug_struct("ServerConfig")
            .field("jwt", jwt)
            .field("api_keys", &format_args!("<{} keys>", api_keys.len()))
            .field("max_message_bytes", max_message_bytes)
            .field("max_publish_bytes", max_publish_bytes)
            .field("queue_capacity", queue_capacity)
            .field("heartbeat_interval", heartbeat_interval)
            .field("idle_timeout", idle_timeout)
            .field("allowed_origins", allowed_origins)
            .field("shutdown_timeout", shutdown_timeout)
            .field("max_connections_per_user", max_connections_per_user)
            .field("connect_rate", connect_rate)
            .field("request_timeout", request_timeout)
            .field("max_recovery", max_recovery)
            .field("presence_grace", presence_grace)
            .field("max_token_lifetime", max_token_lifetime)
            .field(
                "position_secret",
                &position_secret.as_ref().map(|_| "<set>"),
            )
            .field("publish_rate", publish_rate)
            .field("subscribe_rate", subscribe_rate)
            .field("max_connections", max_connections)
            .field("max_connections_per_ip", max_connections_per_ip)
            .finish()
    }
}

/// What one connection costs before anything is queued: its task, mailbox, timer, read buffer,
/// tungstenite's context and the `ready` message's user id (a generous figure; about 3 KB
/// measured).
const CONNECTION_BASE: usize = 16 * 1024;
/// The largest pong frame: a control frame's payload is at most 125 bytes.
const MAX_PONG: usize = 2 + 125;
/// The largest reply frame, apart from what grows with the catalog's namespaces: an error quotes
/// at most 200 bytes of what the client sent.
const MAX_REPLY: usize = 512;
/// What a reply (`subscribed`, `unsubscribed`) grows by per namespace: its name, position and
/// recovery flag.
const MAX_REPLY_PER_NAMESPACE: usize = 256;

impl ServerConfig {
    /// The most memory, in bytes, the server holds for one connection, whatever its client
    /// sends and however little it reads: the bound that follows from this configuration.
    /// A client that would make it hold more is closed as a slow consumer (4008), or (while a
    /// replay of its waits to be written) not read until it reads.
    ///
    /// `namespaces` is the catalog's count; `largest_event` the largest event frame a namespace
    /// keeps (a replay rebuilt from Redis belongs to the connection alone; in memory it shares
    /// the history's frames, so the figure is an upper bound there).
    ///
    /// The parts: reading (tungstenite's buffer and the message it assembles, each at most
    /// `max_message_bytes`); pongs not yet written (`max_message_bytes` and one more); the queue:
    /// `queue_capacity` frames (replies, or live events) and one replay of at most
    /// `max_recovery` events per namespace and its reply, each a queue slot plus its frame.
    pub fn connection_memory_bound(&self, namespaces: usize, largest_event: usize) -> usize {
        let slot = std::mem::size_of::<crate::server::frame::Frame>();
        let reply = MAX_REPLY + MAX_REPLY_PER_NAMESPACE * namespaces;
        let replay = self.max_recovery as usize * namespaces;
        CONNECTION_BASE
            + 2 * self.max_message_bytes
            + self.max_message_bytes
            + MAX_PONG
            + self.queue_capacity * (slot + reply.max(largest_event))
            + (slot + reply)
            + replay * (slot + largest_event)
    }
}

impl ServerConfig {
    /// The key event ids are sealed with: derived from `position_secret`, or else from the HS256
    /// token secret. A server verifying RS/ES tokens (whose key is public) has no shared secret
    /// without `position_secret`: alone it gets a random key; `shared` (several nodes on one
    /// broker, which must seal alike) it is an error.
    pub fn position_key(&self, shared: bool) -> Result<PositionKey, KeyError> {
        match (&self.position_secret, &self.jwt.key) {
            (Some(secret), _) => Ok(PositionKey::derive(secret.as_bytes())),
            (None, JwtKey::Hs256(secret)) => Ok(PositionKey::derive(secret)),
            (None, _) if !shared => Ok(PositionKey::random()),
            (None, _) => Err(KeyError::new(
                "nodes verifying RS256/ES256 tokens share no secret to seal event ids with: \
                 give every node the same --position-secret (OMNICAST_POSITION_SECRET)",
            )),
        }
    }
}
