//! Positions that reveal nothing (the German tank problem): a customer subscribed to `orders`
//! sees its own orders' ids, with staff-only events published in between. From the ids alone it
//! cannot count them: every id is its namespace, the epoch and a seal, and the seals neither
//! follow the stream's order nor resemble each other more when fewer events lie between them.
//! The server, which holds the key, reads the dense offsets back.

mod support;

use serde_json::{Value, json};
use support::{Client, TestServer};

fn status_changed(customer: &str, n: usize) -> Value {
    json!({
        "orderId": format!("o{n}"), "customerId": customer, "customerName": "C",
        "oldStatus": "pending", "newStatus": "processing", "timestamp": 1_700_000_000_000u64
    })
}

fn staff_only(n: usize) -> Value {
    json!({
        "orderId": format!("s{n}"), "customerId": "someone-else", "customerName": "S",
        "total": 10.0, "status": "pending", "channel": "online"
    })
}

async fn ids(client: &mut Client, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    while ids.len() < n {
        let event = client.next_json().await;
        assert_eq!(event["type"], "order:status_changed", "{event}");
        ids.push(event["id"].as_str().unwrap().to_owned());
    }
    ids
}

/// The seal of an id as its 16 bytes.
fn seal(id: &str) -> [u8; 16] {
    use base64::Engine;
    let text = id.rsplit('.').next().unwrap();
    assert_eq!(text.len(), 22, "{id}");
    let mut out = [0u8; 16];
    let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode_slice(text, &mut out)
        .unwrap();
    assert_eq!(n, 16);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn customers_cannot_count_the_events_between_their_own() {
    const ROUNDS: usize = 120;
    let server = TestServer::start().await;
    let mut c1 = server.connect("c1", "customer", &["orders"]).await;
    let mut c2 = server.connect("c2", "customer", &["orders"]).await;
    // Between the customers' events, 0 to 6 staff-only ones (a fixed, uneven pattern).
    let hidden = |round: usize| (round * 7 + round / 3) % 7;
    let mut staff = 0;
    for round in 0..ROUNDS {
        for customer in ["c1", "c2"] {
            server
                .publish(
                    "order:status_changed",
                    status_changed(customer, round),
                    Value::Null,
                )
                .await;
            for _ in 0..hidden(round) {
                server
                    .publish("order:created", staff_only(staff), Value::Null)
                    .await;
                staff += 1;
            }
        }
    }
    let (seen1, seen2) = (ids(&mut c1, ROUNDS).await, ids(&mut c2, ROUNDS).await);

    // What the server reads: dense offsets, the gaps being the hidden events plus one.
    let offsets: Vec<u64> = seen1
        .iter()
        .map(|id| support::position(id).offset)
        .collect();
    for (round, pair) in offsets.windows(2).enumerate() {
        let expected = 2 + hidden(round) as u64 * 2;
        assert_eq!(pair[1] - pair[0], expected, "round {round}");
    }

    // What the customers read: the namespace and the epoch, the same in every id, and a seal.
    let prefix = seen1[0].rsplit_once('.').unwrap().0.to_owned();
    for id in seen1.iter().chain(&seen2) {
        assert_eq!(id.rsplit_once('.').unwrap().0, prefix, "{id}");
        seal(id);
    }
    // The seals do not follow the stream's order: comparing two tells nothing of which came
    // first (about half of the pairs are out of order, as for random strings)...
    let mut all: Vec<(u64, String)> = seen1
        .iter()
        .chain(&seen2)
        .map(|id| (support::position(id).offset, id.clone()))
        .collect();
    all.sort();
    let (mut pairs, mut inverted) = (0u32, 0u32);
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            pairs += 1;
            inverted += u32::from(a.1 > b.1);
        }
    }
    let share = f64::from(inverted) / f64::from(pairs);
    assert!(
        (0.4..0.6).contains(&share),
        "{inverted} of {pairs} pairs inverted"
    );
    // ...and seals of neighbouring positions differ in about half their bits, whether one event
    // or thirteen lie between them, so a closer pair does not look closer.
    let distance = |a: &str, b: &str| -> u32 {
        let (a, b) = (seal(a), seal(b));
        a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
    };
    let (mut near, mut far) = (Vec::new(), Vec::new());
    for (round, pair) in seen1.windows(2).enumerate() {
        let bits = f64::from(distance(&pair[0], &pair[1]));
        if hidden(round) == 0 {
            &mut near
        } else {
            &mut far
        }
        .push(bits);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    for (what, bits) in [("close", &near), ("apart", &far)] {
        assert!(!bits.is_empty(), "{what}");
        let m = mean(bits);
        assert!(
            (54.0..74.0).contains(&m),
            "{what}: {m} bits of 128 differ on average"
        );
    }
}
