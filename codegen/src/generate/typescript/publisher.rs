//! What the TypeScript publisher (`@omnicast/client/publisher`) and testing hub
//! (`@omnicast/client/testing`) need of the catalog, as data their one generic implementation
//! reads: each event's fields (checked before a payload leaves the process) with their formulas
//! (computed there as the server computes them), the computed fields an emitter does not take,
//! each emitter's event, each namespace's helper with its entity, and who may receive each event
//! (the delivery rules' inputs, as the server's permission table has them).

use std::fmt::Write;

use super::{doc, quoted};
use crate::model::{Catalog, Computed, FieldType};

pub(super) fn render(catalog: &Catalog, out: &mut String) {
    fields(catalog, out);
    computed(catalog, out);
    emitters(catalog, out);
    helpers(catalog, out);
    audience(catalog, out);
}

fn audience(catalog: &Catalog, out: &mut String) {
    use crate::model::Audience;
    doc(
        out,
        "",
        "The roles that receive only the events they own (`own_events_only`).",
    );
    let own: Vec<&str> = catalog
        .roles
        .iter()
        .filter(|r| r.own_events_only)
        .map(|r| r.name.as_str())
        .collect();
    let own: Vec<String> = own.iter().map(|r| quoted(r)).collect();
    let _ = writeln!(
        out,
        "export const OWN_EVENTS_ONLY: readonly Role[] = [{}];\n",
        own.join(", ")
    );
    doc(
        out,
        "",
        "Who may receive each event type: its roles, the field naming its owner, and the field whose roles narrow it per payload.",
    );
    out.push_str("export const AUDIENCE: { readonly [K in EventType]: { readonly roles: readonly Role[]; readonly owner?: string; readonly targetRoles?: string } } = {\n");
    for event in &catalog.events {
        let roles: Vec<String> = match &event.audience {
            Audience::All => catalog.roles.iter().map(|r| quoted(&r.name)).collect(),
            Audience::Roles(roles) => roles
                .iter()
                .map(|&r| quoted(&catalog.roles[r].name))
                .collect(),
        };
        let mut entry = format!("{{ roles: [{}]", roles.join(", "));
        if let Some(owner) = &event.owner {
            let _ = write!(entry, ", owner: {}", quoted(owner));
        }
        if let Some(target) = &event.target_roles {
            let _ = write!(entry, ", targetRoles: {}", quoted(target));
        }
        entry.push_str(" }");
        let _ = writeln!(out, "  {}: {entry},", quoted(&event.name));
    }
    out.push_str("};\n\n");
}

/// A field type as the publisher's checks read it.
fn spec(catalog: &Catalog, ty: &FieldType) -> String {
    match ty {
        FieldType::String => quoted("string"),
        FieldType::Number => quoted("number"),
        FieldType::Integer => quoted("integer"),
        FieldType::Boolean => quoted("boolean"),
        FieldType::Timestamp => quoted("timestamp"),
        FieldType::Role => quoted("role"),
        FieldType::Enum(i) => {
            let values: Vec<String> = catalog.enums[*i].values.iter().map(|v| quoted(v)).collect();
            format!("{{ enum: [{}] }}", values.join(", "))
        }
        FieldType::List(item) => format!("{{ list: {} }}", spec(catalog, item)),
    }
}

fn fields(catalog: &Catalog, out: &mut String) {
    doc(out, "", "A field's type, as the publisher checks it.");
    out.push_str(
        "export type TypeSpec = \"string\" | \"number\" | \"integer\" | \"boolean\" | \"timestamp\" | \"role\" | { readonly enum: readonly string[] } | { readonly list: TypeSpec };\n\n",
    );
    doc(
        out,
        "",
        "A payload field: its type, whether it may be absent, and the formula of a computed one (the operands are fields).",
    );
    out.push_str("export interface FieldSpec {\n  readonly name: string;\n  readonly type: TypeSpec;\n  readonly optional?: true;\n  readonly computed?: { readonly difference: readonly [string, string] } | { readonly percentChange: readonly [string, string] };\n}\n\n");
    doc(
        out,
        "",
        "Each event type's payload fields, from events.yaml.",
    );
    out.push_str("export const FIELDS: { readonly [K in EventType]: readonly FieldSpec[] } = {\n");
    for event in &catalog.events {
        let specs: Vec<String> = event
            .fields
            .iter()
            .map(|f| {
                let mut spec = format!(
                    "{{ name: {}, type: {}",
                    quoted(&f.name),
                    spec(catalog, &f.ty)
                );
                if f.optional {
                    spec.push_str(", optional: true");
                }
                match &f.computed {
                    Some(Computed::Difference {
                        minuend,
                        subtrahend,
                    }) => {
                        let _ = write!(
                            spec,
                            ", computed: {{ difference: [{}, {}] }}",
                            quoted(minuend),
                            quoted(subtrahend)
                        );
                    }
                    Some(Computed::PercentChange { from, to }) => {
                        let _ = write!(
                            spec,
                            ", computed: {{ percentChange: [{}, {}] }}",
                            quoted(from),
                            quoted(to)
                        );
                    }
                    None => {}
                }
                spec.push_str(" }");
                spec
            })
            .collect();
        let _ = writeln!(out, "  {}: [{}],", quoted(&event.name), specs.join(", "));
    }
    out.push_str("};\n\n");
}

fn computed(catalog: &Catalog, out: &mut String) {
    doc(
        out,
        "",
        "Each event type's computed fields: omnicast fills them in, so an emitter does not take them.",
    );
    out.push_str("export interface ComputedFields {\n");
    for event in &catalog.events {
        let names: Vec<&str> = event
            .fields
            .iter()
            .filter(|f| f.computed.is_some())
            .map(|f| f.name.as_str())
            .collect();
        let _ = writeln!(
            out,
            "  {}: {};",
            quoted(&event.name),
            super::union(names.iter().copied())
        );
    }
    out.push_str("}\n\n");
    doc(
        out,
        "",
        "What an emitter takes for an event: its payload without the computed fields.",
    );
    out.push_str(
        "export type Input<K extends EventType> = Omit<EventMap[K], ComputedFields[K]>;\n\n",
    );
}

fn emitters(catalog: &Catalog, out: &mut String) {
    doc(
        out,
        "",
        "The publisher's emitters (`wsEvents.orderCreated(...)`), each with the event it publishes (`emitter:` in events.yaml, or the event's name in camelCase).",
    );
    out.push_str("export const EMITTERS = {\n");
    for event in &catalog.events {
        doc(out, "  ", &event.description);
        let _ = writeln!(out, "  {}: {},", event.emitter, quoted(&event.name));
    }
    out.push_str("} as const satisfies { [name: string]: EventType };\n\n");
}

fn helpers(catalog: &Catalog, out: &mut String) {
    doc(
        out,
        "",
        "The namespaces' helpers (`emitOrderEvent('created', order)`): each action's event type.",
    );
    out.push_str("export interface HelperActions {\n");
    for ns in &catalog.namespaces {
        let Some(helper) = &ns.helper else { continue };
        doc(
            out,
            "  ",
            &format!("The `{}` namespace's events by action.", ns.name),
        );
        let _ = write!(out, "  {}: {{", helper.name);
        for event in catalog.events.iter().filter(|e| e.namespace == ns.name) {
            let action = event.name.split_once(':').map_or("", |(_, a)| a);
            let _ = write!(out, " {}: {};", quoted(action), quoted(&event.name));
        }
        out.push_str(" };\n");
    }
    out.push_str("}\n\n");
    doc(
        out,
        "",
        "Each helper's actions (their event types) and entity: the property standing for each payload field (`id` for `orderId`).",
    );
    out.push_str("export const HELPERS = {\n");
    for ns in &catalog.namespaces {
        let Some(helper) = &ns.helper else { continue };
        let entity: Vec<String> = helper
            .entity
            .iter()
            .map(|(property, field)| format!("{property}: {}", quoted(field)))
            .collect();
        let actions: Vec<String> = catalog
            .events
            .iter()
            .filter(|e| e.namespace == ns.name)
            .map(|e| {
                let action = e.name.split_once(':').map_or("", |(_, a)| a);
                format!("{}: {}", quoted(action), quoted(&e.name))
            })
            .collect();
        let _ = writeln!(
            out,
            "  {}: {{ actions: {{ {} }}, entity: {{ {} }} }},",
            helper.name,
            actions.join(", "),
            entity.join(", ")
        );
    }
    out.push_str("} as const satisfies { [H in keyof HelperActions]: { actions: HelperActions[H]; entity: { [property: string]: string } } };\n\n");
}
