//! The TypeScript publisher's names: each event's emitter (`emitter:`, or its name in camelCase:
//! `order:created` -> `orderCreated`) and each namespace's helper (`helper: {name, entity}`). Names
//! are lowerCamelCase and unique among emitters and helpers (they are properties of one object);
//! an entity maps a property (`id`) to a payload field of the namespace's events (`productId`).

use std::collections::BTreeMap;

use crate::model::{Event, Helper, Namespace};
use crate::names;
use crate::raw::RawCatalog;

use super::context::{At, Context};

/// Emitter names: lowerCamelCase, unique.
pub(super) fn emitters(cx: &mut Context<'_>, raw: &RawCatalog, events: &[Event]) {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for event in events {
        let explicit = raw
            .namespaces
            .entries
            .iter()
            .find(|(ns, _)| *ns == event.namespace)
            .and_then(|(_, ns)| ns.events.entries.iter().find(|(n, _)| *n == event.name))
            .is_some_and(|(_, e)| e.emitter.is_some());
        if !explicit && !names::is_event_name(&event.name) {
            continue; // reported as a bad event name
        }
        let at = At::path(&["namespaces", &event.namespace, "events", &event.name]);
        let at = if explicit { at.key("emitter") } else { at }.event(&event.name);
        if !names::is_lower_camel(&event.emitter) {
            cx.error(
                &at,
                format!(
                    "emitter `{}` must be a lowerCamelCase name, like `orderCreated`",
                    event.emitter
                ),
                None,
            );
        } else if let Some(other) = seen.insert(&event.emitter, &event.name) {
            cx.error(
                &at,
                format!(
                    "emitter `{}` is `{other}`'s too; name one with `emitter:`",
                    event.emitter
                ),
                None,
            );
        }
    }
}

/// Each namespace's helper: a lowerCamelCase name no emitter or other helper has, and an entity
/// whose properties are names and whose fields are fields of the namespace's events.
pub(super) fn helpers(
    cx: &mut Context<'_>,
    raw: &RawCatalog,
    events: &[Event],
    namespaces: &mut [Namespace],
) {
    let mut taken: BTreeMap<String, String> = events
        .iter()
        .map(|e| (e.emitter.clone(), format!("the emitter of `{}`", e.name)))
        .collect();
    for (ns_name, ns) in &raw.namespaces.entries {
        let Some(helper) = &ns.helper else { continue };
        let at = At::path(&["namespaces", ns_name, "helper"]);
        if !names::is_lower_camel(&helper.name) {
            let message = format!(
                "helper `{}` must be a lowerCamelCase name, like `emitOrderEvent`",
                helper.name
            );
            cx.error(&at.key("name"), message, None);
        } else if let Some(owner) =
            taken.insert(helper.name.clone(), format!("`{ns_name}`'s helper"))
        {
            let message = format!("helper `{}` is already {owner}", helper.name);
            cx.error(&at.key("name"), message, None);
        }
        let fields: Vec<&str> = events
            .iter()
            .filter(|e| e.namespace == *ns_name)
            .flat_map(|e| e.fields.iter().map(|f| f.name.as_str()))
            .collect();
        let entity_at = at.key("entity");
        let mut entity = Vec::new();
        for (property, field) in &helper.entity.entries {
            if !names::is_lower_camel(property) {
                let message = format!("entity property `{property}` must be a lowerCamelCase name");
                cx.error(&entity_at.key(property), message, None);
            } else if !fields.contains(&field.as_str()) {
                let help = names::closest(field, fields.iter().copied())
                    .map(|f| format!("did you mean `{f}`?"));
                let message = format!("`{field}` is not a field of any `{ns_name}` event");
                cx.error(&entity_at.key(property), message, help);
            } else if fields.contains(&property.as_str()) {
                let message = format!(
                    "entity property `{property}` is a payload field of `{ns_name}` too: the entity could not tell them apart"
                );
                cx.error(&entity_at.key(property), message, None);
            } else {
                entity.push((property.clone(), field.clone()));
            }
        }
        if let Some(namespace) = namespaces.iter_mut().find(|n| n.name == *ns_name) {
            namespace.helper = Some(Helper {
                name: helper.name.clone(),
                entity,
            });
        }
    }
}
