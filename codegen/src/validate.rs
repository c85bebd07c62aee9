//! Raw YAML mirror -> validated model. Every check pushes a diagnostic and carries on, so one run
//! reports every problem; nothing here returns early on the first one.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::diagnostic::{Diagnostic, Diagnostics, did_you_mean};
use crate::model::{
    Audience, Binding, Catalog, Computed, Enum, Event, Field, FieldType, Namespace, Role,
    ServerEmits, Trigger,
};
use crate::names;
use crate::raw::{OrderedMap, RawCatalog, RawEvent, RawField, RawRoles, RawServerEmits};

/// The most roles a catalog may define: one bit each in a `u64` mask.
pub const MAX_ROLES: usize = 64;

/// The most namespaces a catalog may define: a connection's subscriptions are a `u64` mask.
pub const MAX_NAMESPACES: usize = 64;

/// The field types every catalog has, besides `Role` and its enums.
const BUILTIN_TYPES: [&str; 6] = [
    "string",
    "number",
    "integer",
    "boolean",
    "timestamp",
    "Role",
];

/// Validates a parsed file. `source` is the file's text, used to point at lines.
pub fn validate(file: &str, source: &str, raw: RawCatalog) -> Result<Catalog, Diagnostics> {
    let mut cx = Context {
        file,
        locator: Locator::new(source),
        diagnostics: Vec::new(),
    };
    let roles = roles(&mut cx, &raw.roles);
    let enums = enums(&mut cx, &raw.enums);
    let namespaces = namespaces(&mut cx, &raw);
    let events = events(&mut cx, &raw, &roles, &enums);
    if cx.diagnostics.is_empty() {
        Ok(Catalog {
            roles,
            enums,
            namespaces,
            events,
        })
    } else {
        let mut diagnostics = cx.diagnostics;
        // Stable sort: problems without a line keep their discovery order at the end.
        diagnostics.sort_by_key(|d| d.location.map_or((usize::MAX, 0), |l| l));
        Err(Diagnostics(diagnostics))
    }
}

/// Where diagnostics are collected while validating.
struct Context<'a> {
    file: &'a str,
    locator: Locator<'a>,
    diagnostics: Vec<Diagnostic>,
}

/// What a diagnostic is about: the YAML key path that locates it, and its event and field.
#[derive(Clone, Copy)]
struct At<'p> {
    path: &'p [&'p str],
    event: Option<&'p str>,
    field: Option<&'p str>,
}

impl<'p> At<'p> {
    fn path(path: &'p [&'p str]) -> Self {
        At {
            path,
            event: None,
            field: None,
        }
    }
}

impl Context<'_> {
    fn error(&mut self, at: At<'_>, message: impl Into<String>, help: Option<String>) {
        self.diagnostics.push(Diagnostic {
            file: self.file.to_owned(),
            location: self.locator.find(at.path),
            event: at.event.map(str::to_owned),
            field: at.field.map(str::to_owned),
            message: message.into(),
            help,
        });
    }

    fn duplicates<V>(&mut self, map: &OrderedMap<V>, what: &str, parent: &[&str]) {
        for key in &map.duplicates {
            let path: Vec<&str> = parent.iter().copied().chain([key.as_str()]).collect();
            // The locator finds the first occurrence; the duplicate is the next one.
            let location = self.locator.find_nth(&path, 1);
            self.diagnostics.push(Diagnostic {
                file: self.file.to_owned(),
                location,
                event: None,
                field: None,
                message: format!("duplicate {what} `{key}`"),
                help: Some("each key may appear once; merge the two entries".into()),
            });
        }
    }
}

use names::is_snake;

fn roles(cx: &mut Context<'_>, raw: &OrderedMap<crate::raw::RawRole>) -> Vec<Role> {
    cx.duplicates(raw, "role", &["roles"]);
    if raw.entries.is_empty() {
        cx.error(At::path(&["roles"]), "the catalog defines no roles", None);
    }
    if raw.entries.len() > MAX_ROLES {
        cx.error(
            At::path(&["roles"]),
            format!(
                "{} roles defined; at most {MAX_ROLES} are supported",
                raw.entries.len()
            ),
            None,
        );
    }
    let mut out = Vec::new();
    for (name, role) in &raw.entries {
        let path = ["roles", name.as_str()];
        if name == "all" {
            cx.error(
                At::path(&path),
                "`all` is reserved for `roles: all` and cannot name a role",
                None,
            );
        } else if !is_snake(name) {
            cx.error(
                At::path(&path),
                format!("role name `{name}` must be snake_case, like `admin` or `store_manager`"),
                None,
            );
        }
        out.push(Role {
            name: name.clone(),
            description: role.description.trim().to_owned(),
            own_events_only: role.own_events_only,
        });
    }
    out
}

fn enums(cx: &mut Context<'_>, raw: &OrderedMap<crate::raw::RawEnum>) -> Vec<Enum> {
    cx.duplicates(raw, "enum", &["enums"]);
    let mut out = Vec::new();
    for (name, def) in &raw.entries {
        let path = ["enums", name.as_str()];
        if !name.starts_with(|c: char| c.is_ascii_uppercase()) || !names::is_identifier(name) {
            cx.error(
                At::path(&path),
                format!("enum name `{name}` must be PascalCase, like `OrderStatus`"),
                None,
            );
        } else if BUILTIN_TYPES.contains(&name.as_str()) || name == "Namespace" || name == "Events"
        {
            cx.error(
                At::path(&path),
                format!("enum name `{name}` collides with a generated type of the same name"),
                None,
            );
        }
        if def.values.is_empty() {
            cx.error(
                At::path(&path),
                format!("enum `{name}` has no values"),
                None,
            );
        }
        let mut variants: BTreeMap<String, &str> = BTreeMap::new();
        for value in &def.values {
            let variant = names::pascal(value);
            if !names::is_identifier(&variant) || variant.is_empty() {
                cx.error(
                    At::path(&path),
                    format!("enum `{name}` value `{value}` does not make a Rust variant name"),
                    Some("use letters, digits and underscores, starting with a letter".into()),
                );
            } else if let Some(other) = variants.insert(variant.clone(), value) {
                let message = if other == value {
                    format!("enum `{name}` lists value `{value}` twice")
                } else {
                    format!(
                        "enum `{name}` values `{other}` and `{value}` both become the variant `{variant}`"
                    )
                };
                cx.error(At::path(&path), message, None);
            }
        }
        out.push(Enum {
            name: name.clone(),
            description: def.description.trim().to_owned(),
            values: def.values.clone(),
        });
    }
    out
}

fn namespaces(cx: &mut Context<'_>, raw: &RawCatalog) -> Vec<Namespace> {
    cx.duplicates(&raw.namespaces, "namespace", &["namespaces"]);
    if raw.namespaces.entries.is_empty() {
        cx.error(
            At::path(&["namespaces"]),
            "the catalog defines no namespaces",
            None,
        );
    }
    let mut out = Vec::new();
    for (name, ns) in &raw.namespaces.entries {
        if !is_snake(name) {
            cx.error(
                At::path(&["namespaces", name]),
                format!("namespace name `{name}` must be snake_case, like `orders`"),
                None,
            );
        }
        out.push(Namespace {
            name: name.clone(),
            description: ns.description.trim().to_owned(),
        });
    }
    out
}

/// The type names a field may use, for suggestions.
fn type_names(enums: &[Enum]) -> Vec<&str> {
    BUILTIN_TYPES
        .iter()
        .copied()
        .chain(enums.iter().map(|e| e.name.as_str()))
        .collect()
}

fn events(cx: &mut Context<'_>, raw: &RawCatalog, roles: &[Role], enums: &[Enum]) -> Vec<Event> {
    let mut out = Vec::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut structs: BTreeMap<String, String> = enums
        .iter()
        .map(|e| (e.name.clone(), format!("enum `{}`", e.name)))
        .collect();
    for (ns_name, ns) in &raw.namespaces.entries {
        cx.duplicates(&ns.events, "event", &["namespaces", ns_name, "events"]);
        for (name, raw_event) in &ns.events.entries {
            let path = ["namespaces", ns_name.as_str(), "events", name.as_str()];
            let at = At {
                path: &path,
                event: Some(name),
                field: None,
            };
            let valid_name = names::is_event_name(name);
            if !valid_name {
                cx.error(
                    at,
                    "event names must be `namespace:action` in snake_case",
                    event_name_suggestion(name).map(|s| format!("did you mean `{s}`?")),
                );
            }
            if let Some(first_ns) = seen.insert(name.clone(), ns_name.clone())
                && first_ns != *ns_name
            {
                cx.error(
                    at,
                    format!("is defined in namespace `{first_ns}` too; event names must be unique"),
                    None,
                );
            }
            if valid_name {
                let struct_name = names::payload_struct(name);
                if let Some(other) = structs.insert(struct_name.clone(), format!("event `{name}`"))
                {
                    cx.error(
                        at,
                        format!("its payload type `{struct_name}` collides with {other}"),
                        Some("rename one of them".into()),
                    );
                }
            }
            out.push(event(cx, at, ns_name, raw_event, &ns.events, roles, enums));
        }
    }
    out
}

/// `OrderCreated` or `order-created` -> `order:created`, when that is a valid name.
fn event_name_suggestion(name: &str) -> Option<String> {
    let snake = names::snake(&name.replace(['-', '.', ' '], "_"));
    let candidate = if snake.contains(':') {
        snake
    } else {
        snake.replacen('_', ":", 1)
    };
    names::is_event_name(&candidate).then_some(candidate)
}

fn event(
    cx: &mut Context<'_>,
    at: At<'_>,
    ns_name: &str,
    raw: &RawEvent,
    siblings: &OrderedMap<RawEvent>,
    roles: &[Role],
    enums: &[Enum],
) -> Event {
    let name = at.event.expect("event context");
    let sub = |key: &'static str| -> Vec<&str> { at.path.iter().copied().chain([key]).collect() };

    // Roles.
    let roles_path = sub("roles");
    let roles_at = At {
        path: &roles_path,
        ..at
    };
    let audience = match &raw.roles {
        RawRoles::All => Audience::All,
        RawRoles::Word(word) => {
            cx.error(
                roles_at,
                format!("`roles` must be `all` or a list of roles, not `{word}`"),
                Some(format!("write `roles: [{word}]`")),
            );
            Audience::Roles(Vec::new())
        }
        RawRoles::List(list) => {
            if list.is_empty() {
                cx.error(
                    roles_at,
                    "`roles` is empty, so no one could receive this event",
                    Some("list at least one role, or write `roles: all`".into()),
                );
            }
            let mut indexes = BTreeSet::new();
            for role in list {
                match roles.iter().position(|r| r.name == *role) {
                    Some(i) => {
                        if !indexes.insert(i) {
                            cx.error(roles_at, format!("role `{role}` is listed twice"), None);
                        }
                    }
                    None => cx.error(
                        roles_at,
                        format!("unknown role `{role}`"),
                        did_you_mean(role, roles.iter().map(|r| r.name.as_str()).chain(["all"])),
                    ),
                }
            }
            Audience::Roles(indexes.into_iter().collect())
        }
    };

    // Fields, possibly borrowed from a sibling.
    let raw_fields = match (&raw.fields, &raw.same_fields_as) {
        (Some(fields), None) => Some(fields),
        (None, Some(other)) => match siblings.entries.iter().find(|(n, _)| n == other) {
            Some((_, sibling)) if sibling.fields.is_some() => sibling.fields.as_ref(),
            Some(_) => {
                cx.error(
                    at,
                    format!("`same_fields_as: {other}` names an event that itself has no `fields`"),
                    None,
                );
                None
            }
            None => {
                cx.error(
                    at,
                    format!("`same_fields_as` names `{other}`, which is not an event of namespace `{ns_name}`"),
                    did_you_mean(other, siblings.entries.iter().map(|(n, _)| n.as_str())),
                );
                None
            }
        },
        (Some(_), Some(_)) => {
            cx.error(at, "has both `fields` and `same_fields_as`; keep one", None);
            raw.fields.as_ref()
        }
        (None, None) => {
            cx.error(
                at,
                "has no `fields`",
                Some("add `fields:` (it may be `{}`), or `same_fields_as: <event>`".into()),
            );
            None
        }
    };
    let fields_path = sub("fields");
    let errors_before = cx.diagnostics.len();
    let fields = match raw_fields {
        Some(raw_fields) => fields(cx, at, &fields_path, raw_fields, enums),
        None => Vec::new(),
    };
    // An example cannot be checked against fields that failed to validate.
    let fields_ok = raw_fields.is_some() && cx.diagnostics.len() == errors_before;

    // Owner and target roles.
    let owner = raw.owner.as_ref().map(|owner| {
        let owner_path = sub("owner");
        let owner_at = At {
            path: &owner_path,
            field: Some(owner),
            ..at
        };
        match fields.iter().find(|f| f.name == *owner) {
            None if raw_fields.is_some() => cx.error(
                owner_at,
                "`owner` names a field the payload does not have",
                did_you_mean(owner, fields.iter().map(|f| f.name.as_str())),
            ),
            Some(f) if f.ty != FieldType::String || f.optional => cx.error(
                owner_at,
                format!(
                    "the owner field must be a required `string` (a user id), not `{}{}`",
                    f.ty.display(enums),
                    if f.optional { "?" } else { "" }
                ),
                None,
            ),
            _ => {}
        }
        owner.clone()
    });
    let target_roles = raw.target_roles.as_ref().map(|target| {
        let target_path = sub("target_roles");
        let target_at = At {
            path: &target_path,
            field: Some(target),
            ..at
        };
        match fields.iter().find(|f| f.name == *target) {
            None if raw_fields.is_some() => cx.error(
                target_at,
                "`target_roles` names a field the payload does not have",
                did_you_mean(target, fields.iter().map(|f| f.name.as_str())),
            ),
            Some(f) if f.ty != FieldType::List(Box::new(FieldType::Role)) || !f.optional => {
                cx.error(
                    target_at,
                    format!(
                        "the target roles field must be a `Role[]?` (an optional list of roles), not `{}{}`",
                        f.ty.display(enums),
                        if f.optional { "?" } else { "" }
                    ),
                    None,
                )
            }
            _ => {}
        }
        target.clone()
    });
    if owner.is_none()
        && let Audience::Roles(listed) = &audience
    {
        for &i in listed {
            if roles[i].own_events_only {
                cx.error(
                    roles_at,
                    format!(
                        "role `{}` sees only its own events, but this event has no `owner`",
                        roles[i].name
                    ),
                    Some("add `owner: <field holding the user id>`, or remove the role".into()),
                );
            }
        }
    }

    // The example.
    let example = match &raw.example {
        Some(example) => {
            let example_path = sub("example");
            let example_at = At {
                path: &example_path,
                ..at
            };
            if fields_ok {
                let mut problems = Vec::new();
                check_payload(example, &fields, roles, enums, &mut problems);
                for problem in problems {
                    cx.error(example_at, format!("example: {problem}"), None);
                }
            }
            example.clone()
        }
        None => {
            cx.error(
                at,
                "has no `example`",
                Some("add an `example:` payload; it is checked against the fields and shown in the docs".into()),
            );
            Value::Null
        }
    };

    let server_emits = raw.server_emits.as_ref().and_then(|emits| {
        let emits_path = sub("server_emits");
        let emits_at = At {
            path: &emits_path,
            ..at
        };
        server_emits(cx, emits_at, emits, &fields, fields_ok, roles, enums)
    });

    Event {
        name: name.to_owned(),
        namespace: ns_name.to_owned(),
        description: raw.description.trim().to_owned(),
        audience,
        owner,
        target_roles,
        fields,
        example,
        server_emits,
    }
}

fn server_emits(
    cx: &mut Context<'_>,
    at: At<'_>,
    raw: &RawServerEmits,
    fields: &[Field],
    fields_ok: bool,
    roles: &[Role],
    enums: &[Enum],
) -> Option<ServerEmits> {
    let on = match raw.on.as_str() {
        "first_connect" => Some(Trigger::FirstConnect),
        "last_disconnect" => Some(Trigger::LastDisconnect),
        other => {
            cx.error(
                at,
                format!(
                    "`server_emits.on` must be `first_connect` or `last_disconnect`, not `{other}`"
                ),
                did_you_mean(other, ["first_connect", "last_disconnect"]),
            );
            None
        }
    };
    let mut role_indexes = Vec::new();
    for role in &raw.roles {
        match roles.iter().position(|r| r.name == *role) {
            Some(i) => role_indexes.push(i),
            None => cx.error(
                at,
                format!("`server_emits.roles`: unknown role `{role}`"),
                did_you_mean(role, roles.iter().map(|r| r.name.as_str())),
            ),
        }
    }
    if raw.roles.is_empty() {
        cx.error(
            at,
            "`server_emits.roles` is empty: no connection would trigger it",
            None,
        );
    }
    if !fields_ok {
        return None;
    }
    let mut data = Vec::new();
    let mut ok = on.is_some();
    for (key, value) in &raw.data {
        let Some(field) = fields.iter().find(|f| f.name == *key) else {
            cx.error(
                at,
                format!("`server_emits.data` sets `{key}`, which is not a field of the payload"),
                did_you_mean(key, fields.iter().map(|f| f.name.as_str())),
            );
            ok = false;
            continue;
        };
        let binding = match value.as_str() {
            Some("$user_id") if field.ty == FieldType::String => Binding::UserId,
            Some("$now") if field.ty == FieldType::Timestamp => Binding::Now,
            Some(special @ ("$user_id" | "$now")) => {
                cx.error(
                    at,
                    format!(
                        "`server_emits.data.{key}`: `{special}` does not fit a `{}` field",
                        field.ty.display(enums)
                    ),
                    None,
                );
                ok = false;
                continue;
            }
            _ => match check_value(value, &field.ty, roles, enums) {
                Ok(()) if !matches!(field.ty, FieldType::List(_)) => {
                    Binding::Literal(value.clone())
                }
                Ok(()) => {
                    cx.error(
                        at,
                        format!("`server_emits.data.{key}`: lists cannot be set here"),
                        None,
                    );
                    ok = false;
                    continue;
                }
                Err(message) => {
                    cx.error(at, format!("`server_emits.data.{key}`: {message}"), None);
                    ok = false;
                    continue;
                }
            },
        };
        data.push((key.clone(), binding));
    }
    for field in fields {
        if !field.optional && field.computed.is_none() && !raw.data.contains_key(&field.name) {
            cx.error(
                at,
                format!(
                    "`server_emits.data` does not set the required field `{}`",
                    field.name
                ),
                Some("use `$user_id`, `$now` or a fixed value".into()),
            );
            ok = false;
        }
    }
    // Keep field order, so generated code reads like the struct.
    data.sort_by_key(|(key, _)| fields.iter().position(|f| f.name == *key));
    ok.then(|| ServerEmits {
        on: on.expect("checked"),
        roles: role_indexes,
        data,
    })
}

fn fields(
    cx: &mut Context<'_>,
    at: At<'_>,
    fields_path: &[&str],
    raw: &OrderedMap<RawField>,
    enums: &[Enum],
) -> Vec<Field> {
    for key in &raw.duplicates {
        let path: Vec<&str> = fields_path.iter().copied().chain([key.as_str()]).collect();
        cx.diagnostics.push(Diagnostic {
            file: cx.file.to_owned(),
            location: cx.locator.find_nth(&path, 1),
            event: at.event.map(str::to_owned),
            field: Some(key.clone()),
            message: "is listed twice".into(),
            help: None,
        });
    }
    let mut out = Vec::new();
    let mut rust_names: BTreeMap<String, &str> = BTreeMap::new();
    for (name, raw_field) in &raw.entries {
        let path: Vec<&str> = fields_path.iter().copied().chain([name.as_str()]).collect();
        let field_at = At {
            path: &path,
            field: Some(name),
            ..at
        };
        let rust_name = names::snake(name);
        if !names::is_identifier(&rust_name) || !name.starts_with(|c: char| c.is_ascii_lowercase())
        {
            cx.error(
                field_at,
                format!("field names must be camelCase identifiers; `{name}` is not"),
                None,
            );
        } else if let Some(other) = rust_names.insert(rust_name.clone(), name) {
            cx.error(
                field_at,
                format!("collides with field `{other}`: both become the Rust field `{rust_name}`"),
                None,
            );
        }
        let (ty, optional) = match parse_type(&raw_field.ty, enums) {
            Ok(parsed) => parsed,
            Err(base) => {
                cx.error(
                    field_at,
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
        let path: Vec<&str> = fields_path.iter().copied().chain([name.as_str()]).collect();
        let field_at = At {
            path: &path,
            field: Some(name),
            ..at
        };
        match computed(formula, &out[i], &out, enums) {
            Ok(c) => out[i].computed = Some(c),
            Err((message, help)) => cx.error(field_at, message, help),
        }
    }
    out
}

/// `T`, `T[]`, `T?`: the type and whether the field is optional; `Err` holds an unknown base type.
fn parse_type(text: &str, enums: &[Enum]) -> Result<(FieldType, bool), String> {
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

type Problem = (String, Option<String>);

/// Parses `a - b` or `percent_change(a, b)` and checks it against the fields.
fn computed(
    formula: &str,
    field: &Field,
    fields: &[Field],
    enums: &[Enum],
) -> Result<Computed, Problem> {
    let formula = formula.trim();
    let syntax_help = || {
        Some("write `<field> - <field>` or `percent_change(<old field>, <new field>)`".to_owned())
    };
    let parsed = if let Some(args) = formula
        .strip_prefix("percent_change(")
        .and_then(|rest| rest.strip_suffix(')'))
    {
        let (from, to) = args
            .split_once(',')
            .ok_or_else(|| (format!("cannot read formula `{formula}`"), syntax_help()))?;
        Computed::PercentChange {
            from: from.trim().to_owned(),
            to: to.trim().to_owned(),
        }
    } else if let Some((a, b)) = formula.split_once(" - ") {
        Computed::Difference {
            minuend: a.trim().to_owned(),
            subtrahend: b.trim().to_owned(),
        }
    } else {
        return Err((format!("cannot read formula `{formula}`"), syntax_help()));
    };
    if field.optional {
        return Err(("a computed field cannot be optional".into(), None));
    }
    let (operands, result_ok) = match &parsed {
        Computed::Difference {
            minuend,
            subtrahend,
        } => (
            [minuend, subtrahend],
            matches!(field.ty, FieldType::Integer | FieldType::Number),
        ),
        Computed::PercentChange { from, to } => ([from, to], field.ty == FieldType::Number),
    };
    if !result_ok {
        return Err((
            format!(
                "formula `{formula}` gives a number, but the field is `{}`",
                field.ty.display(enums)
            ),
            None,
        ));
    }
    for operand in operands {
        let Some(other) = fields.iter().find(|f| f.name == *operand) else {
            return Err((
                format!(
                    "formula `{formula}` uses `{operand}`, which is not a field of this payload"
                ),
                did_you_mean(operand, fields.iter().map(|f| f.name.as_str())),
            ));
        };
        let numeric = matches!(other.ty, FieldType::Integer | FieldType::Number);
        if !numeric || other.optional || other.name == field.name {
            return Err((
                format!(
                    "formula `{formula}` needs `{operand}` to be a required `number` or `integer` other than this field"
                ),
                None,
            ));
        }
        if let Computed::Difference { .. } = parsed
            && other.ty != field.ty
        {
            return Err((
                format!(
                    "formula `{formula}` subtracts `{}` values into a `{}` field",
                    other.ty.display(enums),
                    field.ty.display(enums)
                ),
                Some("give the operands and the result the same type".into()),
            ));
        }
    }
    Ok(parsed)
}

/// Checks a payload value against the fields as the generated struct would, describing each
/// mismatch (`field `total`: expected a number, found "x"`).
pub(crate) fn check_payload(
    value: &Value,
    fields: &[Field],
    roles: &[Role],
    enums: &[Enum],
    problems: &mut Vec<String>,
) {
    let Value::Object(object) = value else {
        problems.push(format!(
            "expected a mapping of fields, found {}",
            describe(value)
        ));
        return;
    };
    for key in object.keys() {
        if !fields.iter().any(|f| f.name == *key) {
            problems.push(format!("unknown field `{key}`"));
        }
    }
    for field in fields {
        match object.get(&field.name) {
            None | Some(Value::Null) if field.optional || field.computed.is_some() => {}
            None => problems.push(format!("missing field `{}`", field.name)),
            Some(v) => {
                if let Err(message) = check_value(v, &field.ty, roles, enums) {
                    problems.push(format!("field `{}`: {message}", field.name));
                } else if let Some(formula) = &field.computed
                    && let Some(expected) = evaluate(formula, object)
                    && v.as_f64().is_some_and(|got| (got - expected).abs() > 1e-9)
                {
                    problems.push(format!(
                        "field `{}` is computed as {expected}, but the example says {v}",
                        field.name
                    ));
                }
            }
        }
    }
}

fn evaluate(formula: &Computed, object: &serde_json::Map<String, Value>) -> Option<f64> {
    let get = |name: &str| object.get(name).and_then(Value::as_f64);
    Some(match formula {
        Computed::Difference {
            minuend,
            subtrahend,
        } => get(minuend)? - get(subtrahend)?,
        Computed::PercentChange { from, to } => {
            omnicast_runtime::percent_change(get(from)?, get(to)?)?
        }
    })
}

fn check_value(
    value: &Value,
    ty: &FieldType,
    roles: &[Role],
    enums: &[Enum],
) -> Result<(), String> {
    let ok = match ty {
        FieldType::String => value.is_string(),
        FieldType::Number => value.is_number(),
        FieldType::Integer => value.is_i64(),
        FieldType::Boolean => value.is_boolean(),
        FieldType::Timestamp => value.is_u64(),
        FieldType::Role => match value.as_str() {
            Some(s) if roles.iter().any(|r| r.name == s) => true,
            Some(s) => return Err(format!("`{s}` is not a role")),
            None => false,
        },
        FieldType::Enum(i) => match value.as_str() {
            Some(s) if enums[*i].values.iter().any(|v| v == s) => true,
            Some(s) => {
                return Err(format!(
                    "`{s}` is not a value of `{}` ({})",
                    enums[*i].name,
                    enums[*i].values.join(", ")
                ));
            }
            None => false,
        },
        FieldType::List(item) => match value.as_array() {
            Some(items) => {
                for (i, v) in items.iter().enumerate() {
                    check_value(v, item, roles, enums).map_err(|m| format!("item {i}: {m}"))?;
                }
                true
            }
            None => false,
        },
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected {}, found {}",
            ty.display(enums),
            describe(value)
        ))
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing".into(),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
        other => format!("`{other}`"),
    }
}

/// Finds the line of a key path in the YAML text by indentation, without a second parser: good
/// enough to point a person at the right line.
struct Locator<'a> {
    lines: Vec<&'a str>,
}

impl<'a> Locator<'a> {
    fn new(source: &'a str) -> Self {
        Locator {
            lines: source.lines().collect(),
        }
    }

    fn find(&self, path: &[&str]) -> Option<(usize, usize)> {
        self.find_nth(path, 0)
    }

    /// The `nth` (0-based) occurrence of the last key within its parent's block.
    fn find_nth(&self, path: &[&str], nth: usize) -> Option<(usize, usize)> {
        let (mut start, mut end, mut parent_indent) = (0, self.lines.len(), None::<usize>);
        let mut found = None;
        for (depth, key) in path.iter().enumerate() {
            let last = depth + 1 == path.len();
            let mut skip = if last { nth } else { 0 };
            let mut hit = None;
            for i in start..end {
                let line = self.lines[i];
                let indent = line.len() - line.trim_start().len();
                let body = line.trim_start();
                if body.is_empty() || body.starts_with('#') {
                    continue;
                }
                if parent_indent.is_some_and(|p| indent <= p) {
                    break;
                }
                if key_matches(body, key) {
                    if skip == 0 {
                        hit = Some((i, indent));
                        break;
                    }
                    skip -= 1;
                }
            }
            let Some((line, indent)) = hit else {
                return found;
            };
            found = Some((line + 1, indent + 1));
            // The block of this key runs until the next line at its indentation or less.
            start = line + 1;
            end = (start..self.lines.len())
                .find(|&i| {
                    let l = self.lines[i];
                    let t = l.trim_start();
                    !t.is_empty() && !t.starts_with('#') && l.len() - t.len() <= indent
                })
                .unwrap_or(self.lines.len());
            parent_indent = Some(indent);
        }
        found
    }
}

fn key_matches(body: &str, key: &str) -> bool {
    let body = body.strip_prefix("- ").unwrap_or(body);
    [
        format!("{key}:"),
        format!("\"{key}\":"),
        format!("'{key}':"),
    ]
    .iter()
    .any(|k| {
        body.strip_prefix(k.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
    })
}
