//! The WebSocket protocol as the server speaks it: the handshake it answers itself, client
//! messages and their errors, frames no client library would send, pings (protocol and JSON),
//! fragmented messages, malformed queries, the idle timeout, `/healthz`, and shutdown.

mod support;

use std::time::Duration;

use omnicast::runtime::protocol::close;
use serde_json::{Value, json};
use support::{API_KEY, Ended, TestServer, WAIT, assert_refused, exchange, marker};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread")]
async fn bad_frames_get_errors_and_the_connection_lives_on() {
    let server = TestServer::start().await;
    let mut client = server.connect("a", "admin", &[]).await;
    let cases = [
        ("{not json", "invalid_json"),
        (r#"{"type": "dance"}"#, "invalid_message"),
        (r#"{"type": "subscribe"}"#, "invalid_message"),
        (
            r#"{"type": "subscribe", "namespaces": "orders"}"#,
            "invalid_message",
        ),
        (r#"{"type": "ping", "extra": 1}"#, "invalid_message"),
        ("[]", "invalid_message"),
    ];
    for (frame, code) in cases {
        client.send_text(frame).await;
        let reply = client.next_json().await;
        assert_eq!(
            (reply["type"].as_str(), reply["code"].as_str()),
            (Some("error"), Some(code)),
            "{frame}: {reply}"
        );
    }
    client.send_binary(vec![1, 2, 3]).await;
    let reply = client.next_json().await;
    assert_eq!(reply["code"], "binary_not_supported");
    client.send_json(json!({"type": "ping", "id": 7})).await;
    assert_eq!(client.next_json().await, json!({"type": "pong", "id": 7}));

    // Over the limit (64 KiB by default): closed with 1009.
    client.send_text(&"x".repeat(70 * 1024)).await;
    assert_eq!(
        client.ended().await,
        Ended::Closed(close::MESSAGE_TOO_BIG.code)
    );
}

/// A ping's `id` is a number or a short string; anything else is an error, not an echo.
#[tokio::test(flavor = "multi_thread")]
async fn a_ping_id_is_a_number_or_a_short_string() {
    let server = TestServer::start().await;
    let mut client = server.connect("a", "admin", &["system"]).await;
    let longest = "x".repeat(omnicast::runtime::protocol::MAX_PING_ID_LEN);
    for id in [json!(7), json!(2.5), json!(longest)] {
        client.send_json(json!({"type": "ping", "id": id})).await;
        assert_eq!(client.next_json().await, json!({"type": "pong", "id": id}));
    }
    let too_long = "x".repeat(omnicast::runtime::protocol::MAX_PING_ID_LEN + 1);
    for id in [json!({"a": 1}), json!([1, 2]), json!(true), json!(too_long)] {
        client.send_json(json!({"type": "ping", "id": id})).await;
        let reply = client.next_json().await;
        assert_eq!(reply["type"], "error", "{id}: {reply}");
        assert_eq!(reply["code"], "invalid_message", "{reply}");
    }
}

/// The runtime answers the WebSocket handshake itself: anything but a version-13 upgrade is
/// refused with what was expected, and a browser's `Connection: keep-alive, Upgrade` is taken,
/// answered with RFC 6455's accept key.
#[tokio::test]
async fn requests_that_are_not_websocket_handshakes_are_refused() {
    let server = TestServer::start().await;
    let token = server.token("u", "admin");
    let request = |headers: &str| {
        format!("GET /ws?token={token} HTTP/1.1\r\nHost: omnicast.test\r\n{headers}\r\n")
    };
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let upgrade = "Connection: Upgrade\r\nUpgrade: websocket\r\n";
    let cases = [
        ("a plain GET", request(""), 426),
        (
            "another protocol",
            request(&format!(
                "Connection: Upgrade\r\nUpgrade: h2c\r\nSec-WebSocket-Version: 13\r\n{key}"
            )),
            426,
        ),
        (
            "version 8",
            request(&format!("{upgrade}Sec-WebSocket-Version: 8\r\n{key}")),
            426,
        ),
        (
            "no key",
            request(&format!("{upgrade}Sec-WebSocket-Version: 13\r\n")),
            400,
        ),
    ];
    for (case, request, expected) in cases {
        let (status, head, body) = exchange(server.addr, &request).await;
        assert_eq!(status, expected, "{case}: {head}");
        assert_eq!(body["error"], "not_websocket", "{case}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{case}"
        );
        if expected == 426 {
            assert!(head.contains("sec-websocket-version: 13"), "{case}: {head}");
        }
    }

    let browser = request(&format!(
        "Connection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\nSec-WebSocket-Version: 13\r\n{key}"
    ));
    let (status, head, _) = exchange(server.addr, &browser).await;
    assert_eq!(status, 101, "{head}");
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
}

/// Protocol-level pings are answered with the same payload, and a text message split into
/// continuation frames is handled as one.
#[tokio::test]
async fn pings_are_answered_and_fragmented_messages_reassembled() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

    let server = TestServer::start().await;
    let mut client = server.connect("u", "admin", &[]).await;
    client
        .ws
        .send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    let pong = loop {
        let message = tokio::time::timeout(support::WAIT, client.ws.next())
            .await
            .expect("a pong in time")
            .unwrap()
            .unwrap();
        if let Message::Pong(payload) = message {
            break payload;
        }
    };
    assert_eq!(&pong[..], b"are you there");

    let text = r#"{"type": "ping", "id": "in three parts"}"#;
    let parts = [
        (&text[..5], OpCode::Data(Data::Text), false),
        (&text[5..20], OpCode::Data(Data::Continue), false),
        (&text[20..], OpCode::Data(Data::Continue), true),
    ];
    for (part, opcode, last) in parts {
        let frame = Frame::message(part.as_bytes().to_vec(), opcode, last);
        client.ws.send(Message::Frame(frame)).await.unwrap();
    }
    assert_eq!(
        client.next_json().await,
        json!({"type": "pong", "id": "in three parts"})
    );
}

/// Frames no client library would send are refused with the RFC's close codes, each on its own
/// connection, and the server serves everyone else on. What the client asked before the bad
/// frame is answered first, even when both arrive in one segment; after the close frame the
/// server closes its side of TCP without waiting for the client's close (RFC 6455, 7.1.7).
#[tokio::test]
async fn malformed_frames_close_with_the_protocol_codes() {
    let server = TestServer::start().await;
    // Masked frames carry a four-byte key; a zero key leaves the payload as written.
    let masked = |first: u8, payload: &[u8]| {
        let mut frame = vec![first, 0x80 | payload.len() as u8, 0, 0, 0, 0];
        frame.extend_from_slice(payload);
        frame
    };
    let mut long_ping = vec![0x89, 0x80 | 126, 0, 200, 0, 0, 0, 0];
    long_ping.extend_from_slice(&[b'p'; 200]);
    let cases = [
        ("an unmasked frame", vec![0x81, 0x02, b'h', b'i'], 1002),
        ("a reserved bit", masked(0xC1, b"hi"), 1002),
        ("an unknown opcode", masked(0x83, b""), 1002),
        ("a control frame over 125 bytes", long_ping, 1002),
        ("text that is not UTF-8", masked(0x81, &[0xff, 0xfe]), 1007),
    ];
    for (case, bytes, code) in cases {
        let token = server.token(&format!("raw {case}"), "admin");
        let mut raw = support::RawClient::connect(server.addr, &token).await;
        raw.send_raw(&[masked(0x81, br#"{"type":"ping"}"#), bytes].concat())
            .await;
        let (texts, close) = raw.until_close().await;
        assert_eq!(close, code, "{case}");
        assert!(
            texts
                .first()
                .is_some_and(|t| t.contains(r#""type":"ready""#)),
            "{case}: {texts:?}"
        );
        assert!(
            texts.last().is_some_and(|t| t == r#"{"type":"pong"}"#),
            "{case}: {texts:?}"
        );
        // The server's FIN comes at once; the close grace (5 s) would end it otherwise.
        let started = std::time::Instant::now();
        raw.read_to_end().await;
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "{case}: no FIN"
        );
    }
    let mut fine = server.connect("fine", "admin", &["system"]).await;
    marker(&server, "still serving").await;
    assert!(fine.events_until("still serving").await.is_empty());
}

/// A handshake whose key is not 16 base64 bytes is refused; so is a query naming a parameter
/// twice, with the API's JSON error rather than plain text.
#[tokio::test(flavor = "multi_thread")]
async fn malformed_keys_and_queries_get_json_errors() {
    let server = TestServer::start().await;
    let token = server.token("u", "admin");
    for key in [
        "",
        "short",
        "not base64 at all!!!!!==",
        "dGhlIHNhbXBsZSBub25jZR==",
        "dGhlIHNhbXBsZSBub25jZQ",
    ] {
        let request = format!(
            "GET /ws?token={token} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
        );
        let (status, _, body) = exchange(server.addr, &request).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("not_websocket")),
            "key `{key}`"
        );
    }
    let url = server.ws_url(&format!("token={token}&token={token}"));
    let body = assert_refused(support::refused(&url, &[]).await, (400, "invalid_request"));
    assert!(
        body["message"].as_str().unwrap().contains("token"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_client_is_closed_after_the_idle_timeout() {
    let mut config = support::config();
    config.heartbeat_interval = std::time::Duration::from_millis(200);
    config.idle_timeout = std::time::Duration::from_millis(600);
    let server = TestServer::with(config).await;
    let mut responsive = server.connect("r", "admin", &["system"]).await;
    // A raw client that completes the handshake and then never answers a ping.
    let mut silent = support::RawClient::connect(server.addr, &server.token("s", "admin")).await;
    let reading = async {
        loop {
            let _ = responsive.next_json().await;
        }
    };
    let code = tokio::select! {
        code = silent.close_code() => code,
        () = reading => unreachable!(),
    };
    assert_eq!(code, close::IDLE_TIMEOUT.code);
    // The responsive client, which answered every ping, is still served.
    responsive.send_json(json!({"type": "ping"})).await;
    assert_eq!(responsive.next_json().await, json!({"type": "pong"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_health_check_reports_counters() {
    let server = TestServer::start().await;
    let _client = server.connect("a", "admin", &[]).await;
    let url = format!("http://{}/healthz", server.addr);
    let body: Value = tokio::task::spawn_blocking(move || {
        ureq::get(&url)
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["stats"]["connections"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn graceful_shutdown_closes_every_client_with_going_away() {
    let server = TestServer::start().await;
    let mut one = server.connect("a", "admin", &[]).await;
    let mut two = server.connect("c", "customer", &[]).await;
    let hub = server.server.hub().clone();
    let shutdown = tokio::spawn(server.shutdown());
    assert_eq!(one.ended().await, Ended::Closed(close::GOING_AWAY.code));
    assert_eq!(two.ended().await, Ended::Closed(close::GOING_AWAY.code));
    tokio::time::timeout(support::WAIT, shutdown)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hub.stats().connections, 0);
}

/// Shutdown loses nothing it accepted: a client that reads slowly, with far more queued for it
/// than the socket buffers hold, receives every event answered 202, then 1001.
#[tokio::test(flavor = "multi_thread")]
async fn shutdown_delivers_every_accepted_event_before_closing() {
    let server = TestServer::start().await;
    let mut slow = server.connect("slow", "admin", &["system"]).await;
    let big = "z".repeat(64 * 1024);
    let mut ids = Vec::new();
    for i in 0..200 {
        let id = server
            .publish(
                "system:maintenance",
                json!({"message": format!("{i} {big}")}),
                Value::Null,
            )
            .await;
        ids.push(id);
    }
    let shutdown = tokio::spawn(server.shutdown());
    let mut got = Vec::new();
    for _ in 0..ids.len() {
        got.push(slow.next_json().await["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(got, ids);
    assert_eq!(slow.ended().await, Ended::Closed(close::GOING_AWAY.code));
    tokio::time::timeout(WAIT, shutdown).await.unwrap().unwrap();
}

/// During shutdown new publishes are refused with 503, while one already being received
/// finishes, is answered 202 and delivered before the close.
#[tokio::test(flavor = "multi_thread")]
async fn shutdown_refuses_new_publishes_and_finishes_those_in_flight() {
    let server = TestServer::start().await;
    let mut client = server.connect("a", "admin", &["system"]).await;
    let body = json!({"type": "system:maintenance", "data": {"message": "in flight"}}).to_string();
    let (head, tail) = body.split_at(10);
    let mut in_flight = TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "POST /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{head}",
        body.len()
    );
    in_flight.write_all(request.as_bytes()).await.unwrap();
    // The handler is running (reading the body) once the connection counts as in flight; the
    // health check's view of it is the only one a client has, so wait for the shutdown flag.
    let addr = server.addr;
    let stats = || {
        let url = format!("http://{addr}/healthz");
        async move {
            tokio::task::spawn_blocking(move || {
                let mut response = ureq::get(&url).call().unwrap();
                response.body_mut().read_json::<Value>().unwrap()
            })
            .await
            .unwrap()
        }
    };
    assert_eq!(stats().await["status"], "ok");
    let (status, _) = server.post(Some(API_KEY), body.clone()).await;
    assert_eq!(status, 202, "before the shutdown");
    let (tx, rx) = tokio::sync::oneshot::channel::<TestServer>();
    let shutdown = tokio::spawn(async move { rx.await.unwrap().shutdown().await });
    let waiting = async {
        loop {
            if stats().await["status"] == "shutting_down" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let probe = server.addr;
    let events = omnicast::Events::new(server.server.publisher());
    tx.send(server).ok().unwrap();
    tokio::time::timeout(WAIT, waiting).await.unwrap();
    // Typed emitters in the same process are refused too, rather than told a lost event is sent.
    let typed = omnicast::MaintenancePayload {
        message: "typed".into(),
        scheduled_at: None,
        duration: None,
    };
    assert!(matches!(
        events.system_maintenance(typed).send().await,
        Err(omnicast::runtime::PublishError::ShuttingDown)
    ));
    let late = json!({"type": "system:maintenance", "data": {"message": "late"}}).to_string();
    let request = format!(
        "POST /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{late}",
        late.len()
    );
    let mut stream = TcpStream::connect(probe).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let (status, _, reply) = support::read_response(&mut stream).await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (503, Some("shutting_down"))
    );
    drop(stream);

    in_flight.write_all(tail.as_bytes()).await.unwrap();
    let (status, _, reply) = support::read_response(&mut in_flight).await;
    assert_eq!(status, 202, "{reply}");
    drop(in_flight);
    let messages: Vec<Value> = vec![client.next_json().await, client.next_json().await];
    assert!(
        messages.iter().all(|m| m["data"]["message"] == "in flight"),
        "{messages:?}"
    );
    assert_eq!(messages[1]["id"], reply["id"]);
    assert_eq!(client.ended().await, Ended::Closed(close::GOING_AWAY.code));
    tokio::time::timeout(WAIT, shutdown).await.unwrap().unwrap();
}

/// Every kind of message the server writes matches the schema `omnicast gen` publishes for it,
/// and what the Rust client writes matches the client messages' schema: the protocol's types,
/// their schemas and the generated reference cannot drift apart unnoticed.
#[tokio::test(flavor = "multi_thread")]
async fn every_message_matches_the_published_schemas() {
    use omnicast::runtime::protocol::{ClientMessage, PingId};
    use support::schema::check;

    let server = TestServer::start().await;
    let (mut client, ready) = server.open("c-1", "customer", "namespaces=payments").await;
    let mut seen = vec![("control-message.json", ready)];
    let id = server
        .publish("payment:received", support::payment(1, "c-1"), Value::Null)
        .await;
    seen.push(("envelope.json", client.next_json().await));

    let (mut resumed, ready) = server
        .open(
            "c-1",
            "customer",
            &format!("namespaces=payments&since={id}"),
        )
        .await;
    seen.push(("control-message.json", ready));
    let messages = [
        json!({"type": "unsubscribe", "namespaces": ["payments"]}),
        json!({"type": "subscribe", "namespaces": ["payments", "system"], "since": [id]}),
        json!({"type": "ping", "id": "p-1"}),
        json!({"type": "ping"}),
        json!({"type": "subscribe", "namespaces": ["nowhere"]}),
    ];
    for message in messages {
        resumed.send_json(message).await;
        seen.push(("control-message.json", resumed.next_json().await));
    }
    resumed.send_text("{not json").await;
    seen.push(("control-message.json", resumed.next_json().await));
    let kinds: Vec<&str> = seen
        .iter()
        .filter_map(|(_, m)| m["type"].as_str())
        .collect();
    for kind in [
        "ready",
        "subscribed",
        "unsubscribed",
        "pong",
        "error",
        "payment:received",
    ] {
        assert!(kinds.contains(&kind), "no `{kind}` among {kinds:?}");
    }
    assert!(
        seen.iter().any(|(_, m)| m["recovered"].is_object()),
        "{seen:?}"
    );
    for (file, message) in &seen {
        check(file, message).unwrap_or_else(|e| panic!("{file}: {e}"));
    }

    let sent = [
        ClientMessage::Subscribe {
            namespaces: vec!["payments".into()],
            since: vec![id.clone()],
        },
        ClientMessage::Subscribe {
            namespaces: vec!["system".into()],
            since: vec![],
        },
        ClientMessage::Unsubscribe {
            namespaces: vec!["orders".into()],
        },
        ClientMessage::Ping {
            id: Some(PingId::Number(7.into())),
        },
        ClientMessage::Ping { id: None },
    ];
    for message in sent {
        let value: Value = serde_json::from_str(&message.to_json()).unwrap();
        check("client-message.json", &value).unwrap_or_else(|e| panic!("{value}: {e}"));
    }

    // The checker can tell: each of these breaks the schema in one way.
    let (_, ready) = &seen[0];
    let mut broken = Vec::new();
    for field in ["sessionId", "positions"] {
        let mut without = ready.clone();
        without.as_object_mut().unwrap().remove(field);
        broken.push(("control-message.json", without));
    }
    let mut wrong_role = ready.clone();
    wrong_role["role"] = json!("root");
    broken.push(("control-message.json", wrong_role));
    let mut undocumented = ready.clone();
    undocumented["node"] = json!("n-1");
    broken.push(("control-message.json", undocumented));
    let (_, event) = &seen[1];
    let mut wrong_data = event.clone();
    wrong_data["data"]["paymentId"] = json!(1);
    broken.push(("envelope.json", wrong_data));
    broken.push(("client-message.json", json!({"type": "ping", "id": true})));
    broken.push(("client-message.json", json!({"type": "ping", "extra": 1})));
    for (file, message) in broken {
        assert!(check(file, &message).is_err(), "{file} took {message}");
    }
}
