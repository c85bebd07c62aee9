//! The change check: what an edit of events.yaml does to the people who receive events, to the
//! services that publish them, and to who may receive them. [`compare`] takes two validated
//! catalogs and returns every difference as a [`Change`] of a [`Rule`], each rule with its
//! classes; the rules and why each has its classes are in [`Rule::classes`].
//!
//! Things are matched by name (roles, enums, namespaces, events, fields), never by position, so
//! reordering the file changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::model::{Audience, Catalog, Event, Field, FieldType, History};

/// What a change means, and to whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// Code that reads events (front ends, services, the generated clients) may stop working.
    BreaksReceivers,
    /// Services that publish may have their events refused, or their code stop compiling.
    BreaksPublishers,
    /// More connections may receive an event than before: a security review is needed.
    Widens,
    /// Fewer connections may receive an event: a dashboard may go quiet.
    Narrows,
    /// Nobody is affected.
    Safe,
}

impl Class {
    /// The class in plain words, as the human output prints it.
    pub fn words(self) -> &'static str {
        match self {
            Class::BreaksReceivers => "breaking for receivers",
            Class::BreaksPublishers => "breaking for publishers",
            Class::Widens => "widens who receives",
            Class::Narrows => "narrows who receives",
            Class::Safe => "safe",
        }
    }

    /// The class as the JSON output names it.
    pub fn key(self) -> &'static str {
        match self {
            Class::BreaksReceivers => "breaking_receivers",
            Class::BreaksPublishers => "breaking_publishers",
            Class::Widens => "widens",
            Class::Narrows => "narrows",
            Class::Safe => "safe",
        }
    }

    /// Whether it breaks someone (receivers or publishers).
    pub fn breaks(self) -> bool {
        matches!(self, Class::BreaksReceivers | Class::BreaksPublishers)
    }
}

macro_rules! rules {
    ($($(#[$doc:meta])* $rule:ident = $name:literal => [$($class:ident),+];)+) => {
        /// Every kind of change the check knows, by the name `--allow` takes.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Rule {
            $($(#[$doc])* $rule,)+
        }

        impl Rule {
            /// Every rule.
            pub const ALL: &'static [Rule] = &[$(Rule::$rule),+];

            /// The rule's name (`field-removed`).
            pub fn name(self) -> &'static str {
                match self {
                    $(Rule::$rule => $name,)+
                }
            }

            /// What a change of this rule means.
            pub fn classes(self) -> &'static [Class] {
                match self {
                    $(Rule::$rule => &[$(Class::$class),+],)+
                }
            }
        }
    };
}

rules! {
    /// A new event type: nobody knows it yet.
    EventAdded = "event-added" => [Safe];
    /// An event type is gone: readers wait for it, publishers are refused.
    EventRemoved = "event-removed" => [BreaksReceivers, BreaksPublishers];
    /// An event moved to another namespace: clients subscribed to the old one by name stop
    /// getting it, and its ids name the new stream.
    EventMoved = "event-moved" => [BreaksReceivers];
    /// The namespace an event moved to is subscribed by default by roles the old one was not.
    EventMovedWider = "event-moved-to-wider-namespace" => [Widens];
    /// The namespace an event moved to is subscribed by default by fewer roles.
    EventMovedNarrower = "event-moved-to-narrower-namespace" => [Narrows];
    /// An event's payload type has another name (TypeScript, the schemas): code naming it.
    PayloadRenamed = "payload-renamed" => [BreaksReceivers];
    /// An event's description.
    EventDescriptionChanged = "event-description-changed" => [Safe];
    /// An event's example payload.
    ExampleChanged = "example-changed" => [Safe];
    /// The server emits an event by itself on other occasions (presence).
    ServerEmitsChanged = "server-emits-changed" => [Safe];
    /// A new optional field: readers ignore it, publishers need not send it.
    OptionalFieldAdded = "optional-field-added" => [Safe];
    /// A new required field: publishers that do not send it are refused.
    RequiredFieldAdded = "required-field-added" => [BreaksPublishers];
    /// A new field omnicast computes: nobody sends it, readers may ignore it.
    ComputedFieldAdded = "computed-field-added" => [Safe];
    /// A field is gone: readers lose it, publishers still sending it are refused (payloads
    /// accept no unknown fields).
    FieldRemoved = "field-removed" => [BreaksReceivers, BreaksPublishers];
    /// A field's type changed for another: both sides' code and data.
    FieldTypeChanged = "field-type-changed" => [BreaksReceivers, BreaksPublishers];
    /// A field takes more values than before (`integer` → `number`, an enum → `string`):
    /// readers typed for the old values may get others.
    FieldTypeWidened = "field-type-widened" => [BreaksReceivers];
    /// A field takes fewer values (`number` → `integer`, `string` → an enum): publishers may
    /// send what is now refused.
    FieldTypeNarrowed = "field-type-narrowed" => [BreaksPublishers];
    /// A required field became optional: readers that relied on it may find it absent.
    FieldMadeOptional = "field-made-optional" => [BreaksReceivers];
    /// An optional field became required: publishers that leave it out are refused.
    FieldMadeRequired = "field-made-required" => [BreaksPublishers];
    /// omnicast computes a field publishers used to send: the Rust emitters' constructors
    /// change, and a value sent is replaced.
    FieldNowComputed = "field-now-computed" => [BreaksPublishers];
    /// A field omnicast computed must now be sent.
    FieldNoLongerComputed = "field-no-longer-computed" => [BreaksPublishers];
    /// A computed field's formula: the values keep their name and change their meaning.
    FormulaChanged = "formula-changed" => [BreaksReceivers];
    /// A field's description.
    FieldDescriptionChanged = "field-description-changed" => [Safe];
    /// An enum value added: deployed clients cannot decode it (the Rust client reports it
    /// unreadable) and exhaustive matches miss it.
    EnumValueAdded = "enum-value-added" => [BreaksReceivers];
    /// An enum value removed: readers' code naming it, publishers sending it.
    EnumValueRemoved = "enum-value-removed" => [BreaksReceivers, BreaksPublishers];
    /// An event is seen by more roles (or by `all`).
    RolesAdded = "roles-added" => [Widens];
    /// An event is seen by fewer roles.
    RolesRemoved = "roles-removed" => [Narrows];
    /// An event has no owner any more: roles limited to their own events see everyone's.
    OwnerRemoved = "owner-removed" => [Widens];
    /// An event names an owner now: roles limited to their own events see only their own.
    OwnerAdded = "owner-added" => [Narrows];
    /// Another field holds the owner: other users' events reach those roles.
    OwnerChanged = "owner-changed" => [Widens];
    /// Payloads can no longer narrow the roles of an event.
    TargetRolesRemoved = "target-roles-removed" => [Widens];
    /// Payloads can narrow the roles of an event now (none does until publishers set it).
    TargetRolesAdded = "target-roles-added" => [Narrows];
    /// A role is no longer limited to its own events: it sees everyone's events it may see.
    OwnEventsOnlyRemoved = "own-events-only-removed" => [Widens];
    /// A role is limited to its own events now.
    OwnEventsOnlyAdded = "own-events-only-added" => [Narrows];
    /// A new role: tokens may carry it.
    RoleAdded = "role-added" => [Safe];
    /// A role is gone: tokens carrying it are refused.
    RoleRemoved = "role-removed" => [BreaksReceivers];
    /// A role's description.
    RoleDescriptionChanged = "role-description-changed" => [Safe];
    /// A new namespace.
    NamespaceAdded = "namespace-added" => [Safe];
    /// A namespace is gone: subscriptions naming it are refused.
    NamespaceRemoved = "namespace-removed" => [BreaksReceivers];
    /// A namespace's description.
    NamespaceDescriptionChanged = "namespace-description-changed" => [Safe];
    /// A namespace keeps more (or any) history: a client resuming gets events from further back.
    HistoryLonger = "history-longer" => [Widens];
    /// A namespace keeps less history: resumes fall back to `recovered: false` sooner.
    HistoryShorter = "history-shorter" => [Narrows];
    /// A new enum, or one no field uses any more.
    EnumAdded = "enum-added" => [Safe];
    /// An enum is gone (the fields that used it are reported on their own).
    EnumRemoved = "enum-removed" => [BreaksReceivers];
    /// An enum's description.
    EnumDescriptionChanged = "enum-description-changed" => [Safe];
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One difference between two catalogs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// What kind of change.
    pub rule: Rule,
    /// What it is about: `order:created.total` (a field), `order:created` (an event), `customer`
    /// (a role), `orders` (a namespace), `OrderStatus` or `OrderStatus.lost` (an enum, a value);
    /// the rule says which. With the rule it makes the change's id.
    pub subject: String,
    /// The event concerned, if any.
    pub event: Option<String>,
    /// The field concerned, if any.
    pub field: Option<String>,
    /// The value before, as events.yaml would write it.
    pub before: Option<String>,
    /// The value after.
    pub after: Option<String>,
    /// Where in the new catalog: a key path (`namespaces`, `orders`, `events`, ...), or the
    /// nearest thing still there when something was removed.
    pub path: Vec<String>,
}

impl Change {
    /// `<rule>:<subject>`, what `--allow` takes to accept this one change.
    pub fn id(&self) -> String {
        format!("{}:{}", self.rule.name(), self.subject)
    }

    /// The rule's classes.
    pub fn classes(&self) -> &'static [Class] {
        self.rule.classes()
    }

    /// What changed, in words: `removed (was `number`)`, `admin, staff → admin, staff, customer`.
    pub fn describe(&self) -> String {
        let what = self.rule.name().replace('-', " ");
        match (&self.before, &self.after) {
            (Some(before), Some(after)) => format!("{what}: `{before}` → `{after}`"),
            (Some(before), None) => format!("{what} (was `{before}`)"),
            (None, Some(after)) => format!("{what}: `{after}`"),
            (None, None) => what,
        }
    }
}

/// Every difference from `old` to `new`, in the order of the new catalog.
pub fn compare(old: &Catalog, new: &Catalog) -> Vec<Change> {
    let mut changes = Changes::default();
    roles(old, new, &mut changes);
    enums(old, new, &mut changes);
    namespaces(old, new, &mut changes);
    events(old, new, &mut changes);
    changes.0
}

#[derive(Default)]
struct Changes(Vec<Change>);

impl Changes {
    fn push(&mut self, rule: Rule, subject: impl Into<String>, path: Vec<String>) -> &mut Change {
        self.0.push(Change {
            rule,
            subject: subject.into(),
            event: None,
            field: None,
            before: None,
            after: None,
            path,
        });
        self.0.last_mut().expect("just pushed")
    }
}

impl Change {
    fn values(&mut self, before: Option<String>, after: Option<String>) -> &mut Self {
        self.before = before;
        self.after = after;
        self
    }

    fn of(&mut self, event: &str, field: Option<&str>) -> &mut Self {
        self.event = Some(event.to_owned());
        self.field = field.map(str::to_owned);
        self
    }
}

fn path(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| (*p).to_owned()).collect()
}

fn roles(old: &Catalog, new: &Catalog, changes: &mut Changes) {
    for role in &new.roles {
        let at = path(&["roles", &role.name]);
        let subject = role.name.clone();
        let Some(before) = old.roles.iter().find(|r| r.name == role.name) else {
            changes.push(Rule::RoleAdded, subject, at);
            continue;
        };
        if before.own_events_only && !role.own_events_only {
            changes
                .push(Rule::OwnEventsOnlyRemoved, subject.clone(), at.clone())
                .values(Some("true".into()), Some("false".into()));
        } else if !before.own_events_only && role.own_events_only {
            let mut own = at.clone();
            own.push("own_events_only".into());
            changes
                .push(Rule::OwnEventsOnlyAdded, subject.clone(), own)
                .values(Some("false".into()), Some("true".into()));
        }
        if before.description != role.description {
            changes.push(Rule::RoleDescriptionChanged, subject, at);
        }
    }
    for role in old
        .roles
        .iter()
        .filter(|r| !new.roles.iter().any(|n| n.name == r.name))
    {
        changes
            .push(Rule::RoleRemoved, role.name.clone(), path(&["roles"]))
            .values(Some(role.name.clone()), None);
    }
}

fn enums(old: &Catalog, new: &Catalog, changes: &mut Changes) {
    for e in &new.enums {
        let at = path(&["enums", &e.name, "values"]);
        let Some(before) = old.enums.iter().find(|b| b.name == e.name) else {
            changes.push(Rule::EnumAdded, e.name.clone(), path(&["enums", &e.name]));
            continue;
        };
        for value in e.values.iter().filter(|v| !before.values.contains(v)) {
            changes
                .push(
                    Rule::EnumValueAdded,
                    format!("{}.{value}", e.name),
                    at.clone(),
                )
                .values(None, Some(value.clone()));
        }
        for value in before.values.iter().filter(|v| !e.values.contains(v)) {
            changes
                .push(
                    Rule::EnumValueRemoved,
                    format!("{}.{value}", e.name),
                    at.clone(),
                )
                .values(Some(value.clone()), None);
        }
        if before.description != e.description {
            changes.push(
                Rule::EnumDescriptionChanged,
                e.name.clone(),
                path(&["enums", &e.name]),
            );
        }
    }
    for e in old
        .enums
        .iter()
        .filter(|b| !new.enums.iter().any(|e| e.name == b.name))
    {
        changes
            .push(Rule::EnumRemoved, e.name.clone(), path(&["enums"]))
            .values(Some(e.name.clone()), None);
    }
}

fn namespaces(old: &Catalog, new: &Catalog, changes: &mut Changes) {
    for ns in &new.namespaces {
        let at = path(&["namespaces", &ns.name]);
        let subject = ns.name.clone();
        let Some(before) = old.namespaces.iter().find(|b| b.name == ns.name) else {
            changes.push(Rule::NamespaceAdded, subject, at);
            continue;
        };
        if let Some(longer) = longer(before.history, ns.history) {
            let rule = if longer {
                Rule::HistoryLonger
            } else {
                Rule::HistoryShorter
            };
            let mut history = at.clone();
            history.push("history".into());
            changes.push(rule, subject.clone(), history).values(
                Some(history_text(before.history)),
                Some(history_text(ns.history)),
            );
        }
        if before.description != ns.description {
            changes.push(Rule::NamespaceDescriptionChanged, subject, at);
        }
    }
    for ns in old
        .namespaces
        .iter()
        .filter(|b| !new.namespaces.iter().any(|n| n.name == b.name))
    {
        changes
            .push(
                Rule::NamespaceRemoved,
                ns.name.clone(),
                path(&["namespaces"]),
            )
            .values(Some(ns.name.clone()), None);
    }
}

/// `Some(true)` when `new` keeps more history than `old` (more events or longer; any rather
/// than none), `Some(false)` when it keeps less, `None` when the same. A size grown while the
/// time shrank counts as longer: some events are kept that were not.
fn longer(old: Option<History>, new: Option<History>) -> Option<bool> {
    match (old, new) {
        (None, None) => None,
        (None, Some(_)) => Some(true),
        (Some(_), None) => Some(false),
        (Some(o), Some(n)) if o == n => None,
        (Some(o), Some(n)) => Some(n.size > o.size || n.ttl_secs > o.ttl_secs),
    }
}

fn history_text(history: Option<History>) -> String {
    match history {
        None => "off".into(),
        Some(h) => format!("{{size: {}, ttl: {}s}}", h.size, h.ttl_secs),
    }
}

fn event_path(event: &Event) -> Vec<String> {
    path(&["namespaces", &event.namespace, "events", &event.name])
}

fn events(old: &Catalog, new: &Catalog, changes: &mut Changes) {
    for event in &new.events {
        let at = event_path(event);
        let Some(before) = old.events.iter().find(|b| b.name == event.name) else {
            changes
                .push(Rule::EventAdded, event.name.clone(), at)
                .of(&event.name, None);
            continue;
        };
        event_changes(old, before, new, event, changes);
    }
    for event in old
        .events
        .iter()
        .filter(|b| !new.events.iter().any(|e| e.name == b.name))
    {
        let at = if new.namespaces.iter().any(|n| n.name == event.namespace) {
            path(&["namespaces", &event.namespace, "events"])
        } else {
            path(&["namespaces"])
        };
        changes
            .push(Rule::EventRemoved, event.name.clone(), at)
            .of(&event.name, None)
            .values(Some(event.name.clone()), None);
    }
}

/// The roles that subscribe to `namespace` by default: those that may see one of its events.
fn subscribers(catalog: &Catalog, namespace: &str) -> BTreeSet<String> {
    catalog
        .events
        .iter()
        .filter(|e| e.namespace == namespace)
        .flat_map(|e| catalog.audience_roles(e))
        .map(|r| catalog.roles[r].name.clone())
        .collect()
}

/// When the server emits an event itself, with role names rather than indexes (which a
/// reordering of the roles changes).
fn emits(catalog: &Catalog, event: &Event) -> Option<String> {
    event.server_emits.as_ref().map(|emits| {
        let roles: BTreeSet<&str> = emits
            .roles
            .iter()
            .map(|&r| catalog.roles[r].name.as_str())
            .collect();
        format!("{:?} {roles:?} {:?}", emits.on, emits.data)
    })
}

/// The role names of an event's audience, or `all`.
fn audience(catalog: &Catalog, event: &Event) -> (BTreeSet<String>, String) {
    let names: BTreeSet<String> = catalog
        .audience_roles(event)
        .into_iter()
        .map(|r| catalog.roles[r].name.clone())
        .collect();
    let text = match &event.audience {
        Audience::All => "all".to_owned(),
        Audience::Roles(roles) => roles
            .iter()
            .map(|&r| catalog.roles[r].name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    };
    (names, text)
}

fn event_changes(
    old: &Catalog,
    before: &Event,
    new: &Catalog,
    event: &Event,
    changes: &mut Changes,
) {
    let at = event_path(event);
    let name = event.name.as_str();
    let mut push =
        |rule: Rule, key: Option<&str>, before: Option<String>, after: Option<String>| {
            let mut at = at.clone();
            at.extend(key.map(str::to_owned));
            changes
                .push(rule, name, at)
                .of(name, None)
                .values(before, after);
        };
    if before.namespace != event.namespace {
        push(
            Rule::EventMoved,
            None,
            Some(before.namespace.clone()),
            Some(event.namespace.clone()),
        );
        let (was, now) = (
            subscribers(old, &before.namespace),
            subscribers(new, &event.namespace),
        );
        let list = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>().join(", ");
        if now.difference(&was).next().is_some() {
            push(
                Rule::EventMovedWider,
                None,
                Some(list(&was)),
                Some(list(&now)),
            );
        }
        if was.difference(&now).next().is_some() {
            push(
                Rule::EventMovedNarrower,
                None,
                Some(list(&was)),
                Some(list(&now)),
            );
        }
    }
    let ((was, was_text), (now, now_text)) = (audience(old, before), audience(new, event));
    if now.difference(&was).next().is_some() {
        push(
            Rule::RolesAdded,
            Some("roles"),
            Some(was_text.clone()),
            Some(now_text.clone()),
        );
    }
    if was.difference(&now).next().is_some() {
        push(
            Rule::RolesRemoved,
            Some("roles"),
            Some(was_text),
            Some(now_text),
        );
    }
    match (&before.owner, &event.owner) {
        (Some(o), None) => push(Rule::OwnerRemoved, None, Some(o.clone()), None),
        (None, Some(n)) => push(Rule::OwnerAdded, Some("owner"), None, Some(n.clone())),
        (Some(o), Some(n)) if o != n => push(
            Rule::OwnerChanged,
            Some("owner"),
            Some(o.clone()),
            Some(n.clone()),
        ),
        _ => {}
    }
    match (&before.target_roles, &event.target_roles) {
        (Some(o), None) => push(Rule::TargetRolesRemoved, None, Some(o.clone()), None),
        (None, Some(n)) => push(
            Rule::TargetRolesAdded,
            Some("target_roles"),
            None,
            Some(n.clone()),
        ),
        _ => {}
    }
    if before.payload != event.payload {
        push(
            Rule::PayloadRenamed,
            Some("payload"),
            Some(before.payload.clone()),
            Some(event.payload.clone()),
        );
    }
    if before.description != event.description {
        push(
            Rule::EventDescriptionChanged,
            Some("description"),
            None,
            None,
        );
    }
    if before.example != event.example {
        push(Rule::ExampleChanged, Some("example"), None, None);
    }
    if emits(old, before) != emits(new, event) {
        push(Rule::ServerEmitsChanged, Some("server_emits"), None, None);
    }
    fields(old, before, new, event, changes);
}

fn fields(old: &Catalog, before: &Event, new: &Catalog, event: &Event, changes: &mut Changes) {
    let mut push = |rule: Rule, field: &str, was: Option<String>, now: Option<String>| {
        let mut at = event_path(event);
        if event.field(field).is_some() {
            at.extend(["fields".to_owned(), field.to_owned()]);
        }
        changes
            .push(rule, format!("{}.{field}", event.name), at)
            .of(&event.name, Some(field))
            .values(was, now);
    };
    let ty = |catalog: &Catalog, field: &Field| field.ty.display(&catalog.enums);
    for field in &event.fields {
        let name = field.name.as_str();
        let Some(was) = before.field(name) else {
            let rule = match (field.computed.is_some(), field.optional) {
                (true, _) => Rule::ComputedFieldAdded,
                (false, true) => Rule::OptionalFieldAdded,
                (false, false) => Rule::RequiredFieldAdded,
            };
            push(rule, name, None, Some(ty(new, field)));
            continue;
        };
        let (was_ty, now_ty) = (ty(old, was), ty(new, field));
        match relation(old, &was.ty, new, &field.ty) {
            Relation::Same => {}
            Relation::Widened => push(Rule::FieldTypeWidened, name, Some(was_ty), Some(now_ty)),
            Relation::Narrowed => push(Rule::FieldTypeNarrowed, name, Some(was_ty), Some(now_ty)),
            Relation::Changed => push(Rule::FieldTypeChanged, name, Some(was_ty), Some(now_ty)),
        }
        match (was.optional, field.optional) {
            (false, true) => push(Rule::FieldMadeOptional, name, None, None),
            (true, false) if field.computed.is_none() => {
                push(Rule::FieldMadeRequired, name, None, None)
            }
            _ => {}
        }
        match (&was.computed, &field.computed) {
            (None, Some(f)) => push(Rule::FieldNowComputed, name, None, Some(f.to_string())),
            (Some(f), None) => push(Rule::FieldNoLongerComputed, name, Some(f.to_string()), None),
            (Some(a), Some(b)) if a != b => push(
                Rule::FormulaChanged,
                name,
                Some(a.to_string()),
                Some(b.to_string()),
            ),
            _ => {}
        }
        if was.description != field.description {
            push(Rule::FieldDescriptionChanged, name, None, None);
        }
    }
    for was in before
        .fields
        .iter()
        .filter(|f| event.field(&f.name).is_none())
    {
        push(Rule::FieldRemoved, &was.name, Some(ty(old, was)), None);
    }
}

/// How a field's new type relates to its old one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relation {
    Same,
    /// Every old value is still valid, and more are.
    Widened,
    /// Every new value was valid before, and fewer are now.
    Narrowed,
    /// Neither.
    Changed,
}

fn relation(old: &Catalog, was: &FieldType, new: &Catalog, now: &FieldType) -> Relation {
    use FieldType as T;
    match (was, now) {
        (T::Enum(a), T::Enum(b)) if old.enums[*a].name == new.enums[*b].name => Relation::Same,
        (T::List(a), T::List(b)) => relation(old, a, new, b),
        (a, b)
            if std::mem::discriminant(a) == std::mem::discriminant(b)
                && !matches!(a, T::Enum(_)) =>
        {
            Relation::Same
        }
        (T::Integer | T::Timestamp, T::Number) | (T::Enum(_) | T::Role, T::String) => {
            Relation::Widened
        }
        (T::Number, T::Integer | T::Timestamp) | (T::String, T::Enum(_) | T::Role) => {
            Relation::Narrowed
        }
        _ => Relation::Changed,
    }
}

/// How many changes of each class, for a summary line.
pub fn tally(changes: &[&Change]) -> BTreeMap<Class, usize> {
    let mut counts = BTreeMap::new();
    for change in changes {
        for class in change.classes() {
            *counts.entry(*class).or_default() += 1;
        }
    }
    counts
}
