//! The protocol's TypeScript types, rendered from its JSON Schemas
//! ([`omnicast_runtime::protocol::schema`]): the envelope, the control messages, the client
//! messages and the definitions they share. Nothing here is typed by hand, so a field added to a
//! message in `protocol` reaches `catalog.ts` with the next `omnicast gen`.
//!
//! The schemas leave what comes from the catalog as named definitions (`Namespace`, `Role` ...);
//! they become the catalog's unions, which `super` renders.

use std::fmt::Write;

use serde_json::{Map, Value};

use omnicast_runtime::protocol::schema;

use super::doc;

/// The definitions `super` renders from the catalog: name → TypeScript type.
const FROM_CATALOG: [(&str, &str); 5] = [
    (schema::NAMESPACE, "Namespace"),
    (schema::ROLE, "Role"),
    (schema::EVENT_TYPE, "EventType"),
    (schema::EVENT_DATA, "unknown"),
    (schema::ERROR_CODE, "ErrorCode"),
];

/// Renders the envelope, the shared definitions, the control messages and the client messages.
pub(super) fn render(out: &mut String) {
    let envelope = schema::envelope();
    let control = schema::control_message();
    let client = schema::client_message();

    // The envelope is generic over its event type: `type` is `K`, `data` is `EventMap[K]`.
    let generic = Types::new(&envelope)
        .with(schema::EVENT_TYPE, "K")
        .with(schema::EVENT_DATA, "EventMap[K]");
    generic.interface(out, "Envelope<K extends EventType = EventType>", &envelope);
    doc(out, "", "Any event, discriminated by `type`.");
    out.push_str("export type AnyEnvelope = { [K in EventType]: Envelope<K> }[EventType];\n\n");

    let mut defined: Vec<String> = FROM_CATALOG.iter().map(|(n, _)| n.to_string()).collect();
    for root in [&envelope, &control, &client] {
        Types::new(root).definitions(out, &mut defined);
    }

    Types::new(&control).messages(out, "ControlMessage", &control);
    doc(out, "", "Anything the server sends.");
    out.push_str("export type ServerMessage = ControlMessage | AnyEnvelope;\n\n");
    Types::new(&client).messages(out, "ClientMessage", &client);
}

/// Turns the schemas of one root into TypeScript types.
struct Types<'s> {
    defs: Option<&'s Map<String, Value>>,
    names: Vec<(&'static str, &'static str)>,
}

impl<'s> Types<'s> {
    fn new(root: &'s Value) -> Self {
        Types {
            defs: root.get("$defs").and_then(Value::as_object),
            names: FROM_CATALOG.to_vec(),
        }
    }

    /// Renders the definition `name` as `ty` instead.
    fn with(mut self, name: &'static str, ty: &'static str) -> Self {
        self.names.retain(|(n, _)| *n != name);
        self.names.push((name, ty));
        self
    }

    /// `export type Name = ...;` for each definition not rendered yet.
    fn definitions(&self, out: &mut String, defined: &mut Vec<String>) {
        for (name, schema) in self.defs.into_iter().flatten() {
            if defined.contains(name) {
                continue;
            }
            defined.push(name.clone());
            describe(out, "", schema);
            let _ = writeln!(out, "export type {name} = {};\n", self.ty(schema));
        }
    }

    /// One interface per variant of a tagged union (`ReadyMessage` for `type: "ready"`), and
    /// the union itself as `name`.
    fn messages(&self, out: &mut String, name: &str, root: &Value) {
        let mut variants = Vec::new();
        for variant in items(root, "oneOf") {
            let tag = variant
                .pointer("/properties/type/const")
                .and_then(Value::as_str)
                .expect("every message has a constant `type`");
            let interface = format!("{}Message", pascal_case(tag));
            self.interface(out, &interface, variant);
            variants.push(interface);
        }
        describe(out, "", root);
        let _ = writeln!(out, "export type {name} = {};\n", variants.join(" | "));
    }

    /// `export interface Name { ... }`: required properties in their declared order, then the
    /// optional ones.
    fn interface(&self, out: &mut String, name: &str, schema: &Value) {
        describe(out, "", schema);
        let _ = writeln!(out, "export interface {name} {{");
        let properties = schema.get("properties").and_then(Value::as_object);
        let required: Vec<&str> = items(schema, "required")
            .filter_map(Value::as_str)
            .collect();
        let optional = properties
            .into_iter()
            .flatten()
            .map(|(name, _)| name.as_str())
            .filter(|name| !required.contains(name));
        for field in required.iter().copied().chain(optional) {
            let property = &properties.expect("required properties exist")[field];
            describe(out, "  ", property);
            let mark = if required.contains(&field) { "" } else { "?" };
            let _ = writeln!(out, "  {field}{mark}: {};", self.ty(property));
        }
        out.push_str("}\n\n");
    }

    /// The TypeScript type of a schema, for the subset of JSON Schema the protocol's types
    /// produce.
    fn ty(&self, schema: &Value) -> String {
        if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
            let name = target
                .strip_prefix("#/$defs/")
                .expect("references are local");
            return match self.names.iter().find(|(n, _)| *n == name) {
                Some((_, ty)) => (*ty).to_owned(),
                None => name.to_owned(),
            };
        }
        if let Some(value) = schema.get("const") {
            return value.to_string();
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            return union(values.iter().map(Value::to_string));
        }
        if let Some(options) = schema.get("anyOf").or_else(|| schema.get("oneOf")) {
            let options = options.as_array().expect("a list of schemas");
            return union(options.iter().map(|s| self.ty(s)));
        }
        if let Some(types) = schema.get("type").and_then(Value::as_array) {
            // `["integer", "null"]`: each type with the rest of the schema.
            return union(types.iter().map(|ty| {
                let mut one = schema.clone();
                one["type"] = ty.clone();
                self.ty(&one)
            }));
        }
        match schema.get("type").and_then(Value::as_str) {
            Some("string") => "string".into(),
            Some("integer" | "number") => "number".into(),
            Some("boolean") => "boolean".into(),
            Some("null") => "null".into(),
            Some("array") => {
                let item = self.ty(&schema["items"]);
                if item.contains(' ') {
                    format!("({item})[]")
                } else {
                    format!("{item}[]")
                }
            }
            Some("object") => self.object(schema),
            _ => "unknown".into(),
        }
    }

    fn object(&self, schema: &Value) -> String {
        let value = match schema.get("additionalProperties") {
            Some(Value::Bool(false)) | None => "never".to_owned(),
            Some(Value::Bool(true)) => "unknown".to_owned(),
            Some(value) => self.ty(value),
        };
        match schema.get("propertyNames") {
            Some(keys) => format!("{{ [K in {}]?: {value} }}", self.ty(keys)),
            None => format!("{{ [key: string]: {value} }}"),
        }
    }
}

fn items<'v>(schema: &'v Value, key: &str) -> impl Iterator<Item = &'v Value> {
    schema
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn union(types: impl Iterator<Item = String>) -> String {
    let types: Vec<String> = types.collect();
    types.join(" | ")
}

fn describe(out: &mut String, indent: &str, schema: &Value) {
    if let Some(text) = schema.get("description").and_then(Value::as_str) {
        doc(out, indent, text);
    }
}

fn pascal_case(snake: &str) -> String {
    snake
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_variant_and_field_is_rendered() {
        let mut out = String::new();
        render(&mut out);
        for root in [schema::control_message(), schema::client_message()] {
            for variant in items(&root, "oneOf") {
                let tag = variant["properties"]["type"]["const"].as_str().unwrap();
                let interface = format!("export interface {}Message {{", pascal_case(tag));
                let body = out
                    .split(&interface)
                    .nth(1)
                    .unwrap_or_else(|| panic!("no `{interface}` in {out}"));
                let body = &body[..body.find("\n}").unwrap()];
                for field in variant["properties"].as_object().unwrap().keys() {
                    assert!(
                        body.contains(&format!("\n  {field}:"))
                            || body.contains(&format!("\n  {field}?:")),
                        "`{field}` of `{tag}` missing from {body}"
                    );
                }
            }
        }
        assert!(out.contains("export interface Envelope<K extends EventType = EventType> {"));
        assert!(out.contains("  type: K;\n") && out.contains("  data: EventMap[K];\n"));
    }

    #[test]
    fn catalog_definitions_become_the_catalog_unions() {
        let types = Types::new(&Value::Null);
        let ty = |schema: Value| types.ty(&schema);
        assert_eq!(
            ty(serde_json::json!({"$ref": "#/$defs/Namespace"})),
            "Namespace"
        );
        assert_eq!(ty(serde_json::json!({"$ref": "#/$defs/PingId"})), "PingId");
        assert_eq!(
            ty(
                serde_json::json!({"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "null"}]}})
            ),
            "(string | null)[]"
        );
        assert_eq!(
            ty(
                serde_json::json!({"type": "object", "propertyNames": {"$ref": "#/$defs/Namespace"}, "additionalProperties": {"type": "boolean"}})
            ),
            "{ [K in Namespace]?: boolean }"
        );
        assert_eq!(ty(serde_json::json!({"const": "ready"})), "\"ready\"");
    }
}
