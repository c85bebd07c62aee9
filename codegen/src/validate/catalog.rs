//! Catalog-level checks: roles, enums, namespaces.

use std::collections::BTreeMap;

use crate::model::{Enum, Namespace, Role};
use crate::names::{self, is_snake};
use crate::raw::{OrderedMap, RawCatalog, RawEnum, RawRole};

use super::MAX_ROLES;
use super::context::{At, Context};
use super::history;
use super::types::BUILTIN_TYPES;

/// Types the generated crate defines besides the catalog's own.
pub(super) const GENERATED_TYPES: [&str; 4] = ["Role", "Namespace", "Events", "AnyEvent"];

/// The help of every duplicate key.
pub(super) const MERGE: &str = "each key may appear once; merge the two entries";

/// The roles: snake_case, not `all`, at most [`MAX_ROLES`].
pub(super) fn roles(cx: &mut Context<'_>, raw: &OrderedMap<RawRole>) -> Vec<Role> {
    cx.duplicates(
        raw,
        &At::path(&["roles"]),
        |key| format!("duplicate role `{key}`"),
        Some(MERGE),
        false,
    );
    if raw.entries.is_empty() {
        cx.error(&At::path(&["roles"]), "the catalog defines no roles", None);
    }
    if raw.entries.len() > MAX_ROLES {
        cx.error(
            &At::path(&["roles"]),
            format!(
                "{} roles defined; at most {MAX_ROLES} are supported",
                raw.entries.len()
            ),
            None,
        );
    }
    let mut out = Vec::new();
    for (name, role) in &raw.entries {
        let at = At::path(&["roles", name.as_str()]);
        if name == "all" {
            cx.error(
                &at,
                "`all` is reserved for `roles: all` and cannot name a role",
                None,
            );
        } else if !is_snake(name) {
            cx.error(
                &at,
                format!("role name `{name}` must be snake_case, like `admin` or `store_manager`"),
                None,
            );
        }
        out.push(Role {
            name: name.clone(),
            description: role.description.trim().to_owned(),
            own_events_only: role.own_events_only,
        });
    }
    out
}

/// The enums: PascalCase names that collide with nothing generated, values that make distinct
/// Rust variants.
pub(super) fn enums(cx: &mut Context<'_>, raw: &OrderedMap<RawEnum>) -> Vec<Enum> {
    cx.duplicates(
        raw,
        &At::path(&["enums"]),
        |key| format!("duplicate enum `{key}`"),
        Some(MERGE),
        false,
    );
    let mut out = Vec::new();
    for (name, def) in &raw.entries {
        let at = At::path(&["enums", name.as_str()]);
        if !name.starts_with(|c: char| c.is_ascii_uppercase()) || !names::is_identifier(name) {
            cx.error(
                &at,
                format!("enum name `{name}` must be PascalCase, like `OrderStatus`"),
                None,
            );
        } else if BUILTIN_TYPES.contains(&name.as_str()) || GENERATED_TYPES.contains(&name.as_str())
        {
            cx.error(
                &at,
                format!("enum name `{name}` collides with a generated type of the same name"),
                None,
            );
        }
        if def.values.is_empty() {
            cx.error(&at, format!("enum `{name}` has no values"), None);
        }
        let mut variants: BTreeMap<String, &str> = BTreeMap::new();
        for (i, value) in def.values.iter().enumerate() {
            let item = at.key("values").item(i);
            let variant = names::pascal(value);
            if !names::is_identifier(&variant) || variant.is_empty() {
                cx.error(
                    &item,
                    format!("enum `{name}` value `{value}` does not make a Rust variant name"),
                    Some("use letters, digits and underscores, starting with a letter".into()),
                );
            } else if let Some(other) = variants.insert(variant.clone(), value) {
                let message = if other == value {
                    format!("enum `{name}` lists value `{value}` twice")
                } else {
                    format!(
                        "enum `{name}` values `{other}` and `{value}` both become the variant `{variant}`"
                    )
                };
                cx.error(&item, message, None);
            }
        }
        out.push(Enum {
            name: name.clone(),
            description: def.description.trim().to_owned(),
            values: def.values.clone(),
        });
    }
    out
}

/// The namespaces: snake_case, at least one, each with its history.
pub(super) fn namespaces(cx: &mut Context<'_>, raw: &RawCatalog) -> Vec<Namespace> {
    cx.duplicates(
        &raw.namespaces,
        &At::path(&["namespaces"]),
        |key| format!("duplicate namespace `{key}`"),
        Some(MERGE),
        false,
    );
    if raw.namespaces.entries.is_empty() {
        cx.error(
            &At::path(&["namespaces"]),
            "the catalog defines no namespaces",
            None,
        );
    }
    let default = history::default(cx, raw.history.as_ref());
    let mut out = Vec::new();
    for (name, ns) in &raw.namespaces.entries {
        if !is_snake(name) {
            cx.error(
                &At::path(&["namespaces", name]),
                format!("namespace name `{name}` must be snake_case, like `orders`"),
                None,
            );
        }
        out.push(Namespace {
            name: name.clone(),
            description: ns.description.trim().to_owned(),
            history: history::namespace(cx, name, ns.history.as_ref(), default),
            // Checked once the events are known (`publisher::helpers`).
            helper: None,
        });
    }
    out
}
