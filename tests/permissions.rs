//! The permission model against an independent oracle, over generated cases: random connections
//! (roles, users, subscriptions), then random steps: events (owners, target roles, emitter
//! options), subscribes and unsubscribes at runtime, disconnects and reconnects of the same user.
//! The oracle is the four rules written out directly from the events.yaml model; it never calls
//! the hub's filter. Through the real server it also predicts the presence events the server
//! emits itself (a customer's first connection opening, its last one closing).
//!
//! Two levels: thousands of cases straight against the hub, and fewer through a real server with
//! real WebSocket and HTTP clients.

mod support;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::LazyLock;

use omnicast::CATALOG;
use omnicast::runtime::server::{ConnectionInfo, Hub, Publication};
use omnicast::runtime::{EmitOptions, NamespaceSet, RoleMask};
use omnicast_codegen::model::{Audience, Catalog as Model};
use proptest::prelude::*;
use serde_json::{Value, json};

static MODEL: LazyLock<Model> = LazyLock::new(|| {
    omnicast_codegen::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("events.yaml"))
        .unwrap_or_else(|d| panic!("{d}"))
});

const USERS: [&str; 5] = ["u0", "u1", "u2", "u3", "u4"];

#[derive(Debug, Clone)]
struct Conn {
    user: usize,
    role: usize,
    namespaces: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Options {
    roles: Option<Vec<usize>>,
    user_ids: Option<Vec<String>>,
    exclude_users: Vec<usize>,
    exclude_sessions: Vec<usize>,
    namespace: Option<usize>,
}

#[derive(Debug, Clone)]
struct Ev {
    event: usize,
    owner: usize,
    target_roles: Option<Vec<usize>>,
    options: Options,
}

fn subset(n: usize) -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::btree_set(0..n, 0..=n).prop_map(|s| s.into_iter().collect())
}

fn conn() -> impl Strategy<Value = Conn> {
    let (roles, namespaces) = (MODEL.roles.len(), MODEL.namespaces.len());
    (0..USERS.len(), 0..roles, subset(namespaces)).prop_map(|(user, role, namespaces)| Conn {
        user,
        role,
        namespaces,
    })
}

fn event(connections: usize) -> impl Strategy<Value = Ev> {
    let (roles, namespaces, events) = (
        MODEL.roles.len(),
        MODEL.namespaces.len(),
        MODEL.events.len(),
    );
    let user_ids = proptest::option::of(proptest::collection::vec(
        prop_oneof![
            (0..USERS.len()).prop_map(|u| USERS[u].to_owned()),
            Just("nobody".to_owned())
        ],
        0..4,
    ));
    let options = (
        proptest::option::of(subset(roles)),
        user_ids,
        subset(USERS.len()),
        subset(connections),
        proptest::option::weighted(0.2, 0..namespaces),
    )
        .prop_map(
            |(roles, user_ids, exclude_users, exclude_sessions, namespace)| Options {
                roles,
                user_ids,
                exclude_users,
                exclude_sessions,
                namespace,
            },
        );
    (
        0..events,
        0..USERS.len(),
        proptest::option::of(subset(roles)),
        options,
    )
        .prop_map(|(event, owner, target_roles, options)| Ev {
            event,
            owner,
            target_roles,
            options,
        })
}

/// What happens after the connections opened. Slots are the initial connections; a slot whose
/// client disconnected receives nothing until it reconnects (a new session, same user and role,
/// its initial subscription).
#[derive(Debug, Clone)]
enum Step {
    Publish(Ev),
    Subscribe(usize, Vec<usize>),
    Unsubscribe(usize, Vec<usize>),
    Disconnect(usize),
    Reconnect(usize),
}

fn step(slots: usize) -> impl Strategy<Value = Step> {
    let namespaces = MODEL.namespaces.len();
    prop_oneof![
        5 => event(slots).prop_map(Step::Publish),
        1 => (0..slots, subset(namespaces)).prop_map(|(s, n)| Step::Subscribe(s, n)),
        1 => (0..slots, subset(namespaces)).prop_map(|(s, n)| Step::Unsubscribe(s, n)),
        1 => (0..slots).prop_map(Step::Disconnect),
        1 => (0..slots).prop_map(Step::Reconnect),
    ]
}

fn scenario() -> impl Strategy<Value = (Vec<Conn>, Vec<Step>)> {
    proptest::collection::vec(conn(), 1..10).prop_flat_map(|conns| {
        let n = conns.len();
        (Just(conns), proptest::collection::vec(step(n), 1..16))
    })
}

/// The model's view of one slot.
#[derive(Debug, Clone)]
struct Slot {
    initial: Conn,
    /// The subscription now, while connected.
    now: Option<Conn>,
    /// Sessions the slot has had (a reconnect starts a new one).
    sessions: usize,
}

impl Slot {
    fn new(conn: &Conn) -> Self {
        Slot {
            initial: conn.clone(),
            now: Some(conn.clone()),
            sessions: 1,
        }
    }

    /// The current session: slot and generation.
    fn key(&self, slot: usize) -> (usize, usize) {
        (slot, self.sessions)
    }
}

fn with(namespaces: &[usize], add: &[usize], remove: &[usize]) -> Vec<usize> {
    let mut out: Vec<usize> = namespaces.iter().chain(add).copied().collect();
    out.retain(|n| !remove.contains(n));
    out.sort_unstable();
    out.dedup();
    out
}

/// The presence events the server emits when `user` with `role` opens its first (`first`) or
/// closes its last connection, as `Ev`s the oracle can judge: owned by the user, no options.
fn presence(first: bool, user: usize, role: usize) -> Vec<Ev> {
    use omnicast_codegen::model::Trigger;
    MODEL
        .events
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            e.server_emits.as_ref().is_some_and(|emits| {
                emits.roles.contains(&role) && (emits.on == Trigger::FirstConnect) == first
            })
        })
        .map(|(event, _)| Ev {
            event,
            owner: user,
            target_roles: None,
            options: Options {
                roles: None,
                user_ids: None,
                exclude_users: Vec::new(),
                exclude_sessions: Vec::new(),
                namespace: None,
            },
        })
        .collect()
}

fn session((slot, generation): (usize, usize)) -> String {
    format!("session-{slot}-{generation}")
}

/// The four delivery rules (ARCHITECTURE.md), from the YAML model: may connection `c` (number `index`) receive `e`?
fn oracle(index: usize, c: &Conn, e: &Ev) -> bool {
    let event = &MODEL.events[e.event];
    let role = &MODEL.roles[c.role];
    let namespace = match e.options.namespace {
        Some(ns) => ns,
        None => MODEL
            .namespaces
            .iter()
            .position(|n| n.name == event.namespace)
            .unwrap(),
    };
    // 1. subscribed to the addressed namespace
    let subscribed = c.namespaces.contains(&namespace);
    // 2. the role may see the event, and the payload's target roles (if any) name it
    let role_allowed = match &event.audience {
        Audience::All => true,
        Audience::Roles(roles) => roles.contains(&c.role),
    };
    let targeted =
        event.target_roles.is_none() || e.target_roles.as_ref().is_none_or(|t| t.contains(&c.role));
    // 3. roles limited to their own events see only events they own
    let owns = !role.own_events_only || event.owner.is_none() || e.owner == c.user;
    // 4. the emitter's options narrow and exclude
    let narrowed = e.options.roles.as_ref().is_none_or(|r| r.contains(&c.role))
        && e.options
            .user_ids
            .as_ref()
            .is_none_or(|u| u.iter().any(|u| u == USERS[c.user]));
    let excluded =
        e.options.exclude_users.contains(&c.user) || e.options.exclude_sessions.contains(&index);
    subscribed && role_allowed && targeted && owns && narrowed && !excluded
}

/// The event's example payload with the generated owner and target roles, and the options.
fn request(e: &Ev, sessions: &[String]) -> (String, Value, EmitOptions, Value) {
    let event = &MODEL.events[e.event];
    let mut data = event.example.clone();
    if let Some(owner) = &event.owner {
        data[owner] = json!(USERS[e.owner]);
    }
    if let Some(field) = &event.target_roles {
        match &e.target_roles {
            Some(roles) => {
                data[field] = json!(
                    roles
                        .iter()
                        .map(|&r| MODEL.roles[r].name.clone())
                        .collect::<Vec<_>>()
                )
            }
            None => {
                data.as_object_mut().unwrap().remove(field);
            }
        }
    }
    let role_names = |roles: &[usize]| {
        roles
            .iter()
            .map(|&r| MODEL.roles[r].name.clone())
            .collect::<Vec<_>>()
    };
    let exclude_users: Vec<String> = e
        .options
        .exclude_users
        .iter()
        .map(|&u| USERS[u].to_owned())
        .collect();
    let exclude_sessions: Vec<String> = e
        .options
        .exclude_sessions
        .iter()
        .map(|&s| sessions[s].clone())
        .collect();
    let namespace = e
        .options
        .namespace
        .map(|n| MODEL.namespaces[n].name.clone());
    let options = EmitOptions {
        roles: e
            .options
            .roles
            .as_ref()
            .map(|r| r.iter().map(|&r| RoleMask::single(r as u32)).collect()),
        user_ids: e.options.user_ids.clone(),
        exclude_user_ids: exclude_users.clone(),
        exclude_session_ids: exclude_sessions.clone(),
        namespace: namespace.as_deref().map(|n| CATALOG.namespace(n).unwrap()),
    };
    let json_options = json!({
        "roles": e.options.roles.as_ref().map(|r| role_names(r)),
        "userIds": e.options.user_ids,
        "excludeUserIds": exclude_users,
        "excludeSessionIds": exclude_sessions,
        "namespace": namespace,
    });
    (event.name.clone(), data, options, json_options)
}

fn mask(namespaces: &[usize]) -> NamespaceSet {
    namespaces.iter().copied().collect()
}

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
                    hub.deliver(&Publication::new(event, format!("e{n}"), 0));
                    for (i, slot) in slots.iter().enumerate() {
                        if let Some(c) = &slot.now && oracle(i, c, e) {
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

/// Connects `c` as its user and role, to its namespaces.
async fn open(server: &support::TestServer, c: &Conn) -> support::Client {
    let names: Vec<&str> = c
        .namespaces
        .iter()
        .map(|&n| MODEL.namespaces[n].name.as_str())
        .collect();
    server
        .connect(USERS[c.user], &MODEL.roles[c.role].name, &names)
        .await
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
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let nodes: Vec<support::TestServer> = runtime.block_on(async {
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(support::TestServer::node(unlimited_config(), &redis.url()).await);
        }
        nodes
    });
    through_nodes(&runtime, &nodes, 20);
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
                    clients.insert(i, open(node_of(i, 1), c).await);
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
                                clients
                                    .insert(*i, open(node_of(*i, slot.sessions), &initial).await);
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

/// Each connection before it left, and the one its user resumes with: the same user, perhaps
/// another role (a narrower token) and other namespaces.
fn replay_scenario() -> impl Strategy<Value = (Vec<(Conn, Conn)>, Vec<Ev>)> {
    let (roles, namespaces) = (MODEL.roles.len(), MODEL.namespaces.len());
    let pair = (conn(), 0..roles, subset(namespaces)).prop_map(|(before, role, namespaces)| {
        let after = Conn {
            user: before.user,
            role,
            namespaces,
        };
        (before, after)
    });
    proptest::collection::vec(pair, 1..8).prop_flat_map(|pairs| {
        let n = pairs.len();
        (Just(pairs), proptest::collection::vec(event(n), 1..16))
    })
}

/// Replays against the oracle, across three nodes on a real Redis: clients leave (after
/// learning their positions on one node), events are published through every node, and each
/// user resumes on another node with a token and subscription of its own. A replay holds exactly
/// the missed events of the namespaces resumed that the *current* token may see, in stream
/// order; a customer never gets another customer's event back.
#[test]
fn replays_on_any_node_deliver_exactly_what_the_rules_allow() {
    use std::collections::{BTreeMap, HashSet};
    let redis = support::redis::Redis::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let nodes: Vec<support::TestServer> = runtime.block_on(async {
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(support::TestServer::node(unlimited_config(), &redis.url()).await);
        }
        nodes
    });
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
                    let mut client = open(&nodes[i % 3], before).await;
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
