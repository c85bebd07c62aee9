//! The state every request and connection shares: the leaf the endpoints, the accept loop and
//! the sessions depend on, so that none of them depends on another.

use std::sync::Arc;

use crate::server::auth::Authenticator;
use crate::server::config::ServerConfig;
use crate::server::hub::Hub;
use crate::server::limits::{Admissions, ConnectLimiter};
use crate::server::presence::Departures;
use crate::server::publication::IdGenerator;
use crate::server::publisher::Publisher;

/// Shared by every request and connection.
pub(crate) struct AppState {
    pub(crate) config: ServerConfig,
    pub(crate) hub: Arc<Hub>,
    pub(crate) publisher: Publisher,
    pub(crate) auth: Authenticator,
    pub(crate) sessions: IdGenerator,
    pub(crate) connects: ConnectLimiter,
    pub(crate) admissions: Arc<Admissions>,
    /// Publish requests per API key, when limited.
    pub(crate) publishes: Option<ConnectLimiter>,
    /// Users whose last connection closed, not yet announced offline (`presence.rs`).
    pub(crate) departures: Departures,
}

impl AppState {
    /// Whether shutdown has begun: new publishes and connections are refused.
    pub(crate) fn shutting_down(&self) -> bool {
        self.publisher.is_closed()
    }
}
