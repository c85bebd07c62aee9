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

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::event::CatalogEvents;
use crate::protocol::ControlMessage;

mod connection;
mod positions;

use connection::State;

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
    /// Positions to resume from on the first connect (ids, as `GET /api/positions` answers
    /// them): the events after a snapshot taken at those positions. Empty by default.
    pub resume_from: Vec<String>,
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
            resume_from: Vec::new(),
        }
    }

    /// Resumes from these positions at the first connect (`GET /api/positions`' ids, read before
    /// the snapshot the application loaded): every event after them arrives once, in order, or
    /// `ready` says `recovered: false` for the namespace (load the snapshot again).
    pub fn resume_from<I: Into<String>>(mut self, positions: impl IntoIterator<Item = I>) -> Self {
        self.resume_from = positions.into_iter().map(Into::into).collect();
        self
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
    /// The event's id, `<namespace>.<epoch>.<sealed position>`: unique, and what a resume
    /// names; opaque (ids do not compare, the server's order is the order).
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
        let state = State::new(config, token.into(), tx, rx);
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
