//! The independent model the permission tests check against: the catalog as codegen loads it
//! from events.yaml (never the compiled table), generators of connections, events and steps,
//! and [`oracle`], the four delivery rules written out directly.

use std::path::Path;
use std::sync::LazyLock;

use omnicast::CATALOG;
use omnicast::runtime::{EmitOptions, NamespaceSet, RoleMask};
use omnicast_codegen::model::{Audience, Catalog as Model};
use proptest::prelude::*;
use serde_json::{Value, json};

pub static MODEL: LazyLock<Model> = LazyLock::new(|| {
    omnicast_codegen::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("events.yaml"))
        .unwrap_or_else(|d| panic!("{d}"))
});

pub const USERS: [&str; 5] = ["u0", "u1", "u2", "u3", "u4"];

#[derive(Debug, Clone)]
pub struct Conn {
    pub user: usize,
    pub role: usize,
    pub namespaces: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub roles: Option<Vec<usize>>,
    pub user_ids: Option<Vec<String>>,
    pub exclude_users: Vec<usize>,
    pub exclude_sessions: Vec<usize>,
    pub namespace: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct Ev {
    pub event: usize,
    pub owner: usize,
    pub target_roles: Option<Vec<usize>>,
    pub options: Options,
}

pub fn subset(n: usize) -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::btree_set(0..n, 0..=n).prop_map(|s| s.into_iter().collect())
}

pub fn conn() -> impl Strategy<Value = Conn> {
    let (roles, namespaces) = (MODEL.roles.len(), MODEL.namespaces.len());
    (0..USERS.len(), 0..roles, subset(namespaces)).prop_map(|(user, role, namespaces)| Conn {
        user,
        role,
        namespaces,
    })
}

pub fn event(connections: usize) -> impl Strategy<Value = Ev> {
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
pub enum Step {
    Publish(Ev),
    Subscribe(usize, Vec<usize>),
    Unsubscribe(usize, Vec<usize>),
    Disconnect(usize),
    Reconnect(usize),
    /// The slot's client sends a fresh token with this role: of its own user, or (`true`) of
    /// another user (refused: nothing changes).
    Refresh(usize, usize, bool),
    /// The slot's login session is revoked: its connection closes, nothing reaches it after.
    Revoke(usize),
    /// The slot's user is asked to re-authorize; each of its clients answers with a token of
    /// its role issued since.
    Reauthorize(usize),
}

pub fn step(slots: usize) -> impl Strategy<Value = Step> {
    let (roles, namespaces) = (MODEL.roles.len(), MODEL.namespaces.len());
    prop_oneof![
        6 => event(slots).prop_map(Step::Publish),
        1 => (0..slots, subset(namespaces)).prop_map(|(s, n)| Step::Subscribe(s, n)),
        1 => (0..slots, subset(namespaces)).prop_map(|(s, n)| Step::Unsubscribe(s, n)),
        1 => (0..slots).prop_map(Step::Disconnect),
        1 => (0..slots).prop_map(Step::Reconnect),
        2 => (0..slots, 0..roles, proptest::bool::weighted(0.2))
            .prop_map(|(s, r, other)| Step::Refresh(s, r, other)),
        1 => (0..slots).prop_map(Step::Revoke),
        1 => (0..slots).prop_map(Step::Reauthorize),
    ]
}

/// The namespaces in which `role` may receive at least one of the namespace's event types: what a
/// refresh to `role` keeps of a subscription.
pub fn visible(role: usize) -> Vec<usize> {
    (0..MODEL.namespaces.len())
        .filter(|&ns| {
            MODEL.events.iter().any(|e| {
                e.namespace == MODEL.namespaces[ns].name
                    && match &e.audience {
                        Audience::All => true,
                        Audience::Roles(roles) => roles.contains(&role),
                    }
            })
        })
        .collect()
}

/// `c` after a refresh to `role`: the role, and the subscription without the namespaces its old
/// role saw something in and the new one sees nothing.
pub fn refreshed(c: &Conn, role: usize) -> Conn {
    let (before, after) = (visible(c.role), visible(role));
    Conn {
        user: c.user,
        role,
        namespaces: c
            .namespaces
            .iter()
            .copied()
            .filter(|n| after.contains(n) || !before.contains(n))
            .collect(),
    }
}

pub fn scenario() -> impl Strategy<Value = (Vec<Conn>, Vec<Step>)> {
    proptest::collection::vec(conn(), 1..10).prop_flat_map(|conns| {
        let n = conns.len();
        (Just(conns), proptest::collection::vec(step(n), 1..16))
    })
}

/// The model's view of one slot.
#[derive(Debug, Clone)]
pub struct Slot {
    pub initial: Conn,
    /// The subscription now, while connected.
    pub now: Option<Conn>,
    /// Sessions the slot has had (a reconnect starts a new one).
    pub sessions: usize,
}

impl Slot {
    pub fn new(conn: &Conn) -> Self {
        Slot {
            initial: conn.clone(),
            now: Some(conn.clone()),
            sessions: 1,
        }
    }

    /// The current session: slot and generation.
    pub fn key(&self, slot: usize) -> (usize, usize) {
        (slot, self.sessions)
    }
}

pub fn with(namespaces: &[usize], add: &[usize], remove: &[usize]) -> Vec<usize> {
    let mut out: Vec<usize> = namespaces.iter().chain(add).copied().collect();
    out.retain(|n| !remove.contains(n));
    out.sort_unstable();
    out.dedup();
    out
}

/// The presence events the server emits when `user` with `role` opens its first (`first`) or
/// closes its last connection, as `Ev`s the oracle can judge: owned by the user, no options.
pub fn presence(first: bool, user: usize, role: usize) -> Vec<Ev> {
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

pub fn session((slot, generation): (usize, usize)) -> String {
    format!("session-{slot}-{generation}")
}

/// The four delivery rules (ARCHITECTURE.md), from the YAML model: may connection `c` (number `index`) receive `e`?
pub fn oracle(index: usize, c: &Conn, e: &Ev) -> bool {
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
pub fn request(e: &Ev, sessions: &[String]) -> (String, Value, EmitOptions, Value) {
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

pub fn mask(namespaces: &[usize]) -> NamespaceSet {
    namespaces.iter().copied().collect()
}

/// Each connection before it left, and the one its user resumes with: the same user, perhaps
/// another role (a narrower token) and other namespaces.
pub fn replay_scenario() -> impl Strategy<Value = (Vec<(Conn, Conn)>, Vec<Ev>)> {
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
