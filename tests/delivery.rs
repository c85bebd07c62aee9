//! Who receives what, through real clients of a real server: the seed's table for every event
//! and role, envelopes as the reference shows them, customers' own events, target roles, the
//! emitter's options (which narrow, never widen), subscriptions changed at runtime, the default
//! subscription, and the presence events the server emits itself.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Value, json};
use support::{TestServer, marker, refused};

fn examples() -> Vec<(String, Value)> {
    let model = omnicast_codegen::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("events.yaml"))
        .unwrap_or_else(|d| panic!("{d}"));
    model
        .events
        .into_iter()
        .map(|e| (e.name, e.example))
        .collect()
}

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

/// Every row of the seed's quick-reference table, for each role: exactly who receives each
/// event's example. The expectations are transcribed from the seed, not computed.
#[tokio::test(flavor = "multi_thread")]
async fn every_event_reaches_exactly_the_roles_of_the_reference_table() {
    let server = TestServer::start().await;
    // Customers first: their presence events must not reach the staff clients of this test.
    let mut clients = vec![
        ("cust123", server.connect("CUST-123", "customer", &[]).await),
        ("cust999", server.connect("CUST-999", "customer", &[]).await),
        ("admin", server.connect("admin-1", "admin", &[]).await),
        ("manager", server.connect("manager-1", "manager", &[]).await),
        ("staff", server.connect("staff-1", "staff", &[]).await),
    ];
    let staff = ["admin", "manager", "staff"];
    let managers = ["admin", "manager"];
    let everyone = ["admin", "manager", "staff", "cust123", "cust999"];
    let expected: BTreeMap<&str, &[&str]> = [
        ("order:created", &staff[..]),
        ("order:updated", &staff[..]),
        (
            "order:status_changed",
            &["admin", "manager", "staff", "cust123"][..],
        ),
        ("order:deleted", &managers[..]),
        ("customer:activity", &staff[..]),
        ("customer:viewing_product", &managers[..]),
        ("customer:added_to_cart", &managers[..]),
        ("customer:online", &staff[..]),
        ("customer:offline", &staff[..]),
        ("inventory:updated", &staff[..]),
        ("inventory:low_stock", &staff[..]),
        ("inventory:out_of_stock", &staff[..]),
        ("inventory:restocked", &staff[..]),
        ("product:price_changed", &everyone[..]),
        ("product:created", &staff[..]),
        ("product:updated", &staff[..]),
        ("product:deleted", &managers[..]),
        ("payment:received", &["admin", "manager", "cust123"][..]),
        ("payment:failed", &["admin", "manager", "cust123"][..]),
        ("payment:refunded", &["admin", "manager", "cust123"][..]),
        // The examples target [admin, manager] and [admin, manager, staff].
        ("system:notification", &managers[..]),
        ("system:alert", &staff[..]),
        ("system:maintenance", &everyone[..]),
    ]
    .into_iter()
    .collect();
    let examples = examples();
    assert_eq!(examples.len(), expected.len());
    for (kind, data) in &examples {
        server.publish(kind, data.clone(), Value::Null).await;
    }
    marker(&server, "end").await;
    for (name, client) in &mut clients {
        let received = types(&client.events_until("end").await);
        let wanted: Vec<String> = examples
            .iter()
            .filter(|(kind, _)| expected[kind.as_str()].contains(name))
            .map(|(kind, _)| kind.clone())
            .collect();
        assert_eq!(received, wanted, "{name} received the wrong events");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn envelopes_look_like_the_reference() {
    let server = TestServer::start().await;
    let mut admin = server.connect("a", "admin", &["orders"]).await;
    let (_, data) = examples()
        .into_iter()
        .find(|(k, _)| k == "order:created")
        .unwrap();
    let id = server.publish("order:created", data, Value::Null).await;
    let event = admin.next_json().await;
    assert_eq!(event["type"], "order:created");
    assert_eq!(event["namespace"], "orders");
    assert_eq!(event["data"]["orderId"], "ORD-001");
    assert_eq!(event["data"]["total"], 1500.0);
    assert_eq!(event["id"], id);
    assert!(event["timestamp"].as_u64().unwrap() > 1_700_000_000_000);
    let keys: BTreeSet<&str> = event
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["type", "namespace", "data", "timestamp", "id"])
    );

    // A timestamp given by the publisher is kept.
    let mut admin = server.connect("a", "admin", &["system"]).await;
    let body = json!({"type": "system:maintenance", "data": {"message": "m"}, "timestamp": 1_600_000_000_000u64});
    let (status, _) = server.post(Some(support::API_KEY), body.to_string()).await;
    assert_eq!(status, 202);
    assert_eq!(admin.next_json().await["timestamp"], 1_600_000_000_000u64);
}

fn status_changed(customer: &str) -> Value {
    json!({"orderId": "O", "customerId": customer, "customerName": "N",
           "oldStatus": "pending", "newStatus": "shipped", "timestamp": 1})
}

fn payment(customer: &str) -> Value {
    json!({"paymentId": "P", "orderId": "O", "customerId": customer, "amount": 5, "method": "card", "status": "success"})
}

#[tokio::test(flavor = "multi_thread")]
async fn customers_receive_only_their_own_orders_and_payments() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice", "customer", &[]).await;
    let mut alice_again = server.connect("alice", "customer", &[]).await;
    let mut bob = server.connect("bob", "customer", &[]).await;
    for customer in ["alice", "bob", "carol"] {
        server
            .publish(
                "order:status_changed",
                status_changed(customer),
                Value::Null,
            )
            .await;
        server
            .publish("payment:received", payment(customer), Value::Null)
            .await;
    }
    // Options cannot help a customer see someone else's event.
    server
        .publish(
            "payment:received",
            payment("carol"),
            json!({"userIds": ["alice", "bob"]}),
        )
        .await;
    server
        .publish(
            "order:status_changed",
            status_changed("carol"),
            json!({"roles": ["customer"]}),
        )
        .await;
    marker(&server, "end").await;
    for (who, client) in [
        ("alice", &mut alice),
        ("alice", &mut alice_again),
        ("bob", &mut bob),
    ] {
        let events = client.events_until("end").await;
        assert_eq!(
            types(&events),
            ["order:status_changed", "payment:received"],
            "{who}"
        );
        assert!(
            events.iter().all(|e| e["data"]["customerId"] == who),
            "{who}: {events:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn target_roles_narrow_system_events() {
    let server = TestServer::start().await;
    let mut staff = server.connect("s", "staff", &["system"]).await;
    let mut customer = server.connect("c", "customer", &["system"]).await;
    let notice = |targets: Value| {
        let mut data = json!({"title": "t", "message": "m", "severity": "info"});
        if !targets.is_null() {
            data["targetRoles"] = targets;
        }
        data
    };
    server
        .publish("system:notification", notice(Value::Null), Value::Null)
        .await;
    server
        .publish("system:notification", notice(json!(["staff"])), Value::Null)
        .await;
    server
        .publish("system:alert", notice(json!(["customer"])), Value::Null)
        .await;
    server
        .publish("system:alert", notice(json!([])), Value::Null)
        .await;
    // `roles` narrows targetRoles further, never widens it.
    server
        .publish(
            "system:alert",
            notice(json!(["staff"])),
            json!({"roles": ["staff", "customer"]}),
        )
        .await;
    server
        .publish(
            "system:alert",
            notice(json!(["staff"])),
            json!({"roles": ["customer"]}),
        )
        .await;
    marker(&server, "end").await;
    assert_eq!(
        types(&staff.events_until("end").await),
        ["system:notification", "system:notification", "system:alert"]
    );
    assert_eq!(
        types(&customer.events_until("end").await),
        ["system:notification", "system:alert"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn emitter_options_narrow_and_exclude_but_never_widen() {
    let server = TestServer::start().await;
    let mut admin = server
        .connect("admin-1", "admin", &["orders", "products", "system"])
        .await;
    let mut admin_two = server
        .connect("admin-2", "admin", &["orders", "products", "system"])
        .await;
    let mut manager = server
        .connect("manager-1", "manager", &["orders", "products", "system"])
        .await;
    let mut customer = server
        .connect("cust-1", "customer", &["orders", "products", "system"])
        .await;
    let mut orders_only = server
        .connect("manager-2", "manager", &["orders", "system"])
        .await;
    let order = json!({"orderId": "O", "customerId": "cust-1", "customerName": "N", "total": 1, "status": "pending", "channel": "web"});
    let product = json!({"productId": "P", "productName": "N", "sku": "S", "changedFields": []});
    let session = admin_two.session_id.clone();

    server
        .publish(
            "order:created",
            order.clone(),
            json!({"roles": ["manager"]}),
        )
        .await; // 1: manager
    server
        .publish(
            "order:created",
            order.clone(),
            json!({"userIds": ["admin-2", "cust-1"]}),
        )
        .await; // 2: admin-2
    server
        .publish(
            "product:updated",
            product.clone(),
            json!({"excludeUserIds": ["admin-1"]}),
        )
        .await; // 3: admin-2, manager
    server
        .publish(
            "product:updated",
            product.clone(),
            json!({"excludeSessionIds": [session]}),
        )
        .await; // 4: admin-1, manager
    server
        .publish(
            "order:created",
            order.clone(),
            json!({"roles": ["customer"]}),
        )
        .await; // nobody
    server
        .publish(
            "order:deleted",
            json!({"orderId": "O"}),
            json!({"userIds": ["cust-1"]}),
        )
        .await; // nobody
    // `namespace` addresses another namespace's subscribers; roles still apply.
    server
        .publish(
            "order:deleted",
            json!({"orderId": "5"}),
            json!({"namespace": "products"}),
        )
        .await; // 5: admins, manager
    marker(&server, "end").await;

    let ids = |events: Vec<Value>| -> Vec<String> {
        events
            .iter()
            .map(|e| {
                format!(
                    "{}/{}",
                    e["type"].as_str().unwrap(),
                    e["data"]["orderId"].as_str().unwrap_or("-")
                )
            })
            .collect()
    };
    assert_eq!(
        ids(admin.events_until("end").await),
        ["product:updated/-", "order:deleted/5"]
    );
    assert_eq!(
        ids(admin_two.events_until("end").await),
        ["order:created/O", "product:updated/-", "order:deleted/5"]
    );
    assert_eq!(
        ids(manager.events_until("end").await),
        [
            "order:created/O",
            "product:updated/-",
            "product:updated/-",
            "order:deleted/5"
        ]
    );
    assert_eq!(
        ids(customer.events_until("end").await),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(orders_only.events_until("end").await),
        ["order:created/O"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn subscriptions_change_at_runtime() {
    let server = TestServer::start().await;
    let mut admin = server.connect("a", "admin", &["system"]).await;
    let deleted = json!({"productId": "P"});

    server
        .publish("product:deleted", deleted.clone(), Value::Null)
        .await; // not subscribed
    admin
        .send_json(json!({"type": "subscribe", "namespaces": ["products"]}))
        .await;
    let subscribed = admin.next_json().await;
    assert_eq!(subscribed["type"], "subscribed", "{subscribed}");
    assert_eq!(subscribed["namespaces"], json!(["products", "system"]));
    // The added namespace's stream position as the subscription began: one event so far.
    let position = subscribed["positions"]["products"].as_str().unwrap();
    let position = support::position(position);
    assert_eq!(
        (position.namespace.as_str(), position.offset),
        ("products", 1),
        "{subscribed}"
    );
    assert_eq!(subscribed["positions"].as_object().unwrap().len(), 1);
    server
        .publish("product:deleted", json!({"productId": "seen"}), Value::Null)
        .await;
    admin
        .send_json(json!({"type": "unsubscribe", "namespaces": ["products"]}))
        .await;
    let unsubscribed = loop {
        let message = admin.next_json().await;
        if message["type"] == "unsubscribed" {
            break message;
        }
        assert_eq!(message["data"]["productId"], "seen");
    };
    assert_eq!(unsubscribed["namespaces"], json!(["system"]));
    server
        .publish("product:deleted", deleted, Value::Null)
        .await; // unsubscribed again
    marker(&server, "end").await;
    assert!(admin.events_until("end").await.is_empty());

    admin
        .send_json(json!({"type": "subscribe", "namespaces": ["orders", "nope"]}))
        .await;
    let error = admin.next_json().await;
    assert_eq!(
        (error["type"].as_str(), error["code"].as_str()),
        (Some("error"), Some("unknown_namespace"))
    );

    let (status, body) = refused(
        &server.ws_url(&format!(
            "token={}&namespaces=orders,nope",
            server.token("a", "admin")
        )),
        &[],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unknown_namespace"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_default_subscription_is_every_namespace_the_role_may_see() {
    let server = TestServer::start().await;
    let mut admin = server.connect("a", "admin", &[]).await;
    admin
        .send_json(json!({"type": "subscribe", "namespaces": []}))
        .await;
    assert_eq!(
        admin.next_json().await["namespaces"],
        json!([
            "orders",
            "customers",
            "inventory",
            "products",
            "payments",
            "system"
        ])
    );
    let mut customer = server.connect("c", "customer", &[]).await;
    customer
        .send_json(json!({"type": "subscribe", "namespaces": []}))
        .await;
    assert_eq!(
        customer.next_json().await["namespaces"],
        json!(["orders", "products", "payments", "system"])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn presence_events_follow_a_customers_first_and_last_connection() {
    let server = TestServer::start().await;
    let mut admin = server.connect("a", "admin", &["customers", "system"]).await;
    let first = server.connect("cust-7", "customer", &[]).await;
    let second = server.connect("cust-7", "customer", &[]).await;
    let online = admin.next_json().await;
    assert_eq!(online["type"], "customer:online");
    assert_eq!(online["data"]["customerId"], "cust-7");
    assert_eq!(online["data"]["isOnline"], true);
    drop(first);
    // Wait until the server saw the first close, then close the last one.
    support::wait_until(|| server.server.hub().stats().connections == 2).await;
    drop(second);
    let offline = admin.next_json().await;
    assert_eq!(offline["type"], "customer:offline");
    assert_eq!(offline["data"]["customerId"], "cust-7");
    assert_eq!(offline["data"]["isOnline"], false);
    // Staff roles do not trigger presence.
    let other_admin = server.connect("b", "admin", &[]).await;
    drop(other_admin);
    marker(&server, "end").await;
    assert!(admin.events_until("end").await.is_empty());
}

/// With a grace period, a customer who reconnects within it never went offline for staff: one
/// online event per visit, and the offline one once they stayed away for the grace.
#[tokio::test(flavor = "multi_thread")]
async fn a_customer_back_within_the_presence_grace_is_not_announced_again() {
    let mut config = support::config();
    config.presence_grace = std::time::Duration::from_secs(2);
    let server = TestServer::with(config).await;
    let mut admin = server.connect("a", "admin", &["customers", "system"]).await;
    let connections = || server.server.hub().stats().connections;
    let mut customer = server.connect("cust-7", "customer", &[]).await;
    assert_eq!(admin.next_json().await["type"], "customer:online");
    for _ in 0..3 {
        // Their only connection closes, and they are back at once.
        drop(customer);
        support::wait_until(|| connections() == 1).await;
        customer = server.connect("cust-7", "customer", &[]).await;
    }
    drop(customer);
    support::wait_until(|| connections() == 1).await;
    let left = std::time::Instant::now();
    let offline = admin.next_json().await;
    assert_eq!(offline["type"], "customer:offline", "{offline}");
    assert_eq!(offline["data"]["customerId"], "cust-7");
    assert!(left.elapsed() >= std::time::Duration::from_millis(1500));
    marker(&server, "end").await;
    assert!(admin.events_until("end").await.is_empty());
}

/// A connection asked to close once drained (its namespace's stream changed epoch on this
/// node, or the node is shutting down) writes what was queued and takes nothing more: an event
/// after the request would move its client's position past events it never got, and its resume
/// would claim them recovered. Found by the soak (`omnicast-bench soak`): after Redis lost its
/// data, events of the new epoch reached connections still draining the old one.
#[test]
fn a_draining_connection_is_given_nothing_more() {
    use omnicast::runtime::NamespaceSet;
    use omnicast::runtime::server::{ConnectionInfo, Hub, Publication};

    let hub = Hub::new(&omnicast::CATALOG, 1024);
    let payments = omnicast::CATALOG.namespace_index("payments").unwrap();
    let system = omnicast::CATALOG.namespace_index("system").unwrap();
    let register = |session: &str| {
        hub.register(ConnectionInfo {
            session_id: session.into(),
            user_id: session.into(),
            role: omnicast::CATALOG.role_index("admin").unwrap(),
            namespaces: NamespaceSet::single(payments).union(NamespaceSet::single(system)),
        })
        .unwrap()
    };
    let (draining, other) = (register("draining"), register("other"));
    let event = |n: u64| {
        let data = serde_json::value::to_raw_value(&payment("c")).unwrap();
        let event = omnicast::CATALOG
            .decode("payment:received", &data, Default::default())
            .unwrap();
        Publication::new(event, format!("payments.e.{n}"), 0)
    };
    assert_eq!(hub.deliver(&event(1)), 2);
    assert_eq!(draining.mailbox.len(), 1);
    draining
        .mailbox
        .close_when_drained(omnicast::runtime::protocol::close::RESUME_REQUIRED);
    assert_eq!(hub.deliver(&event(2)), 1, "only the other connection");
    assert_eq!(
        draining.mailbox.len(),
        1,
        "what was queued stays; nothing joins it"
    );
    assert_eq!(other.mailbox.len(), 2);
}
