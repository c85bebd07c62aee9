//! What one client or user may cost: slow consumers closed (and counted) without holding up
//! anyone else, clients that never read again torn down, backlogs larger than the socket
//! buffers written whole, connections per user, per node and per address, and the per-user
//! connect rate. (Memory per
//! connection under every kind of flood is `tests/memory.rs`.)

mod support;

use omnicast::runtime::ConnectRate;
use omnicast::runtime::protocol::close;
use serde_json::{Value, json};
use support::{Ended, TestServer, WAIT, assert_refused, exchange};
use tokio::net::TcpStream;

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

/// One user may hold a bounded number of connections; closing one makes room again.
#[tokio::test(flavor = "multi_thread")]
async fn a_user_holds_at_most_the_configured_connections() {
    let mut config = support::config();
    config.max_connections_per_user = 2;
    let server = TestServer::with(config).await;
    let first = server.connect("many", "customer", &[]).await;
    let _second = server.connect("many", "customer", &[]).await;
    let url = server.ws_url(&format!("token={}", server.token("many", "customer")));
    assert_refused(
        support::refused(&url, &[]).await,
        (429, "too_many_connections"),
    );
    // Another user is not affected.
    server.connect("other", "customer", &[]).await;
    drop(first);
    support::wait_until(|| server.server.hub().user_connections("many") == 1).await;
    server.connect("many", "customer", &[]).await;
}

/// The node takes at most `max_connections` (503 `server_full`, with `Retry-After`), counted from
/// the handshake to the end of the session; and, when set, one address at most
/// `max_connections_per_ip` (429). A refused handshake, and a closed connection, give the place
/// back; the refusals are counted.
#[tokio::test(flavor = "multi_thread")]
async fn the_node_and_one_address_hold_at_most_the_configured_connections() {
    let mut config = support::config();
    config.max_connections = 3;
    let server = TestServer::with(config).await;
    let mut held = Vec::new();
    for user in ["a", "b", "c"] {
        held.push(server.connect(user, "admin", &[]).await);
    }
    let url = server.ws_url(&format!("token={}", server.token("d", "admin")));
    let (status, body) = support::refused(&url, &[]).await;
    assert_refused((status, body), (503, "server_full"));
    // A bad token does not take the last place for good.
    drop(held.pop());
    support::wait_until(|| server.server.hub().stats().connections == 2).await;
    let bad = server.ws_url("token=not-a-jwt");
    assert_eq!(support::refused(&bad, &[]).await.0, 401);
    server.connect("d", "admin", &[]).await;
    let (_, metrics) = server.get("/metrics", Some(support::API_KEY)).await;
    assert!(
        metrics.contains(r#"omnicast_connects_refused_total{reason="server_full"} 1"#),
        "{metrics}"
    );

    let mut config = support::config();
    config.max_connections_per_ip = Some(2);
    let server = TestServer::with(config).await;
    let first = server.connect("a", "admin", &[]).await;
    let _second = server.connect("b", "admin", &[]).await;
    let url = server.ws_url(&format!("token={}", server.token("c", "admin")));
    assert_refused(
        support::refused(&url, &[]).await,
        (429, "too_many_connections_from_address"),
    );
    drop(first);
    support::wait_until(|| server.server.hub().stats().connections == 1).await;
    server.connect("c", "admin", &[]).await;
}

/// A user reconnecting in a loop is refused once its connect budget is spent, so its presence
/// churn cannot flood every staff connection.
#[tokio::test(flavor = "multi_thread")]
async fn a_user_reconnecting_in_a_loop_is_throttled() {
    let mut config = support::config();
    config.connect_rate = ConnectRate {
        burst: 3,
        per_second: 0.01,
    };
    let server = TestServer::with(config).await;
    let mut staff = server
        .connect("staff-1", "staff", &["customers", "system"])
        .await;
    for _ in 0..3 {
        let client = server.connect("looper", "customer", &[]).await;
        drop(client);
        support::wait_until(|| server.server.hub().user_connections("looper") == 0).await;
    }
    let url = server.ws_url(&format!("token={}", server.token("looper", "customer")));
    let body = assert_refused(
        support::refused(&url, &[]).await,
        (429, "connect_rate_exceeded"),
    );
    assert!(
        body["message"].as_str().unwrap().contains("retry in"),
        "{body}"
    );
    // And says when, in a header a client library can act on.
    let token = server.token("looper", "customer");
    let request = format!(
        "GET /ws?token={token} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    let (status, head, _) = exchange(server.addr, &request).await;
    assert_eq!(status, 429);
    assert!(head.contains("retry-after: "), "{head}");
    // Exactly three online/offline pairs reached the staff connection.
    support::marker(&server, "end").await;
    let presence: Vec<String> = staff
        .events_until("end")
        .await
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(presence, ["customer:online", "customer:offline"].repeat(3));
}

/// An admin client whose socket takes in only 4 KiB before it reads: what it does not read backs
/// up into the server at once.
async fn small_window_client(
    server: &TestServer,
    user: &str,
) -> tokio_tungstenite::WebSocketStream<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.addr).await.unwrap();
    let url = server.ws_url(&format!("token={}", server.token(user, "admin")));
    let (ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    ws
}

/// A client that asks for replies faster than it reads them is closed as a slow consumer, and
/// counted as one.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_flooding_requests_without_reading_is_counted_as_slow() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let mut config = support::config();
    config.queue_capacity = 4;
    let server = TestServer::with(config).await;
    let mut ws = small_window_client(&server, "flood").await;
    let ping = json!({"type": "ping", "id": "y".repeat(64)}).to_string();
    let flood = async {
        for _ in 0..200_000 {
            if ws.feed(Message::Text(ping.clone().into())).await.is_err() {
                return;
            }
        }
        let _ = ws.flush().await;
    };
    // The flood ends when the server closes the connection (or, at worst, after every ping).
    let _ = tokio::time::timeout(WAIT, flood).await;
    support::wait_until(|| server.server.hub().stats().slow_consumers_closed == 1).await;
}

/// A connection's subscription changes are budgeted (`subscribe_rate`): past it each change is
/// refused with an `error` and not made, the connection stays open and regains its budget; a
/// subscribe naming more namespaces than the catalog has is refused.
#[tokio::test(flavor = "multi_thread")]
async fn subscription_changes_are_budgeted_per_connection() {
    let mut config = support::config();
    config.subscribe_rate = ConnectRate {
        burst: 3,
        per_second: 1.0,
    };
    let server = TestServer::with(config).await;
    let mut client = server.connect("a", "admin", &["system"]).await;
    for (kind, reply) in [
        ("subscribe", "subscribed"),
        ("unsubscribe", "unsubscribed"),
        ("subscribe", "subscribed"),
    ] {
        client
            .send_json(json!({"type": kind, "namespaces": ["orders"]}))
            .await;
        assert_eq!(client.next_json().await["type"], reply);
    }
    client
        .send_json(json!({"type": "unsubscribe", "namespaces": ["orders"]}))
        .await;
    let refused = client.next_json().await;
    assert_eq!(refused["code"], "subscribe_rate_exceeded", "{refused}");
    // A refresh spends the same budget (role flips would publish presence events in a loop).
    client
        .send_json(json!({"type": "refresh", "token": server.token("a", "staff")}))
        .await;
    let refused = client.next_json().await;
    assert_eq!(refused["code"], "refresh_refused", "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("too fast"));
    // Not made: `orders` is still subscribed.
    server
        .publish(
            "order:deleted",
            json!({"orderId": "O", "reason": "r"}),
            Value::Null,
        )
        .await;
    assert_eq!(client.next_json().await["type"], "order:deleted");
    // The budget comes back.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    client
        .send_json(json!({"type": "unsubscribe", "namespaces": ["orders"]}))
        .await;
    assert_eq!(client.next_json().await["type"], "unsubscribed");
    let many: Vec<String> = (0..100).map(|i| format!("ns{i}")).collect();
    client
        .send_json(json!({"type": "subscribe", "namespaces": many}))
        .await;
    let refused = client.next_json().await;
    assert_eq!(refused["code"], "invalid_message", "{refused}");
    let (_, metrics) = server.get("/metrics", Some(support::API_KEY)).await;
    assert!(
        metrics.contains("omnicast_subscribes_refused_total 1"),
        "{metrics}"
    );
}
