//! The hub's own tests.

/// One user's many connections: first and last are told apart per role, the limit holds,
/// and removing connections in any order keeps the per-user index right.
#[test]
fn a_user_with_many_connections_is_tracked_per_role() {
    use super::{ConnectionInfo, Hub, NamespaceSet, TooManyConnections};
    static CATALOG: crate::Catalog = crate::Catalog {
        version: "test",
        roles: &[
            crate::RoleDescriptor {
                name: "a",
                description: "",
                own_events_only: false,
            },
            crate::RoleDescriptor {
                name: "b",
                description: "",
                own_events_only: true,
            },
        ],
        namespaces: &[],
        events: &[],
        presence: &[],
    };
    let hub = Hub::new(&CATALOG, 4).with_max_connections_per_user(10_000);
    let info = |i: u32| ConnectionInfo {
        session_id: format!("s{i}"),
        user_id: "many".into(),
        role: i % 2,
        namespaces: NamespaceSet::EMPTY,
    };
    let ids: Vec<_> = (0..10_000)
        .map(|i| {
            let registration = hub.register(info(i)).unwrap();
            assert_eq!(registration.first_of_user, i < 2, "connection {i}");
            registration.id
        })
        .collect();
    assert_eq!(
        hub.register(info(0)).unwrap_err(),
        TooManyConnections { limit: 10_000 }
    );
    assert_eq!(hub.user_connections("many"), 10_000);
    // Remove every role-`a` connection (even indexes), then the role-`b` ones from the end.
    for (i, id) in ids.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
        let gone = hub.unregister(*id).unwrap();
        assert_eq!(
            (gone.role, gone.last_of_user),
            (0, i == 9_998),
            "connection {i}"
        );
    }
    for (i, id) in ids.iter().enumerate().rev().filter(|(i, _)| i % 2 == 1) {
        let gone = hub.unregister(*id).unwrap();
        assert_eq!(
            (gone.role, gone.last_of_user),
            (1, i == 1),
            "connection {i}"
        );
    }
    assert_eq!(hub.user_connections("many"), 0);
    assert!(hub.unregister(ids[0]).is_none());
}

/// A burst of connections that leaves gives the registry's tables back: a node that took its
/// neighbours' clients for a while does not keep tables sized for them.
#[test]
fn the_registry_shrinks_after_a_burst_leaves() {
    use super::{ConnectionInfo, Hub, NamespaceSet};
    static CATALOG: crate::Catalog = crate::Catalog {
        version: "test",
        roles: &[crate::RoleDescriptor {
            name: "a",
            description: "",
            own_events_only: false,
        }],
        namespaces: &[crate::NamespaceDescriptor {
            name: "n",
            description: "",
            history: None,
        }],
        events: &[],
        presence: &[],
    };
    let hub = Hub::new(&CATALOG, 4);
    let info = |i: u32| ConnectionInfo {
        session_id: format!("s{i}"),
        user_id: format!("u{i}"),
        role: 0,
        namespaces: NamespaceSet::single(0),
    };
    let rooms = |hub: &Hub| {
        let registry = hub.registry.read().unwrap();
        let buckets: usize = registry.buckets.iter().map(|b| b.capacity()).sum();
        [
            registry.conns.capacity(),
            registry.users.capacity(),
            buckets,
        ]
    };
    let steady: Vec<_> = (0..100)
        .map(|i| hub.register(info(i)).unwrap().id)
        .collect();
    let burst: Vec<_> = (100..20_000)
        .map(|i| hub.register(info(i)).unwrap().id)
        .collect();
    let peak = rooms(&hub);
    assert!(peak.iter().all(|&room| room >= 20_000), "{peak:?}");
    for id in burst {
        hub.unregister(id).unwrap();
    }
    let after = rooms(&hub);
    assert!(
        after.iter().all(|&room| room <= 512),
        "{after:?} after {peak:?}"
    );
    for id in steady {
        hub.unregister(id).unwrap();
    }
    assert!(
        rooms(&hub).iter().all(|&room| room <= 64),
        "{:?}",
        rooms(&hub)
    );
}

/// A user's connections per role: the first role inline, others beside it, each counted apart
/// whichever comes and goes first, and nothing left once all are gone.
#[test]
fn a_users_role_counts_stay_apart_in_any_order() {
    let mut user = super::UserConns::default();
    assert_eq!(user.count(2, 1), 1);
    assert_eq!(user.count(0, 1), 1);
    assert_eq!(user.count(2, 1), 2);
    assert_eq!(user.count(1, 1), 1);
    assert_eq!(user.count(2, -1), 1);
    // The inline role's last connection goes: another role takes its place.
    assert_eq!(user.count(2, -1), 0);
    assert_eq!(user.count(0, 1), 2);
    assert_eq!(user.count(1, -1), 0);
    assert_eq!(user.count(2, 1), 1);
    assert_eq!(user.count(0, -1), 1);
    assert_eq!(user.count(0, -1), 0);
    assert_eq!(user.count(2, -1), 0);
    assert_eq!((user.first.1, user.more.len()), (0, 0));
}
