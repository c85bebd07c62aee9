//! Live re-authorization on a real server: a client sends a fresh token on the open connection
//! (`refresh`) and from the answer on is served with its rights; a token of another user, a bad,
//! expired or revoked one changes nothing; `POST /api/reauthorizations` asks a user's
//! connections for a token issued since, and closes those that do not answer by the deadline
//! (4001), on every node.

mod support;

use std::time::Duration;

use omnicast::runtime::protocol::close;
use serde_json::{Value, json};
use support::{API_KEY, Client, Ended, TestServer, marker, sign};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token of `user` with `role`, issued at `iat`, valid for ten minutes.
fn token(user: &str, role: &str, iat: u64) -> String {
    sign(json!({"sub": user, "role": role, "iat": iat, "exp": now() + 600}))
}

async fn open(server: &TestServer, token: &str, namespaces: &str) -> (Client, Value) {
    let query = format!("token={token}&namespaces={namespaces}");
    let mut client = Client::open(&server.ws_url(&query), &[])
        .await
        .expect("accepted");
    let ready = client.next_json().await;
    assert_eq!(ready["type"], "ready", "{ready}");
    (client, ready)
}

async fn refresh(client: &mut Client, token: &str) -> Value {
    client
        .send_json(json!({"type": "refresh", "token": token}))
        .await;
    client.next_json().await
}

fn order_created(n: u64) -> Value {
    json!({
        "orderId": format!("o{n}"), "customerId": "c1", "customerName": "C",
        "total": 1.0, "status": "pending", "channel": "online"
    })
}

fn status_changed(customer: &str) -> Value {
    json!({
        "orderId": "o1", "customerId": customer, "customerName": "C",
        "oldStatus": "pending", "newStatus": "processing", "timestamp": 1_700_000_000_000u64
    })
}

/// The types of the events `client` receives before the marker `text`.
async fn types_until(server: &TestServer, client: &mut Client, text: &str) -> Vec<String> {
    marker(server, text).await;
    let events = client.events_until(text).await;
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_serves_the_new_rights_from_its_answer_on() {
    let server = TestServer::start().await;
    let (mut c, ready) = open(
        &server,
        &token("c1", "staff", now()),
        "orders,inventory,system",
    )
    .await;
    assert!(ready["expiresAt"].as_u64().unwrap() > now() * 1000);
    server
        .publish("order:created", order_created(1), Value::Null)
        .await;
    assert_eq!(types_until(&server, &mut c, "m1").await, ["order:created"]);

    // Narrower: a customer sees its own status changes and nothing of inventory.
    let answer = refresh(&mut c, &token("c1", "customer", now())).await;
    assert_eq!(answer["type"], "refreshed", "{answer}");
    assert_eq!(answer["role"], "customer");
    assert_eq!(answer["dropped"], json!(["inventory"]), "{answer}");
    assert_eq!(answer["namespaces"], json!(["orders", "system"]));
    server
        .publish("order:created", order_created(2), Value::Null)
        .await;
    server
        .publish("order:status_changed", status_changed("c2"), Value::Null)
        .await;
    server
        .publish("order:status_changed", status_changed("c1"), Value::Null)
        .await;
    assert_eq!(
        types_until(&server, &mut c, "m2").await,
        ["order:status_changed"],
        "only its own order, nothing staff-only"
    );

    // Wider again: staff events flow, the dropped namespace stays dropped until subscribed.
    let answer = refresh(&mut c, &token("c1", "admin", now())).await;
    assert_eq!(
        (answer["role"].as_str(), answer.get("dropped")),
        (Some("admin"), None)
    );
    server
        .publish("order:created", order_created(3), Value::Null)
        .await;
    server
        .publish("order:status_changed", status_changed("c2"), Value::Null)
        .await;
    assert_eq!(
        types_until(&server, &mut c, "m3").await,
        ["order:created", "order:status_changed"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_refresh_changes_nothing() {
    let server = TestServer::start().await;
    let (mut c, _) = open(&server, &token("c1", "customer", now()), "orders,system").await;
    let revoked = sign(json!({"sub": "c1", "role": "admin", "jti": "gone", "exp": now() + 600}));
    let (status, _) = server
        .post_json(
            "/api/revocations",
            Some(API_KEY),
            json!({"tokenId": "gone"}),
        )
        .await;
    assert_eq!(status, 200);
    let bad_signature = {
        let good = token("c1", "admin", now());
        let (rest, _) = good.rsplit_once('.').unwrap();
        format!("{rest}.AAAA")
    };
    for (token, why) in [
        (token("c2", "admin", now()), "another user"),
        (bad_signature, "bad signature"),
        (
            sign(json!({"sub": "c1", "role": "admin", "exp": now() - 60})),
            "token expired",
        ),
        (revoked, "revoked"),
        (token("c1", "root", now()), "unknown role"),
    ] {
        let answer = refresh(&mut c, &token).await;
        assert_eq!(
            (answer["type"].as_str(), answer["code"].as_str()),
            (Some("error"), Some("refresh_refused")),
            "{answer}"
        );
        assert!(
            answer["message"].as_str().unwrap().contains(why),
            "{why}: {answer}"
        );
        assert!(
            !answer.to_string().contains(&token),
            "the token is not echoed"
        );
    }
    // Still a customer: staff-only events stay away, its own arrive.
    server
        .publish("order:created", order_created(1), Value::Null)
        .await;
    server
        .publish("order:status_changed", status_changed("c1"), Value::Null)
        .await;
    assert_eq!(
        types_until(&server, &mut c, "m").await,
        ["order:status_changed"]
    );
    let (_, metrics) = server.get("/metrics", Some(API_KEY)).await;
    assert!(
        metrics.contains(r#"omnicast_refreshes_total{outcome="other_user"} 1"#),
        "{metrics}"
    );
}

/// A refresh moves the end of the connection's rights: it outlives its first token's `exp`.
#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_outlives_the_first_tokens_expiry() {
    let mut config = support::config();
    config.jwt.leeway_secs = 0;
    let server = TestServer::with(config).await;
    let short = sign(json!({"sub": "c1", "role": "staff", "exp": now() + 2}));
    let (mut c, ready) = open(&server, &short, "system").await;
    let first_end = ready["expiresAt"].as_u64().unwrap();
    let answer = refresh(&mut c, &token("c1", "staff", now())).await;
    assert!(answer["expiresAt"].as_u64().unwrap() > first_end + 60_000);
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    assert_eq!(
        types_until(&server, &mut c, "still").await,
        Vec::<String>::new()
    );

    // And one that ends sooner ends it then.
    let soon = sign(json!({"sub": "c1", "role": "staff", "exp": now() + 2}));
    assert_eq!(refresh(&mut c, &soon).await["type"], "refreshed");
    assert_eq!(c.ended().await, Ended::Closed(close::TOKEN_EXPIRED.code));
}

async fn reauthorize(server: &TestServer, body: Value) -> (u16, Value) {
    server
        .post_json("/api/reauthorizations", Some(API_KEY), body)
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reauthorization_asks_for_a_fresh_token_and_closes_at_the_deadline() {
    let server = TestServer::start().await;
    let issued = now() - 10;
    let (mut answers, _) = open(&server, &token("u1", "staff", issued), "system").await;
    let (mut silent, _) = open(&server, &token("u1", "staff", issued), "system").await;
    let (mut other, _) = open(&server, &token("u2", "staff", issued), "system").await;

    let (status, body) = reauthorize(&server, json!({"userId": "u1", "deadlineSecs": 2})).await;
    assert_eq!((status, body["asked"].as_u64()), (200, Some(2)), "{body}");
    let deadline = body["deadline"].as_u64().unwrap();
    for c in [&mut answers, &mut silent] {
        let asked = c.next_json().await;
        assert_eq!(
            (asked["type"].as_str(), asked["deadline"].as_u64()),
            (Some("reauthorize"), Some(deadline))
        );
    }
    // The old token does not answer it; one issued since does.
    let stale = refresh(&mut answers, &token("u1", "staff", issued)).await;
    assert_eq!(stale["code"], "refresh_refused", "{stale}");
    assert!(stale["message"].as_str().unwrap().contains("issued since"));
    let fresh = refresh(&mut answers, &token("u1", "customer", now())).await;
    assert_eq!(fresh["type"], "refreshed", "{fresh}");

    // A connection opened before the deadline with a token older than the request is asked too.
    let (mut late, _) = open(&server, &token("u1", "staff", issued), "system").await;
    assert_eq!(late.next_json().await["type"], "reauthorize");

    assert_eq!(
        silent.ended().await,
        Ended::Closed(close::TOKEN_EXPIRED.code)
    );
    assert_eq!(late.ended().await, Ended::Closed(close::TOKEN_EXPIRED.code));
    // The one that answered, and the other user, go on.
    marker(&server, "after").await;
    assert_eq!(answers.events_until("after").await, Vec::<Value>::new());
    assert_eq!(other.events_until("after").await, Vec::<Value>::new());
    assert!(now() * 1000 + 1000 >= deadline);

    for (body, status) in [
        (json!({}), 400),
        (json!({"userId": ""}), 400),
        (json!({"user": "u1"}), 400),
    ] {
        assert_eq!(reauthorize(&server, body.clone()).await.0, status, "{body}");
    }
    let (status, _) = server
        .post_json("/api/reauthorizations", None, json!({"userId": "u1"}))
        .await;
    assert_eq!(status, 401);
}

/// With Redis, a request made through one node reaches the user's connections on another.
#[tokio::test(flavor = "multi_thread")]
async fn a_reauthorization_reaches_every_node() {
    let redis = support::redis::Redis::start();
    let a = TestServer::node(support::config(), &redis.url()).await;
    let b = TestServer::node(support::config(), &redis.url()).await;
    let (mut on_b, _) = open(&b, &token("u1", "staff", now() - 10), "system").await;
    let (status, body) = reauthorize(&a, json!({"userId": "u1", "deadlineSecs": 60})).await;
    assert_eq!((status, body["asked"].as_u64()), (200, Some(0)), "{body}");
    let asked = tokio::time::timeout(Duration::from_secs(1), on_b.next_json())
        .await
        .expect("node B asks within a second");
    assert_eq!(asked["type"], "reauthorize");
    assert_eq!(
        refresh(&mut on_b, &token("u1", "staff", now())).await["type"],
        "refreshed"
    );
}
