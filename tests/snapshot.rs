//! Load, then follow: a backend reads `GET /api/positions` before its database, and a client
//! (the Rust one) resumes from those positions while a publisher runs at full speed across the
//! snapshot. It gets every event after the positions once, in order; with Redis, positions read
//! on one node hold on another.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use omnicast::client::{Client, ClientConfig, Message};
use omnicast::runtime::protocol::ControlMessage;
use omnicast::{AnyEvent, Namespace};
use serde_json::{Value, json};
use support::{API_KEY, TestServer, payment};

/// Publishes payments 0, 1, 2 ... one request each, as fast as they are answered, until told to
/// stop; returns each one's id and number, in order.
fn publish_until(
    url: String,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<Vec<(String, u64)>> {
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut published = Vec::new();
        for n in 0.. {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let body = json!({"type": "payment:received", "data": payment(n, "c-1")});
            let mut response = agent
                .post(&url)
                .header("Authorization", &format!("Bearer {API_KEY}"))
                .header("Content-Type", "application/json")
                .send(body.to_string())
                .expect("the server answers");
            assert_eq!(response.status().as_u16(), 202);
            let answer: Value =
                serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
            published.push((answer["id"].as_str().unwrap().to_owned(), n as u64));
            count.store(published.len(), Ordering::Relaxed);
        }
        published
    })
}

async fn load_then_follow(reader: &TestServer, follower: &TestServer) {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicUsize::new(0));
    let url = format!("http://{}/api/events", reader.addr);
    let publishing = publish_until(url, stop.clone(), count.clone());
    // Some events before the snapshot, some between it and the subscribe, some after.
    let published_more = |than: usize| {
        let count = count.clone();
        support::wait_until(move || count.load(Ordering::Relaxed) >= than + 3)
    };
    published_more(0).await;
    // The backend: the positions first, then its database.
    let (status, body) = reader
        .get("/api/positions?namespaces=payments", Some(API_KEY))
        .await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    let position = answer["positions"]["payments"].as_str().unwrap().to_owned();
    published_more(count.load(Ordering::Relaxed)).await;

    let config = ClientConfig::new(follower.ws_url(""))
        .namespaces([Namespace::Payments])
        .resume_from([position.clone()]);
    let mut client = Client::connect(config, follower.token("snap", "admin"));
    let mut recovered = None;
    while recovered.is_none() {
        match tokio::time::timeout(support::WAIT, client.next()).await {
            Ok(Some(Message::Control(ControlMessage::Ready { recovered: r, .. }))) => {
                recovered = Some(r);
            }
            Ok(Some(_)) => {}
            other => panic!("no ready: {other:?}"),
        }
    }
    assert!(
        recovered.unwrap()["payments"],
        "the snapshot's position is recoverable"
    );
    published_more(count.load(Ordering::Relaxed)).await;
    stop.store(true, Ordering::Relaxed);
    let published = publishing.await.unwrap();

    let at = published
        .iter()
        .position(|(id, _)| *id == position)
        .expect("the position is one of the events published");
    let expected: Vec<u64> = published[at + 1..].iter().map(|(_, n)| *n).collect();
    assert!(!expected.is_empty(), "events after the snapshot");
    let mut seen = Vec::new();
    while seen.len() < expected.len() {
        match tokio::time::timeout(support::WAIT, client.next()).await {
            Ok(Some(Message::Event(received))) => match received.event {
                AnyEvent::PaymentReceived(p) => seen.push(p.amount as u64),
                other => panic!("unexpected {other:?}"),
            },
            Ok(Some(_)) => {}
            other => panic!("ended early: {other:?} after {seen:?}"),
        }
    }
    assert_eq!(
        seen, expected,
        "each event after the snapshot once, in order"
    );
    // Nothing more (no duplicate) arrives.
    let more = tokio::time::timeout(Duration::from_millis(200), async {
        loop {
            if let Some(Message::Event(e)) = client.next().await {
                return e;
            }
        }
    })
    .await;
    assert!(more.is_err(), "nothing after: {more:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_follows_from_a_snapshot_with_no_gap_and_no_duplicate() {
    let server = TestServer::start().await;
    load_then_follow(&server, &server).await;
    // What the endpoint refuses.
    assert_eq!(server.get("/api/positions", None).await.0, 401);
    let (status, body) = server
        .get("/api/positions?namespaces=nowhere", Some(API_KEY))
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = server.get("/api/positions", Some(API_KEY)).await;
    assert_eq!(status, 200);
    let all: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        all["positions"].as_object().unwrap().len(),
        omnicast::CATALOG.namespaces.len()
    );
}

/// With Redis the positions are Redis' (where every node numbers events): read on one node,
/// followed on another.
#[tokio::test(flavor = "multi_thread")]
async fn positions_read_on_one_node_are_followed_on_another() {
    let redis = support::redis::Redis::start();
    let a = TestServer::node(support::config(), &redis.url()).await;
    let b = TestServer::node(support::config(), &redis.url()).await;
    load_then_follow(&a, &b).await;
}
