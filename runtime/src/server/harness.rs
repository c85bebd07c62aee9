//! Ways into the server's own code from outside the crate, for the fuzz targets (`fuzz/`), the
//! crashers they found, replayed by `cargo test` (`tests/fuzz.rs`), and the WebSocket
//! conformance run (`omnicast-bench echo`, driven by the Autobahn TestSuite).
//!
//! Compiled only with the `harness` feature, which no build of the server itself turns on:
//! nothing here is the server's API. Everything here runs the very code `/ws` and `/api/events`
//! run, never a second implementation: the accept loop's connection task, the handshake's
//! checks, the connection driver, the session's message handling, the publish decoder.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use hyper::server::conn::http1;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::watch;

use crate::catalog::Catalog;
use crate::namespaces::NamespaceSet;
use crate::server::accept;
use crate::server::auth::{AuthError, Authenticator, Identity, JwtConfig, mint_hs256};
use crate::server::config::ServerConfig;
use crate::server::connection::{self, Handled, Incoming, Timing};
use crate::server::error::ApiError;
use crate::server::frame::Frame;
use crate::server::http::{events, upgrade};
use crate::server::hub::{ConnectionInfo, Hub};
use crate::server::limits::Peer;
use crate::server::positions::PositionKey;
use crate::server::{Server, session};

/// How long one input may keep the server busy before it counts as a hang.
const HANG: Duration = Duration::from_secs(10);
/// A pause shorter than every timer of the server's: with time paused, it ends once the server
/// waits for nothing but time.
const SETTLE: Duration = Duration::from_millis(100);

/// One server on an in-process runtime, fed whole connections from memory.
pub struct Harness {
    runtime: Runtime,
    router: Router,
    http: http1::Builder,
    auth: Authenticator,
    request_timeout: Duration,
}

impl Harness {
    /// The HS256 secret the harness's server verifies tokens with.
    pub const SECRET: &'static str = "harness-secret-harness-secret-32";
    /// The API key its publish API takes.
    pub const API_KEY: &'static str = "harness-api-key";

    /// A server for `catalog` on the in-memory broker, with small limits so that inputs reach
    /// them: 4 KiB messages and publish bodies, 64-frame queues, one second of request timeout.
    pub fn new(catalog: &'static Catalog) -> Self {
        let jwt = JwtConfig::hs256(Self::SECRET);
        let mut config = ServerConfig::new(jwt.clone(), vec![Self::API_KEY.to_owned()]);
        config.max_message_bytes = 4096;
        config.max_publish_bytes = 4096;
        config.queue_capacity = 64;
        config.request_timeout = Duration::from_secs(1);
        config.connect_rate = crate::server::ConnectRate {
            burst: u32::MAX,
            per_second: f64::MAX,
        };
        // Paused time advances whenever every task waits: `settle` below is "once the server
        // has done all it can with what it was sent", and timeouts cost no real time.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a runtime");
        let server = Server::new(catalog, config.clone()).expect("an HS256 key");
        let mut http = http1::Builder::new();
        // As the accept loop's, but for the end of the input: the client's half is closed once
        // its bytes are written, and the server answers what it read before closing its own
        // (the accept loop's builder would close at once, answering nothing).
        http.header_read_timeout(None)
            .keep_alive(true)
            .half_close(true);
        Harness {
            router: server.router(),
            auth: Authenticator::new(catalog, &jwt).expect("an HS256 key"),
            runtime,
            http,
            request_timeout: config.request_timeout,
        }
    }

    /// Serves `input` as everything a client sends on one HTTP connection, as the accept loop
    /// serves a TCP connection, and returns what the server wrote. The client's half is closed
    /// once the server has done all it can with the input (a client that stops sending and
    /// goes away, after reading the answers). Panics if the server has not finished with the
    /// connection within ten seconds of (paused) time: a hang.
    pub fn http(&self, input: &[u8]) -> Vec<u8> {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let (_stopping, stop_rx) = watch::channel(false);
        let peer = Peer(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let task = accept::connection(
            &self.http,
            server,
            self.router.clone(),
            peer,
            self.request_timeout,
            stop_rx,
        );
        let tasks = || self.runtime.metrics().num_alive_tasks();
        let before = tasks();
        self.runtime.block_on(async {
            tokio::spawn(task);
            let exchange = async {
                let mut output = Vec::new();
                let (mut reader, mut writer) = tokio::io::split(&mut client);
                let write = async {
                    let _ = writer.write_all(input).await;
                    tokio::time::sleep(SETTLE).await;
                    let _ = writer.shutdown().await;
                };
                let read = reader.read_to_end(&mut output);
                let (_, _) = tokio::join!(write, read);
                output
            };
            let output = tokio::time::timeout(HANG, exchange)
                .await
                .expect("the server neither answered nor closed within 10 s");
            drop(client);
            // Every task the connection started (its HTTP task, its session) ends with it.
            let ended = tokio::time::timeout(HANG, async {
                while tasks() > before {
                    tokio::time::sleep(SETTLE).await;
                }
            });
            ended
                .await
                .expect("a task of the connection outlived it by 10 s");
            output
        })
    }

    /// A WebSocket handshake of user `user-1` with `role`, then `frames` as the client's bytes
    /// (each frame must be masked, as a client's are); what the server wrote.
    pub fn websocket(&self, role: &str, frames: &[u8]) -> Vec<u8> {
        let token = mint_hs256(Self::SECRET.as_bytes(), "user-1", role, 3600);
        let mut input = format!(
            "GET /ws?token={token} HTTP/1.1\r\nHost: harness\r\nConnection: Upgrade\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        .into_bytes();
        input.extend_from_slice(frames);
        self.http(&input)
    }

    /// The token the harness's server accepts whose claims are `claims` as given (any bytes):
    /// the claims' checks are reached past the signature's.
    pub fn signed(&self, claims: &[u8]) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims));
        let mut mac =
            Hmac::<Sha256>::new_from_slice(Self::SECRET.as_bytes()).expect("any key length");
        mac.update(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{signature}")
    }

    /// Verifies `token` as a handshake (or a refresh) does.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        self.auth.verify(token)
    }
}

/// One masked text frame of `payload` (any bytes), as a client sends it.
pub fn client_text_frame(payload: &[u8]) -> Vec<u8> {
    client_frame(0x81, payload)
}

/// One masked frame with the first byte `first` (FIN, RSV and opcode) and `payload`.
pub fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![first];
    match payload.len() {
        len @ 0..=125 => frame.push(0x80 | len as u8),
        len @ 126..=0xFFFF => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&MASK);
    frame.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, m)| b ^ m));
    frame
}

/// Decodes `body` as `POST /api/events` does: how many events it holds, or the refusal.
pub fn publish_body(catalog: &'static Catalog, body: &[u8]) -> Result<usize, ApiError> {
    events::prepare(catalog, body).map(|(events, _)| events.len())
}

/// Reads `list` as a connect's `since` (comma-separated event ids, the connection subscribing
/// to every namespace): how many positions it names, or the refusal.
pub fn since(catalog: &Catalog, key: &PositionKey, list: &str) -> Result<usize, String> {
    let every = NamespaceSet::first(catalog.namespaces.len());
    session::since_positions(catalog, key, list.split(','), every).map(|p| p.len())
}

/// Serves the conformance echo on `listener` until the process ends: WebSocket upgrades on any
/// path, answered by the handshake's own checks, each connection registered in a hub and driven
/// by the connection driver `/ws` uses, with messages up to `max_message_bytes`; every text or
/// binary message is queued back to its sender as one frame, as events are.
pub async fn serve_echo(
    catalog: &'static Catalog,
    listener: TcpListener,
    max_message_bytes: usize,
) {
    let jwt = JwtConfig::hs256(Harness::SECRET);
    let mut config = ServerConfig::new(jwt, Vec::new());
    config.max_message_bytes = max_message_bytes;
    config.max_connections_per_user = usize::MAX;
    let echo = Arc::new(Echo {
        hub: Hub::new(catalog, config.queue_capacity),
        config: config.clone(),
        next: AtomicU64::new(0),
    });
    let router = Router::new().fallback(get(echo_upgrade)).with_state(echo);
    accept::serve(listener, router, &config, std::future::pending()).await;
}

struct Echo {
    hub: Hub,
    config: ServerConfig,
    next: AtomicU64,
}

async fn echo_upgrade(State(echo): State<Arc<Echo>>, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    let accept = match upgrade::accept_key(&parts) {
        Ok(accept) => accept,
        Err(refusal) => return refusal.into_response(),
    };
    let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
        return upgrade::upgrade_required().into_response();
    };
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let n = echo.next.fetch_add(1, Ordering::Relaxed);
        let info = ConnectionInfo {
            session_id: format!("echo-{n}"),
            user_id: format!("echo-{n}"),
            role: 0,
            namespaces: NamespaceSet::EMPTY,
        };
        let registration = echo
            .hub
            .register_with(info, Vec::new())
            .expect("no per-user cap");
        let mailbox = registration.mailbox;
        let timing = Timing {
            heartbeat: echo.config.heartbeat_interval,
            idle_timeout: echo.config.idle_timeout,
            max_replies: echo.config.max_message_bytes,
        };
        let mut on_message = |message: Incoming<'_>| {
            let frame = match message {
                Incoming::Text(text) => Frame::text(text),
                Incoming::Binary(bytes) => Frame::binary(bytes),
            };
            if mailbox.push(frame).is_err() {
                echo.hub.close_slow_consumer(&mailbox);
            }
            Handled::Reply(None)
        };
        let config = upgrade::socket_config(echo.config.max_message_bytes);
        let socket = TokioIo::new(upgraded);
        connection::drive(socket, config, &mailbox, &echo.hub, timing, &mut on_message).await;
        echo.hub.unregister(registration.id);
    });
    upgrade::switching_protocols(accept)
}

/// The fuzz targets' bodies, shared by `fuzz/fuzz_targets/` and the replay of what they found
/// (`tests/fuzz.rs`). Each takes any bytes; each panics only on a finding: a crash of the code
/// under test, a hang, or a broken invariant asserted here.
pub mod targets {
    use super::*;

    /// The roles a fuzzed connection may have, chosen by an input's first byte.
    const ROLES: [&str; 4] = ["admin", "manager", "staff", "customer"];

    fn role_and_rest(data: &[u8]) -> (&'static str, &[u8]) {
        match data.split_first() {
            Some((first, rest)) => (ROLES[*first as usize % ROLES.len()], rest),
            None => (ROLES[0], data),
        }
    }

    /// Any bytes as one HTTP connection: the server answers with HTTP or says nothing.
    pub fn http(harness: &Harness, data: &[u8]) {
        let output = harness.http(data);
        assert!(
            output.is_empty() || output.starts_with(b"HTTP/1."),
            "not an HTTP answer: {:?}",
            String::from_utf8_lossy(&output[..output.len().min(64)])
        );
    }

    /// An authenticated connection, then any bytes as its frames (the frame decoder, the
    /// driver, and the session for what decodes).
    pub fn frames(harness: &Harness, data: &[u8]) {
        let (role, frames) = role_and_rest(data);
        let output = harness.websocket(role, frames);
        assert!(
            output.starts_with(b"HTTP/1.1 101 "),
            "the handshake was refused"
        );
    }

    /// An authenticated connection, then the input split at NUL bytes into text messages, each
    /// sent as one well-formed frame (the session's message handling: subscribe, `since`,
    /// refresh, ping, and what is none of them).
    pub fn messages(harness: &Harness, data: &[u8]) {
        let (role, rest) = role_and_rest(data);
        let frames: Vec<u8> = rest
            .split(|b| *b == 0)
            .flat_map(client_text_frame)
            .collect();
        let output = harness.websocket(role, &frames);
        assert!(
            output.starts_with(b"HTTP/1.1 101 "),
            "the handshake was refused"
        );
    }

    /// Any bytes as a publish body, decoded against the catalog.
    pub fn publish(catalog: &'static Catalog, data: &[u8]) {
        if let Ok(count) = publish_body(catalog, data) {
            assert!(count >= 1, "an accepted body holds an event");
        }
    }

    /// Any text as a `since` list and as one event id: what opens is a position of the catalog
    /// that seals back to an id opening to the same position.
    pub fn since(catalog: &Catalog, key: &PositionKey, data: &[u8]) {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        if let Ok(count) = super::since(catalog, key, text) {
            assert!(count <= catalog.namespaces.len());
        }
        if let Ok(position) = key.open(text) {
            let again = key.open(&key.seal(&position)).expect("a sealed id opens");
            assert_eq!(again, position);
        }
    }

    /// Any bytes as a token's claims, correctly signed: verified or refused, and an identity
    /// only ever of a catalog role.
    pub fn claims(harness: &Harness, catalog: &Catalog, data: &[u8]) {
        if let Ok(identity) = harness.verify(&harness.signed(data)) {
            assert!((identity.role as usize) < catalog.roles.len());
            assert!(!identity.user_id.is_empty(), "an identity names its user");
        }
    }
}
