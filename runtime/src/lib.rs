//! The generic omnicast runtime, in two layers.
//!
//! **The base layer** is what generated catalogs use and all a service that only emits needs:
//! the [`Event`] trait every payload implements (through `#[derive(Event)]`), the descriptors a
//! catalog describes itself with ([`Catalog`], [`EventDescriptor`], [`RoleMask`]), the typed
//! [`Emit`] builder and the [`EventSink`] it hands ready events to, the delivery rules
//! ([`delivery`]), the wire protocol's messages ([`protocol`]) and the naming rules every
//! omnicast crate shares ([`names`]). It depends on serde, serde_json and schemars (and
//! serde_path_to_error, strsim and thiserror) only.
//!
//! **The server** ([`server`], the `server` feature, on by default) serves WebSocket clients and
//! the publish API: its hub delivers each publication only to the connections allowed to see it.
//! The runtime never knows a specific event; generated code never needs the server.

#[cfg(any(feature = "server", feature = "client"))]
mod backoff;
mod catalog;
#[cfg(feature = "client")]
pub mod client;
pub mod delivery;
mod emit;
mod event;
pub mod names;
mod namespaces;
mod options;
pub mod position;
pub mod protocol;
mod role;
#[cfg(feature = "server")]
pub mod server;

pub use catalog::{
    Catalog, DecodeError, EventEntry, HistoryPolicy, NamespaceDescriptor, PresenceRule,
    PresenceTrigger, RoleDescriptor,
};
pub use emit::{CatalogNamespace, Emit, EventSink};
pub use event::{
    CatalogEvents, ComputeError, Event, EventDescriptor, OutgoingEvent, PayloadError, SentValues,
    decode_json, percent_change,
};
pub use namespaces::NamespaceSet;
pub use options::EmitOptions;
pub use role::RoleMask;

/// What a service running or feeding a server uses; the rest (the hub, brokers, publications)
/// stays behind [`server`].
#[cfg(feature = "server")]
pub use server::{
    ConnectRate, HttpSink, HttpSinkError, JwtConfig, JwtKey, KeyError, PublishError, Publisher,
    RedisConfig, RedisSink, Server, ServerConfig, StartError, bind, mint_hs256,
};
