//! A real server on a loopback port and real WebSocket and HTTP clients, for integration tests.
//! Every wait is bounded: a test that would hang fails after `WAIT` instead.

#![allow(dead_code)]

pub mod proxy;
pub mod redis;
pub mod schema;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use omnicast::CATALOG;
use omnicast::runtime::position::Position;
use omnicast::runtime::server::PositionKey;
use omnicast::runtime::{JwtConfig, RedisConfig, Server, ServerConfig, bind, mint_hs256};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A `payment:received` payload numbered `n` (its `amount`) for `customer`.
pub fn payment(n: usize, customer: &str) -> Value {
    json!({
        "paymentId": format!("PAY-{n}"),
        "orderId": format!("ORD-{n}"),
        "customerId": customer,
        "amount": n,
        "method": "credit_card",
        "status": "success",
    })
}

/// A payment event's number (its `amount`, a JSON number).
pub fn amount(event: &Value) -> u64 {
    event["data"]["amount"]
        .as_f64()
        .unwrap_or_else(|| panic!("no amount: {event}")) as u64
}

/// The key test servers seal event ids with: derived from the test secret, as a server does.
pub fn positions() -> PositionKey {
    PositionKey::derive(SECRET.as_bytes())
}

/// The readable position of an id a test server sent (`orders.k3v9q2mf.7`).
pub fn position(id: &str) -> Position {
    positions()
        .open(id)
        .unwrap_or_else(|err| panic!("an id of a test server: {err}"))
}

/// The id a test server gives the position `readable` (`orders.k3v9q2mf.7`).
pub fn sealed(readable: &str) -> String {
    positions().seal(&Position::parse(readable).expect("a readable position"))
}

/// The longest any single expected thing may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

pub const SECRET: &str = "test-secret-0123456789abcdef";
pub const API_KEY: &str = "test-api-key-0123456789";
/// Another publisher's key.
pub const OTHER_API_KEY: &str = "second-key-0123456789";

/// The defaults, but presence events at once (no grace), so that a test sees a customer's
/// offline event as their last connection closes.
pub fn config() -> ServerConfig {
    let mut config = ServerConfig::new(
        JwtConfig::hs256(SECRET),
        vec![API_KEY.to_owned(), OTHER_API_KEY.to_owned()],
    );
    config.presence_grace = Duration::ZERO;
    config
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub server: Server,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::with(config()).await
    }

    pub async fn with(config: ServerConfig) -> Self {
        let server = Server::new(&CATALOG, config).expect("server config is valid");
        Self::serving(server)
    }

    /// A node sharing the Redis at `url`, once it follows Redis.
    pub async fn node(config: ServerConfig, url: &str) -> Self {
        let mut redis = RedisConfig::new(url);
        redis.presence_ttl = Duration::from_secs(2);
        let server = Server::with_redis(&CATALOG, config, redis).expect("server config is valid");
        let node = Self::serving(server);
        node.wait_ready().await;
        node
    }

    /// Waits until the node follows its broker.
    pub async fn wait_ready(&self) {
        let server = self.server.clone();
        wait_until(move || server.ready()).await;
    }

    fn serving(server: Server) -> Self {
        let listener =
            bind(SocketAddr::from(([127, 0, 0, 1], 0)), 1024, None).expect("bind loopback");
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(server.clone().serve(listener, async {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            server,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub fn token(&self, user: &str, role: &str) -> String {
        mint_hs256(SECRET.as_bytes(), user, role, 3600)
    }

    pub fn ws_url(&self, query: &str) -> String {
        format!("ws://{}/ws?{query}", self.addr)
    }

    /// Connects as `user` with `role`; `namespaces` empty means the default. Waits for `ready`.
    pub async fn connect(&self, user: &str, role: &str, namespaces: &[&str]) -> Client {
        let mut query = format!("token={}", self.token(user, role));
        if !namespaces.is_empty() {
            query.push_str(&format!("&namespaces={}", namespaces.join(",")));
        }
        let mut client = Client::open(&self.ws_url(&query), &[])
            .await
            .expect("connection accepted");
        let ready = client.next_json().await;
        assert_eq!(ready["type"], "ready", "{ready}");
        client.session_id = ready["sessionId"].as_str().unwrap().to_owned();
        client.user = user.to_owned();
        client.positions = serde_json::from_value(ready["positions"].clone()).unwrap();
        client
    }

    /// `POST /api/events` with `key`; returns the status and the JSON body.
    pub async fn post(&self, key: Option<&str>, body: String) -> (u16, Value) {
        self.post_with(key, body, &[]).await
    }

    /// `POST /api/events` with `key` and more headers.
    pub async fn post_with(
        &self,
        key: Option<&str>,
        body: String,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let (status, _, reply) = self.post_keyed(key, body, headers).await;
        (status, reply)
    }

    /// `POST /api/events` with `key` and more headers; also the answer's `Idempotency-Key`.
    pub async fn post_keyed(
        &self,
        key: Option<&str>,
        body: String,
        headers: &[(&str, &str)],
    ) -> (u16, Option<String>, Value) {
        let (status, idempotency_key, text) = self
            .request("POST", "/api/events", key, Some(body), headers)
            .await;
        (
            status,
            idempotency_key,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// `POST <path>` with `key` and a JSON body: the status and the JSON answer.
    pub async fn post_json(&self, path: &str, key: Option<&str>, body: Value) -> (u16, Value) {
        let (status, _, text) = self
            .request("POST", path, key, Some(body.to_string()), &[])
            .await;
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// `GET <path>` with `key` as the bearer token, if any: the status and the body's text.
    pub async fn get(&self, path: &str, key: Option<&str>) -> (u16, String) {
        let (status, _, text) = self.request("GET", path, key, None, &[]).await;
        (status, text)
    }

    /// One HTTP request to this server: the status, the answer's `Idempotency-Key` and its body.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> (u16, Option<String>, String) {
        let url = format!("http://{}{path}", self.addr);
        let method = method.to_owned();
        let key = key.map(str::to_owned);
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(WAIT))
                .build()
                .into();
            let mut request = ureq::http::Request::builder()
                .method(method.as_str())
                .uri(&url);
            if let Some(key) = key {
                request = request.header("Authorization", format!("Bearer {key}"));
            }
            for (name, value) in &headers {
                request = request.header(name, value);
            }
            let mut response = match body {
                Some(body) => agent.run(
                    request
                        .header("Content-Type", "application/json")
                        .body(body)
                        .unwrap(),
                ),
                None => agent.run(request.body(()).unwrap()),
            }
            .expect("the server answers");
            let status = response.status().as_u16();
            let idempotency_key = response
                .headers()
                .get("idempotency-key")
                .map(|v| v.to_str().unwrap().to_owned());
            let text = response.body_mut().read_to_string().unwrap_or_default();
            (status, idempotency_key, text)
        })
        .await
        .unwrap()
    }

    /// Publishes one event through the API and expects 202.
    pub async fn publish(&self, kind: &str, data: Value, options: Value) -> String {
        let mut body = json!({ "type": kind, "data": data });
        if !options.is_null() {
            body["options"] = options;
        }
        let (status, reply) = self.post(Some(API_KEY), body.to_string()).await;
        assert_eq!(status, 202, "{kind}: {reply}");
        reply["id"].as_str().unwrap().to_owned()
    }

    /// Opens a connection with `query` (after the token) and returns it with its `ready`.
    pub async fn open(&self, user: &str, role: &str, query: &str) -> (Client, Value) {
        let url = self.ws_url(&format!("token={}&{query}", self.token(user, role)));
        let mut client = Client::open(&url, &[]).await.expect("connection accepted");
        let ready = client.next_json().await;
        assert_eq!(ready["type"], "ready", "{ready}");
        (client, ready)
    }

    /// Triggers graceful shutdown and waits for `serve` to return.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.take().unwrap().send(());
        let task = self.task.take().unwrap();
        tokio::time::timeout(WAIT, task)
            .await
            .expect("shutdown finishes")
            .unwrap()
            .unwrap();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub session_id: String,
    pub user: String,
    /// `ready`'s positions, by namespace (set by `TestServer::connect`).
    pub positions: std::collections::BTreeMap<String, String>,
}

/// How a connection ended, as the client saw it.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    Closed(u16),
    ClosedWithoutFrame,
}

impl Client {
    pub async fn open(url: &str, headers: &[(&str, &str)]) -> Result<Client, tungstenite::Error> {
        let mut request = url.into_client_request()?;
        for (name, value) in headers {
            let name = tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
            request.headers_mut().insert(name, value.parse().unwrap());
        }
        let (ws, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Client {
            ws,
            session_id: String::new(),
            user: String::new(),
            positions: Default::default(),
        })
    }

    /// The next text message as JSON.
    pub async fn next_json(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a message arrives in time")
                .expect("the connection is open")
                .expect("the frame is valid");
            match message {
                Message::Text(text) => {
                    return serde_json::from_str(&text).expect("server sends JSON");
                }
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text message, got {other:?}"),
            }
        }
    }

    /// The types of the events received until (and without) the `system:maintenance` whose
    /// message is `marker`.
    pub async fn events_until(&mut self, marker: &str) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let message = self.next_json().await;
            if message["type"] == "system:maintenance" && message["data"]["message"] == marker {
                return events;
            }
            events.push(message);
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::Text(text.into())).await.unwrap();
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::Binary(bytes.into())).await.unwrap();
    }

    pub async fn send_json(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    /// Reads until the server closes; returns the close code. Like a well-behaved client it
    /// keeps reading after the close frame, so the library's close reply goes out.
    pub async fn ended(&mut self) -> Ended {
        let ended = loop {
            let next = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("the server closes in time");
            match next {
                Some(Ok(Message::Close(Some(frame)))) => {
                    break Ended::Closed(u16::from(frame.code));
                }
                Some(Ok(Message::Close(None))) | None | Some(Err(_)) => {
                    return Ended::ClosedWithoutFrame;
                }
                Some(Ok(_)) => continue,
            }
        };
        let _ = tokio::time::timeout(WAIT, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
        ended
    }
}

/// Publishes a `system:maintenance` marker that every connection subscribed to `system` receives
/// after everything published before it: the way to wait for "nothing else arrives".
pub async fn marker(server: &TestServer, text: &str) {
    server
        .publish(
            "system:maintenance",
            json!({ "message": text }),
            Value::Null,
        )
        .await;
}

/// Waits until `condition` holds, checking every few milliseconds; fails after `WAIT`.
/// For conditions only the server can see (a connection it has dropped).
pub async fn wait_until(condition: impl Fn() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the condition holds in time");
}

/// The error body of a refused upgrade.
pub async fn refused(url: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    match Client::open(url, headers).await {
        Ok(_) => panic!("{url}: the connection was accepted"),
        Err(tungstenite::Error::Http(response)) => {
            let status = response.status().as_u16();
            let body = response.body().clone().unwrap_or_default();
            (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
        }
        Err(other) => panic!("{url}: expected an HTTP refusal, got {other}"),
    }
}

/// Reads one HTTP response from `stream`: its status, its head (lowercase) and its JSON body.
pub async fn read_response(stream: &mut TcpStream) -> (u16, String, Value) {
    use tokio::io::AsyncReadExt;
    let mut buffer = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
            .await
            .expect("the server answers in time")
            .unwrap();
        buffer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buffer).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = text[..end].to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |n| n.trim().parse().unwrap());
            if n == 0 || text.len() >= end + 4 + length {
                let status = head[9..12].parse().unwrap();
                let body = serde_json::from_str(&text[end + 4..]).unwrap_or(Value::Null);
                return (status, head, body);
            }
        }
        assert!(n > 0, "the server hung up: {text}");
    }
}

/// A client speaking just enough WebSocket by hand to misbehave: it completes the handshake and
/// then only reads, never answering pings or closes.
pub struct RawClient {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr, token: &str) -> RawClient {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /ws?token={token} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buffer = Vec::new();
        let end = loop {
            let mut chunk = [0u8; 1024];
            let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "the server hung up during the handshake");
            buffer.extend_from_slice(&chunk[..n]);
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
        };
        assert!(
            buffer.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&buffer)
        );
        buffer.drain(..end);
        RawClient { stream, buffer }
    }

    /// Writes raw bytes: frames as a client would never send them.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads frames until a close frame arrives and returns its code.
    pub async fn close_code(&mut self) -> u16 {
        self.until_close().await.1
    }

    /// Reads frames until a close frame arrives: the text frames before it, and its code.
    pub async fn until_close(&mut self) -> (Vec<String>, u16) {
        use tokio::io::AsyncReadExt;
        let mut texts = Vec::new();
        loop {
            // Server frames are unmasked: opcode, 7-bit length (or 16/64-bit extended), payload.
            if self.buffer.len() >= 2 {
                let opcode = self.buffer[0] & 0x0f;
                let (len, header) = match self.buffer[1] & 0x7f {
                    126 if self.buffer.len() >= 4 => (
                        u16::from_be_bytes([self.buffer[2], self.buffer[3]]) as usize,
                        4,
                    ),
                    127 if self.buffer.len() >= 10 => (
                        u64::from_be_bytes(self.buffer[2..10].try_into().unwrap()) as usize,
                        10,
                    ),
                    n @ 0..=125 => (n as usize, 2),
                    _ => (usize::MAX, 0),
                };
                if len != usize::MAX && self.buffer.len() >= header + len {
                    let payload: Vec<u8> = self.buffer.drain(..header + len).skip(header).collect();
                    match opcode {
                        0x8 => return (texts, u16::from_be_bytes([payload[0], payload[1]])),
                        0x1 => texts.push(String::from_utf8(payload).unwrap()),
                        _ => {}
                    }
                    continue;
                }
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(WAIT, self.stream.read(&mut chunk))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "the connection ended without a close frame");
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads (and discards) until the server closes the TCP connection.
    pub async fn read_to_end(&mut self) {
        use tokio::io::AsyncReadExt;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match tokio::time::timeout(WAIT, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(_)) => continue,
                Err(_) => panic!("the server kept the connection open"),
            }
        }
    }
}

/// One HTTP/1.1 exchange by hand: the status, the raw head and the JSON body.
pub async fn exchange(addr: std::net::SocketAddr, request: &str) -> (u16, String, Value) {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    read_response(&mut stream).await
}

/// An HS256 token of `claims`, signed with the test secret.
pub fn sign(claims: Value) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
}

/// Asserts a refusal's status and error code.
pub fn assert_refused((status, body): (u16, Value), expected: (u16, &str)) -> Value {
    assert_eq!(
        (status, body["error"].as_str()),
        (expected.0, Some(expected.1)),
        "{body}"
    );
    body
}
