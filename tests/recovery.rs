//! Positions, history and recovery after a reconnect, with the embedded broker: real servers on
//! loopback, real WebSocket clients.

mod support;

use std::collections::BTreeMap;

use serde_json::{Value, json};
use support::{API_KEY, Client, TestServer, amount, config, payment};

async fn pay(server: &TestServer, n: usize, customer: &str) -> String {
    server
        .publish("payment:received", payment(n, customer), Value::Null)
        .await
}

/// The payment numbers (`amount`) of the next `n` events.
async fn amounts(client: &mut Client, n: usize) -> Vec<u64> {
    let mut out = Vec::new();
    for _ in 0..n {
        let event = client.next_json().await;
        assert_eq!(event["type"], "payment:received", "{event}");
        out.push(amount(&event));
    }
    out
}

#[tokio::test]
async fn ids_are_positions_in_the_namespace_stream() {
    let server = TestServer::start().await;
    let (_client, ready) = server
        .open("admin-1", "admin", "namespaces=payments,orders")
        .await;
    let positions = ready["positions"].as_object().unwrap();
    assert_eq!(positions.len(), 2, "{ready}");
    let top = positions["payments"].as_str().unwrap();
    let (prefix, _) = top.rsplit_once('.').unwrap();
    assert!(prefix.starts_with("payments."), "{top}");
    assert_eq!(
        support::position(top).offset,
        0,
        "nothing published yet: {top}"
    );
    let first = pay(&server, 1, "c-1").await;
    let second = pay(&server, 2, "c-1").await;
    assert!(first.starts_with(prefix) && second.starts_with(prefix));
    assert_eq!(support::position(&first).offset, 1);
    assert_eq!(support::position(&second).offset, 2);
    assert!(!first.contains(','), "ids go in comma-separated lists");
    // Another namespace counts on its own.
    let notice = server
        .publish("system:maintenance", json!({"message": "m"}), Value::Null)
        .await;
    let notice = support::position(&notice);
    assert_eq!((notice.namespace.as_str(), notice.offset), ("system", 1));
}

#[tokio::test]
async fn a_client_that_resumes_gets_what_it_missed_in_order_then_live_events() {
    let server = TestServer::start().await;
    let (mut client, _) = server.open("admin-1", "admin", "namespaces=payments").await;
    for n in 1..=3 {
        pay(&server, n, "c-1").await;
    }
    let mut last = String::new();
    for n in 1..=3 {
        let event = client.next_json().await;
        assert_eq!(amount(&event), n as u64);
        last = event["id"].as_str().unwrap().to_owned();
    }
    drop(client);
    for n in 4..=8 {
        pay(&server, n, "c-1").await;
    }
    let (mut client, ready) = server
        .open(
            "admin-1",
            "admin",
            &format!("namespaces=payments&since={last}"),
        )
        .await;
    assert_eq!(ready["recovered"], json!({"payments": true}), "{ready}");
    assert_eq!(amounts(&mut client, 5).await, [4, 5, 6, 7, 8]);
    pay(&server, 9, "c-1").await;
    assert_eq!(amounts(&mut client, 1).await, [9]);
    // `positions` named the top the replay ended at.
    let top = support::position(ready["positions"]["payments"].as_str().unwrap());
    assert_eq!(top.offset, 8);
}

#[tokio::test]
async fn recovery_is_all_or_nothing() {
    let mut config = config();
    config.max_recovery = 5;
    let server = TestServer::with(config).await;
    let (_watcher, ready) = server.open("admin-0", "admin", "namespaces=payments").await;
    let zero = ready["positions"]["payments"].as_str().unwrap().to_owned();
    let epoch_prefix = format!("payments.{}", support::position(&zero).epoch);
    // The amounts published, by offset (offset 1 is `published[0]`).
    let mut published: Vec<u64> = Vec::new();
    for n in 1..=10 {
        pay(&server, n, "c-1").await;
        published.push(n as u64);
    }
    let cases = [
        // Ten behind with at most five allowed.
        (format!("{epoch_prefix}.0"), false),
        // Each case publishes a marker: the stream's top is 11 here, then 12, 13 and 14.
        (format!("{epoch_prefix}.7"), true),
        (format!("{epoch_prefix}.12"), true),
        // Ahead of the stream.
        (format!("{epoch_prefix}.99"), false),
        // Another epoch (a restarted server, or another broker).
        ("payments.zzzzzzzz.13".to_owned(), false),
    ];
    for (since, recovered) in cases {
        let (mut client, ready) = server
            .open(
                "admin-1",
                "admin",
                &format!("namespaces=payments&since={}", support::sealed(&since)),
            )
            .await;
        assert_eq!(
            ready["recovered"]["payments"], recovered,
            "since {since}: {ready}"
        );
        // Nothing but what `recovered` promised, then live events.
        let expected: Vec<u64> = if recovered {
            let from: usize = since.rsplit('.').next().unwrap().parse().unwrap();
            published[from..].to_vec()
        } else {
            Vec::new()
        };
        let marker_amount = 1000 + published.len() as u64;
        let marker = pay(&server, marker_amount as usize, "c-1").await;
        published.push(marker_amount);
        let mut got = Vec::new();
        loop {
            let event = client.next_json().await;
            if event["id"] == marker.as_str() {
                break;
            }
            got.push(amount(&event));
        }
        assert_eq!(got, expected, "since {since}");
    }
}

#[tokio::test]
async fn events_past_the_history_are_not_recovered() {
    let server = TestServer::start().await;
    // `system` keeps 100 events (events.yaml).
    let (_watcher, ready) = server.open("admin-0", "admin", "namespaces=system").await;
    let zero = ready["positions"]["system"].as_str().unwrap().to_owned();
    let prefix = format!("system.{}", support::position(&zero).epoch);
    for n in 0..150 {
        server
            .publish(
                "system:maintenance",
                json!({"message": format!("m{n}")}),
                Value::Null,
            )
            .await;
    }
    for (offset, recovered, replayed) in [(0, false, 0), (49, false, 0), (50, true, 100)] {
        let (mut client, ready) = server
            .open(
                "admin-1",
                "admin",
                &format!(
                    "namespaces=system&since={}",
                    support::sealed(&format!("{prefix}.{offset}"))
                ),
            )
            .await;
        assert_eq!(ready["recovered"]["system"], recovered, "{offset}: {ready}");
        for n in 0..replayed {
            let event = client.next_json().await;
            assert_eq!(event["data"]["message"], format!("m{}", 50 + n));
        }
    }
}

/// The replay applies the delivery rules with the connection's current token: a customer gets
/// only its own payments back, whatever it saw before and whatever it asks from.
#[tokio::test]
async fn a_replay_shows_only_what_the_current_token_may_see() {
    let server = TestServer::start().await;
    let (_watcher, ready) = server.open("admin-0", "admin", "namespaces=payments").await;
    let zero = ready["positions"]["payments"].as_str().unwrap().to_owned();
    for n in 1..=12 {
        let customer = ["c-1", "c-2", "c-3"][n % 3];
        pay(&server, n, customer).await;
    }
    // The same user, first as an admin (everything), then with a customer's token.
    let (mut admin, ready) = server
        .open("c-1", "admin", &format!("namespaces=payments&since={zero}"))
        .await;
    assert_eq!(ready["recovered"]["payments"], true);
    assert_eq!(amounts(&mut admin, 12).await, (1..=12).collect::<Vec<_>>());
    let (mut customer, ready) = server
        .open(
            "c-1",
            "customer",
            &format!("namespaces=payments&since={zero}"),
        )
        .await;
    assert_eq!(ready["recovered"]["payments"], true);
    let marker = pay(&server, 100, "c-1").await;
    let mut got = Vec::new();
    loop {
        let event = customer.next_json().await;
        assert_eq!(event["data"]["customerId"], "c-1", "{event}");
        if event["id"] == marker.as_str() {
            break;
        }
        got.push(amount(&event));
    }
    assert_eq!(got, [3, 6, 9, 12], "c-1 owns every third payment");
}

/// Clients reconnect again and again while a publisher runs at full speed: what each receives,
/// across all its connections, is every event once, in order.
#[tokio::test]
async fn resuming_under_a_full_speed_publisher_has_no_gap_and_no_duplicate() {
    const EVENTS: usize = 600;
    let mut config = config();
    // One user reconnects dozens of times a second here, on purpose.
    config.connect_rate = omnicast::runtime::ConnectRate {
        burst: 1_000,
        per_second: 1_000.0,
    };
    let server = TestServer::with(config).await;
    let (client, ready) = server.open("admin-1", "admin", "namespaces=payments").await;
    let mut since = ready["positions"]["payments"].as_str().unwrap().to_owned();
    let url = format!("http://{}/api/events", server.addr);
    let publisher = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        for n in 1..=EVENTS {
            let body = json!({"type": "payment:received", "data": payment(n, "c-1")});
            let response = agent
                .post(&url)
                .header("Authorization", &format!("Bearer {API_KEY}"))
                .header("Content-Type", "application/json")
                .send(body.to_string())
                .expect("the server answers");
            assert_eq!(response.status().as_u16(), 202);
        }
    });
    let mut client = Some(client);
    let mut seen: Vec<u64> = Vec::new();
    let mut reconnects = 0;
    while seen.len() < EVENTS {
        let mut current = match client.take() {
            Some(current) => current,
            None => {
                let (current, ready) = server
                    .open(
                        "admin-1",
                        "admin",
                        &format!("namespaces=payments&since={since}"),
                    )
                    .await;
                assert_eq!(ready["recovered"]["payments"], true, "{ready}");
                reconnects += 1;
                current
            }
        };
        // A few events, then the connection is dropped mid-stream.
        for _ in 0..(7 + reconnects % 13).min(EVENTS - seen.len()) {
            let event = current.next_json().await;
            seen.push(amount(&event));
            since = event["id"].as_str().unwrap().to_owned();
        }
    }
    publisher.await.unwrap();
    assert!(reconnects >= 20, "only {reconnects} reconnects");
    assert_eq!(seen, (1..=EVENTS as u64).collect::<Vec<_>>());
}

#[tokio::test]
async fn subscribe_resumes_a_namespace_as_it_is_added() {
    let server = TestServer::start().await;
    let (_watcher, ready) = server.open("admin-0", "admin", "namespaces=payments").await;
    let zero = ready["positions"]["payments"].as_str().unwrap().to_owned();
    for n in 1..=3 {
        pay(&server, n, "c-1").await;
    }
    let (mut client, _) = server.open("admin-1", "admin", "namespaces=system").await;
    client
        .send_json(json!({"type": "subscribe", "namespaces": ["payments"], "since": [zero]}))
        .await;
    let subscribed = client.next_json().await;
    assert_eq!(subscribed["type"], "subscribed", "{subscribed}");
    assert_eq!(subscribed["recovered"], json!({"payments": true}));
    let top = support::position(subscribed["positions"]["payments"].as_str().unwrap());
    assert_eq!(top.offset, 3);
    assert_eq!(amounts(&mut client, 3).await, [1, 2, 3]);
    pay(&server, 4, "c-1").await;
    assert_eq!(amounts(&mut client, 1).await, [4]);

    // A namespace already subscribed cannot be resumed again: that would replay twice.
    client
        .send_json(json!({"type": "subscribe", "namespaces": ["payments"], "since": [zero]}))
        .await;
    let error = client.next_json().await;
    assert_eq!(error["code"], "invalid_since", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("subscribed already")
    );
}

#[tokio::test]
async fn bad_since_values_are_refused_with_the_reason() {
    let server = TestServer::start().await;
    let token = server.token("admin-1", "admin");
    let sealed = support::sealed;
    let tampered = {
        // One character in the middle of the seal (every bit of it is data) changed.
        let mut id = sealed("payments.abc.1").into_bytes();
        let i = id.len() - 10;
        id[i] = if id[i] == b'A' { b'B' } else { b'A' };
        String::from_utf8(id).unwrap()
    };
    let cases: BTreeMap<String, &str> = [
        ("garbage".to_owned(), "is not an event id"),
        ("payments.abc.1".to_owned(), "not one this server gives"),
        (tampered, "not sealed by this deployment"),
        (
            format!("{},{}", sealed("payments.abc.1"), sealed("payments.abc.2")),
            "twice",
        ),
        (sealed("orders.abc.1"), "does not subscribe to"),
        (sealed("nowhere.abc.1"), "does not define"),
    ]
    .into();
    for (since, reason) in cases {
        let url = server.ws_url(&format!("token={token}&namespaces=payments&since={since}"));
        let (status, body) = support::refused(&url, &[]).await;
        assert_eq!(status, 400, "{since}: {body}");
        assert_eq!(body["error"], "invalid_since", "{since}: {body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(reason), "{since}: {message}");
    }
    let (mut client, _) = server.open("admin-1", "admin", "namespaces=system").await;
    client
        .send_json(json!({"type": "subscribe", "namespaces": ["payments"], "since": ["x"]}))
        .await;
    let error = client.next_json().await;
    assert_eq!(error["code"], "invalid_since", "{error}");
}
