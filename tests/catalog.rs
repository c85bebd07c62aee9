//! The compiled catalog against events.yaml: every example decodes into its generated struct and
//! validates against its JSON Schema, the derive's descriptors agree with the YAML model, decode
//! errors carry JSON paths, and the typed emitters hand ready events to a sink.

use std::cell::RefCell;
use std::path::Path;

use omnicast::runtime::{
    ComputeError, DecodeError, EmitOptions, EventSink, OutgoingEvent, RoleMask,
};
use omnicast::{
    CATALOG, Events, InventoryUpdatedPayload, Namespace, OrderCreatedPayload, OrderStatus,
    ProductPriceChangedPayload, Role, Severity, StockChangeReason, SystemNotificationPayload,
};
use omnicast_codegen::model::Audience;
use serde_json::{Value, json};

fn model() -> omnicast_codegen::Catalog {
    omnicast_codegen::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("events.yaml"))
        .unwrap_or_else(|d| panic!("{d}"))
}

fn raw(value: &Value) -> Box<serde_json::value::RawValue> {
    serde_json::value::to_raw_value(value).unwrap()
}

#[test]
fn every_example_decodes_and_validates_against_its_schema() {
    let model = model();
    // `cli/tests/generated_docs.rs` keeps this file exactly what `omnicast gen` writes.
    let envelope =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("generated-docs/schemas/envelope.json");
    let envelope: Value =
        serde_json::from_str(&std::fs::read_to_string(envelope).unwrap()).unwrap();
    for event in &model.events {
        let entry = CATALOG
            .event(&event.name)
            .expect("compiled catalog has the event");
        let decoded = CATALOG
            .decode(&event.name, &raw(&event.example), EmitOptions::default())
            .unwrap_or_else(|e| panic!("{}: example does not decode: {e}", event.name));
        // Computed fields are recomputed, so the delivered data equals the (consistent) example.
        let data: Value = serde_json::from_str(decoded.data.get()).unwrap();
        assert!(
            numerically_equal(&data, &event.example),
            "{}: decoded data {data} differs from the example {}",
            event.name,
            event.example
        );

        let schema = entry.schema().to_value();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&event.example)
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "{}: example fails its schema: {errors:?}",
            event.name
        );

        // The envelope schema refers to the per-event files; inline the one this event needs
        // (its `$defs` join the envelope's at the root, where `#/$defs/...` references point).
        let mut envelope = envelope.clone();
        if let Some(defs) = schema.get("$defs").and_then(Value::as_object) {
            let root = envelope["$defs"].as_object_mut().unwrap();
            root.extend(defs.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let variants = envelope["oneOf"].as_array_mut().unwrap();
        for variant in variants.iter_mut() {
            let stem = omnicast::runtime::names::schema_stem(
                variant["properties"]["type"]["const"].as_str().unwrap(),
            );
            variant["properties"]["data"] =
                if stem == omnicast::runtime::names::schema_stem(&event.name) {
                    schema.clone()
                } else {
                    json!(false)
                };
        }
        let mut message = json!({
            "type": event.name, "namespace": event.namespace, "data": event.example,
            "timestamp": 1_700_000_000_000u64, "id": format!("{}.k3v9q2mf.Oh3bJq8xVZl2m1Xc4TqP0w", event.namespace)
        });
        let validator = jsonschema::validator_for(&envelope).unwrap();
        assert!(
            validator.is_valid(&message),
            "{}: envelope fails envelope.json",
            event.name
        );
        // Published with `options.namespace`, it is recorded, and named, in another stream.
        message["namespace"] = json!("system");
        message["id"] = json!("system.k3v9q2mf.Oh3bJq8xVZl2m1Xc4TqP0w");
        assert!(validator.is_valid(&message), "{}: in system", event.name);
        message["namespace"] = json!(event.namespace);
        // The id is a position in a namespace of the catalog.
        for id in [
            "evt-1",
            "other.k3v9q2mf.7",
            "orders.k3v9q2mf.7",
            "orders.k3v9q2mf.",
            "orders..7",
        ] {
            message["id"] = json!(id.replace("orders", &event.namespace).replace("other", "x"));
            assert!(
                !validator.is_valid(&message),
                "{}: id {id} passed",
                event.name
            );
        }
    }
}

/// JSON equality where `1500` and `1500.0` are the same number (`number` fields are `f64`).
fn numerically_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| numerically_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| numerically_equal(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn schemas_reject_what_serde_rejects() {
    let entry = CATALOG.event("order:created").unwrap();
    let validator = jsonschema::validator_for(&entry.schema().to_value()).unwrap();
    let good = json!({"orderId": "O", "customerId": "C", "customerName": "N", "total": 1.5, "status": "pending", "channel": "web"});
    assert!(validator.is_valid(&good));
    for bad in [
        json!({"orderId": "O"}),
        json!({"orderId": "O", "customerId": "C", "customerName": "N", "total": "1", "status": "pending", "channel": "web"}),
        json!({"orderId": "O", "customerId": "C", "customerName": "N", "total": 1, "status": "lost", "channel": "web"}),
        json!({"orderId": "O", "customerId": "C", "customerName": "N", "total": 1, "status": "pending", "channel": "web", "extra": 1}),
    ] {
        assert!(!validator.is_valid(&bad), "schema accepts {bad}");
        assert!(
            CATALOG
                .decode("order:created", &raw(&bad), EmitOptions::default())
                .is_err(),
            "decoder accepts {bad}"
        );
    }
}

#[test]
fn descriptors_agree_with_the_yaml_model() {
    let model = model();
    let names: Vec<&str> = CATALOG.roles.iter().map(|r| r.name).collect();
    let model_names: Vec<&str> = model.roles.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, model_names);
    assert_eq!(CATALOG.events.len(), model.events.len());
    for (entry, event) in CATALOG.events.iter().zip(&model.events) {
        let d = entry.descriptor;
        assert_eq!(d.name, event.name);
        assert_eq!(d.namespace, event.namespace);
        assert_eq!(d.description, event.description);
        assert_eq!(d.owner_field, event.owner.as_deref(), "{}", event.name);
        assert_eq!(
            d.target_roles_field,
            event.target_roles.as_deref(),
            "{}",
            event.name
        );
        let expected = match &event.audience {
            Audience::All => RoleMask::ALL,
            Audience::Roles(roles) => roles.iter().map(|&i| RoleMask::single(i as u32)).collect(),
        };
        assert_eq!(d.roles, expected, "{}", event.name);
    }
}

/// The seed's quick-reference table, transcribed by hand: the independent check that events.yaml
/// says what the reference says.
#[test]
fn roles_match_the_seed_reference_table() {
    let seed: &[(&str, &str, &str)] = &[
        ("order:created", "orders", "admin, manager, staff"),
        ("order:updated", "orders", "admin, manager, staff"),
        (
            "order:status_changed",
            "orders",
            "admin, manager, staff, customer*",
        ),
        ("order:deleted", "orders", "admin, manager"),
        ("customer:activity", "customers", "admin, manager, staff"),
        ("customer:viewing_product", "customers", "admin, manager"),
        ("customer:added_to_cart", "customers", "admin, manager"),
        ("customer:online", "customers", "admin, manager, staff"),
        ("customer:offline", "customers", "admin, manager, staff"),
        ("inventory:updated", "inventory", "admin, manager, staff"),
        ("inventory:low_stock", "inventory", "admin, manager, staff"),
        (
            "inventory:out_of_stock",
            "inventory",
            "admin, manager, staff",
        ),
        ("inventory:restocked", "inventory", "admin, manager, staff"),
        ("product:price_changed", "products", "all"),
        ("product:created", "products", "admin, manager, staff"),
        ("product:updated", "products", "admin, manager, staff"),
        ("product:deleted", "products", "admin, manager"),
        ("payment:received", "payments", "admin, manager, customer*"),
        ("payment:failed", "payments", "admin, manager, customer*"),
        ("payment:refunded", "payments", "admin, manager, customer*"),
        ("system:notification", "system", "targetRoles"),
        ("system:alert", "system", "targetRoles"),
        ("system:maintenance", "system", "all"),
    ];
    assert_eq!(CATALOG.events.len(), seed.len());
    for (entry, (name, namespace, roles)) in CATALOG.events.iter().zip(seed) {
        let d = entry.descriptor;
        assert_eq!((d.name, d.namespace), (*name, *namespace));
        match *roles {
            "all" => assert_eq!(
                (d.roles, d.target_roles_field),
                (RoleMask::ALL, None),
                "{name}"
            ),
            "targetRoles" => {
                assert_eq!(
                    (d.roles, d.target_roles_field),
                    (RoleMask::ALL, Some("targetRoles")),
                    "{name}"
                )
            }
            list => {
                let mut mask = RoleMask::EMPTY;
                for role in list.split(", ") {
                    let own = role.ends_with('*');
                    let role = role.trim_end_matches('*');
                    mask = mask | CATALOG.role(role).unwrap();
                    if own {
                        assert_eq!(d.owner_field, Some("customerId"), "{name}");
                    }
                }
                assert_eq!(d.roles, mask, "{name}");
            }
        }
    }
    assert_eq!(CATALOG.own_events_only(), Role::Customer.mask());
}

#[test]
fn decode_errors_name_the_json_path() {
    let cases = [
        (
            "order:created",
            json!({"orderId": "O", "customerId": "C", "customerName": "N", "total": "lots", "status": "pending", "channel": "web"}),
            "data.total",
        ),
        (
            "system:notification",
            json!({"title": "t", "message": "m", "severity": "info", "targetRoles": ["admin", "root"]}),
            "data.targetRoles[1]",
        ),
        (
            "order:deleted",
            json!({"orderId": "O", "surprise": true}),
            "data.surprise",
        ),
        ("order:deleted", json!(["O", null]), "data"),
    ];
    for (name, data, path) in cases {
        match CATALOG.decode(name, &raw(&data), EmitOptions::default()) {
            Err(DecodeError::InvalidData { path: got, message }) => {
                assert_eq!(got, path, "{name} {data}: {message}");
                assert!(
                    !message.is_empty() && !message.contains(" at line "),
                    "{message}"
                );
            }
            other => panic!("{name} {data}: expected InvalidData, got {other:?}"),
        }
    }
    let err = CATALOG
        .decode("order:craeted", &raw(&json!({})), EmitOptions::default())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown event type `order:craeted`; did you mean `order:created`?"
    );
    let err = CATALOG
        .decode("nope", &raw(&json!({})), EmitOptions::default())
        .unwrap_err();
    assert_eq!(err.to_string(), "unknown event type `nope`");
}

/// A publisher may omit a computed field (omnicast fills it in) but never contradict it; the
/// typed path computes it from the payload's own inputs; a result that overflows is refused on
/// every path, never wrapped, never a panic, never `null`.
#[test]
fn computed_fields_are_filled_in_checked_and_never_overflow() {
    let mut payload = InventoryUpdatedPayload::new(
        "P".into(),
        "Phones".into(),
        "SKU".into(),
        50,
        49,
        Some(StockChangeReason::Sale),
    )
    .unwrap();
    assert_eq!(payload.difference(), Some(-1));

    let decode = |kind: &str, data: Value| {
        CATALOG
            .decode(kind, &raw(&data), EmitOptions::default())
            .map(|event| serde_json::from_str::<Value>(event.data.get()).unwrap())
    };
    let stock = |old: i64, new: i64| json!({"productId": "P", "productName": "N", "sku": "S", "oldStock": old, "newStock": new});
    // Omitted: filled in. Sent and equal: kept.
    assert_eq!(
        decode("inventory:updated", stock(10, 25)).unwrap()["difference"],
        15
    );
    let mut agreeing = stock(10, 25);
    agreeing["difference"] = json!(15);
    assert_eq!(
        decode("inventory:updated", agreeing).unwrap()["difference"],
        15
    );
    // Sent and different: refused at its path, with the value it must have.
    let restocked = json!({"productId": "P", "productName": "N", "sku": "S", "oldStock": 1, "newStock": 1, "quantityAdded": 1});
    match decode("inventory:restocked", restocked).unwrap_err() {
        DecodeError::InvalidData { path, message } => {
            assert_eq!(path, "data.quantityAdded");
            assert!(
                message.contains("newStock - oldStock` = 0") && message.contains("says 1"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Overflow at the i64 edges: refused, not wrapped.
    for (old, new) in [(-1, i64::MAX), (1, i64::MIN), (i64::MIN, i64::MAX)] {
        match decode("inventory:updated", stock(old, new)).unwrap_err() {
            DecodeError::InvalidData { path, message } => {
                assert_eq!(path, "data.difference");
                assert!(message.contains("overflows"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
    // A percent change too large for a finite number is refused rather than sent as `null`.
    let price = |old: f64, new: f64| json!({"productId": "P", "productName": "N", "sku": "S", "oldPrice": old, "newPrice": new});
    assert!(decode("product:price_changed", price(1e-300, 1e300)).is_err());
    assert_eq!(
        decode("product:price_changed", price(0.0, 10.0)).unwrap()["changePercentage"],
        0.0
    );
    let typed = ProductPriceChangedPayload::new("P".into(), "N".into(), "S".into(), 3000.0, 2500.0);
    assert_eq!(typed.unwrap().change_percentage(), Some(-16.67));
    assert!(
        InventoryUpdatedPayload::new("P".into(), "N".into(), "S".into(), -1, i64::MAX, None)
            .is_err()
    );

    // Typed emitters: the inputs are the truth, so a changed input is recomputed on send ...
    let events = Events::new(Collect::default());
    payload.new_stock = 40;
    events.inventory_updated(payload.clone()).send();
    let sent: Value = serde_json::from_str(events.sink().0.borrow()[0].data.get()).unwrap();
    assert_eq!(sent["difference"], -10);
    // ... and one that makes the formula overflow is refused: nothing reaches the sink.
    payload.old_stock = i64::MIN;
    assert_eq!(events.inventory_updated(payload).send(), 0);
    assert_eq!(events.sink().0.borrow().len(), 1);
}

/// A publisher working from the JSON Schema alone produces valid payloads: computed fields are
/// `readOnly`, not required, and described by their formula.
#[test]
fn schemas_mark_computed_fields_read_only_and_optional() {
    let model = model();
    let mut seen = 0;
    for event in &model.events {
        let schema = CATALOG.event(&event.name).unwrap().schema().to_value();
        let required = schema["required"].as_array().cloned().unwrap_or_default();
        let mut without = event.example.clone();
        for field in event.fields.iter().filter(|f| f.computed.is_some()) {
            seen += 1;
            let property = &schema["properties"][&field.name];
            assert_eq!(property["readOnly"], true, "{}.{}", event.name, field.name);
            assert!(
                !required.contains(&json!(field.name)),
                "{}.{} required",
                event.name,
                field.name
            );
            let description = property["description"].as_str().unwrap_or_default();
            let formula = field.computed.as_ref().unwrap().to_string();
            assert!(description.contains(&formula), "{description}");
            without.as_object_mut().unwrap().remove(&field.name);
        }
        let validator = jsonschema::validator_for(&schema).unwrap();
        assert!(validator.is_valid(&without), "{}: {without}", event.name);
    }
    assert_eq!(seen, 3, "difference, quantityAdded, changePercentage");
}

/// A sink that keeps what it is given.
#[derive(Default)]
struct Collect(RefCell<Vec<OutgoingEvent>>);

impl EventSink for Collect {
    /// How many events it holds; 0 for a refused one.
    type Output = usize;
    fn publish(&self, event: OutgoingEvent) -> usize {
        let mut events = self.0.borrow_mut();
        events.push(event);
        events.len()
    }
    fn refuse(&self, _: ComputeError) -> usize {
        0
    }
}

#[test]
fn typed_emitters_hand_ready_events_to_the_sink() {
    let events = Events::new(Collect::default());
    let order = OrderCreatedPayload {
        order_id: "ORD-001".into(),
        customer_id: "CUST-123".into(),
        customer_name: "John Doe".into(),
        total: 1500.0,
        status: OrderStatus::Pending,
        channel: "online".into(),
    };
    let n = events
        .order_created(order)
        .to_roles([Role::Admin, Role::Manager])
        .to_users(["u1", "u2"])
        .exclude_users(["u3"])
        .exclude_sessions(["s1"])
        .in_namespace(Namespace::System)
        .at(1_700_000_000_000)
        .send();
    assert_eq!(n, 1);
    let notice = SystemNotificationPayload {
        title: "t".into(),
        message: "m".into(),
        severity: Severity::Warning,
        target_roles: Some(vec![Role::Admin, Role::Customer]),
        action_url: None,
    };
    events.system_notification(notice).send();

    let sent = events.sink().0.borrow();
    let first = &sent[0];
    assert_eq!(first.descriptor.name, "order:created");
    assert_eq!(first.owner.as_deref(), Some("CUST-123"));
    assert_eq!(first.timestamp, Some(1_700_000_000_000));
    assert_eq!(
        first.options,
        EmitOptions {
            roles: Some(Role::Admin.mask() | Role::Manager.mask()),
            user_ids: Some(vec!["u1".into(), "u2".into()]),
            exclude_user_ids: vec!["u3".into()],
            exclude_session_ids: vec!["s1".into()],
            namespace: Some("system"),
        }
    );
    assert_eq!(first.namespace(), "system");
    let data: Value = serde_json::from_str(first.data.get()).unwrap();
    assert_eq!(data["orderId"], "ORD-001");
    assert_eq!(data["status"], "pending");

    let second = &sent[1];
    assert_eq!(
        second.target_roles,
        Some(Role::Admin.mask() | Role::Customer.mask())
    );
    assert_eq!(
        second.allowed_roles(),
        Role::Admin.mask() | Role::Customer.mask()
    );
    assert_eq!(second.timestamp, None);
    assert_eq!(second.namespace(), "system");
    let data: Value = serde_json::from_str(second.data.get()).unwrap();
    assert!(
        data.get("actionUrl").is_none(),
        "absent optional fields are omitted: {data}"
    );
}

#[test]
fn options_never_widen_the_event_roles() {
    // `roles: [customer]` on an admin/manager/staff event leaves nobody.
    let events = Events::new(Collect::default());
    events
        .order_deleted(omnicast::OrderDeletedPayload {
            order_id: "O".into(),
            reason: None,
        })
        .to_roles([Role::Customer])
        .send();
    assert!(events.sink().0.borrow()[0].allowed_roles().is_empty());
}
