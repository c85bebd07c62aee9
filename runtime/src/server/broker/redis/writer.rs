//! The publishing half of the Redis broker, shared by nodes and by [`RedisSink`](super::RedisSink)
//! (services that emit into Redis without a node): the keys of every namespace, the command
//! connection, and the publish script.
//!
//! Each publish request is one script call. Concurrent requests share the one multiplexed
//! connection, so they are pipelined, not queued. (Coalescing concurrent requests into one call
//! was tried: fewer, larger rounds left connections fewer frames per write, and one-event
//! requests cost about a quarter more CPU per delivery.)
//!
//! On a Redis Cluster (`redis-cluster://`) a script may only touch keys of one slot: a request
//! is one call per namespace it publishes to (each namespace's keys share its hash tag, and so
//! does its idempotency record there), and the events go out on sharded channels (`SPUBLISH`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncConnectionConfig, Cmd, FromRedisValue, Pipeline, RedisFuture, Script, ScriptInvocation,
    Value,
};
use tokio::time::{Instant, timeout};

use super::{RedisConfig, record, scripts};
use crate::catalog::Catalog;
use crate::event::OutgoingEvent;
use crate::position::Position;
use crate::server::broker::{Batch, BrokerError, Failure, Idempotency, new_epoch};
use crate::server::metrics::Metrics;
use crate::server::publication::now_ms;

/// One namespace's keys and channel.
pub(super) struct StreamKeys {
    pub(super) meta: String,
    pub(super) history: String,
    pub(super) channel: String,
}

/// Publishes batches into one Redis for one catalog.
pub(crate) struct Writer {
    pub(super) catalog: &'static Catalog,
    pub(super) prefix: String,
    /// Where Redis is, without credentials: what logs and errors name.
    pub(crate) address: String,
    pub(super) keys: Box<[StreamKeys]>,
    pub(super) link: Link,
    script: Script,
}

/// Where Redis is: one server, or the seed nodes of a cluster.
#[derive(Clone)]
pub(super) enum Target {
    Single(redis::Client),
    Cluster(Vec<String>),
}

impl Target {
    /// `redis://host:port[/db]`, or `redis-cluster://[user:password@]host:port[,host:port…]`
    /// (each seed a node of the cluster; the credentials, if any, are every node's).
    pub(super) fn parse(url: &str) -> Result<Self, BrokerError> {
        let Some(rest) = url.strip_prefix("redis-cluster://") else {
            let client = redis::Client::open(url)
                .map_err(|err| BrokerError::new(format!("bad Redis URL: {err}")))?;
            return Ok(Target::Single(client));
        };
        let (credentials, hosts) = match rest.rsplit_once('@') {
            Some((credentials, hosts)) => (format!("{credentials}@"), hosts),
            None => (String::new(), rest),
        };
        let seeds: Vec<String> = hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|host| format!("redis://{credentials}{host}"))
            .collect();
        if seeds.is_empty() {
            return Err(BrokerError::new(
                "bad Redis URL: `redis-cluster://` names no node (host:port[,host:port…])",
            ));
        }
        // Checked here, so that a bad seed is a startup error rather than a reconnect loop.
        ClusterClient::new(seeds.clone())
            .map_err(|err| BrokerError::new(format!("bad Redis URL: {err}")))?;
        Ok(Target::Cluster(seeds))
    }

    pub(super) fn is_cluster(&self) -> bool {
        matches!(self, Target::Cluster(_))
    }

    /// A cluster client (for the command link, or with `push` for a subscription).
    pub(super) fn cluster_client(
        seeds: &[String],
        timeout: Duration,
        push: Option<tokio::sync::mpsc::UnboundedSender<redis::PushInfo>>,
    ) -> Result<ClusterClient, redis::RedisError> {
        // No retries inside the client: a script call retried after its answer was lost could
        // run twice, and a call to a shard that is down would wait out the whole timeout and
        // be reported of unknown outcome. A MOVED or ASK (a failover, a slot migrating) is
        // answered as not run (503); the client refreshes its slots meanwhile.
        let mut builder = ClusterClient::builder(seeds.to_vec())
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(0);
        if let Some(push) = push {
            builder = builder
                .use_protocol(redis::ProtocolVersion::RESP3)
                .push_sender(push);
        }
        builder.build()
    }
}

/// The scripts as they run on `target`: on a cluster, events and announcements go out on
/// sharded channels (each in its keys' slot).
pub(super) fn script(target: &Target, source: &str) -> Script {
    if target.is_cluster() {
        Script::new(&source.replace("redis.call('publish',", "redis.call('spublish',"))
    } else {
        Script::new(source)
    }
}

impl Writer {
    /// The writer for `catalog`'s streams; `metrics`, when given, count its round trips and
    /// reconnects (a node's; a sink has none).
    pub(crate) fn new(
        catalog: &'static Catalog,
        config: &RedisConfig,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<Self, BrokerError> {
        let target = Target::parse(&config.url)?;
        let keys = catalog
            .namespaces
            .iter()
            .map(|ns| StreamKeys {
                meta: format!("{}:{{{}}}:meta", config.prefix, ns.name),
                history: format!("{}:{{{}}}:history", config.prefix, ns.name),
                channel: format!("{}:{{{}}}", config.prefix, ns.name),
            })
            .collect();
        Ok(Writer {
            catalog,
            prefix: config.prefix.clone(),
            address: redact(&config.url),
            keys,
            script: script(&target, scripts::PUBLISH),
            link: Link {
                target,
                config: AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(config.response_timeout))
                    .set_response_timeout(Some(config.response_timeout)),
                connect_timeout: config.response_timeout,
                current: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(Retry::default()),
                metrics,
            },
        })
    }

    /// Numbers, keeps and publishes a batch, all of it or none, in one script call; its
    /// positions, in order.
    pub(crate) async fn publish(&self, batch: Batch) -> Result<Vec<Position>, BrokerError> {
        let positions = self.call(&batch.events, batch.idempotency.as_ref()).await?;
        tracing::debug!(?positions, "stored in Redis");
        Ok(positions)
    }

    /// One script call for `events` (with the idempotency key, if any); on a cluster, one per
    /// namespace, in the order each first appears, and the positions put back in the batch's
    /// order. A later call failing after an earlier one stored its events leaves the request
    /// partly stored: its outcome is unknown, and a retry under the key completes it.
    async fn call(
        &self,
        events: &[OutgoingEvent],
        idempotency: Option<&Idempotency>,
    ) -> Result<Vec<Position>, BrokerError> {
        if !self.link.target.is_cluster() {
            return self.call_slot(events, idempotency, None).await;
        }
        let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
        for (i, event) in events.iter().enumerate() {
            match groups.iter_mut().find(|(ns, _)| *ns == event.namespace()) {
                Some((_, members)) => members.push(i),
                None => groups.push((event.namespace(), vec![i])),
            }
        }
        if groups.len() == 1 {
            let ns = groups[0].0;
            return self.call_slot(events, idempotency, Some(ns)).await;
        }
        let mut positions: Vec<Option<Position>> = vec![None; events.len()];
        for (done, (ns, members)) in groups.iter().enumerate() {
            let part: Vec<&OutgoingEvent> = members.iter().map(|&i| &events[i]).collect();
            let stored = match self.call_slot(part, idempotency, Some(ns)).await {
                Ok(stored) => stored,
                Err(err) if done > 0 && err.failure != Failure::KeyReused => {
                    return Err(BrokerError::outcome_unknown(format!(
                        "part of the batch was stored (the events of {done} of its {} \
                         namespaces): {err}",
                        groups.len()
                    )));
                }
                Err(err) => return Err(err),
            };
            for (&i, position) in members.iter().zip(stored) {
                positions[i] = Some(position);
            }
        }
        Ok(positions
            .into_iter()
            .map(|p| p.expect("every event in one group"))
            .collect())
    }

    /// One script call for `events`, all in one slot on a cluster (`slot`: their namespace,
    /// whose hash tag the idempotency record then shares).
    async fn call_slot<'e>(
        &self,
        events: impl IntoIterator<Item = &'e OutgoingEvent>,
        idempotency: Option<&Idempotency>,
        slot: Option<&str>,
    ) -> Result<Vec<Position>, BrokerError> {
        let events = events.into_iter();
        let now = now_ms();
        let mut call = self.script.prepare_invoke();
        let (window, fingerprint) =
            idempotency.map_or((0, ""), |i| (i.window.as_secs().max(1), &i.fingerprint));
        call.arg(window).arg(new_epoch()).arg(now).arg(fingerprint);
        let mut namespaces = Vec::with_capacity(events.size_hint().0);
        for event in events {
            let ns = self
                .catalog
                .namespace_index(event.namespace())
                .ok_or_else(|| BrokerError::new(format!("no namespace `{}`", event.namespace())))?;
            let keys = &self.keys[ns];
            let (size, ttl) = self.catalog.namespaces[ns]
                .history
                .map_or((0, 1), |h| (h.size, h.ttl_secs.max(1)));
            call.key(&keys.meta).key(&keys.history);
            call.arg(&keys.channel)
                .arg(size)
                .arg(ttl)
                .arg(record::encode(self.catalog, event, now));
            namespaces.push(self.catalog.namespaces[ns].name);
        }
        if let Some(idempotency) = idempotency {
            call.key(match slot {
                Some(ns) => format!("{}:{{{ns}}}:idempotency:{}", self.prefix, idempotency.key),
                None => format!("{}:idempotency:{}", self.prefix, idempotency.key),
            });
        }
        let (seen, stored): (i64, String) = self.link.invoke(&call).await?;
        if seen == 2 {
            return Err(BrokerError::key_reused());
        }
        // `epoch offset` per event, comma-separated, in the batch's order. A result stored
        // under the key is of the same request (the script compared fingerprints), so its
        // events are in the same namespaces.
        let ids: Vec<Position> = stored
            .split(',')
            .zip(&namespaces)
            .filter_map(|(position, ns)| {
                let (epoch, offset) = position.split_once(' ')?;
                Some(Position {
                    namespace: (*ns).to_owned(),
                    epoch: epoch.to_owned(),
                    offset: offset.parse().ok()?,
                })
            })
            .collect();
        if ids.len() != namespaces.len() {
            // Stored (or not) by a script of another version: the ids cannot be told.
            return Err(BrokerError::outcome_unknown(format!(
                "Redis answered {} ids for {} events",
                ids.len(),
                namespaces.len()
            )));
        }
        Ok(ids)
    }
}

/// The command connection: one multiplexed connection shared by every request (so concurrent
/// publishes are pipelined), reopened after a failure, with backoff and jitter between
/// attempts; meanwhile calls fail at once with the time left.
pub(super) struct Link {
    pub(super) target: Target,
    config: AsyncConnectionConfig,
    connect_timeout: Duration,
    current: Mutex<Option<Connection>>,
    connecting: tokio::sync::Mutex<Retry>,
    metrics: Option<Arc<Metrics>>,
}

#[derive(Default)]
struct Retry {
    failures: u32,
    until: Option<Instant>,
    /// Whether a connection was opened before (the next one is a reconnect).
    opened: bool,
}

impl Link {
    pub(super) async fn connection(&self) -> Result<Connection, BrokerError> {
        if let Some(connection) = self.current.lock().expect("link lock").clone() {
            return Ok(connection);
        }
        let mut retry = self.connecting.lock().await;
        if let Some(connection) = self.current.lock().expect("link lock").clone() {
            return Ok(connection);
        }
        let now = Instant::now();
        if let Some(until) = retry.until
            && until > now
        {
            return Err(unreachable("Redis is unreachable", until - now));
        }
        let failure = match timeout(self.connect_timeout, self.open()).await {
            Ok(Ok(connection)) => {
                *self.current.lock().expect("link lock") = Some(connection.clone());
                if retry.opened
                    && let Some(metrics) = &self.metrics
                {
                    metrics.redis_reconnects.inc();
                }
                *retry = Retry {
                    opened: true,
                    ..Retry::default()
                };
                return Ok(connection);
            }
            Ok(Err(err)) => format!("cannot connect to Redis: {err}"),
            Err(_) => "cannot connect to Redis: timed out".to_owned(),
        };
        retry.failures = retry.failures.saturating_add(1);
        let delay = backoff(retry.failures);
        retry.until = Some(now + delay);
        Err(unreachable(failure, delay))
    }

    async fn open(&self) -> Result<Connection, redis::RedisError> {
        match &self.target {
            Target::Single(client) => client
                .get_multiplexed_async_connection_with_config(&self.config)
                .await
                .map(Connection::Single),
            Target::Cluster(seeds) => {
                let client = Target::cluster_client(seeds, self.connect_timeout, None)?;
                client.get_async_connection().await.map(Connection::Cluster)
            }
        }
    }

    /// Runs a script; a connection that broke is dropped, so the next call reconnects.
    ///
    /// A call that could not be sent, or that Redis refused before running it (loading, out
    /// of memory, busy, read-only), stored nothing ([`Failure::Unavailable`]); one whose answer
    /// did not come back (a timeout, a connection lost on the way) may have run
    /// ([`Failure::OutcomeUnknown`]).
    pub(super) async fn invoke<T: FromRedisValue>(
        &self,
        call: &ScriptInvocation<'_>,
    ) -> Result<T, BrokerError> {
        let started = std::time::Instant::now();
        let result = self.invoke_once(call).await;
        if let Some(metrics) = &self.metrics {
            metrics
                .redis_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        result
    }

    /// Runs commands that only read (pipelined, in order); any failure stores nothing, so it
    /// is [`Failure::Unavailable`]. A connection that broke is dropped, as for scripts.
    pub(super) async fn query<T: FromRedisValue>(&self, pipe: &Pipeline) -> Result<T, BrokerError> {
        let started = std::time::Instant::now();
        let mut connection = self.connection().await?;
        let result = pipe.query_async(&mut connection).await.map_err(|err| {
            if err.is_io_error()
                || err.is_connection_dropped()
                || err.is_timeout()
                || err.is_unrecoverable_error()
            {
                self.current.lock().expect("link lock").take();
            }
            BrokerError::new(format!("Redis: {err}"))
        });
        if let Some(metrics) = &self.metrics {
            metrics
                .redis_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        result
    }

    async fn invoke_once<T: FromRedisValue>(
        &self,
        call: &ScriptInvocation<'_>,
    ) -> Result<T, BrokerError> {
        let mut connection = self.connection().await?;
        call.invoke_async(&mut connection).await.map_err(|err| {
            if err.is_io_error()
                || err.is_connection_dropped()
                || err.is_timeout()
                || err.is_unrecoverable_error()
            {
                self.current.lock().expect("link lock").take();
            }
            let refused_before_running = matches!(
                err.code(),
                Some(
                    "LOADING"
                        | "OOM"
                        | "BUSY"
                        | "READONLY"
                        | "MASTERDOWN"
                        | "NOSCRIPT"
                        | "CLUSTERDOWN"
                        | "TRYAGAIN"
                        | "MOVED"
                        | "ASK"
                )
            ) || err.is_connection_refusal();
            let message = format!("Redis: {err}");
            if refused_before_running {
                BrokerError::new(message)
            } else {
                BrokerError::outcome_unknown(message)
            }
        })
    }
}

/// The command connection to one Redis or to a cluster (which routes each command to the
/// shard of its first key's slot, following MOVED and ASK, and reconnects by itself).
#[derive(Clone)]
pub(super) enum Connection {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

fn unreachable(message: impl Into<String>, retry_after: Duration) -> BrokerError {
    BrokerError {
        retry_after: retry_after.max(Duration::from_secs(1)),
        ..BrokerError::new(message)
    }
}

/// The wait before attempt `failures + 1`: full jitter over an exponential bound (100 ms
/// doubling, at most 5 s), so nodes that lost Redis together do not return together.
pub(super) fn backoff(failures: u32) -> Duration {
    let bound =
        crate::backoff::exponential(Duration::from_millis(100), failures, Duration::from_secs(5));
    crate::backoff::jitter(bound)
}

/// `redis://user:secret@host:6379/0` as `host:6379/0`: addresses never carry credentials into
/// logs.
pub(super) fn redact(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    rest.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_lose_their_credentials() {
        assert_eq!(redact("redis://:s3cret@10.0.0.1:6379/2"), "10.0.0.1:6379/2");
        assert_eq!(redact("redis://user:pw@host"), "host");
        assert_eq!(redact("redis://127.0.0.1:6390"), "127.0.0.1:6390");
    }

    #[test]
    fn a_cluster_url_names_every_seed_with_the_credentials() {
        let Ok(Target::Cluster(seeds)) =
            Target::parse("redis-cluster://user:pw@10.0.0.1:7001, 10.0.0.2:7002")
        else {
            panic!("a cluster");
        };
        assert_eq!(
            seeds,
            [
                "redis://user:pw@10.0.0.1:7001",
                "redis://user:pw@10.0.0.2:7002"
            ]
        );
        assert!(matches!(
            Target::parse("redis://127.0.0.1:6379"),
            Ok(Target::Single(_))
        ));
        let err = Target::parse("redis-cluster://").err().expect("no seed");
        assert!(err.to_string().contains("names no node"), "{err}");
        assert_eq!(redact("redis-cluster://u:s3cret@h1:1,h2:2"), "h1:1,h2:2");
    }

    #[test]
    fn on_a_cluster_every_script_publishes_on_sharded_channels() {
        let cluster = Target::Cluster(vec!["redis://127.0.0.1:7001".into()]);
        for source in [scripts::PUBLISH, scripts::REVOKE] {
            assert!(source.contains("redis.call('publish',"), "{source}");
            let sharded = source.replace("redis.call('publish',", "redis.call('spublish',");
            assert_eq!(
                script(&cluster, source).get_hash(),
                Script::new(&sharded).get_hash()
            );
            assert!(!sharded.contains("'publish'"));
        }
    }

    #[test]
    fn backoff_is_bounded_and_jittered() {
        for failures in 0..40 {
            assert!(backoff(failures) <= Duration::from_millis(5_000));
        }
        let draws: std::collections::HashSet<Duration> = (0..50).map(|_| backoff(6)).collect();
        assert!(draws.len() > 10, "full jitter spreads the waits: {draws:?}");
    }
}
