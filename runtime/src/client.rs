//! A Rust client of an omnicast server (feature `client`): it connects with a token, yields each
//! event decoded into the catalog's `AnyEvent` and every control message, reconnects with
//! exponential backoff and full jitter, renews an expired token before the next attempt, stops
//! with [`Status::Failed`] on a refused one, and resumes every namespace from the last event it
//! saw (`since`), reporting `recovered` in the `ready` message.
//!
//! One task owns the connection; [`Client`] talks to it through two channels. Events queue in a
//! bounded channel: an application that stops reading stops the task reading its socket, so
//! the server eventually closes it as a slow consumer, and the reconnect resumes where it was.
//!
//! ```no_run
//! # async fn run() {
//! use omnicast_runtime::client::{Client, ClientConfig, Message};
//! # #[derive(Debug)] struct AnyEvent;
//! # impl omnicast_runtime::CatalogEvents for AnyEvent {
//! #     const CATALOG_VERSION: &'static str = "example";
//! #     fn decode(_: &str, _: &str) -> Option<Result<Self, omnicast_runtime::PayloadError>> { None }
//! # }
//! let config = ClientConfig::new("ws://127.0.0.1:8080/ws").namespaces(["orders"]);
//! let mut client = Client::<AnyEvent>::connect(config, "<jwt>");
//! while let Some(message) = client.next().await {
//!     match message {
//!         Message::Event(received) => println!("{:?}", received.event),
//!         other => println!("{other:?}"),
//!     }
//! }
//! # }
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};

use crate::backoff;
use crate::event::CatalogEvents;
use crate::position::Position;
use crate::protocol::{ClientMessage, ControlMessage, PingId, ServerMessage, close, error_code};

/// A token for each connection attempt.
pub type TokenFuture = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;

/// Where tokens come from: a fixed one, or a function called before every attempt (so an
/// expired token is never reused).
#[derive(Clone)]
pub enum TokenSource {
    /// The same token every time.
    Fixed(String),
    /// Called before each attempt; an `Err` is retried with backoff.
    Renew(Arc<dyn Fn() -> TokenFuture + Send + Sync>),
}

impl TokenSource {
    /// A source calling `f` before each attempt.
    pub fn renew<F, Fut>(f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, String>> + Send + 'static,
    {
        TokenSource::Renew(Arc::new(move || Box::pin(f())))
    }
}

impl From<&str> for TokenSource {
    fn from(token: &str) -> Self {
        TokenSource::Fixed(token.to_owned())
    }
}

impl From<String> for TokenSource {
    fn from(token: String) -> Self {
        TokenSource::Fixed(token)
    }
}

impl std::fmt::Debug for TokenSource {
    /// Never shows the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::Fixed(_) => f.write_str("TokenSource::Fixed(..)"),
            TokenSource::Renew(_) => f.write_str("TokenSource::Renew(..)"),
        }
    }
}

/// How a [`Client`] connects.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `ws://host:port/ws`.
    pub url: String,
    /// The namespaces to subscribe; `None`: the server's default (every namespace the role may
    /// receive events of).
    pub namespaces: Option<BTreeSet<String>>,
    /// The first reconnect delay; attempt `n` waits `min(max_delay, min_delay + random(0,
    /// min_delay * 2^n))`. Default 500 ms.
    pub min_delay: Duration,
    /// The longest reconnect delay. Default 20 s.
    pub max_delay: Duration,
    /// A `ping` every `.0`; no frame within `.1` after it drops the connection (and bounds
    /// the wait for `ready`). Default 20 s and 10 s; `None`: no pings.
    pub heartbeat: Option<(Duration, Duration)>,
    /// Resume each namespace from the last event seen on reconnect. Default true.
    pub resume: bool,
    /// Messages queued for the application before the connection stops reading. Default 1024.
    pub queue: usize,
}

impl ClientConfig {
    /// The defaults, for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        ClientConfig {
            url: url.into(),
            namespaces: None,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
            heartbeat: Some((Duration::from_secs(20), Duration::from_secs(10))),
            resume: true,
            queue: 1024,
        }
    }

    /// Subscribes these namespaces (the generated `Namespace`, or names).
    pub fn namespaces<N: Into<&'static str>>(
        mut self,
        namespaces: impl IntoIterator<Item = N>,
    ) -> Self {
        self.namespaces = Some(
            namespaces
                .into_iter()
                .map(|n| n.into().to_owned())
                .collect(),
        );
        self
    }
}

/// Where the connection is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The first attempt is under way.
    Connecting,
    /// `ready` arrived.
    Connected,
    /// Waiting `delay` before attempt `attempt` (from 1).
    Reconnecting {
        /// Which attempt comes next.
        attempt: u32,
        /// How long until it.
        delay: Duration,
    },
    /// Closed normally ([`Client::close`], or the server's 1000); no reconnect follows.
    Disconnected,
    /// Given up: a refused token or request. The reason names the server's `error` code.
    Failed(String),
}

/// An event as received.
#[derive(Debug, Clone, PartialEq)]
pub struct Received<E> {
    /// The payload, decoded by type.
    pub event: E,
    /// The namespace.
    pub namespace: String,
    /// `<namespace>.<epoch>.<offset>`.
    pub id: String,
    /// Milliseconds since the Unix epoch.
    pub timestamp: u64,
}

/// What [`Client::next`] yields.
#[derive(Debug, Clone, PartialEq)]
pub enum Message<E> {
    /// An event (duplicates from a resume are dropped by id).
    Event(Received<E>),
    /// `ready`, `subscribed`, `unsubscribed`, `pong` or `error`. A `ready` after a reconnect
    /// carries `recovered`: `false` for a namespace means reload that state.
    Control(ControlMessage),
    /// The connection's status changed.
    Status(Status),
    /// An event of a type this client's catalog does not have (the server runs a newer one):
    /// its `event` is `{"type": ..., "data": ...}` as JSON text.
    Unknown(Received<String>),
    /// The server's catalog (its `ready`'s `catalogVersion`) is not the one this client was
    /// built with. Sent after that `ready`; events of known types still arrive decoded, unknown
    /// ones as [`Message::Unknown`], and a payload that no longer matches its type as
    /// [`Message::Unreadable`].
    CatalogMismatch {
        /// The server's catalog version.
        server: String,
        /// This client's (`CATALOG_VERSION`).
        client: &'static str,
    },
    /// A frame this client could not read: not JSON, or a payload that does not match its type
    /// (a server built from another catalog).
    Unreadable(String),
    /// The token source failed (its `Err`); the attempt is retried with backoff.
    TokenUnavailable(String),
}

enum Command {
    Subscribe(Vec<String>),
    Unsubscribe(Vec<String>),
    Close,
}

/// A connection to an omnicast server; see the [module](self) docs. Dropping it closes the
/// connection.
#[derive(Debug)]
pub struct Client<E> {
    messages: mpsc::Receiver<Message<E>>,
    commands: mpsc::UnboundedSender<Command>,
    task: tokio::task::JoinHandle<()>,
}

impl<E: CatalogEvents> Client<E> {
    /// Starts connecting (on the current Tokio runtime) and returns at once.
    pub fn connect(config: ClientConfig, token: impl Into<TokenSource>) -> Self {
        let (tx, messages) = mpsc::channel(config.queue.max(1));
        let (commands, rx) = mpsc::unbounded_channel();
        let state = State {
            desired: config.namespaces.clone(),
            early: BTreeSet::new(),
            config,
            token: token.into(),
            positions: HashMap::new(),
            tx,
            commands: rx,
            attempt: 0,
            expired_in_a_row: 0,
            _events: PhantomData,
        };
        Client {
            messages,
            commands,
            task: tokio::spawn(state.run()),
        }
    }

    /// The next message; `None` once the client stopped (after `Disconnected` or `Failed`).
    pub async fn next(&mut self) -> Option<Message<E>> {
        self.messages.recv().await
    }

    /// Adds namespaces to the subscription (now, and on every reconnect).
    pub fn subscribe<N: Into<&'static str>>(&self, namespaces: impl IntoIterator<Item = N>) {
        let names = namespaces
            .into_iter()
            .map(|n| n.into().to_owned())
            .collect();
        let _ = self.commands.send(Command::Subscribe(names));
    }

    /// Removes namespaces from the subscription.
    pub fn unsubscribe<N: Into<&'static str>>(&self, namespaces: impl IntoIterator<Item = N>) {
        let names = namespaces
            .into_iter()
            .map(|n| n.into().to_owned())
            .collect();
        let _ = self.commands.send(Command::Unsubscribe(names));
    }

    /// Closes the connection normally; `next` then yields `Status(Disconnected)` and `None`.
    pub fn close(&self) {
        let _ = self.commands.send(Command::Close);
    }
}

impl<E> Drop for Client<E> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What ended a connection attempt.
enum Outcome {
    /// Try again: after this delay, or the backoff's.
    Retry(Option<Duration>),
    /// Stop with this status.
    Stop(Status),
}

struct State<E> {
    config: ClientConfig,
    token: TokenSource,
    /// `None` until the first `ready` names the server's default.
    desired: Option<BTreeSet<String>>,
    /// Subscribed before that first `ready`: added to the default then.
    early: BTreeSet<String>,
    positions: HashMap<String, Position>,
    tx: mpsc::Sender<Message<E>>,
    commands: mpsc::UnboundedReceiver<Command>,
    attempt: u32,
    expired_in_a_row: u32,
    _events: PhantomData<fn() -> E>,
}

impl<E: CatalogEvents> State<E> {
    async fn run(mut self) {
        if !self.emit(Message::Status(Status::Connecting)).await {
            return;
        }
        loop {
            let outcome = match self.next_token().await {
                Ok(token) => self.attempt_once(&token).await,
                Err(why) => {
                    if !self.emit(Message::TokenUnavailable(why)).await {
                        return;
                    }
                    Outcome::Retry(None)
                }
            };
            let delay = match outcome {
                Outcome::Stop(status) => {
                    let _ = self.tx.send(Message::Status(status)).await;
                    return;
                }
                Outcome::Retry(delay) => delay.unwrap_or_else(|| self.backoff()),
            };
            self.attempt += 1;
            let status = Status::Reconnecting {
                attempt: self.attempt,
                delay,
            };
            if !self.emit(Message::Status(status)).await || !self.wait(delay).await {
                return;
            }
        }
    }

    async fn next_token(&mut self) -> Result<String, String> {
        match &self.token {
            TokenSource::Fixed(token) => Ok(token.clone()),
            TokenSource::Renew(f) => f().await,
        }
    }

    /// `min(max, min + random(0, min * 2^attempt))`.
    fn backoff(&self) -> Duration {
        let (min, max) = (self.config.min_delay, self.config.max_delay);
        let spread = backoff::exponential(min, self.attempt, max);
        (min + backoff::jitter(spread)).min(max)
    }

    /// Sleeps `delay`, still taking commands. False when the client is gone or closed.
    async fn wait(&mut self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        loop {
            tokio::select! {
                () = sleep_until(until) => return true,
                command = self.commands.recv() => match command {
                    None => return false,
                    Some(Command::Close) => {
                        let _ = self.tx.send(Message::Status(Status::Disconnected)).await;
                        return false;
                    }
                    Some(command) => self.apply(command),
                },
            }
        }
    }

    fn apply(&mut self, command: Command) {
        match command {
            Command::Subscribe(names) => match &mut self.desired {
                Some(desired) => desired.extend(names),
                None => self.early.extend(names),
            },
            Command::Unsubscribe(names) => {
                for name in names {
                    match &mut self.desired {
                        Some(desired) => desired.remove(&name),
                        None => self.early.remove(&name),
                    };
                    self.positions.remove(&name);
                }
            }
            Command::Close => {}
        }
    }

    fn url(&self, token: &str) -> String {
        let mut query = vec![format!("token={}", encode(token))];
        if let Some(desired) = &self.desired {
            let names: Vec<&str> = desired.iter().map(String::as_str).collect();
            query.push(format!("namespaces={}", names.join(",")));
        }
        let since = self.since(self.desired.iter().flatten());
        if !since.is_empty() {
            query.push(format!("since={}", since.join(",")));
        }
        let sep = if self.config.url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!("{}{sep}{}", self.config.url, query.join("&"))
    }

    fn since<'n>(&self, namespaces: impl IntoIterator<Item = &'n String>) -> Vec<String> {
        if !self.config.resume {
            return Vec::new();
        }
        namespaces
            .into_iter()
            .filter_map(|ns| self.positions.get(ns).map(Position::to_string))
            .collect()
    }

    async fn attempt_once(&mut self, token: &str) -> Outcome {
        match tokio_tungstenite::connect_async(self.url(token)).await {
            Ok((socket, _)) => self.session(socket).await,
            Err(tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .map(Duration::from_secs);
                let body: serde_json::Value = response
                    .body()
                    .as_deref()
                    .and_then(|b| serde_json::from_slice(b).ok())
                    .unwrap_or_default();
                self.refused(status, &body, retry_after)
            }
            Err(_) => Outcome::Retry(None),
        }
    }

    fn refused(
        &mut self,
        status: u16,
        body: &serde_json::Value,
        retry_after: Option<Duration>,
    ) -> Outcome {
        let error = body["error"].as_str().unwrap_or("");
        let renewable = matches!(self.token, TokenSource::Renew(_));
        if error == "token_expired" && renewable && self.expired_in_a_row == 0 {
            self.expired_in_a_row += 1;
            return Outcome::Retry(Some(Duration::ZERO));
        }
        if error == error_code::INVALID_SINCE {
            self.positions.clear();
            return Outcome::Retry(Some(Duration::ZERO));
        }
        if matches!(status, 400 | 401 | 403) {
            let message = body["message"].as_str().unwrap_or("refused");
            return Outcome::Stop(Status::Failed(format!("{status} {error}: {message}")));
        }
        Outcome::Retry(retry_after)
    }

    async fn session<S>(&mut self, socket: tokio_tungstenite::WebSocketStream<S>) -> Outcome
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let (mut sink, mut stream) = socket.split();
        let (interval, timeout) = self.config.heartbeat.unzip();
        let far = Duration::from_secs(86_400 * 365);
        let mut deadline = timeout.map(|t| Instant::now() + t);
        let mut next_ping = Instant::now() + interval.unwrap_or(far);
        let mut ping_id = 0u64;
        let mut connected = false;
        // What the server has, or has been asked for, on this connection.
        let mut requested: BTreeSet<String> = BTreeSet::new();
        loop {
            tokio::select! {
                frame = stream.next() => match frame {
                    Some(Ok(WsMessage::Text(text))) => {
                        deadline = None;
                        match self.frame(&text).await {
                            Err(()) => return Outcome::Stop(Status::Disconnected),
                            Ok(Some(ready)) => {
                                connected = true;
                                self.attempt = 0;
                                self.expired_in_a_row = 0;
                                requested = ready.iter().cloned().collect();
                                if self.desired.is_none() {
                                    let early = std::mem::take(&mut self.early);
                                    self.desired = Some(requested.iter().cloned().chain(early).collect());
                                }
                                if !self.emit(Message::Status(Status::Connected)).await {
                                    return Outcome::Stop(Status::Disconnected);
                                }
                                if self.sync(&mut sink, &mut requested).await.is_err() {
                                    return Outcome::Retry(None);
                                }
                            }
                            Ok(None) => {}
                        }
                    }
                    Some(Ok(WsMessage::Close(frame))) => {
                        let code = frame.as_ref().map_or(1005, |f| u16::from(f.code));
                        return self.closed(code);
                    }
                    Some(Ok(_)) => deadline = None,
                    Some(Err(_)) | None => return Outcome::Retry(None),
                },
                command = self.commands.recv() => match command {
                    None | Some(Command::Close) => {
                        let frame = CloseFrame { code: CloseCode::Normal, reason: "bye".into() };
                        let _ = sink.send(WsMessage::Close(Some(frame))).await;
                        return Outcome::Stop(Status::Disconnected);
                    }
                    Some(command) => {
                        self.apply(command);
                        if connected && self.sync(&mut sink, &mut requested).await.is_err() {
                            return Outcome::Retry(None);
                        }
                    }
                },
                () = sleep_until(next_ping), if connected && interval.is_some() => {
                    ping_id += 1;
                    let ping = ClientMessage::Ping { id: Some(PingId::Number(ping_id.into())) };
                    if sink.send(WsMessage::Text(ping.to_json().into())).await.is_err() {
                        return Outcome::Retry(None);
                    }
                    next_ping = Instant::now() + interval.unwrap_or(far);
                    deadline = deadline.or(timeout.map(|t| Instant::now() + t));
                }
                () = sleep_until(deadline.unwrap_or_else(|| Instant::now() + far)), if deadline.is_some() => {
                    // Silent for too long: the link is dead, whatever TCP thinks.
                    return Outcome::Retry(None);
                }
            }
        }
    }

    /// Sends the (un)subscribes that turn `requested` into `desired`.
    async fn sync<S>(
        &self,
        sink: &mut S,
        requested: &mut BTreeSet<String>,
    ) -> Result<(), tungstenite::Error>
    where
        S: futures_util::Sink<WsMessage, Error = tungstenite::Error> + Unpin,
    {
        let desired = self.desired.clone().unwrap_or_default();
        let add: Vec<String> = desired.difference(requested).cloned().collect();
        let remove: Vec<String> = requested.difference(&desired).cloned().collect();
        if !add.is_empty() {
            let since = self.since(&add);
            let message = ClientMessage::Subscribe {
                namespaces: add,
                since,
            };
            sink.send(WsMessage::Text(message.to_json().into())).await?;
        }
        if !remove.is_empty() {
            let message = ClientMessage::Unsubscribe { namespaces: remove };
            sink.send(WsMessage::Text(message.to_json().into())).await?;
        }
        *requested = desired;
        Ok(())
    }

    fn closed(&mut self, code: u16) -> Outcome {
        match code {
            c if c == close::NORMAL.code => Outcome::Stop(Status::Disconnected),
            // The token is done either way: only a new one can come back.
            c if c == close::TOKEN_EXPIRED.code || c == close::REVOKED.code => match self.token {
                TokenSource::Renew(_) => Outcome::Retry(Some(Duration::ZERO)),
                TokenSource::Fixed(_) => {
                    let why = if c == close::REVOKED.code {
                        "4003 revoked"
                    } else {
                        "4001 token_expired"
                    };
                    Outcome::Stop(Status::Failed(format!("{why}: nothing renews the token")))
                }
            },
            c if c == close::RESUME_REQUIRED.code => Outcome::Retry(Some(Duration::ZERO)),
            _ => Outcome::Retry(None),
        }
    }

    /// Routes one text frame. `Ok(Some(namespaces))` for a `ready`; `Err` when the client is gone.
    async fn frame(&mut self, text: &str) -> Result<Option<Vec<String>>, ()> {
        let envelope = match ServerMessage::parse(text) {
            Ok(ServerMessage::Event(envelope)) => envelope,
            Ok(ServerMessage::Control(control)) => return self.control(control).await,
            Err(err) => return self.unreadable(format!("{err}: {}", clip(text))).await,
        };
        if let Ok(position) = Position::parse(&envelope.id)
            && !self.advance(position)
        {
            return Ok(None); // a duplicate
        }
        let namespace = envelope.namespace.into_owned();
        let id = envelope.id.into_owned();
        let timestamp = envelope.timestamp;
        let message = match E::decode(&envelope.kind, envelope.data.get()) {
            Some(Ok(event)) => Message::Event(Received {
                event,
                namespace,
                id,
                timestamp,
            }),
            Some(Err(err)) => {
                return self.unreadable(format!("`{}`: {err}", envelope.kind)).await;
            }
            None => Message::Unknown(Received {
                event: format!(
                    r#"{{"type":{},"data":{}}}"#,
                    serde_json::Value::from(envelope.kind.as_ref()),
                    envelope.data.get()
                ),
                namespace,
                id,
                timestamp,
            }),
        };
        if self.emit(message).await {
            Ok(None)
        } else {
            Err(())
        }
    }

    /// Hands a control message on; a `ready` or `subscribed` moves positions on first.
    async fn control(&mut self, control: ControlMessage) -> Result<Option<Vec<String>>, ()> {
        let mut mismatch = None;
        let ready = match &control {
            ControlMessage::Ready {
                namespaces,
                positions,
                recovered,
                catalog_version,
                ..
            } => {
                self.joined(positions, recovered);
                if *catalog_version != E::CATALOG_VERSION {
                    mismatch = Some(Message::CatalogMismatch {
                        server: catalog_version.clone(),
                        client: E::CATALOG_VERSION,
                    });
                }
                Some(namespaces.clone())
            }
            ControlMessage::Subscribed {
                positions,
                recovered,
                ..
            } => {
                self.joined(positions, recovered);
                None
            }
            _ => None,
        };
        if !self.emit(Message::Control(control)).await {
            return Err(());
        }
        if let Some(mismatch) = mismatch
            && !self.emit(mismatch).await
        {
            return Err(());
        }
        Ok(ready)
    }

    async fn unreadable(&self, why: String) -> Result<Option<Vec<String>>, ()> {
        if self.emit(Message::Unreadable(why)).await {
            Ok(None)
        } else {
            Err(())
        }
    }

    /// Namespaces joined: each moves on to where it was joined, except those whose missed
    /// events follow.
    fn joined(&mut self, positions: &BTreeMap<String, String>, recovered: &BTreeMap<String, bool>) {
        for (namespace, id) in positions {
            if recovered.get(namespace) != Some(&true)
                && let Ok(position) = Position::parse(id)
            {
                self.advance(position);
            }
        }
    }

    /// Moves a namespace on to `position` unless it is there or later in the same epoch.
    /// False for a duplicate.
    fn advance(&mut self, position: Position) -> bool {
        if let Some(known) = self.positions.get(&position.namespace)
            && known.epoch == position.epoch
            && position.offset <= known.offset
        {
            return false;
        }
        self.positions.insert(position.namespace.clone(), position);
        true
    }

    /// Hands a message to the application; false when it is gone.
    async fn emit(&self, message: Message<E>) -> bool {
        self.tx.send(message).await.is_ok()
    }
}

fn clip(text: &str) -> &str {
    let end = text.char_indices().nth(200).map_or(text.len(), |(i, _)| i);
    &text[..end]
}

/// Percent-encodes a query value (tokens are base64url and dots, but be safe).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
