//! The validated catalog: what every generator reads. Built only by `validate`.

/// The whole catalog, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    /// Roles in bit order (the first is bit 0).
    pub roles: Vec<Role>,
    /// Shared value sets, referenced by field types.
    pub enums: Vec<Enum>,
    /// Namespaces in file order.
    pub namespaces: Vec<Namespace>,
    /// Events in file order, grouped by namespace.
    pub events: Vec<Event>,
}

/// A role a connection can hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// The wire name (`admin`).
    pub name: String,
    /// Who holds it.
    pub description: String,
    /// Whether it receives only the events it owns.
    pub own_events_only: bool,
}

/// A named set of string values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enum {
    /// The type name, as used in field types (`OrderStatus`).
    pub name: String,
    /// What the values mean.
    pub description: String,
    /// The wire values (`pending`).
    pub values: Vec<String>,
}

/// A group of events connections subscribe to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// The name (`orders`).
    pub name: String,
    /// What its events are about.
    pub description: String,
    /// What it keeps for clients that resume; `None` for `history: off`.
    pub history: Option<History>,
    /// The TypeScript publisher's helper for its events, if it has one.
    pub helper: Option<Helper>,
}

/// A namespace's helper in the TypeScript publisher (`emitInventoryEvent('updated', product)`):
/// its name, and the entity's property names for payload fields (`id` for `productId`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helper {
    /// The function's name.
    pub name: String,
    /// `(entity property, payload field)` pairs, in file order.
    pub entity: Vec<(String, String)>,
}

/// How much of a namespace's stream is kept: at most `size` events, none older than `ttl_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct History {
    /// The most events kept.
    pub size: u32,
    /// The longest an event is kept, in seconds.
    pub ttl_secs: u32,
}

/// Who may see an event before ownership and targeting apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Every role.
    All,
    /// These roles, as indexes into [`Catalog::roles`], in catalog order.
    Roles(Vec<usize>),
}

/// One event type.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The wire name (`order:created`).
    pub name: String,
    /// Its namespace's name.
    pub namespace: String,
    /// One line on what happened.
    pub description: String,
    /// The roles allowed to see it.
    pub audience: Audience,
    /// The wire name of the field holding the owner's user id.
    pub owner: Option<String>,
    /// The wire name of the `Role[]?` field that narrows the roles per payload.
    pub target_roles: Option<String>,
    /// The payload type's name: `payload:` from events.yaml, or `OrderCreatedPayload` from the
    /// event's name. Events that name the same payload share it in TypeScript, the JSON Schemas
    /// and the reference.
    pub payload: String,
    /// The Rust struct's name: the payload's when no other event shares it; otherwise one named
    /// after the event (`CustomerOnlinePayload`), because a Rust payload type identifies its event.
    pub rust_type: String,
    /// The payload's fields.
    pub fields: Vec<Field>,
    /// An example payload, checked against the fields.
    pub example: serde_json::Value,
    /// The TypeScript publisher's emitter (`wsEvents.orderCreated`): `emitter:`, or the event's
    /// name in camelCase.
    pub emitter: String,
    /// When the server emits this event by itself (presence).
    pub server_emits: Option<ServerEmits>,
}

/// An event the server emits by itself when connections of some roles come and go.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerEmits {
    /// When.
    pub on: Trigger,
    /// Whose connections count, as indexes into [`Catalog::roles`].
    pub roles: Vec<usize>,
    /// The payload: a value for each field that is set, in field order.
    pub data: Vec<(String, Binding)>,
}

/// What makes the server emit an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A user's first connection opens.
    FirstConnect,
    /// A user's last connection closes.
    LastDisconnect,
}

/// Where a server-emitted field's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Binding {
    /// `$user_id`: the connecting user's id.
    UserId,
    /// `$now`: the current time in ms since the Unix epoch.
    Now,
    /// A fixed value.
    Literal(serde_json::Value),
}

/// A payload field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The wire name (`customerId`).
    pub name: String,
    /// What it holds.
    pub description: Option<String>,
    /// Its type.
    pub ty: FieldType,
    /// Whether it may be absent.
    pub optional: bool,
    /// How it is computed from other fields, for derived fields.
    pub computed: Option<Computed>,
}

/// A field's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldType {
    /// Text.
    String,
    /// A JSON number (`f64`).
    Number,
    /// A whole number (`i64`).
    Integer,
    /// `true` or `false`.
    Boolean,
    /// Milliseconds since the Unix epoch (`u64`).
    Timestamp,
    /// One of the catalog's roles.
    Role,
    /// One of the catalog's enums, by index into [`Catalog::enums`].
    Enum(usize),
    /// A list.
    List(Box<FieldType>),
}

/// A derived field's formula; operands are field wire names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Computed {
    /// `minuend - subtrahend`.
    Difference {
        /// The field subtracted from.
        minuend: String,
        /// The field subtracted.
        subtrahend: String,
    },
    /// `percent_change(from, to)`: the change in percent, rounded to two decimals.
    PercentChange {
        /// The old value's field.
        from: String,
        /// The new value's field.
        to: String,
    },
}

impl std::fmt::Display for Computed {
    /// The formula as written in events.yaml (`newStock - oldStock`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Computed::Difference {
                minuend,
                subtrahend,
            } => write!(f, "{minuend} - {subtrahend}"),
            Computed::PercentChange { from, to } => write!(f, "percent_change({from}, {to})"),
        }
    }
}

impl Catalog {
    /// The event's namespace.
    pub fn namespace_of(&self, event: &Event) -> &Namespace {
        self.namespaces
            .iter()
            .find(|n| n.name == event.namespace)
            .expect("validated: every event's namespace exists")
    }

    /// The roles an event may reach (before ownership and targeting), as indexes.
    pub fn audience_roles(&self, event: &Event) -> Vec<usize> {
        match &event.audience {
            Audience::All => (0..self.roles.len()).collect(),
            Audience::Roles(roles) => roles.clone(),
        }
    }
}

impl Event {
    /// The part after the colon (`created`).
    pub fn action(&self) -> &str {
        self.name.split_once(':').map_or("", |(_, a)| a)
    }

    /// A field by wire name.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

impl FieldType {
    /// How the type is written in events.yaml (`Role[]`).
    pub fn display(&self, enums: &[Enum]) -> String {
        match self {
            FieldType::String => "string".into(),
            FieldType::Number => "number".into(),
            FieldType::Integer => "integer".into(),
            FieldType::Boolean => "boolean".into(),
            FieldType::Timestamp => "timestamp".into(),
            FieldType::Role => "Role".into(),
            FieldType::Enum(i) => enums[*i].name.clone(),
            FieldType::List(item) => format!("{}[]", item.display(enums)),
        }
    }
}
