//! Who may connect: tokens (signature, algorithms, claims, `exp` and its leeway, audiences and
//! issuers, public keys), browser origins and the refusals a browser can read, and secrets that
//! never show in `Debug` output.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use omnicast::runtime::protocol::close;
use serde_json::{Value, json};
use support::{Client, Ended, TestServer, assert_refused, exchange, refused, sign};

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

async fn open(server: &TestServer, token: &str) -> Client {
    let mut client = Client::open(&server.ws_url(&format!("token={token}")), &[])
        .await
        .expect("the token is accepted");
    assert_eq!(client.next_json().await["type"], "ready");
    client
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_tokens_are_refused_before_the_upgrade() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let server = TestServer::start().await;
    let now = now_secs() as u64;
    let sign = |claims: Value, secret: &str| {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let good = json!({"sub": "u", "role": "admin", "exp": now + 60});
    let unsigned = {
        let part = |v: Value| base64url(v.to_string().as_bytes());
        format!(
            "{}.{}.",
            part(json!({"alg": "none", "typ": "JWT"})),
            part(good.clone())
        )
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("malformed", "not-a-jwt".into(), "invalid_token"),
        (
            "bad signature",
            sign(good.clone(), "another-secret-0123456789"),
            "invalid_token",
        ),
        ("alg none", unsigned, "invalid_token"),
        (
            "expired",
            sign(
                json!({"sub": "u", "role": "admin", "exp": now - 120}),
                support::SECRET,
            ),
            "token_expired",
        ),
        (
            "not yet valid",
            sign(
                json!({"sub": "u", "role": "admin", "exp": now + 600, "nbf": now + 300}),
                support::SECRET,
            ),
            "token_not_yet_valid",
        ),
        (
            "no exp",
            sign(json!({"sub": "u", "role": "admin"}), support::SECRET),
            "invalid_claims",
        ),
        (
            "no sub",
            sign(json!({"role": "admin", "exp": now + 60}), support::SECRET),
            "invalid_claims",
        ),
        (
            "role not a string",
            sign(
                json!({"sub": "u", "role": 3, "exp": now + 60}),
                support::SECRET,
            ),
            "invalid_claims",
        ),
        (
            "unknown role",
            sign(
                json!({"sub": "u", "role": "root", "exp": now + 60}),
                support::SECRET,
            ),
            "unknown_role",
        ),
    ];
    for (what, token, code) in cases {
        let (status, body) = refused(&server.ws_url(&format!("token={token}")), &[]).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some(code)),
            "{what}: {body}"
        );
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}"
        );
        let header = format!("Bearer {token}");
        let (status, _) = refused(&server.ws_url(""), &[("Authorization", &header)]).await;
        assert_eq!(status, 401, "{what} in the header");
    }
    let (status, body) = refused(&server.ws_url(""), &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("missing_token"))
    );

    // The same token is accepted in the header and in the query.
    let token = sign(good, support::SECRET);
    let header = format!("Bearer {token}");
    support::Client::open(&server.ws_url(""), &[("Authorization", &header)])
        .await
        .expect("header token");
    support::Client::open(&server.ws_url(&format!("token={token}")), &[])
        .await
        .expect("query token");
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_token_closes_the_connection() {
    let mut config = support::config();
    config.jwt.leeway_secs = 0;
    let server = TestServer::with(config).await;
    let token = omnicast::runtime::mint_hs256(support::SECRET.as_bytes(), "u", "admin", 1);
    let mut client = support::Client::open(&server.ws_url(&format!("token={token}")), &[])
        .await
        .unwrap();
    assert_eq!(client.next_json().await["type"], "ready");
    assert_eq!(
        client.ended().await,
        Ended::Closed(close::TOKEN_EXPIRED.code)
    );
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

/// Test-only key pairs (tests/fixtures, generated with openssl): public-key tokens are accepted,
/// and a token signed any other way (HS256 with the public key as secret, the other curve) is not.
#[tokio::test(flavor = "multi_thread")]
async fn rs256_and_es256_public_keys_verify_tokens() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    use omnicast::runtime::JwtKey;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let read = |name: &str| std::fs::read(fixtures.join(name)).unwrap();
    let claims = json!({"sub": "u", "role": "staff", "exp": now_secs() as u64 + 60});
    for (algorithm, public, private) in [
        (Algorithm::ES256, "es256-public.pem", "es256-private.pem"),
        (Algorithm::RS256, "rs256-public.pem", "rs256-private.pem"),
    ] {
        let mut config = support::config();
        config.jwt.key = match algorithm {
            Algorithm::ES256 => JwtKey::Es256PublicPem(read(public)),
            _ => JwtKey::Rs256PublicPem(read(public)),
        };
        let server = TestServer::with(config).await;
        let key = match algorithm {
            Algorithm::ES256 => EncodingKey::from_ec_pem(&read(private)).unwrap(),
            _ => EncodingKey::from_rsa_pem(&read(private)).unwrap(),
        };
        let token = encode(&Header::new(algorithm), &claims, &key).unwrap();
        let mut client = support::Client::open(&server.ws_url(&format!("token={token}")), &[])
            .await
            .expect("signed token");
        assert_eq!(client.next_json().await["role"], "staff");

        let confused = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&read(public)),
        )
        .unwrap();
        let (status, body) = refused(&server.ws_url(&format!("token={confused}")), &[]).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_token")),
            "{algorithm:?}: {body}"
        );
        let hs = omnicast::runtime::mint_hs256(support::SECRET.as_bytes(), "u", "staff", 60);
        assert_eq!(
            refused(&server.ws_url(&format!("token={hs}")), &[]).await.0,
            401
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_origin_allowlist_refuses_other_browsers() {
    let mut config = support::config();
    config.allowed_origins = vec!["https://shop.example".into()];
    let server = TestServer::with(config).await;
    let url = server.ws_url(&format!("token={}", server.token("a", "admin")));
    let (status, body) = refused(&url, &[("Origin", "https://evil.example")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("origin_not_allowed"))
    );
    support::Client::open(&url, &[("Origin", "https://shop.example")])
        .await
        .expect("allowed origin");
    support::Client::open(&url, &[])
        .await
        .expect("non-browser clients send no Origin");
}

/// The review's item 10: a handshake with two `Origin` headers is refused, whichever comes first
/// (only the first was checked).
#[tokio::test(flavor = "multi_thread")]
async fn two_origin_headers_are_refused() {
    let mut config = support::config();
    config.allowed_origins = vec!["https://shop.example".into()];
    let server = TestServer::with(config).await;
    let token = server.token("a", "admin");
    for (first, second) in [
        ("https://shop.example", "https://evil.example"),
        ("https://shop.example", "https://shop.example"),
    ] {
        let request = format!(
            "GET /ws?token={token} HTTP/1.1\r\nHost: x\r\nOrigin: {first}\r\nOrigin: {second}\r\n\
             Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        let (status, _, body) = exchange(server.addr, &request).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{first}, {second}: {body}"
        );
    }
}

/// A browser learns why its WebSocket was refused by asking the same URL with `fetch`: the
/// refusal carries `Access-Control-Allow-Origin` for an allowed origin, never for another.
#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_is_readable_by_an_allowed_origin() {
    let mut config = support::config();
    config.allowed_origins = vec!["https://shop.example".into()];
    let server = TestServer::with(config).await;
    let ask = |origin: &str| {
        format!(
            "GET /ws?token=not-a-jwt HTTP/1.1\r\nHost: x\r\nOrigin: {origin}\r\nConnection: close\r\n\r\n"
        )
    };
    let (status, head, body) = exchange(server.addr, &ask("https://shop.example")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );
    assert!(
        head.contains("access-control-allow-origin: https://shop.example"),
        "{head}"
    );
    let (status, head, _) = exchange(server.addr, &ask("https://evil.example")).await;
    assert_eq!(status, 403);
    assert!(!head.contains("access-control-allow-origin"), "{head}");
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
