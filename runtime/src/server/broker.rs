//! The boundary every publication crosses on its way to the hubs that hold connections.

use std::sync::Arc;

use crate::server::hub::Hub;
use crate::server::publication::Publication;

/// Carries publications to every hub serving clients: in memory for one node; a distributed
/// broker (Redis) implements the same trait when several nodes serve the same clients.
pub trait Broker: Send + Sync + 'static {
    /// Hands a publication over for delivery. Must not block.
    fn publish(&self, publication: Arc<Publication>) -> Result<(), BrokerError>;
}

/// Why a publication could not be handed over.
#[derive(Debug, thiserror::Error)]
#[error("broker unavailable: {0}")]
pub struct BrokerError(pub String);

/// The single-node broker: publications go straight to the local hub.
#[derive(Debug, Clone)]
pub struct InMemoryBroker {
    hub: Arc<Hub>,
}

impl InMemoryBroker {
    /// A broker delivering into `hub`.
    pub fn new(hub: Arc<Hub>) -> Self {
        InMemoryBroker { hub }
    }
}

impl Broker for InMemoryBroker {
    fn publish(&self, publication: Arc<Publication>) -> Result<(), BrokerError> {
        self.hub.deliver(&publication);
        Ok(())
    }
}
