//! Checks what a real server sends against the schemas in `generated-docs/schemas/`, with the
//! `jsonschema` crate. Two adjustments to the published files, both for the check only: a
//! reference to a sibling file (`order.created.json`) is inlined, its `$defs` joining the root's;
//! and every object schema that names its properties is closed (`additionalProperties: false`
//! where the file leaves objects open, as it must for clients to tolerate new fields), so that
//! nothing the server sends goes undocumented.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

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

/// `Ok` when `value` matches the schema in `file` (adjusted as above); otherwise every error.
pub fn check(file: &str, value: &Value) -> Result<(), String> {
    let mut schema = load(file);
    let mut defs = Map::new();
    inline(&mut schema, &mut defs);
    if let Some(Value::Object(root)) = schema.get_mut("$defs") {
        root.extend(defs);
    } else if !defs.is_empty() {
        schema["$defs"] = Value::Object(defs);
    }
    close(&mut schema);
    let validator = jsonschema::validator_for(&schema).map_err(|e| e.to_string())?;
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Replaces `{"$ref": "<sibling>.json"}` with the sibling's schema, its `$defs` moved to `defs`.
fn inline(schema: &mut Value, defs: &mut Map<String, Value>) {
    match schema {
        Value::Object(map) => {
            if let Some(file) = map
                .get("$ref")
                .and_then(Value::as_str)
                .filter(|r| r.ends_with(".json"))
            {
                let mut sibling = load(file);
                if let Some(Value::Object(own)) =
                    sibling.as_object_mut().and_then(|s| s.remove("$defs"))
                {
                    defs.extend(own);
                }
                *schema = sibling;
                return;
            }
            map.values_mut().for_each(|v| inline(v, defs));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| inline(v, defs)),
        _ => {}
    }
}

/// `additionalProperties: false` on every object schema that names its properties and says
/// nothing of others.
fn close(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            map.values_mut().for_each(close);
        }
        Value::Array(items) => items.iter_mut().for_each(close),
        _ => {}
    }
}
