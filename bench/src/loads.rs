//! The loads a scenario puts on a server once its clients are connected: fan-out as fast as
//! the publish API takes it, a fixed rate, targeted payments, a mixed stream checked against
//! the delivery rules, the publish path alone, and recovery.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use omnicast::CATALOG;
use omnicast::runtime::delivery::Audience;
use omnicast::runtime::{EmitOptions, OutgoingEvent, mint_hs256};
use serde_json::{Value, json};

use crate::client::{self, Check, Clients, Tally, start_draining};
use crate::measure::{Meter, Metrics, Probes};
use crate::publish::{
    self, STAMP, maintenance, post_to, prepare, publish_all, publish_concurrently, publish_id,
};
use crate::target::{self, Target};

/// What every load drives and measures with.
pub struct Run<'a> {
    pub target: &'a Target,
    pub probes: &'a Probes,
    pub agent: &'a ureq::Agent,
}

/// Every client receives every event, published as fast as the API takes them.
pub async fn fanout(
    run: &Run<'_>,
    clients: Clients,
    events: usize,
    batch: usize,
    publishers: usize,
    metrics: &mut Metrics,
) -> Result<Vec<Tally>, String> {
    let target = run.target;
    let connected = clients.sockets.len() as u64;
    let running = start_draining(target.kind, clients.sockets, "\"scheduledAt\"", |_| None).await;
    let bodies = prepare(&vec![maintenance(); events], batch);
    let meter = Meter::start(target, run.probes);
    let started = Instant::now();
    publish_concurrently(target, run.agent, bodies, publishers).await?;
    let elapsed = running
        .until(connected * events as u64, started, Duration::from_secs(120))
        .await;
    let costs = meter.stop();
    let tallies = running.finish().await;
    metrics.record(
        &tallies,
        elapsed,
        events,
        connected * events as u64,
        Some(costs),
    );
    Ok(tallies)
}

/// Events at `per_second` for `seconds`, `batch` per request.
pub async fn fixed(
    run: &Run<'_>,
    clients: Clients,
    per_second: usize,
    seconds: usize,
    batch: usize,
    metrics: &mut Metrics,
) -> Result<Vec<Tally>, String> {
    let target = run.target;
    let connected = clients.sockets.len() as u64;
    let running = start_draining(target.kind, clients.sockets, "\"scheduledAt\"", |_| None).await;
    let requests = per_second * seconds / batch;
    let total = requests * batch;
    let meter = Meter::start(target, run.probes);
    let started = Instant::now();
    let addr_target = (target.kind, target.addr);
    let body = prepare(&vec![maintenance(); batch], batch).remove(0);
    let per_request = batch as f64 / per_second as f64;
    let agent = run.agent.clone();
    let publisher = tokio::task::spawn_blocking(move || -> Result<(), String> {
        for i in 0..requests {
            let due = started + Duration::from_secs_f64(i as f64 * per_request);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            post_to(addr_target, &agent, &body)?;
        }
        Ok(())
    });
    let elapsed = running
        .until(
            connected * total as u64,
            started,
            Duration::from_secs(seconds as u64 + 60),
        )
        .await;
    publisher.await.map_err(|e| e.to_string())??;
    let costs = meter.stop();
    let tallies = running.finish().await;
    metrics.record(
        &tallies,
        elapsed,
        total,
        connected * total as u64,
        Some(costs),
    );
    Ok(tallies)
}

/// `events` payments round robin over `n` customers: each must receive its own and no other.
pub async fn targeted(
    run: &Run<'_>,
    clients: Clients,
    n: usize,
    events: usize,
    metrics: &mut Metrics,
) -> Result<Vec<Tally>, String> {
    let target = run.target;
    // Payment `e` belongs to customer `e % n`.
    let owed = |i: usize| (events / n + usize::from(i < events % n)) as u64;
    let indices: Vec<usize> = clients.sockets.iter().map(|&(i, _)| i).collect();
    let expected: u64 = indices.iter().map(|&i| owed(i)).sum();
    // Every delivery must be the receiving customer's own.
    let running = start_draining(target.kind, clients.sockets, "\"amount\"", |i| {
        let own = format!("cust-{i}");
        Some(Arc::new(move |event: &Value| event["data"]["customerId"] == *own) as Check)
    })
    .await;
    let stamp: u64 = STAMP.parse().unwrap();
    let payments: Vec<Value> = (0..events)
        .map(|e| {
            json!({"type": "payment:received", "data": {
                "paymentId": format!("PAY-{e}"), "orderId": format!("ORD-{e}"), "customerId": format!("cust-{}", e % n),
                "amount": stamp, "method": "card", "status": "success"}})
        })
        .collect();
    let bodies = prepare(&payments, 10);
    let started = Instant::now();
    publish_all(target, target.addr, run.agent, bodies).await?;
    let elapsed = running
        .until(expected, started, Duration::from_secs(120))
        .await;
    let tallies = running.finish().await;
    metrics.record(&tallies, elapsed, events, expected, None);
    // More than a customer's own payments is a wrong delivery too.
    metrics.wrong = tallies
        .iter()
        .zip(&indices)
        .map(|(t, &i)| t.received.saturating_sub(owed(i)))
        .sum::<u64>() as f64;
    Ok(tallies)
}

/// No clients: `events` published one per request from `publishers` at once (over three
/// namespaces when `spread`).
pub async fn publish_only(
    run: &Run<'_>,
    events: usize,
    publishers: usize,
    spread: bool,
    metrics: &mut Metrics,
) -> Result<Vec<Tally>, String> {
    let target = run.target;
    let kinds = if spread {
        vec![maintenance(), publish::order(), publish::inventory()]
    } else {
        vec![maintenance()]
    };
    let all: Vec<Value> = kinds.iter().cycle().take(events).cloned().collect();
    let bodies = prepare(&all, 1);
    let meter = Meter::start(target, run.probes);
    let redis_before = target.redis_cpu_seconds();
    let servers_before = target.redis_cpu_per_server();
    let started = Instant::now();
    publish_concurrently(target, run.agent, bodies, publishers).await?;
    let elapsed = started.elapsed();
    let costs = meter.stop();
    metrics.events_per_s = events as f64 / elapsed.as_secs_f64();
    metrics.cpu_us_per_event = costs.server_cpu * 1e6 / events as f64;
    let redis = target.redis_cpu_seconds() - redis_before;
    metrics.redis_cpu_us_per_event = redis * 1e6 / events as f64;
    let busiest = target
        .redis_cpu_per_server()
        .iter()
        .zip(&servers_before)
        .map(|(after, before)| after - before)
        .fold(0.0, f64::max);
    metrics.redis_busiest_share = if redis > 0.0 { busiest / redis } else { 0.0 };
    Ok(Vec::new())
}

/// The recovery scenario: `missed` payments after a first one, then `trials` resumes from the
/// first, each timed from the connect until the last replayed payment arrived.
pub async fn recover(
    target: &mut Target,
    peers: &std::path::Path,
    missed: usize,
    trials: usize,
    agent: &ureq::Agent,
    probes: &Probes,
    metrics: &mut Metrics,
) -> Result<Vec<Tally>, String> {
    let payment = |n: usize| {
        json!({"type": "payment:received", "data": {
            "paymentId": format!("PAY-{n}"), "orderId": format!("ORD-{n}"), "customerId": "cust-0",
            "amount": n, "method": "card", "status": "success"}})
    };
    let addr = target.addr;
    let (first, agent_) = (payment(0).to_string(), agent.clone());
    let since = tokio::task::spawn_blocking(move || publish_id(addr, &agent_, &first))
        .await
        .map_err(|e| e.to_string())??;
    let payments: Vec<Value> = (1..=missed).map(payment).collect();
    publish_all(target, addr, agent, prepare(&payments, 100)).await?;
    if target.kind.redis() {
        target.restart_nodes(peers)?;
    }
    let meter = Meter::start(target, probes);
    let mut latencies = Vec::with_capacity(trials);
    for trial in 0..trials {
        // A user per resume: one user reconnecting 50 times at once meets the connect rate.
        let token = mint_hs256(
            target::SECRET.as_bytes(),
            &format!("admin-{trial}"),
            "admin",
            3600,
        );
        let addr = target.addr_for(trial);
        let started = Instant::now();
        // The namespaces parameter carries `since` along.
        let query = format!("payments&since={since}");
        let mut socket = client::connect(target.kind, addr, None, &token, &query).await?;
        let mut replayed = 0;
        while replayed < missed {
            let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
                .await
                .map_err(|_| format!("only {replayed} of {missed} events replayed"))?
                .ok_or("the connection closed during the replay")?
                .map_err(|e| e.to_string())?;
            if message
                .to_text()
                .is_ok_and(|text| text.contains("\"payment:received\""))
            {
                replayed += 1;
            }
        }
        latencies.push(started.elapsed().as_micros() as u32);
    }
    let costs = meter.stop();
    metrics.cpu_us_per_event = costs.server_cpu * 1e6 / (missed * trials) as f64;
    Ok(vec![Tally {
        received: 0,
        wrong: 0,
        latencies_us: latencies,
    }])
}

/// The role of client `i` in the mixed scenario: admin, manager, staff, customer in turn.
pub const MIXED_ROLES: [&str; 4] = ["admin", "manager", "staff", "customer"];

/// The catalog's events in turn, each with the catalog's example and a random customer as its
/// owner. Each request's `timestamp` is its index, so a client can tell which one it received
/// and check it with the runtime's own delivery rules ([`Audience`]) over the compiled catalog.
pub async fn mixed(
    run: &Run<'_>,
    clients: Clients,
    events: usize,
    metrics: &mut Metrics,
) -> Result<Vec<Tally>, String> {
    let (target, agent, sockets) = (run.target, run.agent, clients.sockets);
    let clients: Vec<usize> = sockets.iter().map(|(i, _)| *i).collect();
    let customers: Vec<usize> = clients.iter().copied().filter(|i| i % 4 == 3).collect();
    let mut stream = Vec::with_capacity(events);
    let mut decoded = Vec::with_capacity(events);
    for k in 0..events {
        let entry = &CATALOG.events[k % CATALOG.events.len()];
        let mut data: Value = serde_json::from_str(entry.example()).map_err(|e| e.to_string())?;
        if let Some(owner) = entry.descriptor.owner_field
            && !customers.is_empty()
        {
            data[owner] = json!(format!("u{}", customers[(k * 7919) % customers.len()]));
        }
        let raw = serde_json::value::to_raw_value(&data).map_err(|e| e.to_string())?;
        let event = CATALOG
            .decode(entry.descriptor.name, &raw, EmitOptions::default())
            .map_err(|e| format!("{}: {e}", entry.descriptor.name))?;
        decoded.push(event);
        stream.push(json!({ "type": entry.descriptor.name, "data": data, "timestamp": k }));
    }
    let decoded = Arc::new(decoded);
    let role_of = |i: usize| {
        CATALOG
            .role_index(MIXED_ROLES[i % 4])
            .expect("the catalog has the reference's four roles")
    };
    let admits = |event: &OutgoingEvent, role: u32, user: &str| {
        Audience::of(&CATALOG, event).admits(role, || (user, ""))
    };
    let who: Vec<(u32, String)> = clients
        .iter()
        .map(|&i| (role_of(i), format!("u{i}")))
        .collect();
    let expected: u64 = decoded
        .iter()
        .map(|event| {
            who.iter()
                .filter(|(role, user)| admits(event, *role, user))
                .count() as u64
        })
        .sum();
    let running = start_draining(target.kind, sockets, "\"never-present\"", |i| {
        let decoded = decoded.clone();
        // Built once per client: the check runs for every delivery it receives.
        let (role, user) = (role_of(i), format!("u{i}"));
        Some(Arc::new(move |event: &Value| {
            let k = event["timestamp"].as_u64().map(|k| k as usize);
            k.and_then(|k| decoded.get(k))
                .is_some_and(|event| admits(event, role, &user))
        }) as Check)
    })
    .await;
    let bodies = prepare(&stream, 20);
    let started = Instant::now();
    publish_all(target, target.addr, agent, bodies).await?;
    let elapsed = running
        .until(expected, started, Duration::from_secs(120))
        .await;
    let tallies = running.finish().await;
    metrics.record(&tallies, elapsed, events, expected, None);
    Ok(tallies)
}
