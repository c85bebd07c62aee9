//! Every answer of the publish API is a promise, with either broker: idempotency keys are
//! scoped to the publisher's API key and bound to a fingerprint of the request (the same key
//! with another request is 409 and publishes nothing), and a publish whose answer Redis lost is
//! 504 `outcome_unknown` with the key under which its retry is safe, never a 503 that says
//! nothing was stored.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::redis::Redis;
use support::{API_KEY, OTHER_API_KEY, TestServer, config};

fn maintenance(message: &str) -> String {
    json!({"type": "system:maintenance", "data": {"message": message}}).to_string()
}

async fn post(
    server: &TestServer,
    api_key: &str,
    body: &str,
    key: Option<&str>,
) -> (u16, Option<String>, Value) {
    let headers: Vec<(&str, &str)> = key.map(|k| ("Idempotency-Key", k)).into_iter().collect();
    server
        .post_keyed(Some(api_key), body.to_owned(), &headers)
        .await
}

/// The messages of the `system:maintenance` events a client received before the marker.
async fn messages_until(client: &mut support::Client, marker: &str) -> Vec<String> {
    client
        .events_until(marker)
        .await
        .iter()
        .map(|e| e["data"]["message"].as_str().unwrap().to_owned())
        .collect()
}

/// The review's items 3 and 4, through `server` (either broker).
async fn keys_are_scoped_and_bound_to_their_request(server: &TestServer) {
    let mut client = server.connect("admin-1", "admin", &["system"]).await;
    let key = Some("ORD-42");
    let (status, echoed, first) = post(server, API_KEY, &maintenance("A's"), key).await;
    assert_eq!((status, echoed.as_deref()), (202, key), "{first}");
    // The same request again, however its JSON is laid out: the first answer, nothing new.
    let relaid = r#"{ "data": {"message": "A's"}, "type": "system:maintenance" }"#;
    let (status, _, retried) = post(server, API_KEY, relaid, key).await;
    assert_eq!((status, &retried), (202, &first));
    // Another publisher's key of the same name is its own: B's event is published.
    let (status, _, other) = post(server, OTHER_API_KEY, &maintenance("B's"), key).await;
    assert_eq!(status, 202, "{other}");
    assert_ne!(other["id"], first["id"]);
    // The same key with another request: refused, and nothing published.
    for body in [
        maintenance("A's second"),
        json!({"type": "system:alert", "data": {"title": "t", "message": "A's", "severity": "warning"}})
            .to_string(),
        format!("[{},{}]", maintenance("A's"), maintenance("A's")),
        json!({"type": "system:maintenance", "data": {"message": "A's"}, "timestamp": 1})
            .to_string(),
    ] {
        let (status, _, reply) = post(server, API_KEY, &body, key).await;
        assert_eq!(status, 409, "{body}: {reply}");
        assert_eq!(reply["error"], "idempotency_key_reused", "{reply}");
    }
    support::marker(server, "end").await;
    assert_eq!(messages_until(&mut client, "end").await, ["A's", "B's"]);
}

#[tokio::test]
async fn embedded_keys_are_scoped_to_the_api_key_and_bound_to_the_request() {
    let server = TestServer::start().await;
    keys_are_scoped_and_bound_to_their_request(&server).await;
}

#[tokio::test]
async fn redis_keys_are_scoped_to_the_api_key_and_bound_to_the_request() {
    let redis = Redis::start();
    let node = TestServer::node(config(), &redis.url()).await;
    keys_are_scoped_and_bound_to_their_request(&node).await;
}

/// The embedded broker never loses an answer, so it assigns no key.
#[tokio::test]
async fn the_embedded_broker_assigns_no_key() {
    let server = TestServer::start().await;
    let (status, key, _) = post(&server, API_KEY, &maintenance("m"), None).await;
    assert_eq!((status, key), (202, None));
}

/// The review's item 5: Redis frozen while a publish is on its way. The node cannot tell
/// whether the script ran, so it says so (504), with the key under which the retry is safe; the
/// event is stored once Redis runs again, and the retry answers its id without publishing twice.
#[tokio::test]
async fn an_answer_redis_never_gave_is_504_and_its_retry_publishes_once() {
    let redis = Redis::start();
    let node = TestServer::node(config(), &redis.url()).await;
    let mut client = node.connect("admin-1", "admin", &["system"]).await;
    // A key the server assigns on every publish (Redis can lose answers).
    let (status, assigned, _) = post(&node, API_KEY, &maintenance("first"), None).await;
    assert_eq!(status, 202);
    assert!(assigned.unwrap().starts_with("omnicast-"));

    for (message, given) in [("keyless", None), ("keyed", Some("deploy-7"))] {
        redis.pause();
        let (status, key, reply) = post(&node, API_KEY, &maintenance(message), given).await;
        redis.resume();
        assert_eq!(status, 504, "{reply}");
        assert_eq!(reply["error"], "outcome_unknown", "{reply}");
        let key = key.expect("a 504 names the key to retry under");
        if let Some(given) = given {
            assert_eq!(key, given);
        }
        assert!(reply["message"].as_str().unwrap().contains(&key), "{reply}");
        node.wait_ready().await;
        // Redis ran the script when it woke: the retry answers its id and publishes nothing.
        let (status, _, retried) = post(&node, API_KEY, &maintenance(message), Some(&key)).await;
        assert_eq!(status, 202, "{retried}");
        let delivered = loop {
            let event = client.next_json().await;
            if event["type"] == "system:maintenance" && event["data"]["message"] == message {
                break event;
            }
        };
        assert_eq!(delivered["id"], retried["id"]);
    }
    support::marker(&node, "end").await;
    assert!(
        messages_until(&mut client, "end").await.is_empty(),
        "each event was delivered once"
    );
}

/// A 503 is only said when nothing was stored: Redis gone before the call was sent.
#[tokio::test]
async fn redis_unreachable_is_503_and_nothing_is_stored() {
    let mut redis = Redis::start();
    let node = TestServer::node(config(), &redis.url()).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The first call may still find the old connection and learn it broke only then.
    let mut answers = Vec::new();
    for _ in 0..3 {
        let (status, _, reply) = post(&node, API_KEY, &maintenance("lost"), None).await;
        answers.push((
            status,
            reply["error"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    let (status, error) = answers.last().unwrap();
    assert_eq!(
        (*status, error.as_str()),
        (503, "broker_unavailable"),
        "{answers:?}"
    );
}
