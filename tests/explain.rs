//! `POST /api/explain` on a real server: a described event for a described connection, for a
//! live session, and a published event by its id with the live connections that receive it now;
//! each rule that can keep an event from a connection, with the values it compared; and what
//! the endpoint refuses. (Its decisions are held to the permission oracle in
//! tests/permissions, over generated cases.)

mod support;

use serde_json::{Value, json};
use support::{API_KEY, TestServer, payment};

async fn explain(server: &TestServer, body: Value) -> (u16, Value) {
    server.post_json("/api/explain", Some(API_KEY), body).await
}

fn paid(options: Value) -> Value {
    let mut event = json!({"type": "payment:received", "data": payment(1, "c-1")});
    if !options.is_null() {
        event["options"] = options;
    }
    event
}

#[tokio::test(flavor = "multi_thread")]
async fn each_rule_is_named_with_what_it_compared() {
    let server = TestServer::start().await;
    let customer =
        |user: &str| json!({"userId": user, "role": "customer", "namespaces": ["payments"]});
    let cases = [
        (
            paid(Value::Null),
            customer("c-1"),
            None,
            json!({"role": "customer", "namespace": "payments"}),
        ),
        (
            paid(Value::Null),
            customer("c-2"),
            Some(("not_owner", 3)),
            json!({"role": "customer", "owner": "c-1", "userId": "c-2"}),
        ),
        (
            paid(Value::Null),
            json!({"userId": "s", "role": "staff", "namespaces": ["payments"]}),
            Some(("role", 2)),
            json!({"role": "staff", "eventRoles": ["admin", "manager", "customer"]}),
        ),
        (
            paid(Value::Null),
            json!({"userId": "c-1", "role": "customer", "namespaces": ["orders"]}),
            Some(("not_subscribed", 1)),
            json!({"namespace": "payments", "subscribed": ["orders"]}),
        ),
        (
            paid(json!({"roles": ["admin"]})),
            customer("c-1"),
            Some(("publisher_roles", 2)),
            json!({"role": "customer", "publisherRoles": ["admin"]}),
        ),
        (
            paid(json!({"userIds": ["c-9"]})),
            customer("c-1"),
            Some(("not_named_user", 4)),
            json!({"userId": "c-1", "userIds": ["c-9"]}),
        ),
        (
            paid(json!({"excludeUserIds": ["c-1"]})),
            customer("c-1"),
            Some(("excluded_user", 4)),
            json!({"userId": "c-1", "excludeUserIds": ["c-1"]}),
        ),
        (
            json!({"type": "system:notification", "data": {"title": "t", "message": "m", "severity": "info", "targetRoles": ["admin"]}}),
            json!({"userId": "m", "role": "manager"}),
            Some(("target_roles", 2)),
            json!({"role": "manager", "targetRoles": ["admin"]}),
        ),
    ];
    for (event, subject, rule, compared) in cases {
        let (status, answer) = explain(&server, json!({"event": event, "subject": subject})).await;
        assert_eq!(status, 200, "{answer}");
        let decision = &answer["decision"];
        assert_eq!(
            decision["delivered"],
            rule.is_none(),
            "{subject}: {decision}"
        );
        assert_eq!(decision["rule"].as_str(), rule.map(|r| r.0), "{decision}");
        assert_eq!(
            decision["ruleNumber"].as_u64(),
            rule.map(|r| r.1),
            "{decision}"
        );
        assert_eq!(decision["compared"], compared, "{decision}");
        assert!(decision["because"].as_str().is_some_and(|b| !b.is_empty()));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn live_sessions_and_published_events() {
    let server = TestServer::start().await;
    let _admin = server.connect("boss", "admin", &["payments"]).await;
    let owner = server.connect("c-1", "customer", &["payments"]).await;
    let other = server.connect("c-2", "customer", &["payments"]).await;
    let _staff = server.connect("s", "staff", &["payments"]).await;
    let id = server
        .publish(
            "payment:received",
            payment(1, "c-1"),
            json!({"excludeSessionIds": [owner.session_id]}),
        )
        .await;

    // The published event, by id: who receives it now, and for c-1, each session's decision.
    let (status, answer) = explain(&server, json!({"id": id, "userId": "c-1"})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["event"]["type"], "payment:received");
    assert_eq!(
        answer["recipients"],
        json!({"total": 1, "byRole": {"admin": 1}}),
        "{answer}"
    );
    let sessions = answer["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["sessionId"], owner.session_id);
    assert_eq!(
        sessions[0]["decision"]["rule"], "excluded_session",
        "{answer}"
    );

    // A live session by its id.
    let (status, answer) = explain(
        &server,
        json!({"id": id, "subject": {"sessionId": other.session_id}}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["decision"]["rule"], "not_owner", "{answer}");

    // What it refuses.
    let mut missing = support::position(&id);
    missing.offset = 999;
    let missing = support::positions().seal(&missing);
    let refusals = [
        (json!({"id": missing}), 404, "event_not_found"),
        (json!({"id": "nonsense"}), 400, "invalid_id"),
        (
            json!({"id": id, "subject": {"sessionId": "ses_nope"}}),
            404,
            "unknown_session",
        ),
        (
            json!({"event": paid(Value::Null), "id": id}),
            400,
            "invalid_request",
        ),
        (
            json!({"event": paid(Value::Null), "subject": {"userId": "u", "role": "root"}}),
            400,
            "unknown_role",
        ),
        (
            json!({"event": {"type": "payment:received", "data": {}}}),
            422,
            "invalid_data",
        ),
    ];
    for (body, status, code) in refusals {
        let (got, answer) = explain(&server, body.clone()).await;
        assert_eq!(
            (got, answer["error"].as_str()),
            (status, Some(code)),
            "{body}: {answer}"
        );
    }
    let (status, answer) = server
        .post_json("/api/explain", None, json!({"id": id}))
        .await;
    assert_eq!(status, 401, "{answer}");
    assert!(!answer.to_string().contains("payment"), "{answer}");
}
