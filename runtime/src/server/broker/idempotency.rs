//! The embedded broker's memory of idempotency keys: the ids each key's publish got, kept for
//! [`WINDOW`], so a publisher retrying after a lost response learns them instead of publishing
//! twice. (The Redis broker keeps them in Redis, in the publish script.)

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// How long a key's result is remembered.
pub const WINDOW: Duration = Duration::from_secs(300);

/// Results by key, expiring after [`WINDOW`].
#[derive(Debug, Default)]
pub(crate) struct Keys {
    results: HashMap<String, Vec<String>>,
    /// Keys in the order they were stored, with when they expire.
    expiry: VecDeque<(u64, String)>,
}

impl Keys {
    /// The ids published under `key`, if within the window.
    pub(crate) fn get(&mut self, key: &str, now_ms: u64) -> Option<Vec<String>> {
        self.expire(now_ms);
        self.results.get(key).cloned()
    }

    /// Remembers `ids` as the result of `key`.
    pub(crate) fn insert(&mut self, key: String, ids: Vec<String>, now_ms: u64) {
        self.expire(now_ms);
        let until = now_ms + WINDOW.as_millis() as u64;
        self.expiry.push_back((until, key.clone()));
        self.results.insert(key, ids);
    }

    fn expire(&mut self, now_ms: u64) {
        while let Some((until, _)) = self.expiry.front()
            && *until <= now_ms
        {
            let (_, key) = self.expiry.pop_front().expect("front exists");
            self.results.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_remembered_for_the_window_only() {
        let mut keys = Keys::default();
        keys.insert("k".into(), vec!["orders.e.1".into()], 1_000);
        assert_eq!(keys.get("k", 2_000), Some(vec!["orders.e.1".to_owned()]));
        assert_eq!(keys.get("other", 2_000), None);
        let end = 1_000 + WINDOW.as_millis() as u64;
        assert_eq!(keys.get("k", end - 1).map(|ids| ids.len()), Some(1));
        assert_eq!(keys.get("k", end), None);
    }
}
