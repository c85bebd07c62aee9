//! The generic omnicast runtime: what generated catalogs implement and what services call.
//!
//! The runtime never knows a specific event. A catalog generated from `events.yaml` describes its
//! roles, namespaces and events with the descriptor types here ([`Catalog`], [`EventDescriptor`]),
//! implements [`Event`] for each payload (through `#[derive(Event)]`), and hands ready events to an
//! [`EventSink`] through the typed [`Emit`] builder.

mod catalog;
mod emit;
mod event;
mod role;

pub use catalog::{
    Catalog, DecodeError, EventEntry, NamespaceDescriptor, PresenceRule, PresenceTrigger,
    RoleDescriptor,
};
pub use emit::{Emit, EmitOptions, EventSink};
pub use event::{Event, EventDescriptor, OutgoingEvent, percent_change};
pub use role::RoleMask;

#[doc(hidden)]
pub mod __private {
    //! Re-exports for generated code; not a public API.
    pub use schemars;
    pub use serde_json;
}
