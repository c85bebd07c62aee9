//! Emitting straight into the Redis the nodes share, the way Socket.IO's redis-emitter works: a
//! service builds `Events::new(RedisSink::new(&CATALOG, RedisConfig::new(url))?)` and needs no
//! node of its own. Events get their positions from the same script the nodes use, so they are
//! numbered, kept and delivered exactly like events published through a node.

use std::sync::Arc;

use super::{ATTEMPTS, MAX_WAIT};
use crate::catalog::Catalog;
use crate::emit::EventSink;
use crate::event::{ComputeError, OutgoingEvent};
use crate::server::broker::redis::writer::Writer;
use crate::server::broker::{
    Batch, BoxFuture, BrokerError, Failure, IDEMPOTENCY_WINDOW, Idempotency, RedisConfig, new_epoch,
};
use crate::server::error::PublishError;
use crate::server::publication::now_ms;

/// A typed emitters' sink publishing into Redis. Each event carries an idempotency key, so an
/// attempt retried after a lost reply (up to three, the waits capped at 2 s) publishes it once.
/// `send()` resolves to the event's id. Cheap to clone; must be used within a Tokio runtime.
#[derive(Clone)]
pub struct RedisSink {
    writer: Arc<Writer>,
}

impl std::fmt::Debug for RedisSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSink")
            .field("redis", &self.writer.address)
            .finish_non_exhaustive()
    }
}

impl RedisSink {
    /// A sink into the Redis of `config`, for `catalog`'s events. Connects on the first event.
    pub fn new(catalog: &'static Catalog, config: RedisConfig) -> Result<Self, BrokerError> {
        Ok(RedisSink {
            writer: Arc::new(Writer::new(catalog, &config, None)?),
        })
    }
}

impl EventSink for RedisSink {
    type Output = BoxFuture<'static, Result<String, PublishError>>;

    fn publish(&self, mut event: OutgoingEvent) -> Self::Output {
        let writer = self.writer.clone();
        event.timestamp.get_or_insert(now_ms());
        let events = vec![event];
        let key = new_epoch() + &new_epoch();
        let idempotency = Idempotency::new("redis-sink", &key, &events, IDEMPOTENCY_WINDOW);
        Box::pin(async move {
            let mut attempt = 1;
            loop {
                let batch = Batch {
                    events: events.clone(),
                    idempotency: Some(idempotency.clone()),
                };
                match writer.publish(batch).await {
                    // The readable position: a sink holds no position key (README, "Positions").
                    Ok(mut positions) => {
                        return Ok(positions.pop().expect("one per event").to_string());
                    }
                    // Nothing stored, or perhaps stored: the same key makes the retry safe.
                    Err(err) if attempt < ATTEMPTS && err.failure != Failure::KeyReused => {
                        tracing::debug!(%err, attempt, "publish into Redis failed; retrying");
                        tokio::time::sleep(err.retry_after.min(MAX_WAIT)).await;
                        attempt += 1;
                    }
                    Err(err) => return Err(err.into()),
                }
            }
        })
    }

    fn refuse(&self, error: ComputeError) -> Self::Output {
        Box::pin(std::future::ready(Err(error.into())))
    }
}
