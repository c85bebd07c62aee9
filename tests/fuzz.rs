//! The fuzz targets (`fuzz/`) without the fuzzer: every seed and every input a fuzzer found
//! (`fuzz/regressions/<target>/`, kept once fixed) replayed through the same target bodies
//! (`omnicast_runtime::server::harness::targets`, `omnicast_codegen::fuzz_catalog`), so what was
//! fixed stays fixed.
//!
//! The seeds are written by this file too: `OMNICAST_FUZZ_SEEDS=1 cargo test --test fuzz`
//! rewrites `fuzz/seeds/` from the examples below, which reach every message kind, route and
//! catalog key.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use omnicast_runtime::position::Position;
use omnicast_runtime::server::PositionKey;
use omnicast_runtime::server::harness::{Harness, client_frame, client_text_frame, targets};
use serde_json::json;

static HARNESS: LazyLock<Harness> = LazyLock::new(|| Harness::new(&omnicast::CATALOG));
static KEY: LazyLock<PositionKey> =
    LazyLock::new(|| PositionKey::derive(Harness::SECRET.as_bytes()));

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Writes the seeds (when asked), then runs every seed and regression of `target` through
/// `body`. Returns how many inputs ran.
fn replay(target: &str, seeds: &[Vec<u8>], body: impl Fn(&[u8])) -> usize {
    let seed_dir = fuzz_dir().join("seeds").join(target);
    if std::env::var_os("OMNICAST_FUZZ_SEEDS").is_some() {
        let _ = std::fs::remove_dir_all(&seed_dir);
        std::fs::create_dir_all(&seed_dir).unwrap();
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(seed_dir.join(format!("seed-{i:02}")), seed).unwrap();
        }
    }
    let mut ran = 0;
    for dir in [seed_dir, fuzz_dir().join("regressions").join(target)] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        paths.sort();
        for path in paths {
            let input = std::fs::read(&path).unwrap();
            eprintln!("replaying {}", path.display());
            body(&input);
            ran += 1;
        }
    }
    assert!(
        ran >= seeds.len(),
        "fuzz/seeds/{target} is missing seeds: rewrite them with `OMNICAST_FUZZ_SEEDS=1 cargo test --test fuzz`"
    );
    ran
}

fn position(namespace: &str, epoch: &str, offset: u64) -> Position {
    Position {
        namespace: namespace.to_owned(),
        epoch: epoch.to_owned(),
        offset,
    }
}

fn request(head: &str, body: &str) -> Vec<u8> {
    format!(
        "{head}\r\nHost: fuzz\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn publish_bodies() -> Vec<String> {
    vec![
        json!({"type": "product:deleted", "data": {"productId": "P"}}).to_string(),
        json!({"type": "order:created", "data": {"orderId": "o-1", "customerId": "c-1", "total": 12.5, "items": []}, "options": {"userIds": ["c-1"]}}).to_string(),
        json!([{"type": "system:maintenance", "data": {"message": "m"}, "options": {"roles": ["admin"], "excludeUserIds": ["u"]}}, {"type": "product:deleted", "data": {"productId": "P"}, "timestamp": 1}]).to_string(),
        json!({"type": "product:deleted", "data": {"productId": "P"}, "options": {"namespace": "products", "excludeSessionIds": ["s"]}}).to_string(),
    ]
}

fn with_role(role: u8, bytes: &[u8]) -> Vec<u8> {
    let mut input = vec![role];
    input.extend_from_slice(bytes);
    input
}

#[test]
fn http() {
    let bearer = format!("Authorization: Bearer {}", Harness::API_KEY);
    let token = omnicast_runtime::server::mint_hs256(Harness::SECRET.as_bytes(), "u", "staff", 60);
    let mut seeds: Vec<Vec<u8>> = publish_bodies()
        .iter()
        .map(|body| {
            request(
                &format!("POST /api/events HTTP/1.1\r\n{bearer}\r\nIdempotency-Key: k-1"),
                body,
            )
        })
        .collect();
    seeds.extend([
        request("GET /healthz HTTP/1.1", ""),
        request("GET /readyz HTTP/1.1", ""),
        request("GET /metrics HTTP/1.1", ""),
        request(&format!("GET /api/positions?namespaces=orders,products HTTP/1.1\r\n{bearer}"), ""),
        request(&format!("POST /api/explain HTTP/1.1\r\n{bearer}"), &json!({"event": {"type": "product:deleted", "data": {"productId": "P"}}, "connection": {"userId": "u", "role": "staff"}}).to_string()),
        request(&format!("POST /api/revocations HTTP/1.1\r\n{bearer}"), r#"{"userId":"u"}"#),
        request(&format!("POST /api/reauthorizations HTTP/1.1\r\n{bearer}"), r#"{"userId":"u","deadlineSecs":5}"#),
        format!("GET /ws?token={token}&namespaces=orders HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://x\r\n\r\n").into_bytes(),
        b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n".to_vec(),
        b"POST /api/events HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_vec(),
    ]);
    let ran = replay("http", &seeds, |input| targets::http(&HARNESS, input));
    assert!(ran >= seeds.len());
}

fn session_messages() -> Vec<String> {
    let since = KEY.seal(&position("orders", "e1", 3));
    vec![
        json!({"type": "subscribe", "namespaces": ["orders", "products"]}).to_string(),
        json!({"type": "subscribe", "namespaces": ["orders"], "since": [since]}).to_string(),
        json!({"type": "unsubscribe", "namespaces": ["products"]}).to_string(),
        json!({"type": "ping"}).to_string(),
        json!({"type": "refresh", "token": omnicast_runtime::server::mint_hs256(Harness::SECRET.as_bytes(), "user-1", "admin", 60)}).to_string(),
        json!({"type": "refresh", "token": "x.y.z"}).to_string(),
    ]
}

#[test]
fn frames() {
    let messages = session_messages();
    let mut seeds = vec![
        with_role(0, &client_text_frame(messages[0].as_bytes())),
        with_role(
            2,
            &[client_frame(0x89, b"hi"), client_frame(0x88, &[0x03, 0xe8])].concat(),
        ),
        // A message in two fragments, then binary, then an unmasked frame.
        with_role(
            3,
            &[
                client_frame(0x01, b"{\"type\":"),
                client_frame(0x80, b"\"ping\"}"),
            ]
            .concat(),
        ),
        with_role(
            1,
            &[client_frame(0x82, &[1, 2, 3]), b"\x81\x02hi".to_vec()].concat(),
        ),
    ];
    seeds.push(with_role(
        1,
        &messages
            .iter()
            .flat_map(|m| client_text_frame(m.as_bytes()))
            .collect::<Vec<_>>(),
    ));
    replay("frames", &seeds, |input| targets::frames(&HARNESS, input));
}

#[test]
fn messages() {
    let messages = session_messages();
    let seeds: Vec<Vec<u8>> = (0..4u8)
        .map(|role| with_role(role, messages.join("\0").as_bytes()))
        .chain(messages.iter().map(|m| with_role(2, m.as_bytes())))
        .collect();
    replay("messages", &seeds, |input| {
        targets::messages(&HARNESS, input)
    });
}

#[test]
fn publish() {
    let seeds: Vec<Vec<u8>> = publish_bodies()
        .into_iter()
        .map(String::into_bytes)
        .collect();
    replay("publish", &seeds, |input| {
        targets::publish(&omnicast::CATALOG, input)
    });
}

#[test]
fn since() {
    let ids = [
        KEY.seal(&position("orders", "e1", 0)),
        KEY.seal(&position("products", "e2", u64::MAX)),
        KEY.seal(&position("system", "e3", 41)),
    ];
    let seeds: Vec<Vec<u8>> = vec![
        ids[0].clone().into_bytes(),
        ids.join(",").into_bytes(),
        format!("{},{}", ids[0], ids[0]).into_bytes(),
        b"orders.e1.3".to_vec(),
    ];
    replay("since", &seeds, |input| {
        targets::since(&omnicast::CATALOG, &KEY, input)
    });
}

#[test]
fn claims() {
    let seeds: Vec<Vec<u8>> = [
        json!({"sub": "u-1", "role": "customer", "exp": 4_000_000_000u64}),
        json!({"sub": "u-1", "role": "admin", "exp": 4_000_000_000.5, "iat": 1, "jti": "t", "sid": "s"}),
        json!({"sub": "u-1", "role": "nobody", "exp": 4_000_000_000u64}),
        json!({"sub": "", "role": "staff", "exp": 1}),
    ]
    .iter()
    .map(|claims| claims.to_string().into_bytes())
    .collect();
    replay("claims", &seeds, |input| {
        targets::claims(&HARNESS, &omnicast::CATALOG, input)
    });
}

#[test]
fn catalog() {
    let events = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("events.yaml")).unwrap();
    let seeds = vec![
        events,
        b"version: 1\nroles: {admin: {description: a}}\nnamespaces: {}\nevents: {}\n".to_vec(),
        b"roles: &a [*a]".to_vec(),
    ];
    replay("catalog", &seeds, omnicast_codegen::fuzz_catalog);
}

/// The harness reaches the real server: a publish is accepted, and a connection gets `ready`
/// and the answers to its messages.
#[test]
fn the_harness_serves_what_the_server_serves() {
    let bearer = format!("Authorization: Bearer {}", Harness::API_KEY);
    let body = &publish_bodies()[0];
    let answer = HARNESS.http(&request(
        &format!("POST /api/events HTTP/1.1\r\n{bearer}"),
        body,
    ));
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 202 "), "{answer}");

    let messages = [
        client_text_frame(json!({"type": "ping"}).to_string().as_bytes()),
        client_text_frame(b"{\"type\": \"subscribe\", \"namespaces\": [\"nowhere\"]}"),
    ]
    .concat();
    let output = HARNESS.websocket("staff", &messages);
    let output = String::from_utf8_lossy(&output);
    assert!(output.starts_with("HTTP/1.1 101 "), "{output}");
    for expected in [
        r#""type":"ready""#,
        r#""type":"pong""#,
        r#""code":"unknown_namespace""#,
    ] {
        assert!(output.contains(expected), "no {expected} in {output}");
    }
}
