//! omnicast: typed, permission-aware real-time events generated from `events.yaml`.
//!
//! Everything below the re-exports is generated at build time (see `build.rs`): the [`Role`],
//! [`Namespace`] and value enums, one `...Payload` struct per event, the [`CATALOG`] permission
//! table, and the typed [`Events`] emitters.
//!
//! A service that only emits into its own [`EventSink`](runtime::EventSink) needs none of the
//! server: `omnicast = { default-features = false }` leaves out the `server` feature (axum,
//! hyper, tungstenite, jsonwebtoken), and nothing here ever pulls in the generator or a CLI.
//!
//! ```
//! use omnicast::{Events, OrderStatusChangedPayload, OrderStatus, Role};
//! # use omnicast::runtime::{ComputeError, EventSink, OutgoingEvent};
//! # struct Print;
//! # impl EventSink for Print {
//! #     type Output = ();
//! #     fn publish(&self, e: OutgoingEvent) { println!("{}", e.data); }
//! #     fn refuse(&self, e: ComputeError) { eprintln!("{e}"); }
//! # }
//! let events = Events::new(Print);
//! events
//!     .order_status_changed(OrderStatusChangedPayload {
//!         order_id: "ORD-001".into(),
//!         customer_id: "CUST-123".into(),
//!         customer_name: "John Doe".into(),
//!         old_status: OrderStatus::Pending,
//!         new_status: OrderStatus::Processing,
//!         timestamp: 1_700_000_100_000,
//!     })
//!     .to_roles([Role::Admin, Role::Customer])
//!     .send();
//! ```

pub use omnicast_runtime as runtime;

/// The markdown reference (`generated-docs/EVENTS.md`), rendered at build time from the same
/// events.yaml as the types above; `omnicast gen` writes it out.
pub const REFERENCE_MD: &str = include_str!(concat!(env!("OUT_DIR"), "/EVENTS.md"));

/// The TypeScript types of the same catalog (`clients/typescript/src/catalog.ts`, for
/// `@omnicast/client`), rendered at build time; `omnicast gen` writes them out.
pub const TYPESCRIPT: &str = include_str!(concat!(env!("OUT_DIR"), "/catalog.ts"));

/// A Rust client of the server, receiving this catalog's events as [`AnyEvent`]s: reconnect
/// with backoff and jitter, token renewal, resume with `recovered`. See
/// [`omnicast_runtime::client`].
///
/// ```no_run
/// # async fn run() {
/// use omnicast::client::{Client, ClientConfig, Message};
/// use omnicast::{AnyEvent, Namespace};
///
/// let config = ClientConfig::new("ws://127.0.0.1:8080/ws").namespaces([Namespace::Orders]);
/// let mut client = Client::connect(config, "<jwt>");
/// while let Some(message) = client.next().await {
///     if let Message::Event(received) = message
///         && let AnyEvent::OrderCreated(order) = received.event
///     {
///         println!("{} {}", order.order_id, order.total);
///     }
/// }
/// # }
/// ```
#[cfg(feature = "client")]
pub mod client {
    pub use omnicast_runtime::client::{ClientConfig, Received, Status, TokenSource};

    /// A client of this catalog's events.
    pub type Client = omnicast_runtime::client::Client<crate::AnyEvent>;
    /// What [`Client::next`](omnicast_runtime::client::Client::next) yields.
    pub type Message = omnicast_runtime::client::Message<crate::AnyEvent>;
}

mod generated {
    #![allow(missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/catalog.rs"));
}

pub use generated::*;
