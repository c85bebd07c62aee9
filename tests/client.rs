//! The Rust client (`omnicast::client`) against a real server on a loopback port: typed events
//! and the delivery rules as a client sees them, reconnect and resume after a cut (no gap, no
//! duplicate), `recovered: false` past what the server replays, token renewal after 4001, a
//! refused token ending in `Failed`, and a normal close.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use omnicast::client::{Client, ClientConfig, Message, Status, TokenSource};
use omnicast::runtime::mint_hs256;
use omnicast::runtime::protocol::ControlMessage;
use omnicast::{AnyEvent, Namespace};
use serde_json::Value;
use support::proxy::Proxy;
use support::{SECRET, TestServer, WAIT, payment};

/// A client generated from another catalog: another version, and it knows no event type.
#[derive(Debug)]
struct Elsewhere;

impl omnicast::runtime::CatalogEvents for Elsewhere {
    const CATALOG_VERSION: &'static str = "0123456789abcdef";

    fn decode(_: &str, _: &str) -> Option<Result<Self, omnicast::runtime::PayloadError>> {
        None
    }
}

async fn pay(server: &TestServer, n: usize, customer: &str) -> String {
    server
        .publish("payment:received", payment(n, customer), Value::Null)
        .await
}

fn fast(url: String) -> ClientConfig {
    let mut config = ClientConfig::new(url).namespaces([Namespace::Payments]);
    config.min_delay = Duration::from_millis(20);
    config.max_delay = Duration::from_millis(100);
    config
}

/// The next message, within `WAIT`.
async fn next(client: &mut Client) -> Message {
    tokio::time::timeout(WAIT, client.next())
        .await
        .expect("a message in time")
        .expect("the client is running")
}

/// Messages until `Status::Connected`, returning the `ready` before it.
async fn connected(client: &mut Client) -> ControlMessage {
    let mut ready = None;
    loop {
        match next(client).await {
            Message::Control(control @ ControlMessage::Ready { .. }) => ready = Some(control),
            Message::Status(Status::Connected) => return ready.expect("ready before connected"),
            Message::Status(Status::Failed(why)) => panic!("failed: {why}"),
            _ => {}
        }
    }
}

/// Messages until the client reports it is reconnecting.
async fn reconnecting(client: &mut Client) {
    loop {
        if let Message::Status(Status::Reconnecting { .. }) = next(client).await {
            return;
        }
    }
}

/// The next `n` events' payment numbers and ids, skipping other messages.
async fn payments(client: &mut Client, n: usize) -> Vec<(f64, String)> {
    let mut out = Vec::new();
    while out.len() < n {
        if let Message::Event(received) = next(client).await {
            match received.event {
                AnyEvent::PaymentReceived(p) => out.push((p.amount, received.id)),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn typed_events_only_the_customers_own() {
    let server = TestServer::start().await;
    let mut alice = Client::connect(fast(server.ws_url("")), server.token("CUST-A", "customer"));
    match connected(&mut alice).await {
        ControlMessage::Ready {
            catalog_version, ..
        } => assert_eq!(catalog_version, omnicast::CATALOG_VERSION),
        _ => unreachable!(),
    }
    pay(&server, 1, "CUST-B").await;
    pay(&server, 2, "CUST-A").await;
    let got = payments(&mut alice, 1).await;
    assert_eq!(got[0].0, 2.0, "the other customer's payment never arrives");
}

#[tokio::test(flavor = "multi_thread")]
async fn reconnects_and_resumes_with_no_gap_and_no_duplicate() {
    let server = TestServer::start().await;
    let proxy = Proxy::start(server.addr).await;
    let mut client = Client::connect(fast(proxy.ws_url()), server.token("admin-1", "admin"));
    connected(&mut client).await;
    let mut ids = Vec::new();
    for n in 1..=3 {
        ids.push(pay(&server, n, "CUST-A").await);
    }
    let before = payments(&mut client, 3).await;
    proxy.down();
    for n in 4..=6 {
        ids.push(pay(&server, n, "CUST-A").await);
    }
    // The client sees the cut and retries against the closed port.
    reconnecting(&mut client).await;
    proxy.up().await;
    match connected(&mut client).await {
        ControlMessage::Ready { recovered, .. } => {
            assert_eq!(recovered.get("payments"), Some(&true), "{recovered:?}")
        }
        _ => unreachable!(),
    }
    ids.push(pay(&server, 7, "CUST-A").await);
    let after = payments(&mut client, 4).await;
    let seen: Vec<String> = before.into_iter().chain(after).map(|(_, id)| id).collect();
    assert_eq!(seen, ids);
}

#[tokio::test(flavor = "multi_thread")]
async fn recovered_false_past_what_the_server_replays() {
    let mut config = support::config();
    config.max_recovery = 2;
    let server = TestServer::with(config).await;
    let proxy = Proxy::start(server.addr).await;
    let mut client = Client::connect(fast(proxy.ws_url()), server.token("admin-1", "admin"));
    connected(&mut client).await;
    pay(&server, 1, "CUST-A").await;
    payments(&mut client, 1).await;
    proxy.down();
    for n in 2..=5 {
        pay(&server, n, "CUST-A").await;
    }
    proxy.up().await;
    match connected(&mut client).await {
        ControlMessage::Ready { recovered, .. } => {
            assert_eq!(recovered.get("payments"), Some(&false), "{recovered:?}")
        }
        _ => unreachable!(),
    }
    let live = pay(&server, 6, "CUST-A").await;
    assert_eq!(
        payments(&mut client, 1).await[0].1,
        live,
        "nothing replayed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_source_refreshes_before_expiry_with_no_gap_and_no_duplicate() {
    let mut config = support::config();
    config.jwt.leeway_secs = 0;
    let server = TestServer::with(config).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let token = TokenSource::renew(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let ttl = if n == 0 { 2 } else { 3600 };
        async move { Ok(mint_hs256(SECRET.as_bytes(), "renew", "admin", ttl)) }
    });
    let mut client = Client::connect(fast(server.ws_url("")), token);
    let ready = connected(&mut client).await;
    let ControlMessage::Ready { expires_at, .. } = ready else {
        unreachable!()
    };
    let first_end = expires_at.expect("the token expires");
    // Events published all across the first token's end: each arrives once, in order, and the
    // connection is refreshed in place (no reconnect).
    let mut amounts = Vec::new();
    let mut refreshed = false;
    for n in 0..30 {
        pay(&server, n, "renew").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        while let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_millis(1), client.next()).await
        {
            match message {
                Message::Event(received) => match received.event {
                    AnyEvent::PaymentReceived(p) => amounts.push(p.amount),
                    other => panic!("unexpected {other:?}"),
                },
                Message::Control(ControlMessage::Refreshed { expires_at, .. }) => {
                    refreshed = true;
                    assert!(expires_at.unwrap() > first_end + 60_000);
                }
                Message::Status(status) => panic!("no reconnect expected: {status:?}"),
                _ => {}
            }
        }
    }
    assert!(refreshed, "refreshed before the first token's end");
    let rest = payments(&mut client, 30 - amounts.len()).await;
    amounts.extend(rest.into_iter().map(|(amount, _)| amount));
    let expected: Vec<f64> = (0..30).map(|n| n as f64).collect();
    assert_eq!(amounts, expected, "every event once, in order");
    assert!(
        now_ms() > first_end,
        "the test ran past the first token's end"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_token_fails_instead_of_looping() {
    let server = TestServer::start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let token = TokenSource::renew(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok("not-a-jwt".to_owned()) }
    });
    let mut client = Client::connect(fast(server.ws_url("")), token);
    assert_eq!(next(&mut client).await, Message::Status(Status::Connecting));
    match next(&mut client).await {
        Message::Status(Status::Failed(why)) => assert!(why.contains("invalid_token"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(next_or_end(&mut client).await, None, "the client stopped");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_token_source_is_reported_and_retried() {
    let server = TestServer::start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let token = TokenSource::renew(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            match n {
                0 => Err("the identity service is down".to_owned()),
                _ => Ok(mint_hs256(SECRET.as_bytes(), "a", "admin", 3600)),
            }
        }
    });
    let mut client = Client::connect(fast(server.ws_url("")), token);
    assert_eq!(next(&mut client).await, Message::Status(Status::Connecting));
    assert_eq!(
        next(&mut client).await,
        Message::TokenUnavailable("the identity service is down".into())
    );
    connected(&mut client).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

async fn next_or_end(client: &mut Client) -> Option<Message> {
    tokio::time::timeout(WAIT, client.next())
        .await
        .expect("in time")
}

#[tokio::test(flavor = "multi_thread")]
async fn close_is_final_and_subscribe_reaches_the_server() {
    let server = TestServer::start().await;
    let mut client = Client::connect(fast(server.ws_url("")), server.token("a", "admin"));
    connected(&mut client).await;
    client.subscribe([Namespace::Orders]);
    loop {
        if let Message::Control(ControlMessage::Subscribed { namespaces, .. }) =
            next(&mut client).await
        {
            assert_eq!(namespaces, ["orders", "payments"]);
            break;
        }
    }
    client.close();
    assert_eq!(
        next(&mut client).await,
        Message::Status(Status::Disconnected)
    );
    assert_eq!(next_or_end(&mut client).await, None);
}

/// The review's item 6: a payment published with `options.namespace: system` is recorded in the
/// `system` stream; its envelope says so as its id does, and the client positions it there, so
/// nothing is taken for a duplicate and a resume names each namespace once.
#[tokio::test(flavor = "multi_thread")]
async fn events_published_into_another_namespace_resume_by_their_id() {
    use serde_json::json;
    let server = TestServer::start().await;
    let proxy = Proxy::start(server.addr).await;
    let mut config = fast(proxy.ws_url());
    config = config.namespaces([Namespace::Payments, Namespace::System]);
    let mut client = Client::connect(config, server.token("admin-1", "admin"));
    connected(&mut client).await;
    let in_system = json!({"namespace": "system"});
    let publish = |n: usize, options: Value| {
        let server = &server;
        async move {
            let id = server
                .publish("payment:received", payment(n, "CUST-A"), options)
                .await;
            (n as f64, id)
        }
    };
    let mut sent = vec![
        publish(1, Value::Null).await,
        publish(2, in_system.clone()).await,
        publish(3, Value::Null).await,
    ];
    assert!(sent[1].1.starts_with("system."), "{sent:?}");
    let mut seen = Vec::new();
    while seen.len() < 3 {
        if let Message::Event(received) = next(&mut client).await {
            let stream = received.id.split('.').next().unwrap().to_owned();
            assert_eq!(
                received.namespace, stream,
                "the envelope names the id's stream"
            );
            seen.push(received.id);
        }
    }
    proxy.down();
    sent.push(publish(4, in_system.clone()).await);
    sent.push(publish(5, Value::Null).await);
    reconnecting(&mut client).await;
    proxy.up().await;
    match connected(&mut client).await {
        ControlMessage::Ready { recovered, .. } => {
            let both = [("payments".to_owned(), true), ("system".to_owned(), true)];
            assert_eq!(recovered, both.into_iter().collect(), "{recovered:?}")
        }
        _ => unreachable!(),
    }
    sent.push(publish(6, in_system).await);
    let after = payments(&mut client, 3).await;
    // Each once, in order within its namespace (a replay goes namespace by namespace).
    let mut ids: Vec<String> = seen
        .into_iter()
        .chain(after.into_iter().map(|(_, id)| id))
        .collect();
    let mut expected: Vec<String> = sent.into_iter().map(|(_, id)| id).collect();
    ids.sort();
    expected.sort();
    assert_eq!(ids, expected);
}

/// A client built from another catalog is told so right after `ready`, and keeps receiving:
/// events of types it does not know arrive as `Unknown`, with their type, data and id.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_of_another_catalog_is_told_and_keeps_receiving() {
    use omnicast::runtime::client::{Client as Of, Message as M};
    let server = TestServer::start().await;
    let mut client =
        Of::<Elsewhere>::connect(fast(server.ws_url("")), server.token("CUST-A", "customer"));
    let next = async |client: &mut Of<Elsewhere>| {
        tokio::time::timeout(WAIT, client.next())
            .await
            .expect("a message in time")
            .expect("the client is running")
    };
    let mut seen = Vec::new();
    loop {
        match next(&mut client).await {
            M::Control(ControlMessage::Ready { .. }) => seen.push("ready".to_owned()),
            M::CatalogMismatch {
                server: theirs,
                client: ours,
            } => {
                assert_eq!(
                    (theirs.as_str(), ours),
                    (omnicast::CATALOG_VERSION, "0123456789abcdef")
                );
                seen.push("mismatch".to_owned());
            }
            M::Status(Status::Connected) => break,
            M::Status(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, ["ready", "mismatch"]);
    let id = pay(&server, 7, "CUST-A").await;
    match next(&mut client).await {
        M::Unknown(received) => {
            assert_eq!(received.id, id);
            assert_eq!(received.namespace, "payments");
            let event: Value = serde_json::from_str(&received.event).unwrap();
            assert_eq!(event["type"], "payment:received");
            assert_eq!(event["data"]["paymentId"], "PAY-7");
            assert_eq!(support::amount(&event), 7);
        }
        other => panic!("expected the unknown event, got {other:?}"),
    }
}
