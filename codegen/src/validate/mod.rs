//! Raw YAML mirror -> validated model, one file per phase. Every check pushes a diagnostic and
//! carries on, so one run reports every problem; nothing here returns early on the first one.
//!
//! - [`context`]: where diagnostics go, and what each is about (`At`: key path, list item,
//!   event, field);
//! - [`locate`]: finding a key path, or one item of a list, in the YAML text;
//! - [`catalog`]: roles, enums and namespaces;
//! - [`history`]: what each namespace keeps for clients that resume;
//! - [`event`]: each event, as a list of named checks;
//! - [`fields`], [`types`], [`formula`]: a payload's fields, their types, computed formulas;
//! - [`example`]: a JSON value checked against the fields as the generated struct reads it;
//! - [`publisher`]: the TypeScript publisher's names (emitters, helpers and their entities).

mod catalog;
mod context;
mod event;
mod example;
mod fields;
mod formula;
pub mod history;
mod publisher;
mod types;

use crate::diagnostic::Diagnostics;
use crate::model::Catalog;
use crate::raw::RawCatalog;
use context::Context;

/// The most roles a catalog may define: one bit each in a `u64` mask.
pub const MAX_ROLES: usize = 64;

/// The most namespaces a catalog may define: a connection's subscriptions are a `u64` mask.
pub const MAX_NAMESPACES: usize = 64;

/// Validates a parsed file. `source` is the file's text, used to point at lines.
pub fn validate(file: &str, source: &str, raw: RawCatalog) -> Result<Catalog, Diagnostics> {
    let mut cx = Context::new(file, source);
    let roles = catalog::roles(&mut cx, &raw.roles);
    let enums = catalog::enums(&mut cx, &raw.enums);
    let namespaces = catalog::namespaces(&mut cx, &raw);
    let events = event::events(&mut cx, &raw, &roles, &enums);
    publisher::emitters(&mut cx, &raw, &events);
    let mut namespaces = namespaces;
    publisher::helpers(&mut cx, &raw, &events, &mut namespaces);
    cx.finish(Catalog {
        roles,
        enums,
        namespaces,
        events,
    })
}
