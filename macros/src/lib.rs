//! `#[derive(Event)]`: turns a payload struct's `#[event(...)]` attributes into an
//! `omnicast_runtime::Event` impl.
//!
//! ```text
//! /// New order placed
//! #[derive(Serialize, Deserialize, Event)]
//! #[serde(rename_all = "camelCase")]
//! #[event(name = "order:status_changed", namespace = "orders",
//!         roles(Role::Admin, Role::Customer), owner = customer_id)]
//! pub struct OrderStatusChangedPayload { pub order_id: String, pub customer_id: String }
//! ```
//!
//! Struct attributes: `name` (`namespace:action`, snake_case), `namespace`, `roles(...)` (role enum
//! variants, or `all`), optional `owner = field` (a `String` field: the user who owns the event),
//! optional `target_roles = field` (an `Option<Vec<Role>>` field that narrows the roles).
//! Field attribute: `#[event(computed = expr)]`, the field's value recomputed from `self` before
//! every send. The struct's doc comment is the event's description.

mod ast;
mod attr;
mod check;
mod expand;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

/// Implements `omnicast_runtime::Event`; see the crate docs for the attributes.
#[proc_macro_derive(Event, attributes(event))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    // Read, judge, write: each phase only consumes the one before it (as serde_derive does).
    let expanded = ast::Parsed::from_syn(&input)
        .and_then(check::input)
        .map(|checked| expand::event_impl(&checked));
    match expanded {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}
