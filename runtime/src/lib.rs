//! The generic omnicast runtime: what generated catalogs implement, and the server that delivers
//! their events.
//!
//! The runtime never knows a specific event. A catalog generated from `events.yaml` describes its
//! roles, namespaces and events with the descriptor types here ([`Catalog`], [`EventDescriptor`]),
//! implements [`Event`] for each payload (through `#[derive(Event)]`), and hands ready events to an
//! [`EventSink`] through the typed [`Emit`] builder. [`Server`] serves WebSocket clients and the
//! publish API; its [`Hub`] delivers each [`Publication`] only to the connections allowed to see it.

mod auth;
mod broker;
mod catalog;
mod connection;
mod emit;
mod event;
mod frame;
mod http;
mod hub;
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
pub use emit::{Emit, EmitOptions, EventSink};
pub use event::{Event, EventDescriptor, OutgoingEvent, percent_change};
pub use frame::Frame;
pub use http::ApiError;
pub use hub::{ConnId, ConnectionInfo, Full, Hub, HubStats, Mailbox, Registration, Unregistered};
pub use publication::{IdGenerator, Publication, now_ms};
pub use publish::Publisher;
pub use role::RoleMask;
pub use server::{Server, ServerConfig, bind};
