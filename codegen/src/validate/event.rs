//! Each event, as a list of named checks: its name, who receives it, its payload's fields, its
//! owner and target-roles fields, its example, and what the server emits by itself.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::diagnostic::did_you_mean;
use crate::model::{Audience, Binding, Enum, Event, Field, FieldType, Role, ServerEmits, Trigger};
use crate::names;
use crate::raw::{OrderedMap, RawCatalog, RawEvent, RawField, RawRoles, RawServerEmits};

use super::context::{At, Context};
use super::example::{check_payload, check_value, with_computed};
use super::fields::fields;

/// Every event of every namespace, with the checks across events: names unique in the catalog,
/// payload type names unique among types (or shared by events with the same fields).
pub(super) fn events(
    cx: &mut Context<'_>,
    raw: &RawCatalog,
    roles: &[Role],
    enums: &[Enum],
) -> Vec<Event> {
    let mut out = Vec::new();
    let mut places = Vec::new();
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (ns_name, ns) in &raw.namespaces.entries {
        let events_at = At::path(&["namespaces", ns_name, "events"]);
        let duplicate = |key: &str| format!("duplicate event `{key}`");
        cx.duplicates(
            &ns.events,
            &events_at,
            duplicate,
            Some(super::catalog::MERGE),
            false,
        );
        for (name, raw_event) in &ns.events.entries {
            let at = events_at.key(name).event(name);
            if let Some(first_ns) = seen.insert(name, ns_name)
                && first_ns != ns_name
            {
                let message =
                    format!("is defined in namespace `{first_ns}` too; event names must be unique");
                cx.error(&at, message, None);
            }
            let valid_name = name_is_valid(cx, &at, name);
            let event = Checked {
                at: &at,
                namespace: ns_name,
                raw: raw_event,
                siblings: &ns.events,
                roles,
                enums,
            };
            out.push(event.check(cx));
            places.push((at, valid_name));
        }
    }
    payload_types(cx, &mut out, &places, enums);
    out
}

fn name_is_valid(cx: &mut Context<'_>, at: &At<'_>, name: &str) -> bool {
    let valid = names::is_event_name(name);
    if !valid {
        cx.error(
            at,
            "event names must be `namespace:action` in snake_case",
            event_name_suggestion(name).map(|s| format!("did you mean `{s}`?")),
        );
    }
    valid
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

/// Names each event's Rust type, and checks the payload names across events: a payload named by
/// several events is one type in TypeScript and the docs, so their fields must be the same; in
/// Rust each of them keeps a type named after the event. No two types may share a name.
fn payload_types(
    cx: &mut Context<'_>,
    events: &mut [Event],
    places: &[(At<'_>, bool)],
    enums: &[Enum],
) {
    let mut sharing: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, event) in events.iter().enumerate() {
        sharing.entry(event.payload.clone()).or_default().push(i);
    }
    let mut rust_types = Vec::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        let shared_with = &sharing[event.payload.as_str()];
        if shared_with.len() > 1 {
            let first = &events[shared_with[0]];
            if first.fields != event.fields {
                let message = format!(
                    "names payload `{}` as event `{}` does, but their fields differ",
                    event.payload, first.name
                );
                let help = format!(
                    "write `same_fields_as: {}`, or name another payload",
                    first.name
                );
                cx.error(&places[i].0, message, Some(help));
            }
            rust_types.push(names::payload_struct(&event.name));
        } else {
            rust_types.push(event.payload.clone());
        }
    }
    let mut types: BTreeMap<String, String> = enums
        .iter()
        .map(|e| (e.name.clone(), format!("enum `{}`", e.name)))
        .chain(super::catalog::GENERATED_TYPES.map(|t| (t.into(), format!("the generated `{t}`"))))
        .collect();
    for (i, event) in events.iter_mut().enumerate() {
        event.rust_type = std::mem::take(&mut rust_types[i]);
        let (at, valid_name) = &places[i];
        if !valid_name {
            continue;
        }
        let group = &sharing[event.payload.as_str()];
        let mut claims = vec![(event.rust_type.clone(), format!("event `{}`", event.name))];
        if group.len() > 1 && group[0] == i {
            claims.push((
                event.payload.clone(),
                format!("the payload of event `{}`", event.name),
            ));
        }
        for (name, owner) in claims {
            if let Some(other) = types.get(&name) {
                cx.error(
                    at,
                    format!("its payload type `{name}` collides with {other}"),
                    Some("rename one of them, or name the payload with `payload:`".into()),
                );
            } else {
                types.insert(name, owner);
            }
        }
    }
}

/// One event being checked, and what its checks need.
struct Checked<'e> {
    at: &'e At<'e>,
    namespace: &'e str,
    raw: &'e RawEvent,
    siblings: &'e OrderedMap<RawEvent>,
    roles: &'e [Role],
    enums: &'e [Enum],
}

/// An event's fields, and whether they can be relied on by the checks that use them.
struct Payload {
    fields: Vec<Field>,
    /// `fields` (or `same_fields_as`) named fields at all.
    declared: bool,
    /// ... and they validated, so an example or `server_emits` can be checked against them.
    valid: bool,
}

impl Checked<'_> {
    fn check(&self, cx: &mut Context<'_>) -> Event {
        let audience = self.audience(cx);
        let payload = self.payload(cx);
        let owner = self.owner(cx, &payload);
        let target_roles = self.target_roles(cx, &payload);
        self.own_only_roles_need_an_owner(cx, &audience, owner.as_deref());
        let example = self.example(cx, &payload);
        let payload_name = self.payload_name(cx);
        let server_emits = self.raw.server_emits.as_ref().and_then(|emits| {
            let at = self.at.key("server_emits");
            server_emits(cx, &at, emits, &payload, self.roles, self.enums)
        });
        Event {
            name: self.at.event.expect("an event's place").to_owned(),
            namespace: self.namespace.to_owned(),
            description: self.raw.description.trim().to_owned(),
            audience,
            owner,
            target_roles,
            payload: payload_name,
            // Named once every event is known (`payload_types`).
            rust_type: String::new(),
            fields: payload.fields,
            example,
            emitter: self
                .raw
                .emitter
                .clone()
                .unwrap_or_else(|| names::ts_emitter(self.at.event.expect("an event's place"))),
            server_emits,
        }
    }

    /// `payload:`, a type name (`CartPayload`); by default one from the event's name.
    fn payload_name(&self, cx: &mut Context<'_>) -> String {
        let event = self.at.event.expect("an event's place");
        let Some(name) = &self.raw.payload else {
            return names::payload_struct(event);
        };
        let at = self.at.key("payload");
        let upper = name.starts_with(|c: char| c.is_ascii_uppercase());
        if !upper || !names::is_identifier(name) {
            let help = format!("for example `{}`", names::payload_struct(event));
            cx.error(
                &at,
                format!("`payload: {name}` is not a type name: letters and digits, starting with a capital"),
                Some(help),
            );
        }
        name.clone()
    }

    /// `roles`: `all`, or a list of known roles, each once.
    fn audience(&self, cx: &mut Context<'_>) -> Audience {
        let at = self.at.key("roles");
        match &self.raw.roles {
            RawRoles::All => Audience::All,
            RawRoles::Word(word) => {
                cx.error(
                    &at,
                    format!("`roles` must be `all` or a list of roles, not `{word}`"),
                    Some(format!("write `roles: [{word}]`")),
                );
                Audience::Roles(Vec::new())
            }
            RawRoles::List(list) => {
                if list.is_empty() {
                    cx.error(
                        &at,
                        "`roles` is empty, so no one could receive this event",
                        Some("list at least one role, or write `roles: all`".into()),
                    );
                }
                let mut indexes = BTreeSet::new();
                for (item, role) in list.iter().enumerate() {
                    let item_at = at.item(item);
                    match self.roles.iter().position(|r| r.name == *role) {
                        Some(i) if !indexes.insert(i) => {
                            cx.error(&item_at, format!("role `{role}` is listed twice"), None);
                        }
                        Some(_) => {}
                        None => cx.error(
                            &item_at,
                            format!("unknown role `{role}`"),
                            did_you_mean(role, self.role_names().chain(["all"])),
                        ),
                    }
                }
                Audience::Roles(indexes.into_iter().collect())
            }
        }
    }

    fn role_names(&self) -> impl Iterator<Item = &str> {
        self.roles.iter().map(|r| r.name.as_str())
    }

    /// `fields`, or `same_fields_as` naming a sibling that has them.
    fn payload(&self, cx: &mut Context<'_>) -> Payload {
        let raw_fields = self.declared_fields(cx);
        let before = cx.problems();
        let fields = match raw_fields {
            Some(raw) => fields(cx, &self.at.key("fields"), raw, self.enums),
            None => Vec::new(),
        };
        Payload {
            fields,
            declared: raw_fields.is_some(),
            valid: raw_fields.is_some() && cx.problems() == before,
        }
    }

    fn declared_fields(&self, cx: &mut Context<'_>) -> Option<&OrderedMap<RawField>> {
        let (at, raw) = (self.at, self.raw);
        match (&raw.fields, &raw.same_fields_as) {
            (Some(fields), None) => Some(fields),
            (None, Some(other)) => match self.siblings.entries.iter().find(|(n, _)| n == other) {
                Some((_, sibling)) if sibling.fields.is_some() => sibling.fields.as_ref(),
                Some(_) => {
                    let message = format!(
                        "`same_fields_as: {other}` names an event that itself has no `fields`"
                    );
                    cx.error(at, message, None);
                    None
                }
                None => {
                    let message = format!(
                        "`same_fields_as` names `{other}`, which is not an event of namespace `{}`",
                        self.namespace
                    );
                    let siblings = self.siblings.entries.iter().map(|(n, _)| n.as_str());
                    cx.error(at, message, did_you_mean(other, siblings));
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
        }
    }

    /// `owner`: a required `string` field (a user id).
    fn owner(&self, cx: &mut Context<'_>, payload: &Payload) -> Option<String> {
        let owner = self.raw.owner.as_ref()?;
        let at = self.at.key("owner").field(owner);
        match payload.fields.iter().find(|f| f.name == *owner) {
            None if payload.declared => cx.error(
                &at,
                "`owner` names a field the payload does not have",
                did_you_mean(owner, payload.fields.iter().map(|f| f.name.as_str())),
            ),
            Some(f) if f.ty != FieldType::String || f.optional => cx.error(
                &at,
                format!(
                    "the owner field must be a required `string` (a user id), not `{}{}`",
                    f.ty.display(self.enums),
                    if f.optional { "?" } else { "" }
                ),
                None,
            ),
            _ => {}
        }
        Some(owner.clone())
    }

    /// `target_roles`: an optional list of roles (`Role[]?`).
    fn target_roles(&self, cx: &mut Context<'_>, payload: &Payload) -> Option<String> {
        let target = self.raw.target_roles.as_ref()?;
        let at = self.at.key("target_roles").field(target);
        match payload.fields.iter().find(|f| f.name == *target) {
            None if payload.declared => cx.error(
                &at,
                "`target_roles` names a field the payload does not have",
                did_you_mean(target, payload.fields.iter().map(|f| f.name.as_str())),
            ),
            Some(f) if f.ty != FieldType::List(Box::new(FieldType::Role)) || !f.optional => {
                cx.error(
                    &at,
                    format!(
                        "the target roles field must be a `Role[]?` (an optional list of roles), not `{}{}`",
                        f.ty.display(self.enums),
                        if f.optional { "?" } else { "" }
                    ),
                    None,
                )
            }
            _ => {}
        }
        Some(target.clone())
    }

    /// A role that sees only its own events cannot be listed on an event without an owner.
    fn own_only_roles_need_an_owner(
        &self,
        cx: &mut Context<'_>,
        audience: &Audience,
        owner: Option<&str>,
    ) {
        let (None, Audience::Roles(listed)) = (owner, audience) else {
            return;
        };
        let RawRoles::List(names) = &self.raw.roles else {
            return;
        };
        for &i in listed {
            if self.roles[i].own_events_only {
                let item = names.iter().position(|n| *n == self.roles[i].name);
                let at = self.at.key("roles");
                let at = item.map_or(at.clone(), |item| at.item(item));
                cx.error(
                    &at,
                    format!(
                        "role `{}` sees only its own events, but this event has no `owner`",
                        self.roles[i].name
                    ),
                    Some("add `owner: <field holding the user id>`, or remove the role".into()),
                );
            }
        }
    }

    /// `example`: required, and checked against valid fields.
    fn example(&self, cx: &mut Context<'_>, payload: &Payload) -> Value {
        let Some(example) = &self.raw.example else {
            cx.error(
                self.at,
                "has no `example`",
                Some("add an `example:` payload; it is checked against the fields and shown in the docs".into()),
            );
            return Value::Null;
        };
        if payload.valid {
            let at = self.at.key("example");
            let mut problems = Vec::new();
            check_payload(
                example,
                &payload.fields,
                self.roles,
                self.enums,
                &mut problems,
            );
            let complete = problems.is_empty();
            for problem in problems {
                cx.error(&at, format!("example: {problem}"), None);
            }
            if complete {
                return with_computed(example.clone(), &payload.fields);
            }
        }
        example.clone()
    }
}

/// `server_emits`: a known trigger, known roles, and data that sets every required field with
/// `$user_id`, `$now` or a fixed value of the field's type.
fn server_emits(
    cx: &mut Context<'_>,
    at: &At<'_>,
    raw: &RawServerEmits,
    payload: &Payload,
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
    for (item, role) in raw.roles.iter().enumerate() {
        match roles.iter().position(|r| r.name == *role) {
            Some(i) => role_indexes.push(i),
            None => cx.error(
                &at.key("roles").item(item),
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
    if !payload.valid {
        return None;
    }
    let fields = &payload.fields;
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
