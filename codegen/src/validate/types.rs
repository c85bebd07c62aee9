//! Field types: `T`, `T[]`, `T?` over the built-in types, `Role` and the catalog's enums.

use crate::model::{Enum, FieldType};

/// The field types every catalog has, besides `Role` and its enums.
pub(super) const BUILTIN_TYPES: [&str; 6] = [
    "string",
    "number",
    "integer",
    "boolean",
    "timestamp",
    "Role",
];

/// The type names a field may use, for suggestions.
pub(super) fn type_names(enums: &[Enum]) -> Vec<&str> {
    BUILTIN_TYPES
        .iter()
        .copied()
        .chain(enums.iter().map(|e| e.name.as_str()))
        .collect()
}

/// `T`, `T[]`, `T?`: the type and whether the field is optional; `Err` holds an unknown base type.
pub(super) fn parse_type(text: &str, enums: &[Enum]) -> Result<(FieldType, bool), String> {
    let text = text.trim();
    let (text, optional) = match text.strip_suffix('?') {
        Some(inner) => (inner.trim_end(), true),
        None => (text, false),
    };
    fn base(text: &str, enums: &[Enum]) -> Result<FieldType, String> {
        if let Some(item) = text.strip_suffix("[]") {
            return base(item.trim_end(), enums).map(|t| FieldType::List(Box::new(t)));
        }
        Ok(match text {
            "string" => FieldType::String,
            "number" => FieldType::Number,
            "integer" => FieldType::Integer,
            "boolean" => FieldType::Boolean,
            "timestamp" => FieldType::Timestamp,
            "Role" => FieldType::Role,
            other => match enums.iter().position(|e| e.name == other) {
                Some(i) => FieldType::Enum(i),
                None => return Err(other.to_owned()),
            },
        })
    }
    base(text, enums).map(|t| (t, optional))
}
