//! The permission model against an independent oracle, over generated cases: random connections
//! (roles, users, subscriptions) and random events (owners, target roles, emitter options). The
//! oracle is DESIGN.md's four rules written out directly from the events.yaml model; it never
//! calls the hub's filter.
//!
//! Two levels: thousands of cases straight against the hub, and fewer through a real server with
//! real WebSocket and HTTP clients.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::LazyLock;

use omnicast::CATALOG;
use omnicast::runtime::{ConnectionInfo, EmitOptions, Hub, Publication, RoleMask};
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

fn scenario() -> impl Strategy<Value = (Vec<Conn>, Vec<Ev>)> {
    proptest::collection::vec(conn(), 1..12).prop_flat_map(|conns| {
        let n = conns.len();
        (Just(conns), proptest::collection::vec(event(n), 1..10))
    })
}

fn session(i: usize) -> String {
    format!("session-{i}")
}

/// DESIGN.md's rules, from the YAML model: may connection `c` (number `index`) receive `e`?
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
fn request(e: &Ev) -> (String, Value, EmitOptions, Value) {
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
        .map(|&s| session(s))
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

fn mask(namespaces: &[usize]) -> u64 {
    namespaces.iter().fold(0, |m, &n| m | 1 << n)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn the_hub_delivers_exactly_what_the_rules_allow((conns, events) in scenario()) {
        let hub = Hub::new(&CATALOG, 64);
        let mailboxes: Vec<_> = conns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                hub.register(ConnectionInfo {
                    session_id: session(i),
                    user_id: USERS[c.user].to_owned(),
                    role: c.role as u32,
                    namespaces: mask(&c.namespaces),
                })
                .mailbox
            })
            .collect();
        for (n, e) in events.iter().enumerate() {
            let (kind, data, options, _) = request(e);
            let raw = serde_json::value::to_raw_value(&data).unwrap();
            let event = CATALOG.decode(&kind, &raw, options).unwrap();
            hub.deliver(&Publication::new(event, format!("e{n}"), 0));
        }
        for (i, (c, mailbox)) in conns.iter().zip(&mailboxes).enumerate() {
            let mut got = Vec::new();
            while let Some(frame) = mailbox.try_pop() {
                let envelope: Value = serde_json::from_str(frame.payload()).unwrap();
                got.push(envelope["id"].as_str().unwrap().to_owned());
            }
            let want: Vec<String> = events
                .iter()
                .enumerate()
                .filter(|(_, e)| oracle(i, c, e))
                .map(|(n, _)| format!("e{n}"))
                .collect();
            prop_assert_eq!(&got, &want, "connection {} {:?}", i, c);
        }
        prop_assert_eq!(hub.stats().slow_consumers_closed, 0);
    }
}

/// The same property end to end: real clients, the publish API, the envelope ids they receive.
#[test]
fn a_real_server_delivers_exactly_what_the_rules_allow() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = Arc::new(runtime.block_on(support::TestServer::start()));
    let system = MODEL
        .namespaces
        .iter()
        .position(|n| n.name == "system")
        .unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 40,
        ..ProptestConfig::default()
    });
    runner
        .run(&scenario(), |(mut conns, events)| {
            // Every client hears the end marker on `system`.
            for c in &mut conns {
                if !c.namespaces.contains(&system) {
                    c.namespaces.push(system);
                }
            }
            runtime.block_on(async {
                let mut clients = Vec::new();
                for c in &conns {
                    let names: Vec<&str> = c
                        .namespaces
                        .iter()
                        .map(|&n| MODEL.namespaces[n].name.as_str())
                        .collect();
                    clients.push(
                        server
                            .connect(USERS[c.user], &MODEL.roles[c.role].name, &names)
                            .await,
                    );
                }
                let sessions: Vec<String> = clients.iter().map(|c| c.session_id.clone()).collect();
                let mut ids = Vec::new();
                for e in &events {
                    let (kind, data, _, mut options) = request(e);
                    options["excludeSessionIds"] = json!(
                        e.options
                            .exclude_sessions
                            .iter()
                            .map(|&s| sessions[s].clone())
                            .collect::<Vec<_>>()
                    );
                    ids.push(server.publish(&kind, data, options).await);
                }
                support::marker(&server, "end").await;
                for (i, (c, client)) in conns.iter().zip(&mut clients).enumerate() {
                    let got: Vec<String> = client
                        .events_until("end")
                        .await
                        .into_iter()
                        .map(|e| e["id"].as_str().unwrap().to_owned())
                        .filter(|id| ids.contains(id)) // presence events are not part of the case
                        .collect();
                    let want: Vec<String> = events
                        .iter()
                        .zip(&ids)
                        .filter(|(e, _)| oracle(i, c, e))
                        .map(|(_, id)| id.clone())
                        .collect();
                    prop_assert_eq!(&got, &want, "connection {} {:?}", i, c);
                }
                Ok(())
            })
        })
        .unwrap();
}
