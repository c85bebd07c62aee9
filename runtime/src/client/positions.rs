//! Where a client is in each namespace's stream, as the server's ids say. Ids are opaque (the
//! offset in them is sealed): a client cannot compare two, and need not. The server sends a
//! namespace's events in order, so its position is the id of the last event of it received, or
//! the position the server gave when it was joined. An id seen among the last few of its
//! namespace is an exact duplicate, and is dropped.

use std::collections::{HashMap, VecDeque};

/// How many recent ids per namespace are remembered to recognize a duplicate.
const RECENT: usize = 64;

#[derive(Debug, Default)]
pub(super) struct Positions {
    /// The position to resume each namespace from.
    last: HashMap<String, String>,
    /// The ids of the latest events received, per namespace.
    recent: HashMap<String, VecDeque<String>>,
}

/// The namespace an id names (its stream): what comes before its first dot.
pub(super) fn namespace_of(id: &str) -> &str {
    id.split('.').next().unwrap_or(id)
}

impl Positions {
    /// An event with `id` arrived: its namespace moves on to it. False for a duplicate.
    pub(super) fn received(&mut self, id: &str) -> bool {
        let namespace = namespace_of(id);
        let recent = self.recent.entry(namespace.to_owned()).or_default();
        if recent.iter().any(|seen| seen == id) {
            return false;
        }
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(id.to_owned());
        self.last.insert(namespace.to_owned(), id.to_owned());
        true
    }

    /// `namespace` was joined at `id` (the server's position for it).
    pub(super) fn joined(&mut self, namespace: &str, id: &str) {
        self.last.insert(namespace.to_owned(), id.to_owned());
    }

    /// Where to resume `namespace` from.
    pub(super) fn get(&self, namespace: &str) -> Option<&String> {
        self.last.get(namespace)
    }

    /// Forgets `namespace` (unsubscribed, or dropped by a refresh).
    pub(super) fn remove(&mut self, namespace: &str) {
        self.last.remove(namespace);
        self.recent.remove(namespace);
    }

    /// Forgets every namespace (positions the server no longer reads).
    pub(super) fn clear(&mut self) {
        self.last.clear();
        self.recent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::Positions;

    #[test]
    fn the_last_id_received_is_the_position_and_exact_repeats_are_dropped() {
        let mut positions = Positions::default();
        positions.joined("orders", "orders.e.AAA");
        assert!(positions.received("orders.e.x1"));
        assert!(positions.received("orders.e.x2"));
        assert!(!positions.received("orders.e.x1"), "a duplicate");
        assert_eq!(positions.get("orders").unwrap(), "orders.e.x2");
        assert!(positions.received("payments.e.x1"), "another stream");
        positions.remove("orders");
        assert!(positions.get("orders").is_none());
        assert!(
            positions.received("orders.e.x1"),
            "forgotten with its namespace"
        );
    }
}
