//! The task behind a [`Client`]: one connection attempt after another, each a session that
//! reads frames, answers commands, pings, refreshes the token and keeps the positions to
//! resume from.

use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};

use super::positions::Positions;
use super::{ClientConfig, Command, Message, Received, Status, TokenSource};
use crate::backoff;
use crate::event::CatalogEvents;
use crate::protocol::{
    ClientMessage, ControlMessage, PingId, ServerMessage, Token, close, error_code,
};

/// What a frame asks of the session, besides handing it on.
enum Routed {
    /// Nothing more.
    Nothing,
    /// `ready`: the namespaces subscribed, and until when the token holds.
    Ready(Vec<String>, Option<u64>),
    /// `refreshed`: the namespaces subscribed now, those dropped, and until when it holds.
    Refreshed(Vec<String>, Vec<String>, Option<u64>),
    /// `reauthorize`: refresh now.
    Reauthorize,
}

/// How long before its rights end a connection refreshes its token: a fifth of what is left,
/// at most a minute.
fn refresh_time(expires_at_ms: u64) -> Instant {
    let left = Duration::from_millis(expires_at_ms.saturating_sub(now_ms()));
    Instant::now() + left - (left / 5).min(Duration::from_secs(60))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What ended a connection attempt.
enum Outcome {
    /// Try again: after this delay, or the backoff's.
    Retry(Option<Duration>),
    /// Stop with this status.
    Stop(Status),
}

pub(super) struct State<E> {
    config: ClientConfig,
    token: TokenSource,
    /// `None` until the first `ready` names the server's default.
    desired: Option<BTreeSet<String>>,
    /// Subscribed before that first `ready`: added to the default then.
    early: BTreeSet<String>,
    positions: Positions,
    tx: mpsc::Sender<Message<E>>,
    commands: mpsc::UnboundedReceiver<Command>,
    attempt: u32,
    expired_in_a_row: u32,
    _events: PhantomData<fn() -> E>,
}

impl<E: CatalogEvents> State<E> {
    pub(super) fn new(
        config: ClientConfig,
        token: TokenSource,
        tx: mpsc::Sender<Message<E>>,
        commands: mpsc::UnboundedReceiver<Command>,
    ) -> Self {
        let mut positions = Positions::default();
        for id in &config.resume_from {
            positions.joined(super::positions::namespace_of(id), id);
        }
        State {
            desired: config.namespaces.clone(),
            early: BTreeSet::new(),
            config,
            token,
            positions,
            tx,
            commands,
            attempt: 0,
            expired_in_a_row: 0,
            _events: PhantomData,
        }
    }

    pub(super) async fn run(mut self) {
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
            .filter_map(|ns| self.positions.get(ns).cloned())
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
        // When to refresh the token (only a token source can), and until when the current
        // one holds: a refresh that does not move that on is not repeated.
        let renewable = matches!(self.token, TokenSource::Renew(_));
        let mut refresh_at: Option<Instant> = None;
        let mut expires_at: Option<u64> = None;
        loop {
            tokio::select! {
                frame = stream.next() => match frame {
                    Some(Ok(WsMessage::Text(text))) => {
                        deadline = None;
                        match self.frame(&text).await {
                            Err(()) => return Outcome::Stop(Status::Disconnected),
                            Ok(Routed::Ready(ready, until)) => {
                                expires_at = until;
                                refresh_at = until.map(refresh_time);
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
                            Ok(Routed::Refreshed(now, dropped, until)) => {
                                // The server dropped what the new role may not see: asking
                                // again would be no use.
                                if let Some(desired) = &mut self.desired {
                                    for name in &dropped {
                                        desired.remove(name);
                                    }
                                }
                                requested = now.into_iter().collect();
                                refresh_at = match (until, expires_at) {
                                    (Some(until), Some(before)) if until <= before => None,
                                    (until, _) => until.map(refresh_time),
                                };
                                expires_at = until;
                            }
                            Ok(Routed::Reauthorize) => refresh_at = Some(Instant::now()),
                            Ok(Routed::Nothing) => {}
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
                () = sleep_until(refresh_at.unwrap_or_else(|| Instant::now() + far)), if renewable && refresh_at.is_some() => {
                    refresh_at = None;
                    match self.next_token().await {
                        Ok(token) => {
                            let refresh = ClientMessage::Refresh { token: Token(token) };
                            if sink.send(WsMessage::Text(refresh.to_json().into())).await.is_err() {
                                return Outcome::Retry(None);
                            }
                        }
                        Err(why) => {
                            if !self.emit(Message::TokenUnavailable(why)).await {
                                return Outcome::Stop(Status::Disconnected);
                            }
                            refresh_at = Some(Instant::now() + self.backoff());
                        }
                    }
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

    /// Routes one text frame; `Err` when the client is gone.
    async fn frame(&mut self, text: &str) -> Result<Routed, ()> {
        let envelope = match ServerMessage::parse(text) {
            Ok(ServerMessage::Event(envelope)) => envelope,
            Ok(ServerMessage::Control(control)) => return self.control(control).await,
            Err(err) => return self.unreadable(format!("{err}: {}", clip(text))).await,
        };
        if !self.positions.received(&envelope.id) {
            return Ok(Routed::Nothing); // a duplicate
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
            Ok(Routed::Nothing)
        } else {
            Err(())
        }
    }

    /// Hands a control message on; a `ready` or `subscribed` moves positions on first.
    async fn control(&mut self, control: ControlMessage) -> Result<Routed, ()> {
        let mut mismatch = None;
        let routed = match &control {
            ControlMessage::Ready {
                namespaces,
                positions,
                recovered,
                catalog_version,
                expires_at,
                ..
            } => {
                self.joined(positions, recovered);
                if *catalog_version != E::CATALOG_VERSION {
                    mismatch = Some(Message::CatalogMismatch {
                        server: catalog_version.clone(),
                        client: E::CATALOG_VERSION,
                    });
                }
                Routed::Ready(namespaces.clone(), *expires_at)
            }
            ControlMessage::Subscribed {
                positions,
                recovered,
                ..
            } => {
                self.joined(positions, recovered);
                Routed::Nothing
            }
            ControlMessage::Refreshed {
                namespaces,
                dropped,
                expires_at,
                ..
            } => {
                for namespace in dropped {
                    self.positions.remove(namespace);
                }
                Routed::Refreshed(namespaces.clone(), dropped.clone(), *expires_at)
            }
            ControlMessage::Reauthorize { .. } => Routed::Reauthorize,
            _ => Routed::Nothing,
        };
        if !self.emit(Message::Control(control)).await {
            return Err(());
        }
        if let Some(mismatch) = mismatch
            && !self.emit(mismatch).await
        {
            return Err(());
        }
        Ok(routed)
    }

    async fn unreadable(&self, why: String) -> Result<Routed, ()> {
        if self.emit(Message::Unreadable(why)).await {
            Ok(Routed::Nothing)
        } else {
            Err(())
        }
    }

    /// Namespaces joined: each moves on to where it was joined, except those whose missed
    /// events follow (they move it on themselves).
    fn joined(&mut self, positions: &BTreeMap<String, String>, recovered: &BTreeMap<String, bool>) {
        for (namespace, id) in positions {
            if recovered.get(namespace) != Some(&true) {
                self.positions.joined(namespace, id);
            }
        }
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
