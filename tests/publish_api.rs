//! `POST /api/events` through a real HTTP client: every error explained, the API key checked
//! before the body is read, slow requests cut off, and answers that are promises with either
//! broker (idempotency keys scoped to the API key and bound to the request: 409 for another
//! request; 504 `outcome_unknown` with the key a retry is safe under when Redis' answer was lost;
//! 503 only when nothing was stored).

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::redis::Redis;
use support::{API_KEY, OTHER_API_KEY, TestServer, WAIT, config, exchange, marker};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

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

/// The API key is checked from the headers before the body is read: a caller without a key
/// cannot make the server wait for (or buffer) a megabyte.
#[tokio::test(flavor = "multi_thread")]
async fn the_api_key_is_checked_before_the_body_is_read() {
    let server = TestServer::start().await;
    let request = "POST /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong-key-0123456789\r\n\
                   Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{\"type\"";
    let (status, _, body) = exchange(server.addr, request).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized"))
    );
}

/// A client that sends its headers or its body too slowly is cut off after the request timeout.
#[tokio::test(flavor = "multi_thread")]
async fn slow_requests_are_cut_off() {
    use tokio::io::AsyncReadExt;
    let mut config = support::config();
    config.request_timeout = Duration::from_millis(500);
    let server = TestServer::with(config).await;

    // Headers that never end: the connection is closed.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"POST /api/events HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(WAIT, stream.read_to_end(&mut rest)).await;
    assert!(ended.is_ok(), "the server kept a half-sent request open");

    // A body that never arrives: 408 with the API's error.
    let request = format!(
        "POST /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"type\""
    );
    let (status, _, body) = exchange(server.addr, &request).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (408, Some("request_timeout")),
        "{body}"
    );
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

/// With `publish_rate`, one API key's requests are limited (429 `publish_rate_exceeded` with
/// `Retry-After`), each key on its own, a batch counting once; refusals are counted.
#[tokio::test(flavor = "multi_thread")]
async fn an_api_key_publishes_at_most_at_its_rate() {
    let mut config = config();
    config.publish_rate = Some(omnicast::runtime::ConnectRate {
        burst: 2,
        per_second: 0.5,
    });
    let server = TestServer::with(config).await;
    let event = json!({"type": "system:maintenance", "data": {"message": "m"}});
    let batch = json!([event, event, event]);
    assert_eq!(server.post(Some(API_KEY), batch.to_string()).await.0, 202);
    assert_eq!(server.post(Some(API_KEY), event.to_string()).await.0, 202);
    let body = event.to_string();
    let request = format!(
        "POST /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (status, head, answer) = exchange(server.addr, &request).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (429, Some("publish_rate_exceeded")),
        "{answer}"
    );
    let retry: u64 = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("retry-after: ")
                .map(str::to_owned)
        })
        .expect("Retry-After")
        .trim()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{head}");
    assert!(
        !answer.to_string().contains(API_KEY),
        "the key is not echoed"
    );
    // Another key has its own budget.
    assert_eq!(
        server.post(Some(OTHER_API_KEY), event.to_string()).await.0,
        202
    );
    let (_, metrics) = server.get("/metrics", Some(API_KEY)).await;
    assert!(
        metrics.contains(r#"outcome="publish_rate_exceeded"} 1"#),
        "{metrics}"
    );
}
