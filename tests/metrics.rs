//! `GET /metrics` scraped from a real server while a scenario runs: the numbers move as the
//! scenario says (N events a role may not see → that role's refusals grow by N × its
//! connections), the text passes `promtool check metrics` (Debian's `prometheus` package), and
//! nothing is shown without an API key.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use support::{API_KEY, TestServer, payment, wait_until};

/// The samples of an exposition: `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (key, value) = l.rsplit_once(' ').expect("`name value`");
            (key.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

async fn scrape(server: &TestServer) -> (String, BTreeMap<String, f64>) {
    let (status, text) = server.get("/metrics", Some(API_KEY)).await;
    assert_eq!(status, 200, "{text}");
    let parsed = samples(&text);
    (text, parsed)
}

fn get(samples: &BTreeMap<String, f64>, key: &str) -> f64 {
    samples.get(key).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_numbers_move_as_the_scenario_says() {
    let server = TestServer::start().await;
    let (_, before) = scrape(&server).await;

    // On payments: an admin, two staff (who may see no payment), the owner and another customer.
    let _admin = server.connect("boss", "admin", &["payments"]).await;
    let _staff: Vec<_> = futures_util::future::join_all(
        ["s1", "s2"].map(|s| server.connect(s, "staff", &["payments"])),
    )
    .await;
    let _owner = server.connect("c-1", "customer", &["payments"]).await;
    let _other = server.connect("c-2", "customer", &["payments"]).await;

    let n = 5;
    for i in 0..n {
        server
            .publish("payment:received", payment(i, "c-1"), Value::Null)
            .await;
    }
    // One more, to the admin only (`userIds`), and one with the owner excluded.
    server
        .publish(
            "payment:received",
            payment(9, "c-1"),
            json!({"userIds": ["boss"]}),
        )
        .await;
    server
        .publish(
            "payment:received",
            payment(10, "c-1"),
            json!({"excludeUserIds": ["c-1"]}),
        )
        .await;
    let (status, _) = server
        .post(
            Some(API_KEY),
            json!({"type": "payment:received", "data": {}}).to_string(),
        )
        .await;
    assert_eq!(status, 422);

    wait_until(|| server.server.hub().stats().published >= n as u64 + 2).await;
    let (text, after) = scrape(&server).await;
    let grew = |key: &str| get(&after, key) - get(&before, key);
    let event = "event=\"payment:received\"";
    let refused = |reason: &str| {
        grew(&format!(
            "omnicast_not_delivered_total{{{event},reason=\"{reason}\"}}"
        ))
    };
    let n = n as f64;
    // Staff may not see payments at all: 2 connections × every event.
    assert_eq!(refused("role"), 2.0 * (n + 2.0), "{text}");
    // The other customer owns none of them; with `userIds`, the owner's connection is not named
    // either (and the other customer's is counted there, not as not the owner).
    assert_eq!(refused("not_owner"), n + 1.0, "{text}");
    assert_eq!(refused("not_named_user"), 2.0, "{text}");
    assert_eq!(refused("excluded_user"), 1.0, "{text}");
    // Admin and owner get the plain five; the admin the named one; the admin the last one.
    assert_eq!(
        grew(&format!("omnicast_deliveries_total{{{event}}}")),
        2.0 * n + 2.0,
        "{text}"
    );
    assert_eq!(
        grew(&format!(
            "omnicast_events_published_total{{{event},outcome=\"accepted\"}}"
        )),
        n + 2.0
    );
    assert_eq!(
        grew("omnicast_events_published_total{event=\"unknown\",outcome=\"invalid_data\"}")
            + grew(
                "omnicast_events_published_total{event=\"unknown\",outcome=\"invalid_payload\"}"
            ),
        1.0,
        "{text}"
    );
    assert_eq!(
        get(&after, "omnicast_connections{role=\"staff\"}"),
        2.0,
        "{text}"
    );
    assert_eq!(get(&after, "omnicast_connections{role=\"customer\"}"), 2.0);
    assert_eq!(
        get(&after, "omnicast_subscriptions{namespace=\"payments\"}"),
        5.0
    );
    assert!(
        grew("omnicast_publish_request_duration_seconds_count") >= n + 2.0,
        "{text}"
    );
    assert!(
        grew("omnicast_fanout_duration_seconds_count") >= n + 2.0,
        "{text}"
    );

    // A refused handshake and a normal close.
    let refused = support::refused(&server.ws_url("token=nonsense"), &[]).await;
    assert_eq!(refused.0, 401);
    let mut leaving = server.connect("c-3", "customer", &[]).await;
    leaving.ws.close(None).await.unwrap();
    let _ = leaving.ended().await;
    let closes = "omnicast_connections_closed_total{code=\"1000\",reason=\"bye\"}";
    let mut after_close = BTreeMap::new();
    for _ in 0..200 {
        after_close = scrape(&server).await.1;
        if get(&after_close, closes) > get(&before, closes) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(get(&after_close, closes) - get(&before, closes), 1.0);
    assert_eq!(
        get(
            &after_close,
            "omnicast_connects_refused_total{reason=\"invalid_token\"}"
        ) - get(
            &before,
            "omnicast_connects_refused_total{reason=\"invalid_token\"}"
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn promtool_accepts_the_text_and_a_scrape_needs_a_key() {
    let server = TestServer::start().await;
    let _admin = server.connect("boss", "admin", &[]).await;
    server
        .publish("payment:received", payment(1, "c-1"), Value::Null)
        .await;
    let (text, _) = scrape(&server).await;
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs: `apt-get install -y prometheus`");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = promtool.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // No user or session id is ever a label.
    assert!(!text.contains("boss"), "{text}");

    for key in [None, Some("wrong")] {
        let (status, body) = server.get("/metrics", key).await;
        assert_eq!(status, 401, "{body}");
        assert!(!body.contains("omnicast_"), "{body}");
    }
}
