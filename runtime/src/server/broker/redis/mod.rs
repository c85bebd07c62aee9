//! The Redis broker: several nodes share one Redis, which numbers every namespace's events,
//! keeps their history and carries them to every node.
//!
//! - **Publishing** (`writer.rs`) runs one script ([`scripts::PUBLISH`]) per request: it gives each event the
//!   next offset of its namespace, appends it to the namespace's history stream and publishes it
//!   on the namespace's channel, atomically. Nothing is delivered by the publishing node itself:
//!   every node, the publisher's included, delivers what arrives on the channels, so all of them
//!   deliver one namespace's events in one order.
//! - **Following** (`follow.rs`, one task per node): subscribes to every namespace's channel, delivers each
//!   event under its stream's lock (see [`streams`](super::streams)), and notices a gap by its
//!   offset. After a gap or a reconnect it reads what it missed from the history and delivers it;
//!   when the history no longer holds it (or Redis started a new epoch), it closes the connections
//!   of that namespace with 4010, so that their clients resume and learn `recovered: false`.
//! - **Resuming** (`resume.rs`) uses the node's own recent stream when it reaches back far enough, and
//!   otherwise reads the shared history and joins it with what the node delivered since.
//! - **Presence** (`presence.rs`): which nodes hold which users, and a heartbeat per node, in Redis; a node whose
//!   heartbeat expired is reaped by one surviving node, which emits its users' offline events.

mod follow;
mod presence;
mod record;
mod resume;
mod revocations;
mod scripts;
pub(crate) mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::Script;
use tokio::time::Instant;

use crate::catalog::Catalog;
use crate::position::Position;
use crate::server::broker::streams::Streams;
use crate::server::broker::{
    Batch, BoxFuture, Broker, BrokerError, PresenceChange, ResumeRequest, Resumed, new_epoch,
};
use crate::server::hub::Hub;
use crate::server::revocation::RightsChange;
use writer::Writer;

/// How many resumes one node reads from the shared history at once; the others wait their turn.
const HISTORY_READS: usize = 4;

/// How to reach Redis, and how the broker behaves there. Its `Debug` shows the URL without
/// credentials.
#[derive(Clone)]
pub struct RedisConfig {
    /// `redis://host:port[/db]`, or `redis-cluster://host:port[,host:port…]` for a Redis
    /// Cluster (the seed nodes; `rediss://` is not supported).
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
    head: Script,
    rotate: Script,
    join: Script,
    leave: Script,
    heartbeat: Script,
    reap: Script,
    revoke: Script,
}

impl RedisBroker {
    /// A broker for the nodes sharing the Redis at `config.url`, delivering into `hub`. Starts
    /// following at once; it is [`ready`](Broker::ready) once Redis answered. Must be called
    /// within a Tokio runtime.
    pub fn start(hub: Arc<Hub>, config: RedisConfig) -> Result<Self, BrokerError> {
        let catalog = hub.catalog();
        let writer = Arc::new(Writer::new(catalog, &config, Some(hub.metrics().clone()))?);
        let revoke = writer::script(&writer.link.target, scripts::REVOKE);
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
            head: Script::new(scripts::HEAD),
            rotate: Script::new(scripts::ROTATE),
            join: Script::new(scripts::JOIN),
            leave: Script::new(scripts::LEAVE),
            heartbeat: Script::new(scripts::HEARTBEAT),
            reap: Script::new(scripts::REAP),
            revoke,
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
        Box::pin(async move {
            let positions = self.inner.writer.publish(batch).await?;
            let key = self.inner.hub.positions();
            Ok(positions.iter().map(|p| key.seal(p)).collect())
        })
    }

    fn resume<'a>(
        &'a self,
        requests: &'a [ResumeRequest],
        max_behind: u64,
        attach: &'a mut (dyn FnMut(&[Resumed]) + Send),
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
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

    fn change_rights(
        &self,
        change: RightsChange,
        until_ms: u64,
    ) -> BoxFuture<'_, Result<usize, BrokerError>> {
        Box::pin(async move {
            self.inner.record_rights_change(&change, until_ms).await?;
            // In force here at once; the announcement reaches the other nodes.
            Ok(self.inner.hub.change_rights(change, until_ms))
        })
    }

    fn positions<'a>(
        &'a self,
        namespaces: &'a [usize],
    ) -> BoxFuture<'a, Result<Vec<Position>, BrokerError>> {
        Box::pin(async move {
            let mut positions = Vec::with_capacity(namespaces.len());
            for &ns in namespaces {
                // Redis' epoch and top, no entries.
                let read = self.inner.read(ns, 0, 0).await?;
                positions.push(Position {
                    namespace: self.inner.catalog.namespaces[ns].name.to_owned(),
                    epoch: read.epoch,
                    offset: read.top,
                });
            }
            Ok(positions)
        })
    }

    fn ready(&self) -> bool {
        self.inner.following.load(Ordering::Acquire)
    }

    fn outcome_may_be_unknown(&self) -> bool {
        true
    }
}
