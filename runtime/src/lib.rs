//! The generic omnicast runtime: what generated catalogs implement, and the server that delivers
//! their events.
//!
//! The runtime never knows a specific event. A catalog generated from `events.yaml` describes its
//! roles, namespaces and events with the descriptor types here ([`Catalog`], [`EventDescriptor`]),
//! implements [`Event`] for each payload (through `#[derive(Event)]`), and hands ready events to an
//! [`EventSink`] through the typed [`Emit`] builder. [`Server`] serves WebSocket clients and the
//! publish API; its [`Hub`] delivers each [`Publication`] only to the connections allowed to see it.

mod accept;
mod auth;
mod broker;
mod catalog;
mod connection;
mod emit;
mod event;
mod frame;
mod http;
mod hub;
mod limits;
pub mod protocol;
mod publication;
mod publish;
mod role;
mod server;

pub use auth::{AuthError, Authenticator, Identity, JwtConfig, JwtKey, KeyError, mint_hs256};
pub use broker::{Broker, BrokerError, InMemoryBroker};
pub use catalog::{
    Catalog, DecodeError, EventEntry, NamespaceDescriptor, PresenceRule, PresenceTrigger,
    RoleDescriptor,
};
pub use emit::{CatalogNamespace, Emit, EmitOptions, EventSink};
pub use event::{ComputeError, Event, EventDescriptor, OutgoingEvent, SentValues, percent_change};
pub use frame::Frame;
pub use http::ApiError;
pub use hub::{
    ConnId, ConnectionInfo, Full, Hub, HubStats, Mailbox, Registration, TooManyConnections,
    Unregistered,
};
pub use limits::ConnectRate;
pub use publication::{IdGenerator, Publication, now_ms};
pub use publish::{PublishError, Publisher};
pub use role::RoleMask;
pub use server::{Server, ServerConfig, bind};
