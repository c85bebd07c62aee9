//! The catalog table a generated crate exposes: roles, namespaces, events, decoders and schemas.

use std::fmt;

use schemars::JsonSchema;
use serde_json::value::RawValue;

use crate::event::{ComputeError, Event, EventDescriptor, OutgoingEvent, SentValues};
use crate::names;
use crate::namespaces::NamespaceSet;
use crate::options::EmitOptions;
use crate::role::RoleMask;

/// A role of the catalog; its index in [`Catalog::roles`] is its bit in a [`RoleMask`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleDescriptor {
    /// The role's name as it appears in tokens and options (`admin`).
    pub name: &'static str,
    /// Who holds it.
    pub description: &'static str,
    /// Whether the role receives only events it owns (where the event has an owner field).
    pub own_events_only: bool,
}

/// A namespace connections subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamespaceDescriptor {
    /// The name (`orders`).
    pub name: &'static str,
    /// What its events are about.
    pub description: &'static str,
    /// What it keeps for clients that resume; `None` when it keeps nothing (`history: off`).
    pub history: Option<HistoryPolicy>,
}

/// How much of a namespace's stream is kept for clients that resume: at most `size` events,
/// none older than `ttl_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryPolicy {
    /// The most events kept.
    pub size: u32,
    /// The longest an event is kept, in seconds.
    pub ttl_secs: u32,
}

/// One event type in the catalog table, with its decoder and schema.
#[derive(Clone, Copy)]
pub struct EventEntry {
    /// Type, namespace, roles, owner and targeting.
    pub descriptor: &'static EventDescriptor,
    decode: fn(&str, EmitOptions) -> Result<OutgoingEvent, DecodeError>,
    schema: fn() -> schemars::Schema,
    example: &'static str,
    payload: &'static str,
}

impl EventEntry {
    /// The entry for a payload type.
    pub const fn of<E: Event + JsonSchema>() -> Self {
        EventEntry {
            descriptor: &E::DESCRIPTOR,
            decode: decode_as::<E>,
            schema: schema_of::<E>,
            example: "{}",
            payload: "",
        }
    }

    /// The same entry with the catalog's name for its payload type (`CustomerOnlineStatusPayload`,
    /// which events may share), the name TypeScript and the schemas use.
    pub const fn with_payload(mut self, payload: &'static str) -> Self {
        self.payload = payload;
        self
    }

    /// The catalog's name for the payload type; empty when the entry was not given one.
    pub fn payload(&self) -> &'static str {
        self.payload
    }

    /// The same entry with the catalog's example payload (JSON text).
    pub const fn with_example(mut self, example: &'static str) -> Self {
        self.example = example;
        self
    }

    /// The catalog's example payload, as JSON text (checked against the fields when the catalog
    /// was validated).
    pub fn example(&self) -> &'static str {
        self.example
    }

    /// Parses `data` (JSON text) as this event's payload and prepares it for delivery.
    pub fn decode(&self, data: &str, options: EmitOptions) -> Result<OutgoingEvent, DecodeError> {
        (self.decode)(data, options)
    }

    /// The JSON Schema of the payload, as serde accepts it, titled with the catalog's payload
    /// name when it has one.
    pub fn schema(&self) -> schemars::Schema {
        let mut schema = (self.schema)();
        if !self.payload.is_empty() {
            schema.insert("title".into(), self.payload.into());
        }
        schema
    }
}

impl fmt::Debug for EventEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("EventEntry").field(self.descriptor).finish()
    }
}

fn decode_as<E: Event>(data: &str, options: EmitOptions) -> Result<OutgoingEvent, DecodeError> {
    // serde also reads structs from JSON arrays (by position); a payload is always an object.
    if !data.trim_start().starts_with('{') {
        return Err(DecodeError::InvalidData {
            path: "data".to_owned(),
            message: "expected an object of payload fields".to_owned(),
        });
    }
    let mut deserializer = serde_json::Deserializer::from_str(data);
    let mut payload: E = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        DecodeError::InvalidData {
            path: json_path(err.path()),
            message: without_position(err.into_inner()),
        }
    })?;
    deserializer.end().map_err(|err| DecodeError::InvalidData {
        path: "data".to_owned(),
        message: without_position(err),
    })?;
    payload
        .compute(SentValues::Verify)
        .map_err(|err| DecodeError::InvalidData {
            path: format!("data.{}", err.field()),
            message: err.to_string(),
        })?;
    Ok(OutgoingEvent::computed(payload, options))
}

/// `data.targetRoles[1]`: the path from the request's `data`.
fn json_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::from("data");
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                out.push('.');
                out.push_str(key);
            }
            Segment::Enum { variant } => {
                out.push('.');
                out.push_str(variant);
            }
            Segment::Unknown => out.push_str(".?"),
        }
    }
    out
}

/// serde_json's message without its " at line 1 column 25" suffix: the position is within `data`,
/// not the request a publisher sent, so it would only mislead.
fn without_position(err: serde_json::Error) -> String {
    let mut message = err.to_string();
    if err.line() > 0
        && let Some(at) = message.rfind(" at line ")
    {
        message.truncate(at);
    }
    message
}

fn schema_of<E: JsonSchema>() -> schemars::Schema {
    schemars::SchemaGenerator::default().into_root_schema_for::<E>()
}

/// Why a `(type, data)` pair could not become an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// No event of that type is in the catalog.
    #[error("unknown event type `{name}`{}", did_you_mean(.suggestion))]
    UnknownType {
        /// The type asked for.
        name: String,
        /// The closest known type, when one is close.
        suggestion: Option<&'static str>,
    },
    /// The payload does not match the event's schema.
    #[error("{path}: {message}")]
    InvalidData {
        /// Where in the input, from `data` (`data.total`, `data.targetRoles[0]`).
        path: String,
        /// What is wrong there.
        message: String,
    },
}

fn did_you_mean(suggestion: &Option<&'static str>) -> String {
    suggestion
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

/// What makes the server emit an event by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceTrigger {
    /// A user's first connection (with one of the rule's roles) opens.
    FirstConnect,
    /// That user's last such connection closes.
    LastDisconnect,
}

/// An event the server emits when connections come and go (`server_emits` in events.yaml).
#[derive(Clone, Copy)]
pub struct PresenceRule {
    /// The event's wire type.
    pub event: &'static str,
    /// When.
    pub on: PresenceTrigger,
    /// Whose connections count.
    pub roles: RoleMask,
    /// Builds the event for a user id at a time (ms since the Unix epoch).
    pub build: fn(&str, u64) -> Result<OutgoingEvent, ComputeError>,
}

impl fmt::Debug for PresenceRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresenceRule")
            .field("event", &self.event)
            .field("on", &self.on)
            .field("roles", &self.roles)
            .finish()
    }
}

/// Everything a generated crate knows about its events, as static tables.
#[derive(Debug)]
pub struct Catalog {
    /// The catalog's version (`CATALOG_VERSION`): a hash of everything servers and clients act
    /// on, sent in `ready` so that a client can tell a server built from another catalog.
    pub version: &'static str,
    /// The roles, in bit order.
    pub roles: &'static [RoleDescriptor],
    /// The namespaces, in bit order (a connection's subscriptions are a bitmask of them).
    pub namespaces: &'static [NamespaceDescriptor],
    /// The events, in catalog order.
    pub events: &'static [EventEntry],
    /// The events the server emits by itself.
    pub presence: &'static [PresenceRule],
}

impl Catalog {
    /// The event entry for a wire type name.
    pub fn event(&self, name: &str) -> Option<&EventEntry> {
        self.events.iter().find(|e| e.descriptor.name == name)
    }

    /// The bit of a role, by name.
    pub fn role(&self, name: &str) -> Option<RoleMask> {
        self.role_index(name).map(RoleMask::single)
    }

    /// The index of a role, by name.
    pub fn role_index(&self, name: &str) -> Option<u32> {
        self.roles
            .iter()
            .position(|r| r.name == name)
            .map(|i| i as u32)
    }

    /// The namespace's canonical `'static` name, if it exists.
    pub fn namespace(&self, name: &str) -> Option<&'static str> {
        self.namespace_index(name).map(|i| self.namespaces[i].name)
    }

    /// The namespace's index (its bit in a subscription mask).
    pub fn namespace_index(&self, name: &str) -> Option<usize> {
        self.namespaces.iter().position(|n| n.name == name)
    }

    /// The set of some namespace names; `Err` names the first unknown one.
    pub fn namespace_set<'n>(
        &self,
        names: impl IntoIterator<Item = &'n str>,
    ) -> Result<NamespaceSet, &'n str> {
        names
            .into_iter()
            .try_fold(NamespaceSet::EMPTY, |set, name| {
                self.namespace_index(name)
                    .map(|i| set.union(NamespaceSet::single(i)))
                    .ok_or(name)
            })
    }

    /// The names of the namespaces in a set, in catalog order.
    pub fn namespace_names(&self, set: NamespaceSet) -> Vec<&'static str> {
        set.indexes()
            .filter_map(|i| self.namespaces.get(i))
            .map(|n| n.name)
            .collect()
    }

    /// Every namespace of the catalog.
    pub fn all_namespaces(&self) -> NamespaceSet {
        NamespaceSet::first(self.namespaces.len())
    }

    /// The namespaces in which `role` may receive at least one event.
    pub fn namespaces_visible_to(&self, role: RoleMask) -> NamespaceSet {
        self.events
            .iter()
            .filter(|e| e.descriptor.roles.intersects(role))
            .filter_map(|e| self.namespace_index(e.descriptor.namespace))
            .collect()
    }

    /// Every role the catalog defines, as a mask (unlike [`RoleMask::ALL`], only real roles).
    pub fn all_roles(&self) -> RoleMask {
        (0..self.roles.len() as u32).map(RoleMask::single).collect()
    }

    /// The roles that see only their own events.
    pub fn own_events_only(&self) -> RoleMask {
        self.roles
            .iter()
            .enumerate()
            .filter(|(_, r)| r.own_events_only)
            .map(|(i, _)| RoleMask::single(i as u32))
            .collect()
    }

    /// The names of the roles in `mask`, in catalog order.
    pub fn role_names(&self, mask: RoleMask) -> Vec<&'static str> {
        self.roles
            .iter()
            .enumerate()
            .filter(|(i, _)| mask.contains(RoleMask::single(*i as u32)))
            .map(|(_, r)| r.name)
            .collect()
    }

    /// Decodes an event from its wire type and its `data` as JSON text: the path every untyped
    /// publisher (HTTP, other languages) goes through.
    pub fn decode(
        &self,
        name: &str,
        data: &RawValue,
        options: EmitOptions,
    ) -> Result<OutgoingEvent, DecodeError> {
        let entry = self.event(name).ok_or_else(|| DecodeError::UnknownType {
            name: name.to_owned(),
            suggestion: names::closest(name, self.events.iter().map(|e| e.descriptor.name)),
        })?;
        entry.decode(data.get(), options)
    }
}
