//! The one publish path: typed emitters and the HTTP API both end in [`Publisher::publish`].

use std::sync::Arc;

use crate::broker::{Broker, BrokerError};
use crate::emit::EventSink;
use crate::event::{ComputeError, OutgoingEvent};
use crate::publication::{IdGenerator, Publication, now_ms};

/// Gives events their id and timestamp, serializes the envelope once, and hands it to the broker.
#[derive(Clone)]
pub struct Publisher {
    broker: Arc<dyn Broker>,
    ids: Arc<IdGenerator>,
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
            ids: Arc::new(IdGenerator::new("evt")),
        }
    }

    /// Publishes one event; returns its id.
    pub fn publish(&self, event: OutgoingEvent) -> Result<String, BrokerError> {
        let id = self.ids.next();
        let publication = Publication::new(event, id.clone(), now_ms());
        self.broker.publish(Arc::new(publication))?;
        Ok(id)
    }
}

/// Why a typed emitter's event was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The broker did not take it.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// A computed field cannot be sent.
    #[error("invalid payload: {0}")]
    Invalid(#[from] ComputeError),
}

impl EventSink for Publisher {
    type Output = Result<String, PublishError>;

    fn publish(&self, event: OutgoingEvent) -> Self::Output {
        Ok(Publisher::publish(self, event)?)
    }

    fn refuse(&self, error: ComputeError) -> Self::Output {
        Err(error.into())
    }
}
