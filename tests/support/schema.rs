//! Checks a JSON value against the schemas in `generated-docs/schemas/`: the keywords those
//! schemas use (`$ref` within a file and to a sibling file, `oneOf`, `anyOf`, `const`, `enum`,
//! `type`, `properties`, `required`, `additionalProperties`, `propertyNames`, `items`,
//! `maxLength`, `minimum`, `maximum`). `pattern` and `format` are not checked. Stricter than JSON
//! Schema in one way: a field an object's `properties` do not name is an error even where the
//! schema leaves objects open, so that nothing the server sends goes undocumented. Written here
//! rather than pulling a validator crate and its regex engine into every test build.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The schemas' directory.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("generated-docs/schemas")
}

/// Reads `generated-docs/schemas/<file>`.
pub fn load(file: &str) -> Value {
    let path = dir().join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run `cargo run -- gen`)", path.display()));
    serde_json::from_str(&text).expect("schemas are JSON")
}

/// `Ok` when `value` matches the schema in `file`; otherwise what did not, and where.
pub fn check(file: &str, value: &Value) -> Result<(), String> {
    let root = load(file);
    Checker { root: &root }.check(&root, value, "$")
}

struct Checker<'r> {
    root: &'r Value,
}

impl Checker<'_> {
    fn check(&self, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
        let fail = |why: String| Err(format!("{at}: {why} (value {value})"));
        if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
            match target.strip_prefix("#/$defs/") {
                Some(name) => self.check(&self.root["$defs"][name], value, at)?,
                None => check(target, value).map_err(|e| format!("{at} ({target}): {e}"))?,
            }
        }
        if let Some(expected) = schema.get("const")
            && value != expected
        {
            return fail(format!("is not {expected}"));
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array)
            && !values.contains(value)
        {
            return fail(format!("is not one of {values:?}"));
        }
        if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
            let errors: Vec<String> = options
                .iter()
                .filter_map(|s| self.check(s, value, at).err())
                .collect();
            if options.len() - errors.len() != 1 {
                return fail(format!(
                    "matches {} of oneOf's {} ({errors:?})",
                    options.len() - errors.len(),
                    options.len()
                ));
            }
        }
        if let Some(options) = schema.get("anyOf").and_then(Value::as_array)
            && options.iter().all(|s| self.check(s, value, at).is_err())
        {
            return fail("matches none of anyOf".into());
        }
        if let Some(ty) = schema.get("type").and_then(Value::as_str) {
            let matches = match ty {
                "string" => value.is_string(),
                "integer" => value.is_i64() || value.is_u64(),
                "number" => value.is_number(),
                "boolean" => value.is_boolean(),
                "null" => value.is_null(),
                "array" => value.is_array(),
                "object" => value.is_object(),
                other => return fail(format!("unknown type {other}")),
            };
            if !matches {
                return fail(format!("is not of type {ty}"));
            }
        }
        if let (Some(max), Some(text)) = (
            schema.get("maxLength").and_then(Value::as_u64),
            value.as_str(),
        ) && text.len() as u64 > max
        {
            return fail(format!("is longer than {max}"));
        }
        if let Some(number) = value.as_f64() {
            if schema["minimum"].as_f64().is_some_and(|min| number < min) {
                return fail("is below the minimum".into());
            }
            if schema["maximum"].as_f64().is_some_and(|max| number > max) {
                return fail("is above the maximum".into());
            }
        }
        if let (Some(items), Some(values)) = (schema.get("items"), value.as_array()) {
            for (i, item) in values.iter().enumerate() {
                self.check(items, item, &format!("{at}[{i}]"))?;
            }
        }
        if let Some(object) = value.as_object() {
            for name in schema["required"].as_array().into_iter().flatten() {
                let name = name.as_str().expect("required names are strings");
                if !object.contains_key(name) {
                    return fail(format!("lacks `{name}`"));
                }
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            for (name, field) in object {
                let here = format!("{at}.{name}");
                if let Some(keys) = schema.get("propertyNames") {
                    self.check(keys, &Value::String(name.clone()), &here)?;
                }
                match (
                    properties.and_then(|p| p.get(name)),
                    schema.get("additionalProperties"),
                ) {
                    (Some(property), _) => self.check(property, field, &here)?,
                    (None, Some(Value::Bool(false))) => {
                        return fail(format!("has `{name}`, which the schema does not allow"));
                    }
                    (None, Some(extra)) => self.check(extra, field, &here)?,
                    (None, None) if properties.is_some() => {
                        return fail(format!("has `{name}`, which the schema does not name"));
                    }
                    (None, None) => {}
                }
            }
        }
        Ok(())
    }
}
