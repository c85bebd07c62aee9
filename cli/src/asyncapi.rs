//! `generated-docs/asyncapi.yaml`: the catalog as an AsyncAPI 3.0 document. One channel per
//! namespace on the WebSocket server, one message per event (the envelope, its `data` the
//! payload's schema, titled with the payload's name), the connection's control and client
//! messages, the publish API as an operation on its own HTTP server, the security schemes, and
//! what AsyncAPI cannot say (roles, owners, target roles, history) as `x-omnicast-*` extensions.
//!
//! Built from the same sources as the rest of `generated-docs/`: the compiled catalog, the
//! payloads' schemas and the protocol's (`omnicast_runtime::protocol::schema`).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use omnicast::CATALOG;
use omnicast::runtime::names::schema_stem;
use omnicast::runtime::protocol::schema;
use omnicast::runtime::{EventEntry, HistoryPolicy};

use crate::docs::with_catalog;

/// The document, as YAML.
pub fn render() -> String {
    let mut components = Components::default();
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();

    for namespace in CATALOG.namespaces {
        let events: Vec<&EventEntry> = CATALOG
            .events
            .iter()
            .filter(|e| e.descriptor.namespace == namespace.name)
            .collect();
        let mut channel_messages = Map::new();
        for entry in &events {
            let key = schema_stem(entry.descriptor.name);
            messages.insert(key.clone(), event_message(entry, &mut components));
            channel_messages.insert(
                key.clone(),
                json!({ "$ref": format!("#/components/messages/{key}") }),
            );
        }
        let mut channel = json!({
            "address": namespace.name,
            "title": namespace.name,
            "description": format!(
                "{} Subscribe with `?namespaces={}` on the connection, or `{{\"type\": \"subscribe\", \"namespaces\": [\"{}\"]}}`.",
                namespace.description, namespace.name, namespace.name
            ),
            "servers": [{ "$ref": "#/servers/websocket" }],
            "messages": channel_messages,
        });
        channel["x-omnicast-history"] = history(namespace.history);
        let refs: Vec<Value> = events
            .iter()
            .map(|e| {
                let key = schema_stem(e.descriptor.name);
                json!({ "$ref": format!("#/channels/{}/messages/{key}", namespace.name) })
            })
            .collect();
        operations.insert(
            format!("receive-{}", namespace.name),
            json!({
                "action": "receive",
                "title": format!("Receive {} events", namespace.name),
                "summary": "Events of the namespace the connection's role and user may see.",
                "channel": { "$ref": format!("#/channels/{}", namespace.name) },
                "messages": refs,
            }),
        );
        channels.insert(namespace.name.to_owned(), channel);
    }

    connection(
        &mut channels,
        &mut operations,
        &mut messages,
        &mut components,
    );
    publish_api(
        &mut channels,
        &mut operations,
        &mut messages,
        &mut components,
    );

    let document = json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "omnicast events",
            "version": CATALOG.version,
            "description": "Every event of the catalog (events.yaml) as a client of an omnicast server receives it, and the publish API services send them with. The version is the catalog's (`CATALOG_VERSION`, also in every `ready`). Who receives an event is in each message's `x-omnicast-roles`, `x-omnicast-owner` and `x-omnicast-target-roles`; see the reference (EVENTS.md) for the rules.",
            "x-omnicast-generated": GENERATED,
        },
        "defaultContentType": "application/json",
        "servers": {
            "websocket": {
                "host": "127.0.0.1:8080",
                "protocol": "ws",
                "pathname": "/ws",
                "description": "One connection per client; `?namespaces=` and `?since=` in the query, the token in `Authorization: Bearer` or `?token=`.",
                "security": [
                    { "$ref": "#/components/securitySchemes/token" },
                    { "$ref": "#/components/securitySchemes/bearer" }
                ]
            },
            "publish-api": {
                "host": "127.0.0.1:8080",
                "protocol": "http",
                "pathname": "/api",
                "description": "The publish API: `POST /api/events` with an API key.",
                "security": [{ "$ref": "#/components/securitySchemes/apiKey" }]
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": components.schemas,
            "messages": messages,
            "securitySchemes": {
                "token": {
                    "type": "httpApiKey",
                    "name": "token",
                    "in": "query",
                    "description": "A JWT (`sub`, `role`, `exp`) in the query, for browsers."
                },
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A JWT (`sub`, `role`, `exp`) in `Authorization: Bearer`."
                },
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A publish API key in `Authorization: Bearer`."
                }
            }
        }
    });
    let mut text = format!("# {GENERATED}\n");
    text.push_str(&serde_yaml::to_string(&document).expect("JSON values serialize as YAML"));
    text
}

const GENERATED: &str = "@generated by `omnicast gen` from events.yaml. Do not edit: edit events.yaml and run `cargo run -- gen`.";

/// The schemas under `components/schemas`, each once: the payloads by their names, and the
/// definitions they and the protocol's schemas refer to. Two different schemas of one name (the
/// payloads' `Role` enum and the protocol's `Role`) get `Role`, `Role_2`.
#[derive(Default)]
struct Components {
    schemas: BTreeMap<String, Value>,
}

/// Definition names as a schema has them → as `components/schemas` has them.
type Renames = BTreeMap<String, String>;

impl Components {
    /// Adds `schema` as `name` or a free variant of it (its `$defs` beside it, its references
    /// rewritten) and returns a reference to it.
    fn add(&mut self, name: &str, mut schema: Value) -> Value {
        let renames = self.take_defs(&mut schema);
        if let Value::Object(map) = &mut schema {
            map.remove("$schema");
            map.remove("$comment");
        }
        rewrite_refs(&mut schema, &renames);
        let mut key = name.to_owned();
        for n in 2.. {
            match self.schemas.get(&key) {
                Some(existing) if *existing != schema => key = format!("{name}_{n}"),
                _ => break,
            }
        }
        self.schemas.insert(key.clone(), schema);
        json!({ "$ref": format!("#/components/schemas/{key}") })
    }

    /// Moves `schema`'s `$defs` here (but those standing for the event type and its data, which
    /// each message fixes); what each is named here.
    fn take_defs(&mut self, schema: &mut Value) -> Renames {
        let mut renames = Renames::new();
        let Some(Value::Object(defs)) = schema.as_object_mut().and_then(|m| m.remove("$defs"))
        else {
            return renames;
        };
        for (def, value) in defs {
            if def == schema::EVENT_TYPE || def == schema::EVENT_DATA {
                continue;
            }
            let reference = self.add(&def, value);
            let target = reference["$ref"].as_str().expect("a reference");
            let key = target
                .trim_start_matches("#/components/schemas/")
                .to_owned();
            renames.insert(def, key);
        }
        renames
    }
}

/// `#/$defs/X` → `#/components/schemas/<X as renamed>`, everywhere in `value`.
fn rewrite_refs(value: &mut Value, renames: &Renames) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(target) if key == "$ref" => {
                        if let Some(name) = target.strip_prefix("#/$defs/") {
                            let name = renames.get(name).map_or(name, String::as_str);
                            *target = format!("#/components/schemas/{name}");
                        }
                    }
                    _ => rewrite_refs(v, renames),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_refs(v, renames)),
        _ => {}
    }
}

fn history(policy: Option<HistoryPolicy>) -> Value {
    match policy {
        Some(h) => json!({ "size": h.size, "ttlSeconds": h.ttl_secs }),
        None => json!("off"),
    }
}

/// One event's message: the envelope with its `type` fixed and its `data` the payload.
fn event_message(entry: &EventEntry, components: &mut Components) -> Value {
    let d = entry.descriptor;
    let payload_name = if entry.payload().is_empty() {
        schema_stem(d.name)
    } else {
        entry.payload().to_owned()
    };
    // Events may share a payload; each struct's description is its event's, which the message
    // carries as its summary.
    let mut payload_schema = entry.schema().to_value();
    if let Value::Object(map) = &mut payload_schema {
        map.remove("description");
    }
    let data = components.add(&payload_name, payload_schema);
    let mut envelope = with_catalog(schema::envelope());
    let renames = components.take_defs(&mut envelope);
    let mut payload = json!({
        "type": "object",
        "properties": envelope["properties"].clone(),
        "required": envelope["required"].clone(),
    });
    rewrite_refs(&mut payload, &renames);
    payload["properties"]["type"] = json!({ "const": d.name });
    payload["properties"]["data"] = data;
    // `roles: all` is every bit set, the catalog's roles and any beyond.
    let roles: Value = if d.roles.indexes().any(|i| i as usize >= CATALOG.roles.len()) {
        json!("all")
    } else {
        d.roles
            .indexes()
            .map(|i| CATALOG.roles[i as usize].name)
            .collect()
    };
    let example: Value = serde_json::from_str(entry.example()).expect("examples are JSON");
    json!({
        "name": d.name,
        "title": d.name,
        "summary": d.description,
        "payload": payload,
        "examples": [{
            "name": "example",
            "payload": {
                "type": d.name,
                "namespace": d.namespace,
                "data": example,
                "timestamp": 1_700_000_000_000u64,
                "id": format!("{}.k3v9q2mf.1042", d.namespace),
            }
        }],
        "x-omnicast-roles": roles,
        "x-omnicast-owner": d.owner_field,
        "x-omnicast-target-roles": d.target_roles_field,
    })
}

/// The connection itself: the control messages the server sends and the messages a client
/// sends, on a channel of their own.
fn connection(
    channels: &mut Map<String, Value>,
    operations: &mut Map<String, Value>,
    messages: &mut Map<String, Value>,
    components: &mut Components,
) {
    let mut server_side = Vec::new();
    let mut client_side = Vec::new();
    for (mut root, side) in [
        (with_catalog(schema::control_message()), &mut server_side),
        (with_catalog(schema::client_message()), &mut client_side),
    ] {
        let renames = components.take_defs(&mut root);
        for variant in root["oneOf"].as_array().expect("tagged unions") {
            let tag = variant["properties"]["type"]["const"]
                .as_str()
                .expect("every message has a constant type");
            let mut payload = variant.clone();
            rewrite_refs(&mut payload, &renames);
            let summary = payload
                .as_object_mut()
                .and_then(|m| m.remove("description"))
                .unwrap_or_default();
            messages.insert(
                tag.to_owned(),
                json!({ "name": tag, "title": tag, "summary": summary, "payload": payload }),
            );
            side.push(tag.to_owned());
        }
    }
    let all: Map<String, Value> = server_side
        .iter()
        .chain(&client_side)
        .map(|tag| {
            (
                tag.clone(),
                json!({ "$ref": format!("#/components/messages/{tag}") }),
            )
        })
        .collect();
    channels.insert(
        "connection".into(),
        json!({
            "address": null,
            "title": "The connection",
            "description": "What the server says besides events (`ready` first), and what a client may send.",
            "servers": [{ "$ref": "#/servers/websocket" }],
            "messages": all,
        }),
    );
    let refs = |tags: &[String]| -> Vec<Value> {
        tags.iter()
            .map(|tag| json!({ "$ref": format!("#/channels/connection/messages/{tag}") }))
            .collect()
    };
    operations.insert(
        "receive-control".into(),
        json!({
            "action": "receive",
            "title": "Receive control messages",
            "channel": { "$ref": "#/channels/connection" },
            "messages": refs(&server_side),
        }),
    );
    operations.insert(
        "send-client-messages".into(),
        json!({
            "action": "send",
            "title": "Subscribe, unsubscribe, ping",
            "channel": { "$ref": "#/channels/connection" },
            "messages": refs(&client_side),
        }),
    );
}

/// `POST /api/events`: one event, or a batch, for services without the typed emitters.
fn publish_api(
    channels: &mut Map<String, Value>,
    operations: &mut Map<String, Value>,
    messages: &mut Map<String, Value>,
    components: &mut Components,
) {
    let options = json!({
        "type": "object",
        "description": "Broadcast options: narrow (`roles`, `userIds`), exclude (`excludeUserIds`, `excludeSessionIds`) or address another namespace's stream (`namespace`).",
        "properties": {
            "roles": { "type": "array", "items": { "$ref": "#/components/schemas/Role" } },
            "userIds": { "type": "array", "items": { "type": "string" } },
            "excludeUserIds": { "type": "array", "items": { "type": "string" } },
            "excludeSessionIds": { "type": "array", "items": { "type": "string" } },
            "namespace": { "$ref": "#/components/schemas/Namespace" }
        },
        "additionalProperties": false
    });
    let options = components.add("PublishOptions", options);
    let events: Vec<Value> = CATALOG
        .events
        .iter()
        .map(|entry| {
            let d = entry.descriptor;
            let stem = schema_stem(d.name);
            let data = messages[stem.as_str()]["payload"]["properties"]["data"].clone();
            json!({
                "type": "object",
                "properties": {
                    "type": { "const": d.name },
                    "data": data,
                    "options": options,
                    "timestamp": { "type": "integer", "minimum": 0, "description": "Milliseconds since the Unix epoch; the server's time when left out." }
                },
                "required": ["type", "data"],
                "additionalProperties": false
            })
        })
        .collect();
    let one = components.add("PublishedEvent", json!({ "oneOf": events }));
    messages.insert(
        "publish".into(),
        json!({
            "name": "publish",
            "title": "Publish events",
            "summary": "One event, or an array of them (published together, all or none). Answered 202 with the ids; see the README's Publish API for 400, 401, 409, 503 and 504.",
            "headers": {
                "type": "object",
                "properties": {
                    "Idempotency-Key": { "type": "string", "description": "Makes a retry safe: the same key and request publish once." }
                }
            },
            "payload": { "oneOf": [one.clone(), { "type": "array", "items": one }] }
        }),
    );
    channels.insert(
        "events-api".into(),
        json!({
            "address": "/events",
            "title": "POST /api/events",
            "servers": [{ "$ref": "#/servers/publish-api" }],
            "messages": { "publish": { "$ref": "#/components/messages/publish" } }
        }),
    );
    operations.insert(
        "publish".into(),
        json!({
            "action": "send",
            "title": "Publish events",
            "channel": { "$ref": "#/channels/events-api" },
            "messages": [{ "$ref": "#/channels/events-api/messages/publish" }],
            "bindings": { "http": { "method": "POST", "bindingVersion": "0.3.0" } }
        }),
    );
}
