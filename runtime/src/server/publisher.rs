//! The one publish path: typed emitters and the HTTP API both go through the [`Publisher`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;

use crate::emit::EventSink;
use crate::event::{ComputeError, OutgoingEvent};
use crate::server::broker::{Batch, BoxFuture, Broker, BrokerError, Idempotency};
use crate::server::error::PublishError;
use crate::server::publication::now_ms;

/// Hands events to the broker, which gives each its position (its id), serializes the envelope
/// once and delivers it.
///
/// Every publish passes through a gate that shutdown closes: once it is closed nothing new is
/// taken ([`PublishError::ShuttingDown`]), and shutdown waits for publishes already past it
/// before it closes connections, so an event accepted is an event delivered.
#[derive(Clone)]
pub struct Publisher {
    broker: Arc<dyn Broker>,
    gate: Arc<Gate>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

impl Publisher {
    /// A publisher into `broker`.
    pub fn new(broker: Arc<dyn Broker>) -> Self {
        Publisher {
            broker,
            gate: Arc::new(Gate::default()),
        }
    }

    /// Publishes one event; returns its id.
    pub async fn publish(&self, event: OutgoingEvent) -> Result<String, PublishError> {
        let pass = self.enter().ok_or(PublishError::ShuttingDown)?;
        let mut ids = pass.publish(vec![event], None).await?;
        Ok(ids.pop().expect("one id per event"))
    }

    /// Passes the gate for a request that publishes later (the HTTP API, which reads and checks
    /// a body first); `None` once shutdown began. Shutdown waits until the pass is dropped.
    pub(crate) fn enter(&self) -> Option<Pass<'_>> {
        self.gate.in_flight.fetch_add(1, Ordering::SeqCst);
        // Counted before the flag is read: shutdown sets the flag, then waits for the count,
        // so it never misses a publish that saw the gate open.
        let pass = Pass { publisher: self };
        (!self.gate.closed.load(Ordering::SeqCst)).then_some(pass)
    }

    /// The broker events go through.
    pub(crate) fn broker(&self) -> &dyn Broker {
        &*self.broker
    }

    /// Whether shutdown has closed the gate.
    pub(crate) fn is_closed(&self) -> bool {
        self.gate.closed.load(Ordering::SeqCst)
    }

    /// Closes the gate and waits until every publish past it has finished.
    pub(crate) async fn close(&self) {
        self.gate.closed.store(true, Ordering::SeqCst);
        loop {
            let idle = self.gate.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.gate.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }
}

#[derive(Default)]
struct Gate {
    closed: AtomicBool,
    in_flight: AtomicUsize,
    idle: Notify,
}

/// Leave to publish while the gate stays counted as busy.
pub(crate) struct Pass<'a> {
    publisher: &'a Publisher,
}

impl Pass<'_> {
    /// Publishes events in order, all or nothing; returns their ids. Each gets its timestamp
    /// here (unless the emitter set one), so every node delivers the same envelope.
    pub(crate) async fn publish(
        &self,
        mut events: Vec<OutgoingEvent>,
        idempotency: Option<Idempotency>,
    ) -> Result<Vec<String>, BrokerError> {
        let now = now_ms();
        for event in &mut events {
            event.timestamp.get_or_insert(now);
        }
        let batch = Batch {
            events,
            idempotency,
        };
        self.publisher.broker.publish(batch).await
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        let gate = &self.publisher.gate;
        if gate.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            gate.idle.notify_waiters();
        }
    }
}

/// Typed emitters' `send()` returns a future of the id: `events.order_created(p).send().await`.
impl EventSink for Publisher {
    type Output = BoxFuture<'static, Result<String, PublishError>>;

    fn publish(&self, event: OutgoingEvent) -> Self::Output {
        let publisher = self.clone();
        Box::pin(async move { Publisher::publish(&publisher, event).await })
    }

    fn refuse(&self, error: ComputeError) -> Self::Output {
        Box::pin(std::future::ready(Err(error.into())))
    }
}
