//! The serde mirror of events.yaml: data only, unknown keys rejected; `validate` gives it meaning.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCatalog {
    pub roles: OrderedMap<RawRole>,
    #[serde(default)]
    pub enums: OrderedMap<RawEnum>,
    /// The history every namespace keeps unless it says otherwise.
    pub history: Option<RawHistory>,
    pub namespaces: OrderedMap<RawNamespace>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRole {
    pub description: String,
    #[serde(default)]
    pub own_events_only: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnum {
    pub description: String,
    pub values: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNamespace {
    pub description: String,
    pub history: Option<RawHistory>,
    pub helper: Option<RawHelper>,
    pub events: OrderedMap<RawEvent>,
}

/// `helper: {name: emitInventoryEvent, entity: {id: productId, name: productName}}`: the
/// TypeScript publisher's helper for a namespace, taking an entity-shaped object.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHelper {
    pub name: String,
    #[serde(default)]
    pub entity: OrderedMap<String>,
}

/// `history: off` or `history: {size: 1000, ttl: 10m}` (either key may be left to the default).
#[derive(Debug)]
pub enum RawHistory {
    Off,
    Keep(RawHistoryBounds),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHistoryBounds {
    pub size: Option<u64>,
    pub ttl: Option<String>,
}

impl<'de> Deserialize<'de> for RawHistory {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HistoryVisitor;
        impl<'de> Visitor<'de> for HistoryVisitor {
            type Value = RawHistory;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`off` or `{size: <events>, ttl: <duration>}`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawHistory, E> {
                if v == "off" {
                    Ok(RawHistory::Off)
                } else {
                    Err(E::custom(format!(
                        "history `{v}`: expected `off` or `{{size: 1000, ttl: 10m}}`"
                    )))
                }
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawHistory, E> {
                Err(E::custom(format!(
                    "history `{v}`: write `history: off` to keep none, or `{{size: 1000, ttl: 10m}}`"
                )))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawHistory, A::Error> {
                RawHistoryBounds::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawHistory::Keep)
            }
        }
        deserializer.deserialize_any(HistoryVisitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvent {
    pub description: String,
    pub roles: RawRoles,
    pub owner: Option<String>,
    pub target_roles: Option<String>,
    pub fields: Option<OrderedMap<RawField>>,
    pub same_fields_as: Option<String>,
    pub payload: Option<String>,
    pub emitter: Option<String>,
    pub example: Option<serde_json::Value>,
    pub server_emits: Option<RawServerEmits>,
}

/// `server_emits: {on: first_connect, roles: [customer], data: {customerId: $user_id, ...}}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServerEmits {
    pub on: String,
    pub roles: Vec<String>,
    pub data: std::collections::BTreeMap<String, serde_json::Value>,
}

/// `roles: all` or `roles: [admin, manager]`.
#[derive(Debug)]
pub enum RawRoles {
    All,
    /// Any other single word: most likely a role meant as a one-element list.
    Word(String),
    List(Vec<String>),
}

impl<'de> Deserialize<'de> for RawRoles {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RolesVisitor;
        impl<'de> Visitor<'de> for RolesVisitor {
            type Value = RawRoles;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`all` or a list of roles")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawRoles, E> {
                Ok(if v == "all" {
                    RawRoles::All
                } else {
                    RawRoles::Word(v.to_owned())
                })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawRoles, A::Error> {
                Vec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(RawRoles::List)
            }
        }
        deserializer.deserialize_any(RolesVisitor)
    }
}

/// A field: `name: type` or `name: {type, description, computed}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawField {
    #[serde(rename = "type")]
    pub ty: String,
    pub description: Option<String>,
    pub computed: Option<String>,
}

impl RawField {
    fn short(ty: &str) -> Self {
        RawField {
            ty: ty.to_owned(),
            description: None,
            computed: None,
        }
    }
}

/// Deserializes a field written either way; used by `OrderedMap<RawField>` through `FieldSpec`.
struct FieldSpec(RawField);

impl<'de> Deserialize<'de> for FieldSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl<'de> Visitor<'de> for FieldVisitor {
            type Value = FieldSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a type (`string`, `number?`, `Role[]` ...) or a map with `type`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FieldSpec, E> {
                Ok(FieldSpec(RawField::short(v)))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FieldSpec, A::Error> {
                RawField::deserialize(de::value::MapAccessDeserializer::new(map)).map(FieldSpec)
            }
        }
        deserializer.deserialize_any(FieldVisitor)
    }
}

/// Trait that picks how a map value is read; only fields have a short form.
pub trait MapValue: Sized {
    fn deserialize_value<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Self, A::Error>;
}

macro_rules! plain_map_value {
    ($($t:ty),*) => {$(
        impl MapValue for $t {
            fn deserialize_value<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Self, A::Error> {
                map.next_value()
            }
        }
    )*};
}
plain_map_value!(RawRole, RawEnum, RawNamespace, RawEvent, String);

impl MapValue for RawField {
    fn deserialize_value<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Self, A::Error> {
        map.next_value::<FieldSpec>().map(|spec| spec.0)
    }
}

/// A YAML mapping in file order; repeated keys are kept aside for `validate` to report.
#[derive(Debug)]
pub struct OrderedMap<V> {
    pub entries: Vec<(String, V)>,
    pub duplicates: Vec<String>,
}

impl<V> Default for OrderedMap<V> {
    fn default() -> Self {
        OrderedMap {
            entries: Vec::new(),
            duplicates: Vec::new(),
        }
    }
}

impl<'de, V: MapValue> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);
        impl<'de, V: MapValue> Visitor<'de> for MapVisitor<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_unit<E: de::Error>(self) -> Result<OrderedMap<V>, E> {
                Ok(OrderedMap::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedMap<V>, A::Error> {
                let mut out = OrderedMap::default();
                while let Some(key) = map.next_key::<String>()? {
                    let value = V::deserialize_value(&mut map)?;
                    if out.entries.iter().any(|(k, _)| *k == key) {
                        out.duplicates.push(key);
                    } else {
                        out.entries.push((key, value));
                    }
                }
                Ok(out)
            }
        }
        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

/// Parses the file's text.
pub fn parse(source: &str) -> Result<RawCatalog, serde_yaml::Error> {
    serde_yaml::from_str(source)
}
