//! Several nodes on one real `redis-server` (started here on a free port), and most of the same
//! tests again on a real Redis Cluster of three shards: delivery across nodes, recovery on
//! another node, presence across nodes, and Redis failing under them.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::redis::{Backend, Redis, RedisCluster};
use support::{API_KEY, Client, Ended, TestServer, amount, config, payment};

on_one_redis_and_a_cluster!(
    an_event_published_on_any_node_reaches_every_allowed_connection_once,
    a_client_resumes_on_another_node_with_no_gap,
    a_node_started_later_recovers_from_the_shared_history,
    resuming_across_nodes_under_a_full_speed_publisher_has_no_gap_and_no_duplicate,
    presence_is_announced_once_across_nodes,
    a_customer_back_on_another_node_within_the_grace_stays_online,
    a_node_that_lost_its_subscription_delivers_what_it_missed,
    a_retried_publish_with_the_same_idempotency_key_publishes_once,
    a_service_emits_straight_into_redis_without_a_node,
    a_service_emits_through_a_nodes_publish_api,
);

/// Three nodes on one Redis (or cluster).
async fn cluster(redis: &impl Backend) -> Vec<TestServer> {
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(TestServer::node(config(), &redis.url()).await);
    }
    nodes
}

/// The amounts of the payments received before the marker.
async fn amounts_until(client: &mut Client, marker: &str) -> Vec<u64> {
    client
        .events_until(marker)
        .await
        .iter()
        .filter(|e| e["type"] == "payment:received")
        .map(amount)
        .collect()
}

async fn an_event_published_on_any_node_reaches_every_allowed_connection_once(
    redis: &mut impl Backend,
) {
    let nodes = cluster(redis).await;
    let query = "namespaces=payments,system";
    let (mut admin, _) = nodes[0].open("admin-1", "admin", query).await;
    let (mut c1, _) = nodes[1].open("c-1", "customer", query).await;
    let (mut c2, ready) = nodes[2].open("c-2", "customer", query).await;
    let c2_session = ready["sessionId"].as_str().unwrap().to_owned();
    let (mut c1_again, _) = nodes[2].open("c-1", "customer", query).await;

    let mut ids = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        ids.push(
            node.publish("payment:received", payment(n + 1, "c-1"), Value::Null)
                .await,
        );
    }
    nodes[1]
        .publish("payment:received", payment(4, "c-2"), Value::Null)
        .await;
    // Options cross nodes too: only c-2's payment to c-2, then one excluding its session.
    nodes[0]
        .publish(
            "payment:received",
            payment(5, "c-2"),
            json!({"userIds": ["c-2", "admin-1"]}),
        )
        .await;
    nodes[1]
        .publish(
            "payment:received",
            payment(6, "c-2"),
            json!({"excludeSessionIds": [c2_session]}),
        )
        .await;
    nodes[2]
        .publish(
            "payment:received",
            payment(7, "c-1"),
            json!({"excludeUserIds": ["admin-1"]}),
        )
        .await;
    support::marker(&nodes[0], "end").await;

    assert_eq!(amounts_until(&mut admin, "end").await, [1, 2, 3, 4, 5, 6]);
    assert_eq!(amounts_until(&mut c1, "end").await, [1, 2, 3, 7]);
    assert_eq!(amounts_until(&mut c1_again, "end").await, [1, 2, 3, 7]);
    assert_eq!(amounts_until(&mut c2, "end").await, [4, 5]);
    // One stream per namespace: the ids of the three publishes follow each other.
    let offsets: Vec<u64> = ids.iter().map(|id| support::position(id).offset).collect();
    assert_eq!(offsets, [1, 2, 3], "{ids:?}");
}

async fn a_client_resumes_on_another_node_with_no_gap(redis: &mut impl Backend) {
    let nodes = cluster(redis).await;
    let (mut client, _) = nodes[0]
        .open("admin-1", "admin", "namespaces=payments")
        .await;
    for n in 1..=3 {
        nodes[1]
            .publish("payment:received", payment(n, "c-1"), Value::Null)
            .await;
    }
    let mut last = String::new();
    for n in 1..=3 {
        let event = client.next_json().await;
        assert_eq!(amount(&event), n);
        last = event["id"].as_str().unwrap().to_owned();
    }
    drop(client);
    for n in 4..=9 {
        nodes[n % 3]
            .publish("payment:received", payment(n, "c-1"), Value::Null)
            .await;
    }
    // Resumed on a node that never served this client.
    let (mut client, ready) = nodes[2]
        .open(
            "admin-1",
            "admin",
            &format!("namespaces=payments,system&since={last}"),
        )
        .await;
    assert_eq!(ready["recovered"], json!({"payments": true}), "{ready}");
    nodes[0]
        .publish("payment:received", payment(10, "c-1"), Value::Null)
        .await;
    support::marker(&nodes[1], "end").await;
    assert_eq!(
        amounts_until(&mut client, "end").await,
        (4..=10).collect::<Vec<_>>()
    );
}

async fn a_node_started_later_recovers_from_the_shared_history(redis: &mut impl Backend) {
    let first = TestServer::node(config(), &redis.url()).await;
    let (mut client, _) = first.open("admin-1", "admin", "namespaces=payments").await;
    first
        .publish("payment:received", payment(1, "c-1"), Value::Null)
        .await;
    let since = client.next_json().await["id"].as_str().unwrap().to_owned();
    drop(client);
    for n in 2..=5 {
        first
            .publish("payment:received", payment(n, "c-1"), Value::Null)
            .await;
    }
    // This node saw none of them: the replay comes from Redis.
    let late = TestServer::node(config(), &redis.url()).await;
    let (mut client, ready) = late
        .open(
            "admin-1",
            "admin",
            &format!("namespaces=payments,system&since={since}"),
        )
        .await;
    assert_eq!(ready["recovered"], json!({"payments": true}), "{ready}");
    support::marker(&late, "end").await;
    assert_eq!(amounts_until(&mut client, "end").await, [2, 3, 4, 5]);
    // And a customer replaying from there sees only their own.
    let (mut customer, ready) = late
        .open(
            "c-1",
            "customer",
            &format!("namespaces=payments,system&since={since}"),
        )
        .await;
    assert_eq!(ready["recovered"], json!({"payments": true}), "{ready}");
    late.publish("payment:received", payment(6, "c-2"), Value::Null)
        .await;
    support::marker(&late, "end2").await;
    assert_eq!(amounts_until(&mut customer, "end2").await, [2, 3, 4, 5]);
}

#[tokio::test]
async fn a_resume_the_history_cannot_answer_is_refused_not_told_lost() {
    let redis = Redis::start();
    let first = TestServer::node(config(), &redis.url()).await;
    let mut since = None;
    for n in 1..=4 {
        let id = first
            .publish("payment:received", payment(n, "c-1"), Value::Null)
            .await;
        since.get_or_insert(id);
    }
    let since = since.unwrap();
    // This node saw none of them: resuming needs Redis' history, and Redis does not answer.
    let late = TestServer::node(config(), &redis.url()).await;
    let (mut subscriber, _) = late.open("admin-1", "admin", "namespaces=system").await;
    redis.pause();
    let url = late.ws_url(&format!(
        "token={}&namespaces=payments&since={since}",
        late.token("admin-1", "admin")
    ));
    let mut refused = Client::open(&url, &[]).await.expect("upgraded");
    assert_eq!(refused.ended().await, Ended::Closed(1013));
    // The same for a subscribe that resumes.
    subscriber
        .send_json(json!({"type": "subscribe", "namespaces": ["payments"], "since": [since]}))
        .await;
    assert_eq!(subscriber.ended().await, Ended::Closed(1013));

    // Once Redis answers, the same resume replays everything.
    redis.resume();
    late.wait_ready().await;
    let (mut client, ready) = late
        .open(
            "admin-1",
            "admin",
            &format!("namespaces=payments,system&since={since}"),
        )
        .await;
    assert_eq!(ready["recovered"], json!({"payments": true}), "{ready}");
    support::marker(&late, "end").await;
    assert_eq!(amounts_until(&mut client, "end").await, [2, 3, 4]);
}

async fn resuming_across_nodes_under_a_full_speed_publisher_has_no_gap_and_no_duplicate(
    redis: &mut impl Backend,
) {
    const EVENTS: usize = 400;
    let mut config = config();
    config.connect_rate = omnicast::runtime::ConnectRate {
        burst: 1_000,
        per_second: 1_000.0,
    };
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(TestServer::node(config.clone(), &redis.url()).await);
    }
    let (client, ready) = nodes[0]
        .open("admin-1", "admin", "namespaces=payments")
        .await;
    let mut since = ready["positions"]["payments"].as_str().unwrap().to_owned();
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| format!("http://{}/api/events", n.addr))
        .collect();
    let publisher = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        for n in 1..=EVENTS {
            let body = json!({"type": "payment:received", "data": payment(n, "c-1")});
            let response = agent
                .post(&urls[n % urls.len()])
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
                let node = &nodes[reconnects % 3];
                let (current, ready) = node
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
        for _ in 0..(5 + reconnects % 11).min(EVENTS - seen.len()) {
            let event = current.next_json().await;
            seen.push(amount(&event));
            since = event["id"].as_str().unwrap().to_owned();
        }
    }
    publisher.await.unwrap();
    assert!(reconnects >= 20, "only {reconnects} reconnects");
    assert_eq!(seen, (1..=EVENTS as u64).collect::<Vec<_>>());
}

async fn presence_is_announced_once_across_nodes(redis: &mut impl Backend) {
    let nodes = cluster(redis).await;
    let (mut staff, _) = nodes[0]
        .open("staff-1", "staff", "namespaces=customers,system")
        .await;
    let (first, _) = nodes[1].open("c-1", "customer", "namespaces=orders").await;
    let (second, _) = nodes[2].open("c-1", "customer", "namespaces=orders").await;
    drop(first);
    support::wait_until(|| nodes[1].server.hub().stats().connections == 0).await;
    // The leave was recorded before the marker is published.
    tokio::time::sleep(Duration::from_millis(200)).await;
    support::marker(&nodes[0], "one left").await;
    let seen: Vec<Value> = staff.events_until("one left").await;
    let kinds: Vec<&str> = seen.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["customer:online"], "{seen:?}");
    drop(second);
    let event = staff.next_json().await;
    assert_eq!(event["type"], "customer:offline", "{event}");
    assert_eq!(event["data"]["customerId"], "c-1");
    support::marker(&nodes[0], "end").await;
    assert!(staff.events_until("end").await.is_empty());
}

/// A customer whose node closed their connection and who comes back on another node within
/// the presence grace stays online for staff on every node: no offline, no second online.
async fn a_customer_back_on_another_node_within_the_grace_stays_online(redis: &mut impl Backend) {
    let mut config = config();
    config.presence_grace = Duration::from_secs(2);
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(TestServer::node(config.clone(), &redis.url()).await);
    }
    let (mut staff, _) = nodes[0]
        .open("staff-1", "staff", "namespaces=customers,system")
        .await;
    let (customer, _) = nodes[1].open("c-1", "customer", "namespaces=orders").await;
    assert_eq!(staff.next_json().await["type"], "customer:online");
    drop(customer);
    support::wait_until(|| nodes[1].server.hub().stats().connections == 0).await;
    let (customer, _) = nodes[2].open("c-1", "customer", "namespaces=orders").await;
    // Past the grace of the first node's departure: it finds the customer on another node.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    support::marker(&nodes[0], "back").await;
    assert!(staff.events_until("back").await.is_empty());
    drop(customer);
    let event = staff.next_json().await;
    assert_eq!(event["type"], "customer:offline", "{event}");
    support::marker(&nodes[0], "end").await;
    assert!(staff.events_until("end").await.is_empty());
}

#[tokio::test]
async fn redis_down_answers_503_keeps_connections_and_a_new_epoch_asks_clients_to_resume() {
    let mut redis = Redis::start();
    let nodes = cluster(&redis).await;
    let (mut client, _) = nodes[0]
        .open("admin-1", "admin", "namespaces=payments")
        .await;
    let before = nodes[1]
        .publish("payment:received", payment(1, "c-1"), Value::Null)
        .await;
    assert_eq!(client.next_json().await["id"], before);

    redis.kill();
    let body = json!({"type": "payment:received", "data": payment(2, "c-1")}).to_string();
    // A call sent on the connection Redis dropped cannot tell whether it ran (504); once the
    // node knows Redis is gone, nothing is stored, certainly (503).
    for node in &nodes[1..] {
        let mut answers = Vec::new();
        loop {
            let (status, reply) = node.post(Some(API_KEY), body.clone()).await;
            answers.push(reply["error"].as_str().unwrap_or_default().to_owned());
            if status == 503 {
                assert_eq!(reply["error"], "broker_unavailable", "{reply}");
                break;
            }
            assert_eq!(
                (status, reply["error"].as_str()),
                (504, Some("outcome_unknown"))
            );
            assert!(answers.len() < 3, "{answers:?}");
        }
    }
    let head = raw_post(&nodes[2], &body).await;
    assert!(head.starts_with("http/1.1 503"), "{head}");
    assert!(head.contains("\r\nretry-after: "), "{head}");
    let (status, _) = get(&nodes[1], "/readyz").await;
    assert_eq!(status, 503);
    let (status, _) = get(&nodes[1], "/healthz").await;
    assert_eq!(status, 200, "liveness is not readiness");
    // A new connection is refused: the node could deliver it nothing.
    let url = nodes[1].ws_url(&format!("token={}", nodes[1].token("admin-2", "admin")));
    let (status, refusal) = support::refused(&url, &[]).await;
    assert_eq!(
        (status, refusal["error"].as_str()),
        (503, Some("broker_unavailable")),
        "{refusal}"
    );
    // The connection stays up meanwhile: it answers a ping.
    client.send_json(json!({"type": "ping", "id": 1})).await;
    assert_eq!(client.next_json().await["type"], "pong");

    // Redis comes back empty: a new epoch. The node follows again by itself, and its clients
    // are asked to resume, which tells them the history is gone.
    redis.restart();
    for node in &nodes {
        node.wait_ready().await;
    }
    assert_eq!(client.ended().await, Ended::Closed(4010));
    let (_client, ready) = nodes[0]
        .open(
            "admin-1",
            "admin",
            &format!("namespaces=payments&since={before}"),
        )
        .await;
    assert_eq!(ready["recovered"], json!({"payments": false}), "{ready}");
    let (status, reply) = nodes[1].post(Some(API_KEY), body).await;
    assert_eq!(status, 202, "{reply}");
    let after = reply["id"].as_str().unwrap();
    assert_ne!(
        after.rsplit_once('.').unwrap().0,
        before.rsplit_once('.').unwrap().0,
        "a new epoch"
    );
}

async fn a_node_that_lost_its_subscription_delivers_what_it_missed(redis: &mut impl Backend) {
    let nodes = cluster(redis).await;
    let (mut client, _) = nodes[0]
        .open("admin-1", "admin", "namespaces=payments")
        .await;
    nodes[0]
        .publish("payment:received", payment(1, "c-1"), Value::Null)
        .await;
    assert_eq!(amount(&client.next_json().await), 1);
    // Every node's subscription is cut; publishes go on meanwhile.
    assert!(redis.on_every_server(&["CLIENT", "KILL", "TYPE", "pubsub"]));
    for n in 2..=6 {
        nodes[1]
            .publish("payment:received", payment(n, "c-1"), Value::Null)
            .await;
    }
    // The node reconnects, notices the gap by the offsets, and delivers the missed events in
    // order, with no duplicate, before the live ones.
    nodes[2]
        .publish("payment:received", payment(7, "c-1"), Value::Null)
        .await;
    let mut got = Vec::new();
    while got.len() < 6 {
        got.push(amount(&client.next_json().await));
    }
    assert_eq!(got, [2, 3, 4, 5, 6, 7]);
}

async fn a_retried_publish_with_the_same_idempotency_key_publishes_once(redis: &mut impl Backend) {
    let nodes = cluster(redis).await;
    let (mut client, _) = nodes[0]
        .open("admin-1", "admin", "namespaces=payments,system")
        .await;
    let body = json!([
        {"type": "payment:received", "data": payment(1, "c-1")},
        {"type": "payment:received", "data": payment(2, "c-1")},
    ])
    .to_string();
    let first = post_with_key(&nodes[1], &body, "order-42-paid").await;
    let retried = post_with_key(&nodes[2], &body, "order-42-paid").await;
    assert_eq!(first, retried);
    let other = post_with_key(&nodes[2], &body, "order-43-paid").await;
    assert_ne!(first, other);
    support::marker(&nodes[0], "end").await;
    assert_eq!(amounts_until(&mut client, "end").await, [1, 2, 1, 2]);
}

async fn post_with_key(node: &TestServer, body: &str, key: &str) -> Value {
    let (status, reply) = node
        .post_with(Some(API_KEY), body.to_owned(), &[("Idempotency-Key", key)])
        .await;
    assert_eq!(status, 202, "{reply}");
    reply["ids"].clone()
}

async fn get(node: &TestServer, path: &str) -> (u16, Value) {
    let url = format!("http://{}{path}", node.addr);
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut response = agent.get(&url).call().expect("the server answers");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    })
    .await
    .unwrap()
}

fn typed_payment(n: usize, customer: &str) -> omnicast::PaymentReceivedPayload {
    omnicast::PaymentReceivedPayload {
        payment_id: format!("PAY-{n}"),
        order_id: format!("ORD-{n}"),
        customer_id: customer.to_owned(),
        amount: n as f64,
        method: "credit_card".into(),
        status: omnicast::PaymentStatus::Success,
    }
}

async fn a_service_emits_straight_into_redis_without_a_node(redis: &mut impl Backend) {
    use omnicast::runtime::{PublishError, RedisConfig, RedisSink};
    let nodes = cluster(redis).await;
    let (mut c1, _) = nodes[0]
        .open("c-1", "customer", "namespaces=payments,system")
        .await;
    let (mut admin, _) = nodes[1]
        .open("admin-1", "admin", "namespaces=payments,system")
        .await;
    let sink = RedisSink::new(&omnicast::CATALOG, RedisConfig::new(redis.url())).unwrap();
    let events = omnicast::Events::new(sink);
    let one = events
        .payment_received(typed_payment(1, "c-1"))
        .send()
        .await
        .unwrap();
    let two = events
        .payment_received(typed_payment(2, "c-2"))
        .to_roles([omnicast::Role::Admin])
        .send()
        .await
        .unwrap();
    assert!(
        one.starts_with("payments.") && two.ends_with(".2"),
        "{one} {two}"
    );
    support::marker(&nodes[2], "end").await;
    assert_eq!(amounts_until(&mut c1, "end").await, [1]);
    let got = admin.events_until("end").await;
    let ids: Vec<&str> = got.iter().map(|e| e["id"].as_str().unwrap()).collect();
    // The sink answers readable positions (it holds no position key); clients see them sealed.
    assert_eq!(ids, [support::sealed(&one), support::sealed(&two)]);
    // Redis gone: the sink retries, then says so; nothing is reported as sent.
    redis.kill();
    let failed = events
        .payment_received(typed_payment(3, "c-1"))
        .send()
        .await;
    assert!(matches!(failed, Err(PublishError::Broker(_))), "{failed:?}");
}

async fn a_service_emits_through_a_nodes_publish_api(redis: &mut impl Backend) {
    use omnicast::runtime::{HttpSink, PublishError};
    let nodes = cluster(redis).await;
    let (mut c1, _) = nodes[2]
        .open("c-1", "customer", "namespaces=payments,system")
        .await;
    let base = format!("http://{}", nodes[0].addr);
    let events = omnicast::Events::new(HttpSink::new(&omnicast::CATALOG, &base, API_KEY).unwrap());
    let id = events
        .payment_received(typed_payment(1, "c-1"))
        .to_users(["c-1"])
        .send()
        .await
        .unwrap();
    events
        .payment_received(typed_payment(2, "c-1"))
        .exclude_users(["c-1"])
        .send()
        .await
        .unwrap();
    support::marker(&nodes[1], "end").await;
    let got = c1.events_until("end").await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["id"], id.as_str());
    // A wrong key is refused, not retried.
    let wrong = omnicast::Events::new(
        HttpSink::new(&omnicast::CATALOG, &base, "not-the-key-0123456789").unwrap(),
    );
    let refused = wrong.payment_received(typed_payment(3, "c-1")).send().await;
    assert!(
        matches!(refused, Err(PublishError::Rejected { status: 401, .. })),
        "{refused:?}"
    );
    assert!(HttpSink::new(&omnicast::CATALOG, "ftp://x", API_KEY).is_err());
}

/// A publish over a raw connection; the response's head, lowercase.
async fn raw_post(node: &TestServer, body: &str) -> String {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(node.addr).await.unwrap();
    let request = format!(
        "POST /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let (_, head, _) = support::read_response(&mut stream).await;
    head
}

#[tokio::test]
async fn a_redis_that_went_back_in_time_starts_a_new_epoch() {
    let redis = Redis::start();
    let nodes = cluster(&redis).await;
    let (mut client, _) = nodes[0]
        .open("admin-1", "admin", "namespaces=payments")
        .await;
    let mut last = String::new();
    for n in 1..=5 {
        last = nodes[1]
            .publish("payment:received", payment(n, "c-1"), Value::Null)
            .await;
        assert_eq!(client.next_json().await["id"], last.as_str());
    }
    // As if Redis restarted from a snapshot taken two events ago: the same epoch, an older top.
    // Offsets 4 and 5 would be given out again, to other events.
    let meta = "omnicast:{payments}:meta";
    assert_eq!(
        redis.command(&["HSET", meta, "top", "3"]).as_deref(),
        Some(":0")
    );
    assert!(redis.on_every_server(&["CLIENT", "KILL", "TYPE", "pubsub"]));
    // The nodes notice when they catch up, start a new epoch, and ask their clients to resume.
    assert_eq!(client.ended().await, Ended::Closed(4010));
    for node in &nodes {
        node.wait_ready().await;
    }
    let (_client, ready) = nodes[2]
        .open(
            "admin-1",
            "admin",
            &format!("namespaces=payments&since={last}"),
        )
        .await;
    assert_eq!(ready["recovered"], json!({"payments": false}), "{ready}");
    let next = nodes[0]
        .publish("payment:received", payment(6, "c-1"), Value::Null)
        .await;
    assert_ne!(
        next.rsplit_once('.').unwrap().0,
        last.rsplit_once('.').unwrap().0,
        "a new epoch: {next} after {last}"
    );
}

/// An `order:created` of `total`, for customer `c-1`.
fn order(total: usize) -> Value {
    json!({"orderId": format!("ORD-{total}"), "customerId": "c-1", "customerName": "C",
           "total": total, "status": "pending", "channel": "online"})
}

/// Publishes `payment:received` until a node answers 503 (a call already on its way when the
/// shard went may answer 504 first); never 202.
async fn refused_until_503(node: &TestServer, n: usize) {
    let body = json!({"type": "payment:received", "data": payment(n, "c-1")}).to_string();
    let mut answers = Vec::new();
    loop {
        let (status, reply) = node.post(Some(API_KEY), body.clone()).await;
        answers.push((status, reply.to_string()));
        match status {
            503 => return,
            504 => assert!(answers.len() < 5, "{answers:?}"),
            _ => panic!("a payment while its shard is down: {answers:?}"),
        }
    }
}

/// A cluster without replicas that loses a shard: the namespaces on it are refused (503), the
/// others are published and delivered as before, on every node.
#[tokio::test]
async fn a_cluster_shard_down_stops_only_its_own_namespaces() {
    let mut redis = RedisCluster::start(3, 0);
    let nodes = cluster(&redis).await;
    let (mut admin, _) = nodes[0]
        .open("admin-1", "admin", "namespaces=payments,orders")
        .await;
    let shard = redis.primary_of("omnicast:{payments}:meta").port;
    assert_ne!(redis.primary_of("omnicast:{orders}:meta").port, shard);
    let since = nodes[1]
        .publish("payment:received", payment(1, "c-1"), Value::Null)
        .await;
    assert_eq!(amount(&admin.next_json().await), 1);

    redis.primary_of("omnicast:{payments}:meta").kill();
    for node in &nodes {
        refused_until_503(node, 2).await;
    }
    for (n, node) in nodes.iter().enumerate() {
        let id = node.publish("order:created", order(n), Value::Null).await;
        let got = admin.next_json().await;
        assert_eq!(
            (got["type"].as_str(), got["id"].as_str()),
            (Some("order:created"), Some(id.as_str()))
        );
    }
    let (status, _) = get(&nodes[2], "/readyz").await;
    assert_eq!(status, 200, "the node still serves the other namespaces");

    // A node that never saw the payments reads their history to resume or to explain one: with
    // the shard gone it cannot tell what is there, so it says "try again later", never "lost".
    let late = TestServer::node(config(), &redis.url()).await;
    let url = late.ws_url(&format!(
        "token={}&namespaces=payments&since={since}",
        late.token("admin-2", "admin")
    ));
    let mut refused = Client::open(&url, &[]).await.expect("upgraded");
    assert_eq!(refused.ended().await, Ended::Closed(1013));
    let (status, answer) = late
        .post_json("/api/explain", Some(API_KEY), json!({"id": since}))
        .await;
    assert_eq!(status, 503, "{answer}");
}

/// A cluster with a replica per shard whose primary is killed: the replica takes over, the
/// namespace's publishes are accepted again, and every event accepted before and after reaches
/// its clients, on every node, in order.
#[tokio::test]
async fn a_cluster_shard_fails_over_and_nothing_accepted_is_lost() {
    let mut redis = RedisCluster::start(3, 1);
    let nodes = cluster(&redis).await;
    let (mut admin, _) = nodes[0]
        .open("admin-1", "admin", "namespaces=payments")
        .await;
    let mut accepted = Vec::new();
    for n in 1..=3 {
        nodes[n % 3]
            .publish("payment:received", payment(n, "c-1"), Value::Null)
            .await;
        accepted.push(n as u64);
    }
    // The replica has what its primary acknowledged (WAIT), then the primary dies.
    let primary = redis.primary_of("omnicast:{payments}:meta");
    assert!(primary.command(&["WAIT", "1", "2000"]).is_some());
    primary.kill();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut n = 4;
    while accepted.len() < 8 {
        assert!(
            std::time::Instant::now() < deadline,
            "no failover: {accepted:?}"
        );
        let body = json!({"type": "payment:received", "data": payment(n, "c-1")}).to_string();
        let (status, reply) = nodes[n % 3].post(Some(API_KEY), body).await;
        match status {
            202 => accepted.push(n as u64),
            503 | 504 => tokio::time::sleep(Duration::from_millis(200)).await,
            _ => panic!("{status} {reply}"),
        }
        n += 1;
    }
    // Every accepted payment, in order, once: live or caught up from the promoted replica (a
    // publish answered 504 may be there too, or not).
    let mut got: Vec<u64> = Vec::new();
    while !accepted.iter().all(|a| got.contains(a)) {
        got.push(amount(&admin.next_json().await));
    }
    let delivered: Vec<u64> = got
        .iter()
        .copied()
        .filter(|a| accepted.contains(a))
        .collect();
    assert_eq!(delivered, accepted, "got {got:?}");
}

#[tokio::test]
async fn the_embedded_broker_is_always_ready() {
    let node = TestServer::start().await;
    let (status, body) = get(&node, "/readyz").await;
    assert_eq!((status, body), (200, json!({"status": "ready"})));
}
