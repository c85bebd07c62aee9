//! Following Redis: one task per node subscribes to every namespace's channel, delivers each
//! event under its stream's lock, notices a gap by its offset and resyncs from the history (or
//! closes the namespace's connections with 4010 when the history no longer covers it).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use redis::cluster_async::ClusterConnection;
use redis::{FromRedisValue, PushInfo, PushKind, Value};
use tokio::time::{Instant, timeout};

use super::writer::{Target, backoff};
use super::{Inner, record};
use crate::protocol::close;
use crate::server::broker::streams::Stream;
use crate::server::broker::{BrokerError, new_epoch};
use crate::server::publication::now_ms;

impl Inner {
    /// Follows Redis for as long as the node runs: subscribes, catches up, delivers; after any
    /// failure, again, with backoff and jitter.
    pub(super) async fn follow(self: Arc<Self>) {
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

    /// Subscribes to every namespace's channel and the announcements.
    async fn subscribe(&self) -> Result<Subscription, Unfollowed> {
        let limit = self.config.response_timeout;
        let revocations = self.revocations_channel();
        let channels: Vec<&str> = self
            .writer
            .keys
            .iter()
            .map(|k| k.channel.as_str())
            .chain([revocations.as_str()])
            .collect();
        match &self.writer.link.target {
            Target::Single(client) => {
                let pubsub = match timeout(limit, client.get_async_pubsub()).await {
                    Ok(Ok(pubsub)) => pubsub,
                    Ok(Err(err)) => return Err(Unfollowed::Connect(err)),
                    Err(_) => return Err(Unfollowed::TimedOut("connecting")),
                };
                let (mut sink, messages) = pubsub.split();
                match timeout(limit, sink.subscribe(&channels)).await {
                    Ok(Ok(())) => Ok(Subscription::Single { sink, messages }),
                    Ok(Err(err)) => Err(Unfollowed::Subscribe(err)),
                    Err(_) => Err(Unfollowed::TimedOut("subscribing")),
                }
            }
            Target::Cluster(seeds) => {
                let (push, pushes) = tokio::sync::mpsc::unbounded_channel();
                let client = Target::cluster_client(seeds, limit, Some(push))
                    .map_err(Unfollowed::Connect)?;
                let mut connection = match timeout(limit, client.get_async_connection()).await {
                    Ok(Ok(connection)) => connection,
                    Ok(Err(err)) => return Err(Unfollowed::Connect(err)),
                    Err(_) => return Err(Unfollowed::TimedOut("connecting")),
                };
                // Channel by channel: a shard that does not answer leaves its namespaces to
                // the probe (caught up from the history, subscribed again), not the others.
                for channel in &channels {
                    match timeout(limit, connection.ssubscribe(channel)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(err)) if *channel == revocations => {
                            return Err(Unfollowed::Subscribe(err));
                        }
                        Err(_) if *channel == revocations => {
                            return Err(Unfollowed::TimedOut("subscribing"));
                        }
                        Ok(Err(err)) => {
                            tracing::warn!(channel, %err, "not subscribed: its shard is retried")
                        }
                        Err(_) => tracing::warn!(channel, "not subscribed in time: retried"),
                    }
                }
                Ok(Subscription::Cluster { connection, pushes })
            }
        }
    }

    /// One subscription, until it fails; the reason.
    pub(super) async fn follow_once(&self, failures: &mut u32) -> Unfollowed {
        let limit = self.config.response_timeout;
        let revocations = self.revocations_channel();
        let mut subscription = match self.subscribe().await {
            Ok(subscription) => subscription,
            Err(unfollowed) => return unfollowed,
        };
        // Subscribed first, then caught up: what is published meanwhile waits in the
        // subscription and is recognized by its offset. Revocations the same way: announced
        // ones wait, recorded ones are read.
        if let Err(err) = self.load_rights_changes().await {
            return Unfollowed::Broker(err);
        }
        let cluster = matches!(subscription, Subscription::Cluster { .. });
        for namespace in 0..self.writer.keys.len() {
            match self.resync(namespace).await {
                Ok(()) => {}
                // On a cluster, a namespace whose shard is down waits for the probe; the
                // others are followed meanwhile.
                Err(Unfollowed::Broker(err)) if cluster => {
                    let name = self.catalog.namespaces[namespace].name;
                    tracing::warn!(namespace = name, %err, "not caught up: its shard is retried");
                }
                Err(err) => return err,
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
                message = subscription.next() => {
                    let (channel, payload) = match message {
                        Next::Message(channel, payload) => (channel, payload),
                        Next::Other => continue,
                        Next::Closed => return Unfollowed::Closed,
                    };
                    if channel == revocations {
                        self.on_rights_change(&payload);
                        continue;
                    }
                    let Some(namespace) = self
                        .writer
                        .keys
                        .iter()
                        .position(|k| k.channel == channel)
                    else {
                        continue;
                    };
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
                    match &mut subscription {
                        Subscription::Single { sink, .. } => {
                            match timeout(limit, sink.ping::<Value>()).await {
                                Ok(Ok(_)) => {}
                                Ok(Err(err)) => return Unfollowed::Probe(err),
                                Err(_) => return Unfollowed::TimedOut("answering a ping"),
                            }
                        }
                        // A shard's subscription is not one connection to ping: every stream
                        // is compared with its shard instead, which finds what a failover lost
                        // as well as a silent subscription.
                        Subscription::Cluster { connection, .. } => {
                            for (namespace, keys) in self.writer.keys.iter().enumerate() {
                                match self.resync_if_behind(namespace).await {
                                    Ok(false) => {}
                                    // It missed events: its shard's subscription may be what
                                    // a failover lost (subscribing again is harmless).
                                    Ok(true) => {
                                        let again = connection.ssubscribe(&keys.channel);
                                        if let Ok(Err(err)) = timeout(limit, again).await {
                                            tracing::debug!(%err, "not subscribed again");
                                        }
                                    }
                                    Err(Unfollowed::Broker(err)) => {
                                        tracing::debug!(namespace, %err, "shard not answering");
                                    }
                                    Err(err) => return err,
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Catches `namespace` up when Redis' top is past this node's (a cluster's probe); whether
    /// it was behind.
    async fn resync_if_behind(&self, namespace: usize) -> Result<bool, Unfollowed> {
        let read = self.read(namespace, 0, 0).await?;
        let behind = {
            let stream = self.streams.lock(namespace);
            read.epoch != stream.epoch || read.top != stream.top
        };
        if behind {
            self.resync(namespace).await?;
        }
        Ok(behind)
    }

    /// One event from a channel: `epoch offset index count record`.
    pub(super) async fn on_message(
        &self,
        namespace: usize,
        payload: &str,
    ) -> Result<(), Unfollowed> {
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
                let name = self.catalog.namespaces[namespace].name;
                self.hub
                    .metrics()
                    .follower_lag(name, offset - stream.top - 1);
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
    pub(super) fn deliver(&self, stream: &mut Stream, offset: u64, record: &str) {
        match record::decode(
            self.catalog,
            self.hub.positions(),
            &stream.epoch,
            offset,
            record,
        ) {
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
    pub(super) async fn resync(&self, namespace: usize) -> Result<(), Unfollowed> {
        let name = self.catalog.namespaces[namespace].name;
        self.hub.metrics().resynced(name);
        let (epoch, top) = {
            let stream = self.streams.lock(namespace);
            (stream.epoch.clone(), stream.top)
        };
        let most = self.catalog.namespaces[namespace]
            .history
            .map_or(0, |h| u64::from(h.size));
        let read = self.read(namespace, top, most).await?;
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
            self.writer.link.invoke::<i64>(&call).await?;
            self.hub.metrics().epoch_changed(name);
            return Err(Unfollowed::WentBack {
                namespace: self.catalog.namespaces[namespace].name,
                from: top,
                to: read.top,
            });
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
            if !first && read.epoch != stream.epoch {
                self.hub.metrics().epoch_changed(name);
            }
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
}

/// Why a node stopped following Redis. It always starts again (with backoff); the reason is
/// logged.
#[derive(Debug, thiserror::Error)]
pub(super) enum Unfollowed {
    /// The subscription's connection could not be opened.
    #[error("cannot connect: {0}")]
    Connect(redis::RedisError),
    /// The channels could not be subscribed.
    #[error("cannot subscribe: {0}")]
    Subscribe(redis::RedisError),
    /// Redis did not answer in time while the node was doing this.
    #[error("timed out {0}")]
    TimedOut(&'static str),
    /// Redis closed the subscription.
    #[error("the subscription closed")]
    Closed,
    /// A probe of an idle subscription failed.
    #[error("the subscription failed: {0}")]
    Probe(redis::RedisError),
    /// Reading the history, or starting a new epoch, failed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// Redis went back in time (an older snapshot): the namespace got a new epoch, and the
    /// node follows it from there.
    #[error("`{namespace}` went back from offset {from} to {to} in Redis: new epoch")]
    WentBack {
        /// The namespace.
        namespace: &'static str,
        /// The node's top.
        from: u64,
        /// Redis' top.
        to: u64,
    },
}

/// A node's subscription to every channel it follows.
enum Subscription {
    /// One Redis: a pub/sub connection, probed with PING when idle.
    Single {
        sink: PubSubSink,
        messages: PubSubStream,
    },
    /// A cluster: a sharded subscription on each shard, kept (and renewed after a failover) by
    /// the cluster client, whose messages arrive as pushes; probed by comparing every stream
    /// with its shard, so that one shard down stops only its own namespaces.
    Cluster {
        connection: ClusterConnection,
        pushes: tokio::sync::mpsc::UnboundedReceiver<PushInfo>,
    },
}

/// What a subscription gave next.
enum Next {
    Message(String, String),
    /// A confirmation, or a push of no interest.
    Other,
    Closed,
}

impl Subscription {
    async fn next(&mut self) -> Next {
        match self {
            Subscription::Single { messages, .. } => match messages.next().await {
                Some(message) => Next::Message(
                    message.get_channel_name().to_owned(),
                    String::from_utf8_lossy(message.get_payload_bytes()).into_owned(),
                ),
                None => Next::Closed,
            },
            Subscription::Cluster { pushes, .. } => match pushes.recv().await {
                Some(PushInfo {
                    kind: PushKind::SMessage,
                    data,
                }) => match <(String, String)>::from_redis_value(Value::Array(data)) {
                    Ok((channel, payload)) => Next::Message(channel, payload),
                    Err(_) => Next::Other,
                },
                None => Next::Closed,
                // Confirmations, and a shard's connection dropping: the cluster client
                // subscribes again where the slots are now, and the probe catches up what the
                // shard carried meanwhile.
                Some(_) => Next::Other,
            },
        }
    }
}

/// A channel message's place in its publish: (index, count), from `epoch offset index count …`.
fn batch_place(payload: &str) -> Option<(u64, u64)> {
    let mut fields = payload.splitn(5, ' ').skip(2);
    let index = fields.next()?.parse().ok()?;
    let count = fields.next()?.parse().ok()?;
    Some((index, count))
}
