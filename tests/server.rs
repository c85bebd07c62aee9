//! The server through its public interface: real WebSocket clients and a real HTTP client against
//! a real server on a loopback port.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use omnicast::runtime::protocol::close;
use serde_json::{Value, json};
use support::{Ended, TestServer, marker, refused};

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
    assert!(
        position.starts_with("products.") && position.ends_with(".1"),
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
async fn bad_tokens_are_refused_before_the_upgrade() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let server = TestServer::start().await;
    let now = omnicast::runtime::now_ms() / 1000;
    let sign = |claims: Value, secret: &str| {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let good = json!({"sub": "u", "role": "admin", "exp": now + 60});
    let unsigned = {
        let part = |v: Value| base64url(v.to_string().as_bytes());
        format!(
            "{}.{}.",
            part(json!({"alg": "none", "typ": "JWT"})),
            part(good.clone())
        )
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("malformed", "not-a-jwt".into(), "invalid_token"),
        (
            "bad signature",
            sign(good.clone(), "another-secret-0123456789"),
            "invalid_token",
        ),
        ("alg none", unsigned, "invalid_token"),
        (
            "expired",
            sign(
                json!({"sub": "u", "role": "admin", "exp": now - 120}),
                support::SECRET,
            ),
            "token_expired",
        ),
        (
            "not yet valid",
            sign(
                json!({"sub": "u", "role": "admin", "exp": now + 600, "nbf": now + 300}),
                support::SECRET,
            ),
            "token_not_yet_valid",
        ),
        (
            "no exp",
            sign(json!({"sub": "u", "role": "admin"}), support::SECRET),
            "invalid_claims",
        ),
        (
            "no sub",
            sign(json!({"role": "admin", "exp": now + 60}), support::SECRET),
            "invalid_claims",
        ),
        (
            "role not a string",
            sign(
                json!({"sub": "u", "role": 3, "exp": now + 60}),
                support::SECRET,
            ),
            "invalid_claims",
        ),
        (
            "unknown role",
            sign(
                json!({"sub": "u", "role": "root", "exp": now + 60}),
                support::SECRET,
            ),
            "unknown_role",
        ),
    ];
    for (what, token, code) in cases {
        let (status, body) = refused(&server.ws_url(&format!("token={token}")), &[]).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some(code)),
            "{what}: {body}"
        );
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}"
        );
        let header = format!("Bearer {token}");
        let (status, _) = refused(&server.ws_url(""), &[("Authorization", &header)]).await;
        assert_eq!(status, 401, "{what} in the header");
    }
    let (status, body) = refused(&server.ws_url(""), &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("missing_token"))
    );

    // The same token is accepted in the header and in the query.
    let token = sign(good, support::SECRET);
    let header = format!("Bearer {token}");
    support::Client::open(&server.ws_url(""), &[("Authorization", &header)])
        .await
        .expect("header token");
    support::Client::open(&server.ws_url(&format!("token={token}")), &[])
        .await
        .expect("query token");
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_frames_get_errors_and_the_connection_lives_on() {
    let server = TestServer::start().await;
    let mut client = server.connect("a", "admin", &[]).await;
    let cases = [
        ("{not json", "invalid_json"),
        (r#"{"type": "dance"}"#, "invalid_message"),
        (r#"{"type": "subscribe"}"#, "invalid_message"),
        (
            r#"{"type": "subscribe", "namespaces": "orders"}"#,
            "invalid_message",
        ),
        (r#"{"type": "ping", "extra": 1}"#, "invalid_message"),
        ("[]", "invalid_message"),
    ];
    for (frame, code) in cases {
        client.send_text(frame).await;
        let reply = client.next_json().await;
        assert_eq!(
            (reply["type"].as_str(), reply["code"].as_str()),
            (Some("error"), Some(code)),
            "{frame}: {reply}"
        );
    }
    client.send_binary(vec![1, 2, 3]).await;
    let reply = client.next_json().await;
    assert_eq!(reply["code"], "binary_not_supported");
    client.send_json(json!({"type": "ping", "id": 7})).await;
    assert_eq!(client.next_json().await, json!({"type": "pong", "id": 7}));

    // Over the limit (64 KiB by default): closed with 1009.
    client.send_text(&"x".repeat(70 * 1024)).await;
    assert_eq!(
        client.ended().await,
        Ended::Closed(close::MESSAGE_TOO_BIG.code)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_publish_api_explains_every_error() {
    let server = TestServer::start().await;
    let good = json!({"type": "product:deleted", "data": {"productId": "P"}}).to_string();
    // (API key, body, expected status, error code, path)
    type Case<'a> = (Option<&'a str>, String, u16, &'a str, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (None, good.clone(), 401, "unauthorized", None),
        (Some("wrong-key-0123456789"), good.clone(), 401, "unauthorized", None),
        (Some(support::API_KEY), "{\"type\": ".into(), 400, "malformed_json", None),
        (Some(support::API_KEY), json!({"data": {}}).to_string(), 400, "invalid_request", None),
        (Some(support::API_KEY), json!({"type": "product:deleted", "data": {}, "extra": 1}).to_string(), 400, "invalid_request", None),
        (Some(support::API_KEY), json!({"type": "product:delted", "data": {}}).to_string(), 400, "unknown_type", Some("type")),
        (Some(support::API_KEY), json!({"type": "product:deleted", "data": {"productId": 5}}).to_string(), 422, "invalid_data", Some("data.productId")),
        (Some(support::API_KEY), json!({"type": "product:deleted", "data": {}}).to_string(), 422, "invalid_data", Some("data")),
        (Some(support::API_KEY), json!({"type": "product:deleted", "data": {"productId": "P", "x": 1}}).to_string(), 422, "invalid_data", Some("data.x")),
        (Some(support::API_KEY), json!({"type": "product:deleted", "data": {"productId": "P"}, "options": {"roles": ["root"]}}).to_string(), 422, "invalid_options", Some("options.roles[0]")),
        (Some(support::API_KEY), json!({"type": "product:deleted", "data": {"productId": "P"}, "options": {"namespace": "nope"}}).to_string(), 422, "invalid_options", Some("options.namespace")),
        (Some(support::API_KEY), json!({"type": "product:deleted", "data": {"productId": "P"}, "options": {"colour": 1}}).to_string(), 400, "invalid_request", None),
        (Some(support::API_KEY), json!([{"type": "product:deleted", "data": {"productId": "P"}}, {"type": "product:deleted", "data": {"productId": 1}}]).to_string(), 422, "invalid_data", Some("[1].data.productId")),
        (Some(support::API_KEY), "[]".into(), 400, "invalid_request", None),
    ];
    let mut admin = server.connect("a", "admin", &["products", "system"]).await;
    for (key, body, status, code, path) in cases {
        let (got, reply) = server.post(key, body.clone()).await;
        assert_eq!(
            (got, reply["error"].as_str()),
            (status, Some(code)),
            "{body}: {reply}"
        );
        assert_eq!(reply["path"].as_str(), path, "{body}: {reply}");
        assert!(
            reply["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
    // Too large a body: 413. Just over the 1 MiB limit, so the client has written all of it
    // before the server answers and closes: a body still being written could meet a reset.
    let huge = json!({"type": "system:maintenance", "data": {"message": "x".repeat(1024 * 1024)}})
        .to_string();
    let (status, reply) = server.post(Some(support::API_KEY), huge).await;
    assert_eq!(status, 413, "{reply}");
    assert_eq!(reply["error"], "body_too_large", "{reply}");
    assert!(
        reply["message"]
            .as_str()
            .is_some_and(|m| m.contains("1048576")),
        "{reply}"
    );

    // Nothing above was published, not even the valid half of the rejected batch.
    marker(&server, "end").await;
    assert!(admin.events_until("end").await.is_empty());

    // Both keys work; a batch returns its ids in order.
    let (status, reply) = server.post(Some("second-key-0123456789"), good).await;
    assert_eq!(status, 202, "{reply}");
    assert!(reply["id"].as_str().is_some());
    let batch = json!([
        {"type": "product:deleted", "data": {"productId": "1"}},
        {"type": "product:deleted", "data": {"productId": "2"}, "options": {"roles": ["admin"]}},
    ]);
    let (status, reply) = server.post(Some(support::API_KEY), batch.to_string()).await;
    assert_eq!(status, 202, "{reply}");
    let ids = reply["ids"].as_array().unwrap();
    assert_eq!(ids.len(), 2);
    let received: Vec<Value> = vec![
        admin.next_json().await,
        admin.next_json().await,
        admin.next_json().await,
    ];
    assert_eq!(received[1]["data"]["productId"], "1");
    assert_eq!(received[2]["data"]["productId"], "2");
    assert_eq!(received[1]["id"], ids[0]);
    assert_eq!(received[2]["id"], ids[1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_consumer_is_closed_while_a_fast_one_keeps_receiving() {
    let mut config = support::config();
    config.queue_capacity = 16;
    let server = TestServer::with(config).await;
    let mut fast = server.connect("fast", "admin", &["system"]).await;
    let mut slow = server.connect("slow", "admin", &["system"]).await;
    let events = omnicast::Events::new(server.server.publisher());
    let maintenance = |message: String| omnicast::MaintenancePayload {
        message,
        scheduled_at: None,
        duration: None,
    };
    // The fast client acknowledges each event, and the next is only sent then: it never falls
    // behind, while the slow one reads nothing until its queue overflows.
    let (ack, mut acks) = tokio::sync::mpsc::unbounded_channel();
    let fast_reader = tokio::spawn(async move {
        loop {
            let event = fast.next_json().await;
            let done = event["data"]["message"] == "stop";
            ack.send(()).unwrap();
            if done {
                return;
            }
        }
    });
    let big = "x".repeat(32 * 1024);
    let mut sent = 0;
    while server.server.hub().stats().slow_consumers_closed == 0 {
        // Bounded: the slow client's socket buffers fill after a few megabytes.
        assert!(sent < 20_000, "the slow consumer was never closed");
        events
            .system_maintenance(maintenance(big.clone()))
            .send()
            .await
            .unwrap();
        tokio::time::timeout(support::WAIT, acks.recv())
            .await
            .unwrap()
            .unwrap();
        sent += 1;
    }
    // The fast client keeps receiving after the slow one is gone.
    for message in ["after", "stop"] {
        events
            .system_maintenance(maintenance(message.into()))
            .send()
            .await
            .unwrap();
        tokio::time::timeout(support::WAIT, acks.recv())
            .await
            .unwrap()
            .unwrap();
    }
    tokio::time::timeout(support::WAIT, fast_reader)
        .await
        .unwrap()
        .unwrap();
    assert!(
        sent > 16,
        "closed after {sent} events: sooner than its queue allows"
    );
    assert_eq!(slow.ended().await, Ended::Closed(close::SLOW_CONSUMER.code));
    let stats = server.server.hub().stats();
    assert_eq!(stats.slow_consumers_closed, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn graceful_shutdown_closes_every_client_with_going_away() {
    let server = TestServer::start().await;
    let mut one = server.connect("a", "admin", &[]).await;
    let mut two = server.connect("c", "customer", &[]).await;
    let hub = server.server.hub().clone();
    let shutdown = tokio::spawn(server.shutdown());
    assert_eq!(one.ended().await, Ended::Closed(close::GOING_AWAY.code));
    assert_eq!(two.ended().await, Ended::Closed(close::GOING_AWAY.code));
    tokio::time::timeout(support::WAIT, shutdown)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hub.stats().connections, 0);
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

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_token_closes_the_connection() {
    let mut config = support::config();
    config.jwt.leeway_secs = 0;
    let server = TestServer::with(config).await;
    let token = omnicast::runtime::mint_hs256(support::SECRET.as_bytes(), "u", "admin", 1);
    let mut client = support::Client::open(&server.ws_url(&format!("token={token}")), &[])
        .await
        .unwrap();
    assert_eq!(client.next_json().await["type"], "ready");
    assert_eq!(
        client.ended().await,
        Ended::Closed(close::TOKEN_EXPIRED.code)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_client_is_closed_after_the_idle_timeout() {
    let mut config = support::config();
    config.heartbeat_interval = std::time::Duration::from_millis(200);
    config.idle_timeout = std::time::Duration::from_millis(600);
    let server = TestServer::with(config).await;
    let mut responsive = server.connect("r", "admin", &["system"]).await;
    // A raw client that completes the handshake and then never answers a ping.
    let mut silent = support::RawClient::connect(server.addr, &server.token("s", "admin")).await;
    let reading = async {
        loop {
            let _ = responsive.next_json().await;
        }
    };
    let code = tokio::select! {
        code = silent.close_code() => code,
        () = reading => unreachable!(),
    };
    assert_eq!(code, close::IDLE_TIMEOUT.code);
    // The responsive client, which answered every ping, is still served.
    responsive.send_json(json!({"type": "ping"})).await;
    assert_eq!(responsive.next_json().await, json!({"type": "pong"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_origin_allowlist_refuses_other_browsers() {
    let mut config = support::config();
    config.allowed_origins = vec!["https://shop.example".into()];
    let server = TestServer::with(config).await;
    let url = server.ws_url(&format!("token={}", server.token("a", "admin")));
    let (status, body) = refused(&url, &[("Origin", "https://evil.example")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("origin_not_allowed"))
    );
    support::Client::open(&url, &[("Origin", "https://shop.example")])
        .await
        .expect("allowed origin");
    support::Client::open(&url, &[])
        .await
        .expect("non-browser clients send no Origin");
}

/// The review's item 10: a handshake with two `Origin` headers is refused, whichever comes first
/// (only the first was checked).
#[tokio::test(flavor = "multi_thread")]
async fn two_origin_headers_are_refused() {
    let mut config = support::config();
    config.allowed_origins = vec!["https://shop.example".into()];
    let server = TestServer::with(config).await;
    let token = server.token("a", "admin");
    for (first, second) in [
        ("https://shop.example", "https://evil.example"),
        ("https://shop.example", "https://shop.example"),
    ] {
        let request = format!(
            "GET /ws?token={token} HTTP/1.1\r\nHost: x\r\nOrigin: {first}\r\nOrigin: {second}\r\n\
             Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        let (status, _, body) = exchange(server.addr, &request).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{first}, {second}: {body}"
        );
    }
}

/// A browser learns why its WebSocket was refused by asking the same URL with `fetch`: the
/// refusal carries `Access-Control-Allow-Origin` for an allowed origin, never for another.
#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_is_readable_by_an_allowed_origin() {
    let mut config = support::config();
    config.allowed_origins = vec!["https://shop.example".into()];
    let server = TestServer::with(config).await;
    let ask = |origin: &str| {
        format!(
            "GET /ws?token=not-a-jwt HTTP/1.1\r\nHost: x\r\nOrigin: {origin}\r\nConnection: close\r\n\r\n"
        )
    };
    let (status, head, body) = exchange(server.addr, &ask("https://shop.example")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );
    assert!(
        head.contains("access-control-allow-origin: https://shop.example"),
        "{head}"
    );
    let (status, head, _) = exchange(server.addr, &ask("https://evil.example")).await;
    assert_eq!(status, 403);
    assert!(!head.contains("access-control-allow-origin"), "{head}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_health_check_reports_counters() {
    let server = TestServer::start().await;
    let _client = server.connect("a", "admin", &[]).await;
    let url = format!("http://{}/healthz", server.addr);
    let body: Value = tokio::task::spawn_blocking(move || {
        ureq::get(&url)
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["stats"]["connections"], 1);
}

/// Test-only key pairs (tests/fixtures, generated with openssl): public-key tokens are accepted,
/// and a token signed any other way (HS256 with the public key as secret, the other curve) is not.
#[tokio::test(flavor = "multi_thread")]
async fn rs256_and_es256_public_keys_verify_tokens() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    use omnicast::runtime::JwtKey;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let read = |name: &str| std::fs::read(fixtures.join(name)).unwrap();
    let claims =
        json!({"sub": "u", "role": "staff", "exp": omnicast::runtime::now_ms() / 1000 + 60});
    for (algorithm, public, private) in [
        (Algorithm::ES256, "es256-public.pem", "es256-private.pem"),
        (Algorithm::RS256, "rs256-public.pem", "rs256-private.pem"),
    ] {
        let mut config = support::config();
        config.jwt.key = match algorithm {
            Algorithm::ES256 => JwtKey::Es256PublicPem(read(public)),
            _ => JwtKey::Rs256PublicPem(read(public)),
        };
        let server = TestServer::with(config).await;
        let key = match algorithm {
            Algorithm::ES256 => EncodingKey::from_ec_pem(&read(private)).unwrap(),
            _ => EncodingKey::from_rsa_pem(&read(private)).unwrap(),
        };
        let token = encode(&Header::new(algorithm), &claims, &key).unwrap();
        let mut client = support::Client::open(&server.ws_url(&format!("token={token}")), &[])
            .await
            .expect("signed token");
        assert_eq!(client.next_json().await["role"], "staff");

        let confused = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&read(public)),
        )
        .unwrap();
        let (status, body) = refused(&server.ws_url(&format!("token={confused}")), &[]).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_token")),
            "{algorithm:?}: {body}"
        );
        let hs = omnicast::runtime::mint_hs256(support::SECRET.as_bytes(), "u", "staff", 60);
        assert_eq!(
            refused(&server.ws_url(&format!("token={hs}")), &[]).await.0,
            401
        );
    }
}

/// A client that stops reading for good is not kept forever: once its queue overflows it is
/// closed, and its connection is torn down after the close grace period even though it never
/// takes the close frame.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_never_reads_again_is_torn_down() {
    let mut config = support::config();
    config.queue_capacity = 16;
    let server = TestServer::with(config).await;
    let mut stuck = support::RawClient::connect(server.addr, &server.token("stuck", "admin")).await;
    let hub = server.server.hub().clone();
    support::wait_until(|| hub.stats().connections == 1).await;
    let events = omnicast::Events::new(server.server.publisher());
    let big = "x".repeat(32 * 1024);
    let mut sent = 0;
    while hub.stats().slow_consumers_closed == 0 {
        assert!(sent < 20_000, "the stuck client was never closed");
        let payload = omnicast::MaintenancePayload {
            message: big.clone(),
            scheduled_at: None,
            duration: None,
        };
        events.system_maintenance(payload).send().await.unwrap();
        sent += 1;
        tokio::task::yield_now().await;
    }
    // Teardown takes the close grace period (5 s), since the client never answers.
    tokio::time::timeout(support::WAIT * 2, async {
        while hub.stats().connections > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the stuck connection is torn down");
    // And the socket is really closed: reading what was buffered ends in end-of-stream.
    stuck.read_to_end().await;
}

/// One HTTP/1.1 exchange by hand: the status, the raw head and the JSON body.
async fn exchange(addr: std::net::SocketAddr, request: &str) -> (u16, String, Value) {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    support::read_response(&mut stream).await
}

/// The runtime answers the WebSocket handshake itself: anything but a version-13 upgrade is
/// refused with what was expected, and a browser's `Connection: keep-alive, Upgrade` is taken,
/// answered with RFC 6455's accept key.
#[tokio::test]
async fn requests_that_are_not_websocket_handshakes_are_refused() {
    let server = TestServer::start().await;
    let token = server.token("u", "admin");
    let request = |headers: &str| {
        format!("GET /ws?token={token} HTTP/1.1\r\nHost: omnicast.test\r\n{headers}\r\n")
    };
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let upgrade = "Connection: Upgrade\r\nUpgrade: websocket\r\n";
    let cases = [
        ("a plain GET", request(""), 426),
        (
            "another protocol",
            request(&format!(
                "Connection: Upgrade\r\nUpgrade: h2c\r\nSec-WebSocket-Version: 13\r\n{key}"
            )),
            426,
        ),
        (
            "version 8",
            request(&format!("{upgrade}Sec-WebSocket-Version: 8\r\n{key}")),
            426,
        ),
        (
            "no key",
            request(&format!("{upgrade}Sec-WebSocket-Version: 13\r\n")),
            400,
        ),
    ];
    for (case, request, expected) in cases {
        let (status, head, body) = exchange(server.addr, &request).await;
        assert_eq!(status, expected, "{case}: {head}");
        assert_eq!(body["error"], "not_websocket", "{case}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{case}"
        );
        if expected == 426 {
            assert!(head.contains("sec-websocket-version: 13"), "{case}: {head}");
        }
    }

    let browser = request(&format!(
        "Connection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\nSec-WebSocket-Version: 13\r\n{key}"
    ));
    let (status, head, _) = exchange(server.addr, &browser).await;
    assert_eq!(status, 101, "{head}");
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
}

/// Protocol-level pings are answered with the same payload, and a text message split into
/// continuation frames is handled as one.
#[tokio::test]
async fn pings_are_answered_and_fragmented_messages_reassembled() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

    let server = TestServer::start().await;
    let mut client = server.connect("u", "admin", &[]).await;
    client
        .ws
        .send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    let pong = loop {
        let message = tokio::time::timeout(support::WAIT, client.ws.next())
            .await
            .expect("a pong in time")
            .unwrap()
            .unwrap();
        if let Message::Pong(payload) = message {
            break payload;
        }
    };
    assert_eq!(&pong[..], b"are you there");

    let text = r#"{"type": "ping", "id": "in three parts"}"#;
    let parts = [
        (&text[..5], OpCode::Data(Data::Text), false),
        (&text[5..20], OpCode::Data(Data::Continue), false),
        (&text[20..], OpCode::Data(Data::Continue), true),
    ];
    for (part, opcode, last) in parts {
        let frame = Frame::message(part.as_bytes().to_vec(), opcode, last);
        client.ws.send(Message::Frame(frame)).await.unwrap();
    }
    assert_eq!(
        client.next_json().await,
        json!({"type": "pong", "id": "in three parts"})
    );
}

/// Far more than the socket buffers hold, queued while the client does not read: the server
/// writes as the client reads, resuming partly written frames, and every event arrives whole
/// and in order (frames of 126..=65535 and of more than 65535 bytes among them).
#[tokio::test]
async fn a_backlog_larger_than_the_socket_buffers_arrives_whole_and_in_order() {
    let mut config = support::config();
    config.queue_capacity = 4096;
    let server = TestServer::with(config).await;
    let mut client = server.connect("reader", "admin", &["system"]).await;
    let sizes = [20_000, 300, 70_000, 40];
    let message = |seq: usize| format!("{seq:06}{}", "x".repeat(sizes[seq % sizes.len()]));
    let total = 1_000;
    for batch in (0..total).collect::<Vec<_>>().chunks(25) {
        let events: Vec<Value> = batch
            .iter()
            .map(|&seq| json!({"type": "system:maintenance", "data": {"message": message(seq)}}))
            .collect();
        let (status, body) = server
            .post(Some(support::API_KEY), Value::from(events).to_string())
            .await;
        assert_eq!(status, 202, "{body}");
    }
    for seq in 0..total {
        let event = client.next_json().await;
        assert_eq!(event["data"]["message"], message(seq), "event {seq}");
    }
}

/// Frames no client library would send are refused with the RFC's close codes, each on its own
/// connection, and the server serves everyone else on.
#[tokio::test]
async fn malformed_frames_close_with_the_protocol_codes() {
    let server = TestServer::start().await;
    // Masked frames carry a four-byte key; a zero key leaves the payload as written.
    let masked = |first: u8, payload: &[u8]| {
        let mut frame = vec![first, 0x80 | payload.len() as u8, 0, 0, 0, 0];
        frame.extend_from_slice(payload);
        frame
    };
    let mut long_ping = vec![0x89, 0x80 | 126, 0, 200, 0, 0, 0, 0];
    long_ping.extend_from_slice(&[b'p'; 200]);
    let cases = [
        ("an unmasked frame", vec![0x81, 0x02, b'h', b'i'], 1002),
        ("a reserved bit", masked(0xC1, b"hi"), 1002),
        ("an unknown opcode", masked(0x83, b""), 1002),
        ("a control frame over 125 bytes", long_ping, 1002),
        ("text that is not UTF-8", masked(0x81, &[0xff, 0xfe]), 1007),
    ];
    for (case, bytes, code) in cases {
        let token = server.token(&format!("raw {case}"), "admin");
        let mut raw = support::RawClient::connect(server.addr, &token).await;
        raw.send_raw(&bytes).await;
        assert_eq!(raw.close_code().await, code, "{case}");
    }
    let mut fine = server.connect("fine", "admin", &["system"]).await;
    marker(&server, "still serving").await;
    assert!(fine.events_until("still serving").await.is_empty());
}

#[tokio::test]
async fn a_retried_publish_with_the_same_idempotency_key_publishes_once() {
    let server = TestServer::start().await;
    let mut client = server.connect("admin-1", "admin", &["system"]).await;
    let body = json!({"type": "system:maintenance", "data": {"message": "once"}}).to_string();
    let key = [("Idempotency-Key", "deploy-2026-12-02")];
    let (status, first) = server
        .post_with(Some(support::API_KEY), body.clone(), &key)
        .await;
    assert_eq!(status, 202, "{first}");
    let (status, retried) = server
        .post_with(Some(support::API_KEY), body.clone(), &key)
        .await;
    assert_eq!(status, 202, "{retried}");
    assert_eq!(first, retried);
    // Without the key, the same body is another event.
    let (_, other) = server.post(Some(support::API_KEY), body).await;
    assert_ne!(other["id"], first["id"]);
    support::marker(&server, "end").await;
    let got = client.events_until("end").await;
    let ids: Vec<&Value> = got.iter().map(|e| &e["id"]).collect();
    assert_eq!(ids, [&first["id"], &other["id"]]);
    // A key a header cannot be trusted with is refused before anything is published.
    let (status, reply) = server
        .post_with(
            Some(support::API_KEY),
            "{}".into(),
            &[("Idempotency-Key", &"k".repeat(129))],
        )
        .await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["error"], "invalid_idempotency_key");
}
