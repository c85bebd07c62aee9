//! Revocations on a real server (`POST /api/revocations`, one node): a token (`jti`), a user's
//! tokens issued before a time, a login session (`sid`). Each closes the matching live
//! connections with 4003 and no other, refuses the matching tokens at the handshake (401
//! `token_revoked`) until it lapses, and accepts what it does not name; with Redis, on every
//! node, and on one started afterwards.

mod support;

use std::time::Duration;

use omnicast::runtime::protocol::close;
use serde_json::{Value, json};
use support::{API_KEY, Client, Ended, TestServer, sign};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token(user: &str, extra: Value) -> String {
    let mut claims = json!({"sub": user, "role": "customer", "exp": now() + 600});
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    sign(claims)
}

async fn open(server: &TestServer, token: &str) -> Client {
    let mut client = Client::open(&server.ws_url(&format!("token={token}")), &[])
        .await
        .expect("accepted");
    assert_eq!(client.next_json().await["type"], "ready");
    client
}

async fn revoke(server: &TestServer, body: Value) -> (u16, Value) {
    server
        .post_json("/api/revocations", Some(API_KEY), body)
        .await
}

async fn refused_with(server: &TestServer, token: &str) -> (u16, String) {
    let (status, body) = support::refused(&server.ws_url(&format!("token={token}")), &[]).await;
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revocation_closes_and_refuses_what_it_names_and_nothing_else() {
    let server = TestServer::start().await;
    let old = now() - 100;
    let t1 = token("u1", json!({"jti": "t1", "sid": "s1", "iat": old}));
    let t2 = token("u1", json!({"jti": "t2", "sid": "s2", "iat": old}));
    let t3 = token("u2", json!({"jti": "t3", "iat": old}));
    let (mut c1, mut c2, mut c3) = (
        open(&server, &t1).await,
        open(&server, &t2).await,
        open(&server, &t3).await,
    );

    // One token.
    let (status, answer) = revoke(&server, json!({"tokenId": "t1"})).await;
    assert_eq!(
        (status, answer["closed"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );
    assert_eq!(c1.ended().await, Ended::Closed(close::REVOKED.code));
    assert_eq!(
        refused_with(&server, &t1).await,
        (401, "token_revoked".to_owned())
    );
    open(&server, &t2).await; // the user's other token still works

    // A user's tokens issued before now: both of u2's old ones go, a fresh one is taken.
    let (status, answer) = revoke(&server, json!({"userId": "u2", "issuedBefore": now()})).await;
    assert_eq!(
        (status, answer["closed"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );
    assert_eq!(c3.ended().await, Ended::Closed(close::REVOKED.code));
    assert_eq!(refused_with(&server, &t3).await.0, 401);
    open(&server, &token("u2", json!({"iat": now() + 1}))).await;

    // A login session.
    let (status, _) = revoke(&server, json!({"loginSession": "s2"})).await;
    assert_eq!(status, 200);
    assert_eq!(c2.ended().await, Ended::Closed(close::REVOKED.code));
    assert_eq!(refused_with(&server, &t2).await.1, "token_revoked");
    open(&server, &token("u1", json!({"sid": "s3"}))).await;

    // What the endpoint refuses.
    for (body, status) in [(json!({}), 400), (json!({"user": "u1"}), 400)] {
        assert_eq!(revoke(&server, body.clone()).await.0, status, "{body}");
    }
    let (status, _) = server
        .post_json("/api/revocations", None, json!({"userId": "u1"}))
        .await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revocation_lapses_when_no_token_it_names_can_still_be_valid() {
    let mut config = support::config();
    config.max_token_lifetime = Duration::from_millis(300);
    let server = TestServer::with(config).await;
    let t = token("u1", json!({"jti": "short"}));
    revoke(&server, json!({"tokenId": "short"})).await;
    assert_eq!(refused_with(&server, &t).await.0, 401);
    tokio::time::sleep(Duration::from_millis(400)).await;
    open(&server, &t).await;
}

/// With Redis, a revocation made through one node closes the matching connections on every
/// node, is refused at every node's handshake, and is known to a node started afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn a_revocation_reaches_every_node_and_a_node_started_later() {
    let redis = support::redis::Redis::start();
    let a = TestServer::node(support::config(), &redis.url()).await;
    let b = TestServer::node(support::config(), &redis.url()).await;
    let t = token("u1", json!({"jti": "everywhere"}));
    let mut on_b = open(&b, &t).await;
    let other = token("u2", json!({}));
    let _unrelated = open(&b, &other).await;

    let (status, answer) = revoke(&a, json!({"tokenId": "everywhere"})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["closed"], 0, "nothing of it on node A");
    let ended = tokio::time::timeout(Duration::from_secs(1), on_b.ended())
        .await
        .expect("node B closes it within a second");
    assert_eq!(ended, Ended::Closed(close::REVOKED.code));
    assert_eq!(refused_with(&b, &t).await.1, "token_revoked");
    open(&b, &other).await; // another user's token still works there

    let c = TestServer::node(support::config(), &redis.url()).await;
    assert_eq!(refused_with(&c, &t).await.1, "token_revoked");
}

/// The Rust client, revoked: with a fixed token it stops with `Failed` naming 4003 (reconnecting
/// with the same token could only be refused); with a token source it fetches a new token.
#[tokio::test(flavor = "multi_thread")]
async fn the_rust_client_stops_or_renews_when_revoked() {
    use omnicast::client::{Client, ClientConfig, Message, Status, TokenSource};
    let server = TestServer::start().await;
    let next_status = async |client: &mut Client| loop {
        let message = tokio::time::timeout(support::WAIT, client.next())
            .await
            .expect("in time")
            .expect("running");
        if let Message::Status(status) = message {
            return status;
        }
    };
    let mut fixed = Client::connect(
        ClientConfig::new(server.ws_url("")),
        token("u1", json!({"jti": "fixed"})),
    );
    while next_status(&mut fixed).await != Status::Connected {}
    revoke(&server, json!({"tokenId": "fixed"})).await;
    loop {
        match next_status(&mut fixed).await {
            Status::Failed(why) => break assert!(why.starts_with("4003 revoked"), "{why}"),
            Status::Connected => panic!("reconnected with a revoked token"),
            _ => {}
        }
    }

    let issued = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = issued.clone();
    let source = TokenSource::renew(move || {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async move { Ok(token("u2", json!({"jti": format!("renewed-{n}")}))) }
    });
    let mut renewing = Client::connect(ClientConfig::new(server.ws_url("")), source);
    while next_status(&mut renewing).await != Status::Connected {}
    revoke(&server, json!({"tokenId": "renewed-0"})).await;
    while next_status(&mut renewing).await != Status::Connected {}
    assert_eq!(issued.load(std::sync::atomic::Ordering::Relaxed), 2);
}

/// Redis gone: the revocation cannot be confirmed, and the answer says so (503, to repeat).
#[tokio::test(flavor = "multi_thread")]
async fn a_revocation_redis_cannot_confirm_is_a_503_to_repeat() {
    let mut redis = support::redis::Redis::start();
    let node = TestServer::node(support::config(), &redis.url()).await;
    redis.kill();
    let (status, answer) = revoke(&node, json!({"userId": "u1"})).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (503, Some("broker_unavailable")),
        "{answer}"
    );
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("not confirmed"),
        "{answer}"
    );
}
