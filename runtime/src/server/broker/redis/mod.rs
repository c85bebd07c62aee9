//! The Redis broker: several nodes share one Redis, which numbers every namespace's events,
//! keeps their history and carries them to every node.
//!
//! - **Publishing** runs one script ([`scripts::PUBLISH`]) per request: it gives each event the
//!   next offset of its namespace, appends it to the namespace's history stream and publishes it
//!   on the namespace's channel, atomically. Nothing is delivered by the publishing node itself:
//!   every node, the publisher's included, delivers what arrives on the channels, so all of them
//!   deliver one namespace's events in one order.
//! - **Following** (one task per node): subscribes to every namespace's channel, delivers each
//!   event under its stream's lock (see [`streams`](super::streams)), and notices a gap by its
//!   offset. After a gap or a reconnect it reads what it missed from the history and delivers it;
//!   when the history no longer holds it (or Redis started a new epoch), it closes the connections
//!   of that namespace with 4010, so that their clients resume and learn `recovered: false`.
//! - **Resuming** uses the node's own recent stream when it reaches back far enough, and
//!   otherwise reads the shared history and joins it with what the node delivered since.
//! - **Presence**: which nodes hold which users, and a heartbeat per node, in Redis; a node whose
//!   heartbeat expired is reaped by one surviving node, which emits its users' offline events.

mod record;
mod scripts;
mod sink;
mod writer;

pub use sink::RedisSink;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use redis::{FromRedisValue, Script, Value};
use tokio::time::{Instant, timeout};

use crate::catalog::{Catalog, PresenceTrigger};
use crate::protocol::close;
use crate::role::RoleMask;
use crate::server::broker::streams::{self, Local, Remote, Stream, Streams};
use crate::server::broker::{
    Batch, BoxFuture, Broker, BrokerError, PresenceChange, ResumeRequest, Resumed, new_epoch,
};
use crate::server::hub::Hub;
use crate::server::publication::now_ms;
use writer::{Writer, backoff};

/// How many resumes one node reads from the shared history at once; the others wait their turn.
const HISTORY_READS: usize = 4;

/// How to reach Redis, and how the broker behaves there. Its `Debug` shows the URL without
/// credentials.
#[derive(Clone)]
pub struct RedisConfig {
    /// `redis://host:port[/db]` (`rediss://` is not supported).
    pub url: String,
    /// Prepended to every key and channel, so several catalogs can share one Redis.
    pub prefix: String,
    /// How long one command may take before the broker counts Redis as unreachable.
    pub response_timeout: Duration,
    /// A node whose heartbeat is older than this is dead: its users go offline.
    pub presence_ttl: Duration,
}

impl RedisConfig {
    /// Defaults: prefix `omnicast`, 2 s per command, nodes dead after 5 s of silence.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            prefix: "omnicast".into(),
            response_timeout: Duration::from_secs(2),
            presence_ttl: Duration::from_secs(5),
        }
    }

    /// Where Redis is, without any credentials the URL carries: what may be printed.
    pub fn address(&self) -> String {
        writer::redact(&self.url)
    }
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let RedisConfig {
            url: _,
            prefix,
            response_timeout,
            presence_ttl,
        } = self;
        f.debug_struct("RedisConfig")
            .field("url", &self.address())
            .field("prefix", prefix)
            .field("response_timeout", response_timeout)
            .field("presence_ttl", presence_ttl)
            .finish()
    }
}

/// The broker for several nodes sharing one Redis. Dropping it stops its tasks.
pub struct RedisBroker {
    inner: Arc<Inner>,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker")
            .field("redis", &self.inner.address)
            .field("node", &self.inner.node)
            .finish_non_exhaustive()
    }
}

struct Inner {
    hub: Arc<Hub>,
    catalog: &'static Catalog,
    config: RedisConfig,
    /// Where Redis is, without credentials: what logs and errors name.
    address: String,
    /// This node's id in the presence keys.
    node: String,
    streams: Streams,
    writer: Arc<Writer>,
    /// Up while the subscription is up and every stream caught up after it.
    following: AtomicBool,
    /// Resumes reading the shared history at once. Each connection resumes once at a time (its
    /// next `subscribe` waits for the replay to be written); this bounds the node's reads and
    /// the replays it rebuilds from them however many connections ask.
    history_reads: tokio::sync::Semaphore,
    read: Script,
    rotate: Script,
    join: Script,
    leave: Script,
    heartbeat: Script,
    reap: Script,
}

/// What reading a stream after an offset found.
struct Read {
    epoch: String,
    top: u64,
    /// The kept entries after the offset (offset, kept at, record); `None` when more were
    /// missed than asked for.
    entries: Option<Vec<(u64, u64, String)>>,
}

impl RedisBroker {
    /// A broker for the nodes sharing the Redis at `config.url`, delivering into `hub`. Starts
    /// following at once; it is [`ready`](Broker::ready) once Redis answered. Must be called
    /// within a Tokio runtime.
    pub fn start(hub: Arc<Hub>, config: RedisConfig) -> Result<Self, BrokerError> {
        let catalog = hub.catalog();
        let writer = Arc::new(Writer::new(catalog, &config)?);
        let inner = Arc::new(Inner {
            catalog,
            // Unsynchronized until the first read tells each stream's epoch.
            streams: Streams::new(catalog, ""),
            hub,
            node: format!("node-{}", new_epoch()),
            address: writer.address.clone(),
            config,
            writer,
            following: AtomicBool::new(false),
            history_reads: tokio::sync::Semaphore::new(HISTORY_READS),
            read: Script::new(scripts::READ),
            rotate: Script::new(scripts::ROTATE),
            join: Script::new(scripts::JOIN),
            leave: Script::new(scripts::LEAVE),
            heartbeat: Script::new(scripts::HEARTBEAT),
            reap: Script::new(scripts::REAP),
        });
        let tasks = vec![
            tokio::spawn(inner.clone().follow()).abort_handle(),
            tokio::spawn(inner.clone().keep_presence()).abort_handle(),
        ];
        Ok(RedisBroker { inner, tasks })
    }

    /// Waits until the broker follows Redis, at most `within`; whether it does.
    pub async fn wait_ready(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while !self.ready() {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// This node's id in Redis' presence keys.
    pub fn node_id(&self) -> &str {
        &self.inner.node
    }
}

impl Drop for RedisBroker {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Broker for RedisBroker {
    fn publish(&self, batch: Batch) -> BoxFuture<'_, Result<Vec<String>, BrokerError>> {
        Box::pin(self.inner.writer.publish(batch))
    }

    fn resume<'a>(
        &'a self,
        requests: &'a [ResumeRequest],
        max_behind: u64,
        attach: &'a mut (dyn FnMut(&[Resumed]) + Send),
    ) -> BoxFuture<'a, ()> {
        Box::pin(self.inner.resume(requests, max_behind, attach))
    }

    fn presence(&self, change: PresenceChange<'_>) -> BoxFuture<'_, bool> {
        let inner = &self.inner;
        let role = inner.catalog.roles[change.role as usize].name;
        let user = change.user_id.to_owned();
        let joined = change.joined;
        Box::pin(async move {
            let script = if joined { &inner.join } else { &inner.leave };
            let mut call = script.prepare_invoke();
            call.key(inner.node_users_key(&inner.node))
                .key(inner.user_nodes_key(&user))
                .arg(&inner.node)
                .arg(&user)
                .arg(role);
            match inner.writer.link.invoke::<i64>(&call).await {
                Ok(changed) => changed == 1,
                Err(err) => {
                    tracing::warn!(redis = %inner.address, %err, joined, "presence not recorded");
                    false
                }
            }
        })
    }

    fn ready(&self) -> bool {
        self.inner.following.load(Ordering::Acquire)
    }

    fn outcome_may_be_unknown(&self) -> bool {
        true
    }
}

impl Inner {
    /// Reads `namespace`'s stream after `after`, at most `most` entries.
    async fn read(&self, namespace: usize, after: u64, most: u64) -> Result<Read, BrokerError> {
        let keys = &self.writer.keys[namespace];
        let mut call = self.read.prepare_invoke();
        call.key(&keys.meta)
            .key(&keys.history)
            .arg(after)
            .arg(most)
            .arg(new_epoch());
        let value: Value = self.writer.link.invoke(&call).await?;
        parse_read(value).map_err(|err| BrokerError::new(format!("unexpected reply: {err}")))
    }

    /// Every event of `namespace` after `since`, from the shared history, when it still holds
    /// all of them (and no more than `max_behind`); `None` otherwise.
    async fn fetch(&self, namespace: usize, since: u64, max_behind: u64) -> Option<Remote> {
        let _turn = self
            .history_reads
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let read = match self.read(namespace, since, max_behind).await {
            Ok(read) => read,
            Err(err) => {
                tracing::warn!(redis = %self.address, %err, "history unreadable: not recovered");
                return None;
            }
        };
        let (size, ttl_ms) = self.catalog.namespaces[namespace]
            .history
            .map_or((0, 0), |h| {
                (u64::from(h.size), u64::from(h.ttl_secs) * 1000)
            });
        // Redis trims approximately and keeps more: recovery holds to the declared size.
        if read.top.saturating_sub(since) > size {
            return None;
        }
        let now = now_ms();
        let mut entries = Vec::new();
        for (expected, (offset, kept, record)) in (since + 1..).zip(read.entries?) {
            if offset != expected || now.saturating_sub(kept) >= ttl_ms {
                return None;
            }
            let publication = record::decode(self.catalog, &read.epoch, offset, &record).ok()?;
            entries.push(Arc::new(publication));
        }
        if since + entries.len() as u64 != read.top && read.top >= since {
            return None;
        }
        Some(Remote {
            epoch: read.epoch,
            top: read.top,
            entries,
        })
    }

    async fn resume(
        &self,
        requests: &[ResumeRequest],
        max_behind: u64,
        attach: &mut (dyn FnMut(&[Resumed]) + Send),
    ) {
        // What the shared history said, per request, once read (`Some(None)`: not recoverable).
        let mut remote: Vec<Option<Option<Remote>>> = requests.iter().map(|_| None).collect();
        for attempt in 0..3 {
            let pending = self.try_attach(requests, max_behind, &remote, attempt == 2, attach);
            if pending.is_empty() {
                return;
            }
            for (i, local) in pending {
                let request = &requests[i];
                let since = request.since.as_ref().expect("only resumes are pending");
                match local {
                    // This node has not yet delivered what the client saw on another: it will
                    // in a moment.
                    Local::Ahead if remote[i].is_some() => {
                        let wait = self.config.response_timeout;
                        self.streams
                            .wait_for(request.namespace, since.offset, wait)
                            .await;
                    }
                    _ => {
                        remote[i] = Some(
                            self.fetch(request.namespace, since.offset, max_behind)
                                .await,
                        );
                    }
                }
            }
        }
    }

    /// Attaches when every request is decided (or `last`, deciding the rest as not recovered);
    /// otherwise returns the undecided requests.
    fn try_attach(
        &self,
        requests: &[ResumeRequest],
        max_behind: u64,
        remote: &[Option<Option<Remote>>],
        last: bool,
        attach: &mut (dyn FnMut(&[Resumed]) + Send),
    ) -> Vec<(usize, Local)> {
        let mut locked = self.streams.lock_all(requests);
        let now = now_ms();
        let mut pending = Vec::new();
        let mut decided = Vec::with_capacity(requests.len());
        for (i, request) in requests.iter().enumerate() {
            let stream: &mut Stream = locked.get(request.namespace);
            let local = request.since.as_ref().map(|since| match &remote[i] {
                None => stream.decide(since, max_behind, now),
                Some(None) => Local::Lost,
                Some(Some(remote)) if since.offset > remote.top => Local::Lost,
                Some(Some(remote)) => stream.decide_with(since, max_behind, remote),
            });
            match local {
                Some(local @ (Local::Ahead | Local::Older)) if !last => pending.push((i, local)),
                local => decided.push(streams::resumed(request, stream, local)),
            }
        }
        if pending.is_empty() {
            attach(&decided);
        }
        pending
    }

    /// Follows Redis for as long as the node runs: subscribes, catches up, delivers; after any
    /// failure, again, with backoff and jitter.
    async fn follow(self: Arc<Self>) {
        let mut failures = 0u32;
        loop {
            let err = self.follow_once(&mut failures).await;
            let was = self.following.swap(false, Ordering::AcqRel);
            failures = failures.saturating_add(1);
            let delay = backoff(failures);
            if was || failures == 1 {
                tracing::warn!(redis = %self.address, %err, retry_in = ?delay, "not following Redis");
            } else {
                tracing::debug!(redis = %self.address, %err, retry_in = ?delay, "not following Redis");
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// One subscription, until it fails; the reason.
    async fn follow_once(&self, failures: &mut u32) -> String {
        let limit = self.config.response_timeout;
        let pubsub = match timeout(limit, self.writer.link.client.get_async_pubsub()).await {
            Ok(Ok(pubsub)) => pubsub,
            Ok(Err(err)) => return format!("cannot connect: {err}"),
            Err(_) => return "cannot connect: timed out".into(),
        };
        let (mut sink, mut messages) = pubsub.split();
        let channels: Vec<&str> = self
            .writer
            .keys
            .iter()
            .map(|k| k.channel.as_str())
            .collect();
        match timeout(limit, sink.subscribe(&channels)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return format!("cannot subscribe: {err}"),
            Err(_) => return "cannot subscribe: timed out".into(),
        }
        // Subscribed first, then caught up: what is published meanwhile waits in the
        // subscription and is recognized by its offset.
        for namespace in 0..self.writer.keys.len() {
            if let Err(err) = self.resync(namespace).await {
                return err;
            }
        }
        self.following.store(true, Ordering::Release);
        if *failures > 0 {
            tracing::info!(redis = %self.address, "following Redis again");
        }
        *failures = 0;
        // An idle subscription is probed: after some failures a dead one stays silent.
        let mut probe = tokio::time::interval_at(Instant::now() + limit * 2, limit * 2);
        // The messages of one publish arrive back to back: they are delivered together once
        // the last one is in, so that connections wake to the whole batch, not to its first
        // event alone.
        let mut batch: Vec<(usize, String)> = Vec::new();
        loop {
            tokio::select! {
                message = messages.next() => {
                    let Some(message) = message else {
                        return "the subscription closed".into();
                    };
                    let Some(namespace) = self
                        .writer
                        .keys
                        .iter()
                        .position(|k| k.channel == message.get_channel_name())
                    else {
                        continue;
                    };
                    let payload = String::from_utf8_lossy(message.get_payload_bytes()).into_owned();
                    let complete = batch_place(&payload).is_none_or(|(index, count)| index >= count);
                    batch.push((namespace, payload));
                    if complete {
                        for (namespace, payload) in batch.drain(..) {
                            if let Err(err) = self.on_message(namespace, &payload).await {
                                return err;
                            }
                        }
                    }
                }
                _ = probe.tick() => {
                    match timeout(limit, sink.ping::<Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(err)) => return format!("the subscription failed: {err}"),
                        Err(_) => return "the subscription stopped answering".into(),
                    }
                }
            }
        }
    }

    /// One event from a channel: `epoch offset index count record`.
    async fn on_message(&self, namespace: usize, payload: &str) -> Result<(), String> {
        let mut fields = payload.splitn(5, ' ');
        let parsed = (|| {
            let epoch = fields.next()?;
            let offset = fields.next()?.parse::<u64>().ok()?;
            let index = fields.next()?.parse::<u64>().ok()?;
            let count = fields.next()?.parse::<u64>().ok()?;
            Some((epoch, offset, index, count, fields.next()?))
        })();
        let Some((epoch, offset, index, count, record)) = parsed else {
            tracing::error!(namespace, "unreadable message on the channel: ignored");
            return Ok(());
        };
        if index == 1 {
            // The first event of a publish (see `Hub::begin_round`).
            self.hub.begin_round();
        }
        // The rest of the batch is on its way (see `Hub::set_more_coming`).
        self.hub.set_more_coming(index < count);
        {
            let mut stream = self.streams.lock(namespace);
            if stream.epoch == epoch {
                if offset <= stream.top {
                    return Ok(()); // delivered already, by a catch-up
                }
                if offset == stream.top + 1 {
                    self.deliver(&mut stream, offset, record);
                    return Ok(());
                }
            }
        }
        // A gap, or another epoch: catch up from the history.
        self.resync(namespace).await
    }

    /// Delivers the event at `offset` (the stream's next) to this node's hub.
    fn deliver(&self, stream: &mut Stream, offset: u64, record: &str) {
        match record::decode(self.catalog, &stream.epoch, offset, record) {
            Ok(publication) => {
                let publication = Arc::new(publication);
                stream.append(publication.clone(), now_ms());
                self.hub.deliver(&publication);
            }
            Err(err) => {
                // Another node runs another catalog. The offset is spent; the history here
                // cannot be contiguous across it.
                tracing::error!(namespace = stream.namespace, offset, %err, "event skipped");
                let epoch = stream.epoch.clone();
                stream.reset(epoch, offset);
            }
        }
        self.streams.advanced();
    }

    /// Brings `namespace`'s stream up to Redis' top: delivers what this node missed, or, when
    /// the history no longer holds it (or Redis started a new epoch), starts over at the top and
    /// closes the namespace's connections so that their clients resume.
    async fn resync(&self, namespace: usize) -> Result<(), String> {
        let (epoch, top) = {
            let stream = self.streams.lock(namespace);
            (stream.epoch.clone(), stream.top)
        };
        let most = self.catalog.namespaces[namespace]
            .history
            .map_or(0, |h| u64::from(h.size));
        let read = self
            .read(namespace, top, most)
            .await
            .map_err(|err| err.to_string())?;
        let mut stream = self.streams.lock(namespace);
        if read.epoch == epoch && read.top < top {
            // Redis went back in time (an older snapshot): its offsets would name other events.
            drop(stream);
            let mut call = self.rotate.prepare_invoke();
            let keys = &self.writer.keys[namespace];
            call.key(&keys.meta)
                .key(&keys.history)
                .arg(&epoch)
                .arg(new_epoch());
            self.writer
                .link
                .invoke::<i64>(&call)
                .await
                .map_err(|err| err.to_string())?;
            return Err(format!(
                "`{}` went back from offset {top} to {} in Redis: new epoch",
                self.catalog.namespaces[namespace].name, read.top
            ));
        }
        let contiguous = read.epoch == epoch
            && read.entries.as_ref().is_some_and(|entries| {
                entries.len() as u64 == read.top - top
                    && entries.iter().zip(top + 1..).all(|(e, o)| e.0 == o)
            });
        if contiguous {
            self.hub.begin_round();
            for (offset, _, record) in read.entries.expect("checked") {
                self.deliver(&mut stream, offset, &record);
            }
        } else if read.epoch != epoch || read.top != top {
            let first = stream.epoch.is_empty();
            stream.reset(read.epoch, read.top);
            self.streams.advanced();
            if !first {
                let closed = self
                    .hub
                    .close_subscribers_when_drained(namespace, close::RESUME_REQUIRED);
                tracing::warn!(
                    namespace = stream.namespace,
                    closed,
                    "events missed on this node are no longer in Redis (or Redis lost them): \
                     its clients resume"
                );
            }
        }
        Ok(())
    }

    /// Beats this node's heartbeat and reaps dead nodes, emitting their users' offline events.
    async fn keep_presence(self: Arc<Self>) {
        let ttl = self.config.presence_ttl;
        let every = (ttl / 5).max(Duration::from_millis(100));
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let mut beat = self.heartbeat.prepare_invoke();
            beat.key(self.nodes_key())
                .arg(&self.node)
                .arg(ttl.as_millis() as u64);
            if let Err(err) = self.writer.link.invoke::<i64>(&beat).await {
                tracing::debug!(%err, "heartbeat not recorded");
                continue;
            }
            let mut reap = self.reap.prepare_invoke();
            reap.key(self.nodes_key()).arg(&self.config.prefix);
            let gone: Vec<String> = match self.writer.link.invoke(&reap).await {
                Ok(gone) => gone,
                Err(err) => {
                    tracing::debug!(%err, "dead nodes not reaped");
                    continue;
                }
            };
            for pair in gone.chunks_exact(2) {
                self.announce_offline(&pair[0], &pair[1]).await;
            }
        }
    }

    /// Publishes the catalog's offline events for a user of a dead node.
    async fn announce_offline(&self, user_id: &str, role: &str) {
        let Some(role) = self.catalog.role_index(role) else {
            return;
        };
        tracing::info!(user = user_id, "offline: their node stopped");
        for rule in self.catalog.presence {
            if rule.on != PresenceTrigger::LastDisconnect
                || !rule.roles.contains(RoleMask::single(role))
            {
                continue;
            }
            let event = match (rule.build)(user_id, now_ms()) {
                Ok(event) => event,
                Err(err) => {
                    tracing::warn!(event = rule.event, %err, "presence event not built");
                    continue;
                }
            };
            let batch = Batch {
                events: vec![event],
                idempotency: None,
            };
            if let Err(err) = self.writer.publish(batch).await {
                tracing::warn!(event = rule.event, %err, "presence event not published");
            }
        }
    }

    fn nodes_key(&self) -> String {
        format!("{}:presence:nodes", self.config.prefix)
    }

    fn node_users_key(&self, node: &str) -> String {
        format!("{}:presence:node:{node}", self.config.prefix)
    }

    fn user_nodes_key(&self, user: &str) -> String {
        format!("{}:presence:user:{user}", self.config.prefix)
    }
}

/// A channel message's place in its publish: (index, count), from `epoch offset index count …`.
fn batch_place(payload: &str) -> Option<(u64, u64)> {
    let mut fields = payload.splitn(5, ' ').skip(2);
    let index = fields.next()?.parse().ok()?;
    let count = fields.next()?.parse().ok()?;
    Some((index, count))
}

fn parse_read(value: Value) -> Result<Read, String> {
    let Value::Array(mut parts) = value else {
        return Err("not an array".into());
    };
    if parts.len() != 3 {
        return Err(format!("{} parts", parts.len()));
    }
    let entries = parts.pop().expect("3 parts");
    let top: u64 = from_value(parts.pop().expect("3 parts"))?;
    let epoch: String = from_value(parts.pop().expect("3 parts"))?;
    let entries = match entries {
        Value::Nil | Value::Boolean(false) => None,
        Value::Array(entries) => Some(
            entries
                .into_iter()
                .map(parse_entry)
                .collect::<Result<Vec<_>, _>>()?,
        ),
        other => return Err(format!("entries: {other:?}")),
    };
    Ok(Read {
        epoch,
        top,
        entries,
    })
}

/// `[id, [field, value, …]]` as (offset, kept at, record).
fn parse_entry(entry: Value) -> Result<(u64, u64, String), String> {
    let (id, fields): (String, Vec<String>) = from_value(entry)?;
    let offset = id
        .split_once('-')
        .and_then(|(offset, _)| offset.parse().ok())
        .ok_or_else(|| format!("entry id `{id}`"))?;
    let field = |name: &str| {
        fields
            .chunks_exact(2)
            .find(|pair| pair[0] == name)
            .map(|pair| pair[1].clone())
            .ok_or_else(|| format!("entry {id} has no `{name}`"))
    };
    let kept = field("t")?
        .parse()
        .map_err(|_| format!("entry {id}: bad time"))?;
    Ok((offset, kept, field("r")?))
}

fn from_value<T: FromRedisValue>(value: Value) -> Result<T, String> {
    T::from_redis_value(value).map_err(|err| err.to_string())
}
