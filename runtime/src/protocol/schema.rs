//! The protocol's JSON Schemas, derived from its types: what the TypeScript protocol types and
//! `generated-docs/schemas/{envelope,control-message,client-message}.json` are generated from.
//!
//! The schemas do not know the catalog. Where a value comes from it (a namespace, a role, an
//! event type, an event's payload), the field refers to a named definition below (`Namespace`,
//! `Role` ...), which a generator that knows the catalog replaces: the TypeScript generator with
//! the catalog's unions, the reference with enums and per-event variants.

use std::borrow::Cow;
use std::marker::PhantomData;

use schemars::{JsonSchema, Schema, SchemaGenerator, generate::SchemaSettings, json_schema};
use serde_json::Value;

use super::{ClientMessage, ControlMessage, Envelope, error_code};

/// The definition standing for a namespace of the catalog.
pub const NAMESPACE: &str = "Namespace";
/// The definition standing for a role of the catalog.
pub const ROLE: &str = "Role";
/// The definition standing for an event type of the catalog (`namespace:action`).
pub const EVENT_TYPE: &str = "EventType";
/// The definition standing for an event's payload (the event type's own schema).
pub const EVENT_DATA: &str = "EventData";
/// The definition of an event id (`<namespace>.<epoch>.<sealed position>`).
pub const EVENT_ID: &str = "EventId";
/// The definition of an `error` message's code.
pub const ERROR_CODE: &str = "ErrorCode";

/// The envelope of an event, as the server writes it.
pub fn envelope() -> Value {
    root::<Envelope<'static>>(SchemaSettings::draft2020_12().for_serialize())
}

/// Every control message, as the server writes it.
pub fn control_message() -> Value {
    root::<ControlMessage>(SchemaSettings::draft2020_12().for_serialize())
}

/// Every client message, as the server reads it.
pub fn client_message() -> Value {
    root::<ClientMessage>(SchemaSettings::draft2020_12().for_deserialize())
}

fn root<T: JsonSchema>(settings: SchemaSettings) -> Value {
    let mut schema = settings
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value();
    unwrap_descriptions(&mut schema);
    schema
}

/// Doc comments are wrapped at 100 columns; a description is prose, so its line breaks go.
fn unwrap_descriptions(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match value {
                    Value::String(text) if key == "description" => {
                        *text = text.split_whitespace().collect::<Vec<_>>().join(" ");
                    }
                    _ => unwrap_descriptions(value),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(unwrap_descriptions),
        _ => {}
    }
}

/// A named definition whose schema is fixed: a string standing for something of the catalog.
/// (The Rust names end in `Name` so that they never shadow a catalog's own `Namespace` or `Role`
/// in a compiler message.)
macro_rules! named {
    ($(#[$doc:meta])* $ty:ident = $name:expr, $schema:tt) => {
        $(#[$doc])*
        pub struct $ty;

        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                $name.into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!($schema)
            }
        }
    };
}

named!(
    /// A namespace of the catalog.
    NamespaceName = NAMESPACE,
    { "type": "string", "description": "A namespace of the catalog." }
);
named!(
    /// A role of the catalog.
    RoleName = ROLE,
    { "type": "string", "description": "A role of the catalog: a token's `role` claim." }
);
named!(
    /// An event type of the catalog.
    EventTypeName = EVENT_TYPE,
    { "type": "string", "description": "An event type of the catalog: `namespace:action`." }
);
named!(
    /// An event's payload.
    EventData = EVENT_DATA,
    { "description": "The payload, as the event type's schema describes it." }
);
named!(
    /// An event id.
    EventId = EVENT_ID,
    {
        "type": "string",
        "description": "`<namespace>.<epoch>.<sealed position>`: an event's unique id and its position in its namespace's stream, sealed so that it tells nothing of the events in between (ids do not compare: the server's order is the order). A client sends the last one it received back in `since` to resume."
    }
);

/// An `error` message's code: one of [`error_code::ALL`].
pub struct ErrorCode;

impl JsonSchema for ErrorCode {
    fn schema_name() -> Cow<'static, str> {
        ERROR_CODE.into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let codes: Vec<&str> = error_code::ALL.iter().map(|(code, _)| *code).collect();
        json_schema!({
            "type": "string",
            "enum": codes,
            "description": "A stable code saying what was wrong."
        })
    }
}

/// An object keyed by namespace, each holding a `V`.
pub struct PerNamespace<V>(PhantomData<V>);

impl<V: JsonSchema> JsonSchema for PerNamespace<V> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        format!("PerNamespace_{}", V::schema_name()).into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "propertyNames": generator.subschema_for::<NamespaceName>(),
            "additionalProperties": generator.subschema_for::<V>(),
        })
    }
}

/// Stream positions: namespace → the id of an event.
pub struct Positions;

impl JsonSchema for Positions {
    fn schema_name() -> Cow<'static, str> {
        "Positions".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut schema = PerNamespace::<EventId>::json_schema(generator);
        schema.insert(
            "description".into(),
            "Namespace → the id of an event (a stream position).".into(),
        );
        schema
    }
}
