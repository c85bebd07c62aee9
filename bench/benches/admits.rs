//! The per-recipient decision (`Audience::admits`), per rule kind: what each subscriber of a
//! namespace costs the hub once a publication's audience is prepared. Each case decides for
//! `SUBSCRIBERS` connections (roles and users in turn, as a namespace's subscribers would be)
//! and reports the time per decision (criterion's throughput is elements: subscribers).
//!
//! `cargo bench -p omnicast-bench --bench admits` (about a minute).

// `criterion_group!` defines an undocumented function.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use omnicast::CATALOG;
use omnicast::runtime::delivery::Audience;
use omnicast::runtime::{EmitOptions, OutgoingEvent};
use serde_json::value::RawValue;

const SUBSCRIBERS: usize = 1_000;

/// One subscriber: its role and the user and session the decision may ask for.
struct Subscriber {
    role: u32,
    user: String,
    session: String,
}

fn subscribers(role: &str) -> Vec<Subscriber> {
    let role = CATALOG.role_index(role).expect("a role of the catalog");
    (0..SUBSCRIBERS)
        .map(|i| Subscriber {
            role,
            user: format!("user-{i}"),
            session: format!("ses_{i:016}"),
        })
        .collect()
}

fn event(name: &str, data: &str, options: EmitOptions) -> OutgoingEvent {
    let data = RawValue::from_string(data.to_owned()).expect("JSON");
    CATALOG.decode(name, &data, options).expect("a valid event")
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{}", i * 97)).collect()
}

fn cases() -> Vec<(&'static str, OutgoingEvent, Vec<Subscriber>)> {
    let payment = r#"{"paymentId":"PAY-1","orderId":"ORD-1","customerId":"user-7","amount":15,
        "method":"credit_card","status":"success"}"#;
    let notice = r#"{"title":"t","message":"m","severity":"info","targetRoles":["admin"]}"#;
    let maintenance = r#"{"message":"read-only for a while"}"#;
    let only = |users: Vec<String>| EmitOptions {
        user_ids: Some(users),
        ..EmitOptions::default()
    };
    let without = |users: Vec<String>, sessions: Vec<String>| EmitOptions {
        exclude_user_ids: users,
        exclude_session_ids: sessions,
        ..EmitOptions::default()
    };
    vec![
        // Rule 2 alone: every subscriber's role may see it, nothing else asked.
        (
            "broadcast_by_role",
            event("system:maintenance", maintenance, EmitOptions::default()),
            subscribers("staff"),
        ),
        // Rule 2 refusing: the payload's target roles leave the subscribers' role out.
        (
            "target_roles",
            event("system:notification", notice, EmitOptions::default()),
            subscribers("staff"),
        ),
        // Rule 3: customers see a payment only as its owner.
        (
            "ownership",
            event("payment:received", payment, EmitOptions::default()),
            subscribers("customer"),
        ),
        // Rule 4: `userIds` naming 10 users.
        (
            "user_ids_10",
            event("system:maintenance", maintenance, only(ids("user-", 10))),
            subscribers("staff"),
        ),
        // Rule 4: 5 users and 5 sessions excluded.
        (
            "exclusions_5_5",
            event(
                "system:maintenance",
                maintenance,
                without(ids("user-", 5), ids("ses_", 5)),
            ),
            subscribers("staff"),
        ),
    ]
}

fn admits(c: &mut Criterion) {
    let mut group = c.benchmark_group("admits");
    group.throughput(Throughput::Elements(SUBSCRIBERS as u64));
    for (name, event, subscribers) in cases() {
        let audience = Audience::of(&CATALOG, &event);
        let admitted = subscribers
            .iter()
            .filter(|s| audience.admits(s.role, || (&s.user, &s.session)))
            .count();
        assert!(
            admitted < SUBSCRIBERS || name == "broadcast_by_role",
            "{name}: {admitted}"
        );
        group.bench_function(name, |b| {
            b.iter(|| {
                let audience = black_box(&audience);
                black_box(&subscribers)
                    .iter()
                    .filter(|s| audience.admits(s.role, || (&s.user, &s.session)))
                    .count()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, admits);
criterion_main!(benches);
