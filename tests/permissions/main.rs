//! The permission model against an independent oracle, over generated cases: random connections
//! (roles, users, subscriptions), then random steps: events (owners, target roles, emitter
//! options), subscribes and unsubscribes at runtime, disconnects and reconnects of the same user.
//! The oracle is the four rules written out directly from the events.yaml model; it never calls
//! the hub's filter. Through the real server it also predicts the presence events the server
//! emits itself (a customer's first connection opening, its last one closing).
//!
//! Explain (`server::explain::decide`) is held to the same oracle, case by case.
//!
//! Two levels: thousands of cases straight against the hub, and fewer through a real server with
//! real WebSocket and HTTP clients.

mod oracle;
#[path = "../support/mod.rs"]
mod support;

use std::collections::HashSet;
use std::sync::Arc;

use omnicast::CATALOG;
use omnicast::runtime::server::explain::{self, Subject};
use omnicast::runtime::server::{ConnectionInfo, Hub, Publication};
use proptest::prelude::*;
use serde_json::{Value, json};

use oracle::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn the_hub_delivers_exactly_what_the_rules_allow((conns, steps) in scenario()) {
        use std::collections::BTreeMap;
        let hub = Hub::new(&CATALOG, 1024);
        let mut slots: Vec<Slot> = conns.iter().map(Slot::new).collect();
        let register = |key: (usize, usize), c: &Conn| {
            hub.register(ConnectionInfo {
                session_id: session(key),
                user_id: USERS[c.user].to_owned(),
                role: c.role as u32,
                namespaces: mask(&c.namespaces),
            })
            .expect("no connection limit")
        };
        let mut live = BTreeMap::new();
        let mut mailboxes = Vec::new();
        for (i, slot) in slots.iter().enumerate() {
            let registration = register(slot.key(i), &slot.initial);
            live.insert(i, registration.id);
            mailboxes.push((slot.key(i), registration.mailbox));
        }
        let mut want: BTreeMap<(usize, usize), Vec<String>> = BTreeMap::new();
        for (n, step) in steps.iter().enumerate() {
            match step {
                Step::Publish(e) => {
                    let sessions: Vec<String> =
                        slots.iter().enumerate().map(|(i, s)| session(s.key(i))).collect();
                    let (kind, data, options, _) = request(e, &sessions);
                    let raw = serde_json::value::to_raw_value(&data).unwrap();
                    let event = CATALOG.decode(&kind, &raw, options).unwrap();
                    hub.deliver(&Publication::new(event.clone(), format!("e{n}"), 0));
                    for (i, slot) in slots.iter().enumerate() {
                        let Some(c) = &slot.now else { continue };
                        let delivered = oracle(i, c, e);
                        // Explain decides with the hub's code: it must agree with the oracle too.
                        let session_id = session(slot.key(i));
                        let subject = Subject {
                            user_id: USERS[c.user],
                            role: c.role as u32,
                            namespaces: mask(&c.namespaces),
                            session_id: &session_id,
                        };
                        let decision = explain::decide(&CATALOG, &event, &subject);
                        prop_assert_eq!(decision.delivered, delivered, "{}", decision.because);
                        prop_assert_eq!(decision.rule.is_none(), delivered);
                        if delivered {
                            want.entry(slot.key(i)).or_default().push(format!("e{n}"));
                        }
                    }
                }
                Step::Subscribe(i, add) | Step::Unsubscribe(i, add) => {
                    let Some(c) = &mut slots[*i].now else { continue };
                    let (add, remove): (&[usize], &[usize]) = match step {
                        Step::Subscribe(..) => (add, &[]),
                        _ => (&[], add),
                    };
                    c.namespaces = with(&c.namespaces, add, remove);
                    let now = hub.set_namespaces(live[i], mask(&c.namespaces));
                    prop_assert_eq!(now, Some(mask(&c.namespaces)));
                }
                Step::Refresh(i, role, false) => {
                    let Some(c) = &mut slots[*i].now else { continue };
                    *c = refreshed(c, *role);
                    let now = hub.refresh(live[i], *role as u32, None, u64::MAX).unwrap();
                    prop_assert_eq!(now.namespaces, mask(&c.namespaces));
                }
                // Another user's token, revocations and re-authorization requests: the session's
                // and the broker's (through the real server below); the hub sees no change.
                Step::Refresh(_, _, true) | Step::Revoke(_) | Step::Reauthorize(_) => {}
                Step::Disconnect(i) | Step::Reconnect(i) => {
                    if slots[*i].now.take().is_some() {
                        let id = live.remove(i).unwrap();
                        prop_assert!(hub.unregister(id).is_some());
                    }
                    if let Step::Reconnect(_) = step {
                        let slot = &mut slots[*i];
                        slot.sessions += 1;
                        slot.now = Some(slot.initial.clone());
                        let registration = register(slot.key(*i), &slot.initial);
                        live.insert(*i, registration.id);
                        mailboxes.push((slot.key(*i), registration.mailbox));
                    }
                }
            }
        }
        for (key, mailbox) in &mailboxes {
            let mut got = Vec::new();
            while let Some(frame) = mailbox.try_pop() {
                let envelope: Value = serde_json::from_str(frame.payload()).unwrap();
                got.push(envelope["id"].as_str().unwrap().to_owned());
            }
            let want = want.remove(key).unwrap_or_default();
            prop_assert_eq!(&got, &want, "session {:?}", key);
        }
        prop_assert_eq!(hub.stats().slow_consumers_closed, 0);
        prop_assert_eq!(hub.stats().connections, live.len() as u64);
    }
}

/// What a client received, as the model names it: an API event by its id, a presence event by
/// its type and owner (the server picks its id). Markers and control messages are left out.
fn received(messages: Vec<Value>, ids: &HashSet<String>) -> Vec<String> {
    messages
        .into_iter()
        .filter_map(|m| {
            let id = m["id"].as_str()?;
            if ids.contains(id) {
                return Some(id.to_owned());
            }
            let kind = m["type"].as_str()?;
            let presence = MODEL
                .events
                .iter()
                .any(|e| e.name == kind && e.server_emits.is_some());
            presence.then(|| format!("{kind}/{}", m["data"]["customerId"].as_str().unwrap()))
        })
        .collect()
}

/// The names of `namespaces`, in the catalog's order.
fn names(namespaces: &[usize]) -> Vec<&'static str> {
    namespaces
        .iter()
        .map(|&n| MODEL.namespaces[n].name.as_str())
        .collect()
}

/// A token of `user` with `role` in login session `sid`, issued now.
fn token(user: usize, role: usize, sid: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    support::sign(json!({
        "sub": USERS[user], "role": MODEL.roles[role].name, "sid": sid,
        "iat": now, "exp": now + 3600,
    }))
}

/// A login session of its own for every connection, so that revoking one names only it.
fn new_sid() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    format!(
        "sid-{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// Connects `c` as its user and role, in login session `sid`, to its namespaces.
async fn open(server: &support::TestServer, c: &Conn, sid: &str) -> support::Client {
    let mut query = format!("token={}", token(c.user, c.role, sid));
    if !c.namespaces.is_empty() {
        query.push_str(&format!("&namespaces={}", names(&c.namespaces).join(",")));
    }
    let mut client = support::Client::open(&server.ws_url(&query), &[])
        .await
        .expect("connection accepted");
    let ready = client.next_json().await;
    assert_eq!(ready["type"], "ready", "{ready}");
    client.session_id = ready["sessionId"].as_str().unwrap().to_owned();
    client.user = USERS[c.user].to_owned();
    client.positions = serde_json::from_value(ready["positions"].clone()).unwrap();
    client
}

/// Messages until one of type `reply` (returned), and those before it.
async fn until_reply(client: &mut support::Client, reply: &[&str]) -> (Value, Vec<Value>) {
    let mut before = Vec::new();
    loop {
        let message = client.next_json().await;
        if reply.iter().any(|r| message["type"] == *r) {
            return (message, before);
        }
        before.push(message);
    }
}

/// Messages until the server closes, and its close code.
async fn until_closed(client: &mut support::Client) -> (Vec<Value>, Option<u16>) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let mut messages = Vec::new();
    loop {
        let next = tokio::time::timeout(support::WAIT, client.ws.next())
            .await
            .expect("the server closes in time");
        match next {
            Some(Ok(Message::Text(text))) => messages.push(serde_json::from_str(&text).unwrap()),
            Some(Ok(Message::Close(frame))) => {
                return (messages, frame.map(|f| u16::from(f.code)));
            }
            Some(Ok(_)) => {}
            None | Some(Err(_)) => return (messages, None),
        }
    }
}

/// Cases reconnect the same five users quickly, one case after another.
fn unlimited_config() -> omnicast::runtime::ServerConfig {
    let mut config = support::config();
    config.connect_rate = omnicast::runtime::ConnectRate {
        burst: 1_000_000,
        per_second: 1_000_000.0,
    };
    config
}

/// The same property end to end: real clients, the publish API, runtime subscription changes,
/// disconnects and reconnects, and the presence events the server emits on its own.
#[test]
fn a_real_server_delivers_exactly_what_the_rules_allow() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let node = runtime.block_on(support::TestServer::with(unlimited_config()));
    through_nodes(&runtime, &[node], 40);
}

/// The same property across three nodes sharing a real Redis: each connection opens on a node
/// (a reconnect on the next one), each event is published through a node in turn, and the
/// presence events are judged across nodes (a customer's first connection on any node, its
/// last on every node). A 202 means stored, not yet delivered by the other nodes, so the
/// harness lets every node deliver each publication before the next step.
#[test]
fn three_nodes_on_redis_deliver_exactly_what_the_rules_allow() {
    let redis = support::redis::Redis::start();
    let (runtime, nodes) = three_nodes(&redis.url());
    through_nodes(&runtime, &nodes, 20);
}

/// The same on a Redis Cluster of three shards: the namespaces spread over them.
#[test]
fn three_nodes_on_a_redis_cluster_deliver_exactly_what_the_rules_allow() {
    let cluster = support::redis::RedisCluster::start(3, 0);
    let (runtime, nodes) = three_nodes(&cluster.url());
    through_nodes(&runtime, &nodes, 20);
}

/// Three nodes on the broker at `url`, and the runtime they run on.
fn three_nodes(url: &str) -> (tokio::runtime::Runtime, Vec<support::TestServer>) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let nodes = runtime.block_on(async {
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(support::TestServer::node(unlimited_config(), url).await);
        }
        nodes
    });
    (runtime, nodes)
}

/// Waits until every hub has delivered `n` publications; names each hub's count if one does not.
async fn all_delivered(hubs: &[Arc<Hub>], n: u64, when: &str) {
    let counts = || hubs.iter().map(|h| h.stats().published).collect::<Vec<_>>();
    let deadline = tokio::time::Instant::now() + support::WAIT;
    while counts().iter().any(|&c| c != n) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{when}: the hubs delivered {:?} publications, the model {n}",
            counts()
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

fn through_nodes(runtime: &tokio::runtime::Runtime, nodes: &[support::TestServer], cases: u32) {
    use std::collections::{BTreeMap, HashSet};
    let hubs: Vec<Arc<Hub>> = nodes.iter().map(|n| n.server.hub().clone()).collect();
    let connections = || hubs.iter().map(|h| h.stats().connections).sum::<u64>();
    // Every node delivers every event (each follows every namespace).
    let all_published = |n: u64, when: &'static str| all_delivered(&hubs, n, when);
    let node_of = |slot: usize, sessions: usize| &nodes[(slot + sessions) % nodes.len()];
    let system = MODEL
        .namespaces
        .iter()
        .position(|n| n.name == "system")
        .unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        ..ProptestConfig::default()
    });
    runner
        .run(&scenario(), |(mut conns, mut steps)| {
            // Every client hears its markers on `system`, so none unsubscribes from it.
            for c in &mut conns {
                if !c.namespaces.contains(&system) {
                    c.namespaces.push(system);
                }
            }
            for step in &mut steps {
                if let Step::Unsubscribe(_, namespaces) = step {
                    namespaces.retain(|&n| n != system);
                }
            }
            runtime.block_on(async {
                let mut slots: Vec<Slot> = Vec::new();
                let mut clients: BTreeMap<usize, support::Client> = BTreeMap::new();
                let mut want: BTreeMap<(usize, usize), Vec<String>> = BTreeMap::new();
                let mut got: BTreeMap<(usize, usize), Vec<String>> = BTreeMap::new();
                let mut ids = HashSet::new();
                let mut sids: BTreeMap<usize, String> = BTreeMap::new();
                let mut published = hubs[0].stats().published;
                // The model's side of a presence change: who receives what the server emits.
                let emit = |slots: &[Slot],
                            want: &mut BTreeMap<(usize, usize), Vec<String>>,
                            first: bool,
                            c: &Conn| {
                    let holders = slots
                        .iter()
                        .filter_map(|s| s.now.as_ref())
                        .filter(|o| o.user == c.user && o.role == c.role)
                        .count();
                    if holders != usize::from(first) {
                        return 0;
                    }
                    let events = presence(first, c.user, c.role);
                    for e in &events {
                        for (i, slot) in slots.iter().enumerate() {
                            if let Some(o) = &slot.now
                                && oracle(i, o, e)
                            {
                                let name = &MODEL.events[e.event].name;
                                want.entry(slot.key(i))
                                    .or_default()
                                    .push(format!("{name}/{}", USERS[c.user]));
                            }
                        }
                    }
                    events.len() as u64
                };
                for (i, c) in conns.iter().enumerate() {
                    slots.push(Slot::new(c));
                    sids.insert(i, new_sid());
                    clients.insert(i, open(node_of(i, 1), c, &sids[&i]).await);
                    // The model delivers a connection's presence events to those connected
                    // before the next one opens: wait for them (with Redis they take two round
                    // trips, and can come after the next connection's `ready`).
                    let emitted = emit(&slots, &mut want, true, c);
                    published += emitted;
                    if emitted > 0 {
                        all_published(published, "after a connection's online events").await;
                    }
                }
                all_published(published, "after the connections opened").await;
                for (n, step) in steps.iter().enumerate() {
                    let server = &nodes[n % nodes.len()];
                    match step {
                        Step::Publish(e) => {
                            let sessions: Vec<String> = (0..slots.len())
                                .map(|i| {
                                    clients
                                        .get(&i)
                                        .map_or_else(String::new, |c| c.session_id.clone())
                                })
                                .collect();
                            let (kind, data, _, options) = request(e, &sessions);
                            let id = server.publish(&kind, data, options).await;
                            published += 1;
                            // A 202 means stored; the other nodes deliver it a moment later. The
                            // model delivers it to the subscriptions as they are now, so let every
                            // node deliver it before the next step changes one.
                            all_published(published, "after a publish").await;
                            for (i, slot) in slots.iter().enumerate() {
                                if let Some(c) = &slot.now
                                    && oracle(i, c, e)
                                {
                                    want.entry(slot.key(i)).or_default().push(id.clone());
                                }
                            }
                            ids.insert(id);
                        }
                        Step::Subscribe(i, namespaces) | Step::Unsubscribe(i, namespaces) => {
                            let (Some(c), Some(client)) = (&mut slots[*i].now, clients.get_mut(i))
                            else {
                                continue;
                            };
                            let (kind, reply, add, remove): (_, _, &[usize], &[usize]) = match step
                            {
                                Step::Subscribe(..) => ("subscribe", "subscribed", namespaces, &[]),
                                _ => ("unsubscribe", "unsubscribed", &[], namespaces),
                            };
                            c.namespaces = with(&c.namespaces, add, remove);
                            let names: Vec<&str> = namespaces
                                .iter()
                                .map(|&n| MODEL.namespaces[n].name.as_str())
                                .collect();
                            client
                                .send_json(json!({"type": kind, "namespaces": names}))
                                .await;
                            // Everything before the reply was delivered under the old subscription.
                            let mut before = Vec::new();
                            loop {
                                let message = client.next_json().await;
                                if message["type"] == reply {
                                    break;
                                }
                                before.push(message);
                            }
                            got.entry(slots[*i].key(*i))
                                .or_default()
                                .extend(received(before, &ids));
                        }
                        Step::Refresh(i, role, other) => {
                            let (Some(c), Some(client)) = (&mut slots[*i].now, clients.get_mut(i))
                            else {
                                continue;
                            };
                            let user = if *other {
                                (c.user + 1) % USERS.len()
                            } else {
                                c.user
                            };
                            let fresh = token(user, *role, &sids[i]);
                            client
                                .send_json(json!({"type": "refresh", "token": fresh}))
                                .await;
                            // Everything before the answer was delivered under the old rights.
                            let (reply, before) =
                                until_reply(client, &["refreshed", "error"]).await;
                            let key = slots[*i].key(*i);
                            got.entry(key).or_default().extend(received(before, &ids));
                            if *other {
                                prop_assert_eq!(&reply["code"], "refresh_refused", "{}", reply);
                                continue;
                            }
                            prop_assert_eq!(&reply["type"], "refreshed", "{}", reply);
                            let c = slots[*i].now.as_mut().unwrap();
                            let old = std::mem::replace(c, refreshed(c, *role));
                            prop_assert_eq!(&reply["namespaces"], &json!(names(&c.namespaces)));
                            if old.role != *role {
                                // As if the old role's connection closed and the new one's opened.
                                let new = c.clone();
                                published += emit(&slots, &mut want, false, &old);
                                published += emit(&slots, &mut want, true, &new);
                                all_published(published, "after a role change").await;
                            }
                        }
                        Step::Revoke(i) => {
                            let Some(mut client) = clients.remove(i) else {
                                continue;
                            };
                            let body = json!({"loginSession": sids[i]});
                            let (status, answer) = server
                                .post_json("/api/revocations", Some(support::API_KEY), body)
                                .await;
                            prop_assert_eq!(status, 200, "{}", answer);
                            // Everything up to the close came before the revocation was
                            // answered: the model has nothing for this session after it.
                            let (messages, code) = until_closed(&mut client).await;
                            prop_assert_eq!(code, Some(4003));
                            got.entry(slots[*i].key(*i))
                                .or_default()
                                .extend(received(messages, &ids));
                            drop(client);
                            let c = slots[*i].now.take().unwrap();
                            support::wait_until(|| connections() == clients.len() as u64).await;
                            published += emit(&slots, &mut want, false, &c);
                            all_published(published, "after a revocation").await;
                        }
                        Step::Reauthorize(i) => {
                            let user = slots[*i].initial.user;
                            let body = json!({"userId": USERS[user], "deadlineSecs": 60});
                            let (status, answer) = server
                                .post_json("/api/reauthorizations", Some(support::API_KEY), body)
                                .await;
                            prop_assert_eq!(status, 200, "{}", answer);
                            // Each of the user's clients answers with a token of its role
                            // issued since: its rights, and what it receives, do not change.
                            for (j, client) in clients.iter_mut() {
                                let c = slots[*j].now.as_ref().unwrap();
                                if c.user != user {
                                    continue;
                                }
                                let fresh = token(user, c.role, &sids[j]);
                                client
                                    .send_json(json!({"type": "refresh", "token": fresh}))
                                    .await;
                                let (reply, before) =
                                    until_reply(client, &["refreshed", "error"]).await;
                                prop_assert_eq!(&reply["type"], "refreshed", "{}", reply);
                                got.entry(slots[*j].key(*j))
                                    .or_default()
                                    .extend(received(before, &ids));
                            }
                        }
                        Step::Disconnect(i) | Step::Reconnect(i) => {
                            if let Some(mut client) = clients.remove(i) {
                                // What this session received, up to a marker only it hears.
                                let others: Vec<String> =
                                    clients.values().map(|c| c.session_id.clone()).collect();
                                let marker = format!("bye {i}");
                                server
                                    .publish(
                                        "system:maintenance",
                                        json!({"message": marker}),
                                        json!({"excludeSessionIds": others}),
                                    )
                                    .await;
                                published += 1;
                                let messages = client.events_until(&marker).await;
                                got.entry(slots[*i].key(*i))
                                    .or_default()
                                    .extend(received(messages, &ids));
                                let _ = client.ws.close(None).await;
                                drop(client);
                                let c = slots[*i].now.take().unwrap();
                                support::wait_until(|| connections() == clients.len() as u64).await;
                                published += emit(&slots, &mut want, false, &c);
                                all_published(published, "after a disconnect").await;
                            }
                            if let Step::Reconnect(_) = step {
                                let slot = &mut slots[*i];
                                slot.sessions += 1;
                                slot.now = Some(slot.initial.clone());
                                let initial = slot.initial.clone();
                                sids.insert(*i, new_sid());
                                let node = node_of(*i, slot.sessions);
                                clients.insert(*i, open(node, &initial, &sids[i]).await);
                                published += emit(&slots, &mut want, true, &initial);
                                all_published(published, "after a reconnect").await;
                            }
                        }
                    }
                }
                support::marker(&nodes[0], "end").await;
                published += 1;
                // Every node delivers the marker before the case ends, even one with no client
                // left to read it (else it would land in the next case's count).
                all_published(published, "after the end marker").await;
                for (i, client) in &mut clients {
                    let messages = client.events_until("end").await;
                    got.entry(slots[*i].key(*i))
                        .or_default()
                        .extend(received(messages, &ids));
                }
                // Close everything, and let the offline events go, before the next case (what they
                // deliver is not read: the sessions are over).
                let mut unread = BTreeMap::new();
                let remaining: Vec<usize> = clients.keys().copied().collect();
                for i in remaining {
                    let mut client = clients.remove(&i).unwrap();
                    let _ = client.ws.close(None).await;
                    drop(client);
                    let c = slots[i].now.take().unwrap();
                    support::wait_until(|| connections() == clients.len() as u64).await;
                    published += emit(&slots, &mut unread, false, &c);
                    all_published(published, "after the last closes").await;
                }
                for (key, want) in &want {
                    let got = got.get(key).cloned().unwrap_or_default();
                    prop_assert_eq!(
                        &got,
                        want,
                        "session {:?} of {:?}",
                        key,
                        slots[key.0].initial
                    );
                }
                for (key, got) in &got {
                    prop_assert!(
                        got.is_empty() || want.contains_key(key),
                        "session {:?} got {:?}",
                        key,
                        got
                    );
                }
                Ok(())
            })
        })
        .unwrap();
}

/// Replays against the oracle, across three nodes on a real Redis: clients leave (after
/// learning their positions on one node), events are published through every node, and each
/// user resumes on another node with a token and subscription of its own. A replay holds exactly
/// the missed events of the namespaces resumed that the *current* token may see, in stream
/// order; a customer never gets another customer's event back.
#[test]
fn replays_on_any_node_deliver_exactly_what_the_rules_allow() {
    let redis = support::redis::Redis::start();
    replays_on_any_node(&redis.url());
}

/// The same on a Redis Cluster of three shards.
#[test]
fn replays_on_any_node_of_a_redis_cluster_deliver_exactly_what_the_rules_allow() {
    let cluster = support::redis::RedisCluster::start(3, 0);
    replays_on_any_node(&cluster.url());
}

fn replays_on_any_node(url: &str) {
    use std::collections::{BTreeMap, HashSet};
    let (runtime, nodes) = three_nodes(url);
    let system = MODEL
        .namespaces
        .iter()
        .position(|n| n.name == "system")
        .unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 25,
        ..ProptestConfig::default()
    });
    runner
        .run(&replay_scenario(), |(mut pairs, events)| {
            // The marker that ends each replay arrives on `system`, live.
            for (_, after) in &mut pairs {
                if !after.namespaces.contains(&system) {
                    after.namespaces.push(system);
                }
            }
            runtime.block_on(async {
                let mut positions = Vec::new();
                let mut sessions = Vec::new();
                for (i, (before, _)) in pairs.iter().enumerate() {
                    let mut client = open(&nodes[i % 3], before, &new_sid()).await;
                    sessions.push(client.session_id.clone());
                    positions.push(client.positions.clone());
                    let _ = client.ws.close(None).await;
                }
                let hubs: Vec<_> = nodes.iter().map(|n| n.server.hub().clone()).collect();
                support::wait_until(|| hubs.iter().all(|h| h.stats().connections == 0)).await;
                let mut ids = Vec::new();
                for (n, e) in events.iter().enumerate() {
                    let (kind, data, _, options) = request(e, &sessions);
                    ids.push(nodes[n % 3].publish(&kind, data, options).await);
                }
                let published: HashSet<String> = ids.iter().cloned().collect();
                let marker = format!("replayed {}", ids[0]);
                let mut clients = Vec::new();
                for (i, (before, after)) in pairs.iter().enumerate() {
                    let resumed: Vec<String> = before
                        .namespaces
                        .iter()
                        .filter(|ns| after.namespaces.contains(ns))
                        .map(|&ns| positions[i][&MODEL.namespaces[ns].name].clone())
                        .collect();
                    let names: Vec<&str> = after
                        .namespaces
                        .iter()
                        .map(|&n| MODEL.namespaces[n].name.as_str())
                        .collect();
                    let node = &nodes[(i + 1) % 3];
                    let query = format!(
                        "token={}&namespaces={}&since={}",
                        node.token(USERS[after.user], &MODEL.roles[after.role].name),
                        names.join(","),
                        resumed.join(",")
                    );
                    let mut client = support::Client::open(&node.ws_url(&query), &[])
                        .await
                        .expect("connection accepted");
                    let ready = client.next_json().await;
                    prop_assert_eq!(&ready["type"], "ready", "{}", ready);
                    for id in &resumed {
                        let ns = id.split('.').next().unwrap();
                        prop_assert_eq!(&ready["recovered"][ns], true, "{}", ready);
                    }
                    clients.push(client);
                }
                support::marker(&nodes[0], &marker).await;
                for (i, client) in clients.iter_mut().enumerate() {
                    let (before, after) = &pairs[i];
                    let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
                    for m in client.events_until(&marker).await {
                        if let Some(id) = m["id"].as_str().filter(|id| published.contains(*id)) {
                            let ns = id.split('.').next().unwrap().to_owned();
                            got.entry(ns).or_default().push(id.to_owned());
                        }
                    }
                    let mut want: BTreeMap<String, Vec<String>> = BTreeMap::new();
                    for (e, id) in events.iter().zip(&ids) {
                        let ns = id.split('.').next().unwrap();
                        let index = MODEL.namespaces.iter().position(|n| n.name == ns).unwrap();
                        // The old session's exclusion names a session that is gone.
                        if before.namespaces.contains(&index) && oracle(usize::MAX, after, e) {
                            want.entry(ns.to_owned()).or_default().push(id.clone());
                        }
                    }
                    prop_assert_eq!(&got, &want, "{:?} resuming as {:?}", before, after);
                    let _ = client.ws.close(None).await;
                }
                Ok(())
            })
        })
        .unwrap();
}
