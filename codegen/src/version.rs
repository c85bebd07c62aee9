//! The catalog's version: a hash of everything a server or a client acts on, so that a client
//! built from one events.yaml can tell a server built from another. Formatting, comments, order
//! and prose (descriptions, examples) do not change it; a role, an enum value, a namespace's
//! history, an event's audience, owner, target roles, payload name, fields or presence do.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::model::{Audience, Binding, Catalog, Event, Trigger};

/// Sixteen hex digits (64 bits of SHA-256) of the catalog's canonical form.
pub fn version(catalog: &Catalog) -> String {
    let canonical = canonical(catalog).to_string();
    let digest = Sha256::digest(canonical.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// What the version covers, as JSON whose objects have sorted keys and whose lists are sorted
/// by name: the same catalog written in another order has the same form.
fn canonical(catalog: &Catalog) -> Value {
    let role = |i: usize| catalog.roles[i].name.clone();
    let sorted = |mut items: Vec<Value>| {
        items.sort_by_key(|v| v["name"].to_string());
        Value::Array(items)
    };
    let roles = catalog
        .roles
        .iter()
        .map(|r| json!({"name": r.name, "own_events_only": r.own_events_only}))
        .collect();
    let enums = catalog
        .enums
        .iter()
        .map(|e| json!({"name": e.name, "values": e.values}))
        .collect();
    let namespaces = catalog
        .namespaces
        .iter()
        .map(|n| {
            let history = n.history.map(|h| json!([h.size, h.ttl_secs]));
            json!({"name": n.name, "history": history})
        })
        .collect();
    let events = catalog
        .events
        .iter()
        .map(|e| event(catalog, e, &role))
        .collect();
    json!({
        "roles": sorted(roles),
        "enums": sorted(enums),
        "namespaces": sorted(namespaces),
        "events": sorted(events),
    })
}

fn event(catalog: &Catalog, e: &Event, role: &dyn Fn(usize) -> String) -> Value {
    let audience = match &e.audience {
        Audience::All => json!("all"),
        Audience::Roles(roles) => {
            let mut names: Vec<String> = roles.iter().map(|&r| role(r)).collect();
            names.sort();
            json!(names)
        }
    };
    let mut fields: Vec<Value> = e
        .fields
        .iter()
        .map(|f| {
            json!({
                "name": f.name,
                "type": f.ty.display(&catalog.enums),
                "optional": f.optional,
                "computed": f.computed.as_ref().map(ToString::to_string),
            })
        })
        .collect();
    fields.sort_by_key(|f| f["name"].to_string());
    let emits = e.server_emits.as_ref().map(|s| {
        let mut roles: Vec<String> = s.roles.iter().map(|&r| role(r)).collect();
        roles.sort();
        let on = match s.on {
            Trigger::FirstConnect => "first_connect",
            Trigger::LastDisconnect => "last_disconnect",
        };
        let data: serde_json::Map<String, Value> = s
            .data
            .iter()
            .map(|(field, binding)| {
                let value = match binding {
                    Binding::UserId => json!("$user_id"),
                    Binding::Now => json!("$now"),
                    Binding::Literal(value) => json!({ "literal": value }),
                };
                (field.clone(), value)
            })
            .collect();
        json!({"on": on, "roles": roles, "data": data})
    });
    json!({
        "name": e.name,
        "namespace": e.namespace,
        "audience": audience,
        "owner": e.owner,
        "target_roles": e.target_roles,
        "payload": e.payload,
        "fields": fields,
        "server_emits": emits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CATALOG: &str = r#"
roles:
  admin: {description: Runs the shop.}
  customer: {description: A shopper., own_events_only: true}
namespaces:
  orders:
    description: Orders.
    events:
      order:created:
        description: New order placed
        roles: [admin, customer]
        owner: customerId
        fields:
          orderId: string
          customerId: string
        example: {orderId: O-1, customerId: c-1}
"#;

    fn of(text: &str) -> String {
        version(&crate::load_str("t.yaml", text).unwrap_or_else(|d| panic!("{d}")))
    }

    #[test]
    fn formatting_comments_order_and_prose_do_not_change_it() {
        let base = of(CATALOG);
        assert_eq!(base.len(), 16);
        let same = [
            CATALOG.replace("roles:\n  admin", "# who connects\nroles:\n\n  admin"),
            CATALOG.replace("[admin, customer]", "\n          - customer\n          - admin"),
            CATALOG.replace(
                "          orderId: string\n          customerId: string\n",
                "          customerId: string\n          orderId: {type: string, description: The order.}\n",
            ),
            CATALOG.replace("New order placed", "An order was placed"),
            CATALOG.replace("orderId: O-1", "orderId: O-2"),
        ];
        for text in same {
            assert_eq!(of(&text), base, "{text}");
        }
    }

    #[test]
    fn what_clients_and_servers_act_on_changes_it() {
        let base = of(CATALOG);
        let different = [
            CATALOG.replace("own_events_only: true", "own_events_only: false"),
            CATALOG.replace("roles: [admin, customer]", "roles: all"),
            CATALOG.replace("orderId: string", "orderId: string?"),
            CATALOG.replace(
                "        fields:",
                "        payload: OrderPayload\n        fields:",
            ),
            CATALOG.replace(
                "    description: Orders.\n",
                "    description: Orders.\n    history: off\n",
            ),
        ];
        for text in different {
            assert_ne!(of(&text), base, "{text}");
        }
    }
}
