//! A payload's fields: names, types and computed formulas.

use std::collections::BTreeMap;

use crate::diagnostic::did_you_mean;
use crate::model::{Enum, Field, FieldType};
use crate::names;
use crate::raw::{OrderedMap, RawField};

use super::context::{At, Context};
use super::formula::computed;
use super::types::{parse_type, type_names};

/// A payload's fields at `at` (the `fields` key): camelCase names that stay distinct in Rust,
/// known types, and formulas that fit them.
pub(super) fn fields<'a>(
    cx: &mut Context<'_>,
    at: &At<'a>,
    raw: &'a OrderedMap<RawField>,
    enums: &[Enum],
) -> Vec<Field> {
    cx.duplicates(raw, at, |_| "is listed twice".to_owned(), None, true);
    let mut out = Vec::new();
    let mut rust_names: BTreeMap<String, &str> = BTreeMap::new();
    for (name, raw_field) in &raw.entries {
        let field_at = at.key(name).field(name);
        let rust_name = names::snake(name);
        if !names::is_identifier(&rust_name) || !name.starts_with(|c: char| c.is_ascii_lowercase())
        {
            cx.error(
                &field_at,
                format!("field names must be camelCase identifiers; `{name}` is not"),
                None,
            );
        } else if let Some(other) = rust_names.insert(rust_name.clone(), name) {
            cx.error(
                &field_at,
                format!("collides with field `{other}`: both become the Rust field `{rust_name}`"),
                None,
            );
        }
        let (ty, optional) = match parse_type(&raw_field.ty, enums) {
            Ok(parsed) => parsed,
            Err(base) => {
                cx.error(
                    &field_at,
                    format!("unknown type `{base}`"),
                    did_you_mean(&base, type_names(enums)),
                );
                (FieldType::String, false)
            }
        };
        out.push(Field {
            name: name.clone(),
            description: raw_field.description.as_ref().map(|d| d.trim().to_owned()),
            ty,
            optional,
            computed: None,
        });
    }
    // Formulas refer to other fields, so they are resolved once every field is known.
    for (i, (name, raw_field)) in raw.entries.iter().enumerate() {
        let Some(formula) = &raw_field.computed else {
            continue;
        };
        let field_at = at.key(name).field(name);
        match computed(formula, &out[i], &out, enums) {
            Ok(c) => out[i].computed = Some(c),
            Err((message, help)) => cx.error(&field_at, message, help),
        }
    }
    out
}
