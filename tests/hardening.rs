//! The review's findings, each through the public interface of a real server on loopback: token
//! expiry, limits on what one client or user may cost, the publish API's order of checks and its
//! timeouts, the handshake's and the query's refusals, and a shutdown that loses nothing accepted.

mod support;

use std::time::{Duration, Instant};

use omnicast::runtime::{ConnectRate, protocol::close};
use serde_json::{Value, json};
use support::{API_KEY, Client, Ended, TestServer, WAIT};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn sign(claims: Value) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let key = EncodingKey::from_secret(support::SECRET.as_bytes());
    encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
}

/// Asserts a refusal's status and error code.
fn assert_refused((status, body): (u16, Value), expected: (u16, &str)) -> Value {
    assert_eq!(
        (status, body["error"].as_str()),
        (expected.0, Some(expected.1)),
        "{body}"
    );
    body
}

fn now_secs() -> f64 {
    omnicast::runtime::now_ms() as f64 / 1000.0
}

async fn open(server: &TestServer, token: &str) -> Client {
    let mut client = Client::open(&server.ws_url(&format!("token={token}")), &[])
        .await
        .expect("the token is accepted");
    assert_eq!(client.next_json().await["type"], "ready");
    client
}

/// RFC 7519 allows a fraction in `exp`; it is what `time.time() + 3600` produces. Such a token
/// expires on an open connection like any other, at `exp` plus the leeway.
#[tokio::test(flavor = "multi_thread")]
async fn a_fractional_exp_closes_the_connection_at_exp_plus_leeway() {
    let mut config = support::config();
    config.jwt.leeway_secs = 1;
    let server = TestServer::with(config).await;
    let opened = Instant::now();
    let token = sign(json!({"sub": "py", "role": "admin", "exp": now_secs() + 0.5}));
    let mut client = open(&server, &token).await;
    assert_eq!(
        client.ended().await,
        Ended::Closed(close::TOKEN_EXPIRED.code)
    );
    let lived = opened.elapsed();
    assert!(
        lived >= Duration::from_millis(1300),
        "closed after {lived:?}"
    );
}

/// One rule at the handshake and on the open connection: a token inside the leeway is accepted
/// and lives until `exp + leeway`, rather than being accepted only to be closed at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_token_inside_the_leeway_lives_until_exp_plus_leeway() {
    let mut config = support::config();
    config.jwt.leeway_secs = 3;
    let server = TestServer::with(config).await;
    let now = now_secs();
    // Expired a second or two ago (whole seconds, as most issuers write it).
    let exp = now.floor() as u64 - 1;
    let opened = Instant::now();
    let mut client = open(
        &server,
        &sign(json!({"sub": "u", "role": "admin", "exp": exp})),
    )
    .await;
    assert_eq!(
        client.ended().await,
        Ended::Closed(close::TOKEN_EXPIRED.code)
    );
    let expected = Duration::from_secs_f64((exp + 3) as f64 - now);
    let lived = opened.elapsed();
    assert!(
        lived + Duration::from_millis(100) >= expected,
        "closed after {lived:?}, {expected:?} expected"
    );
    // Past the leeway it is refused at the handshake.
    let late = sign(json!({"sub": "u", "role": "admin", "exp": now.floor() as u64 - 5}));
    let (status, body) = support::refused(&server.ws_url(&format!("token={late}")), &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("token_expired"))
    );
}

/// An `exp` beyond any clock neither overflows (a panic in debug builds, after registration) nor
/// expires: the connection works.
#[tokio::test(flavor = "multi_thread")]
async fn an_exp_beyond_any_clock_is_served() {
    let server = TestServer::start().await;
    let mut clients = Vec::new();
    for exp in [json!(18_000_000_000_000_000_000u64), json!(1.8e19)] {
        let token = sign(json!({"sub": "far", "role": "admin", "exp": exp}));
        let mut client = open(&server, &token).await;
        client.send_json(json!({"type": "ping", "id": 1})).await;
        assert_eq!(client.next_json().await, json!({"type": "pong", "id": 1}));
        clients.push(client);
    }
    assert_eq!(server.server.hub().stats().connections, 2);
}

/// The review's item 9: an `exp` that is there but out of range, or not a number, is refused
/// with what is wrong with it, not as "missing".
#[tokio::test(flavor = "multi_thread")]
async fn an_exp_out_of_range_is_refused_as_such() {
    let server = TestServer::start().await;
    for (exp, says) in [
        (json!(1.9e19), "is out of range (1.9e+19)"),
        (json!(1e300), "is out of range (1e+300)"),
        (json!(-5), "is out of range (-5)"),
        (json!("tomorrow"), "is not a number"),
        (Value::Null, "is missing"),
    ] {
        let mut claims = json!({"sub": "u", "role": "admin"});
        if !exp.is_null() {
            claims["exp"] = exp.clone();
        }
        let url = server.ws_url(&format!("token={}", sign(claims)));
        let body = assert_refused(support::refused(&url, &[]).await, (401, "invalid_claims"));
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains("`exp`") && message.contains(says),
            "{exp}: {message}"
        );
    }
}

/// With an audience and an issuer configured, tokens minted for other services that share the
/// secret are refused.
#[tokio::test(flavor = "multi_thread")]
async fn required_audience_and_issuer_refuse_other_services_tokens() {
    let mut config = support::config();
    config.jwt.audiences = vec!["omnicast".into()];
    config.jwt.issuers = vec!["https://auth.example".into()];
    let server = TestServer::with(config).await;
    let exp = now_secs() as u64 + 60;
    let claims = |extra: Value| {
        let mut claims = json!({"sub": "u", "role": "admin", "exp": exp});
        claims
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        sign(claims)
    };
    let cases = [
        (
            "no aud",
            claims(json!({"iss": "https://auth.example"})),
            "invalid_claims",
        ),
        (
            "no iss",
            claims(json!({"aud": "omnicast"})),
            "invalid_claims",
        ),
        (
            "other aud",
            claims(json!({"aud": "billing", "iss": "https://auth.example"})),
            "invalid_token",
        ),
        (
            "other iss",
            claims(json!({"aud": "omnicast", "iss": "https://evil.example"})),
            "invalid_token",
        ),
    ];
    for (what, token, code) in cases {
        let (status, body) = support::refused(&server.ws_url(&format!("token={token}")), &[]).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some(code)),
            "{what}: {body}"
        );
    }
    let good = claims(json!({"aud": ["billing", "omnicast"], "iss": "https://auth.example"}));
    open(&server, &good).await;
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
    let (status, head, _) = raw(&server, &request).await;
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

/// Sends raw bytes and reads the HTTP response.
async fn raw(server: &TestServer, request: &str) -> (u16, String, Value) {
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    support::read_response(&mut stream).await
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
        let (status, _, body) = raw(&server, &request).await;
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

/// The API key is checked from the headers before the body is read: a caller without a key
/// cannot make the server wait for (or buffer) a megabyte.
#[tokio::test(flavor = "multi_thread")]
async fn the_api_key_is_checked_before_the_body_is_read() {
    let server = TestServer::start().await;
    let request = "POST /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong-key-0123456789\r\n\
                   Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{\"type\"";
    let (status, _, body) = raw(&server, request).await;
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
    let (status, _, body) = raw(&server, &request).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (408, Some("request_timeout")),
        "{body}"
    );
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

/// The review's item 8: a service that logs a configuration with `{:?}` shows no secret: not
/// the API keys, the JWT secret, a Redis URL's password, nor an HTTP sink's key.
#[tokio::test]
async fn debug_output_of_public_types_carries_no_secret() {
    use omnicast::CATALOG;
    use omnicast::runtime::{HttpSink, JwtConfig, RedisConfig, RedisSink, ServerConfig};
    const JWT: &str = "debug-jwt-secret-0123456789";
    const KEY: &str = "debug-api-key-0123456789";
    const PASSWORD: &str = "debug-redis-password-0123";
    let config = ServerConfig::new(JwtConfig::hs256(JWT), vec![KEY.to_owned()]);
    let redis = RedisConfig::new(format!("redis://:{PASSWORD}@127.0.0.1:6379/0"));
    let sink = RedisSink::new(&CATALOG, redis.clone()).unwrap();
    let http = HttpSink::new(&CATALOG, "http://127.0.0.1:1", KEY).unwrap();
    let printed = format!("{config:?} {:?} {redis:?} {sink:?} {http:?}", config.jwt);
    for secret in [JWT, KEY, PASSWORD] {
        assert!(!printed.contains(secret), "`{secret}` in {printed}");
    }
    assert!(
        printed.contains("127.0.0.1:6379/0") && printed.contains("<1 keys>"),
        "{printed}"
    );
}
