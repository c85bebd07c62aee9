//! Idempotency keys: the fingerprint of a request, and the embedded broker's memory of each
//! key's result (the ids its publish got and the fingerprint of what was published), kept for
//! the key's window, so a publisher retrying after a lost response learns them instead of
//! publishing twice. (The Redis broker keeps them in Redis, in the publish script.)

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::event::OutgoingEvent;
use crate::server::shrink::Shrink;

/// How long a key's result is remembered.
pub const WINDOW: Duration = Duration::from_secs(300);

/// How long the result of a key the server assigned (a publish that came without one) is
/// remembered: long enough for the retry of an unknown outcome, short enough that keying every
/// publish costs Redis little.
pub const ASSIGNED_WINDOW: Duration = Duration::from_secs(60);

/// A digest of `events` as the publisher sent them: each event's type, data, options and
/// explicit timestamp, in order, every part length-prefixed. 32 hex digits.
pub(crate) fn fingerprint(events: &[OutgoingEvent]) -> String {
    fn part(hash: &mut Sha256, bytes: &[u8]) {
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    }
    fn list(hash: &mut Sha256, items: &[String]) {
        hash.update((items.len() as u64).to_le_bytes());
        for item in items {
            part(hash, item.as_bytes());
        }
    }
    let mut hash = Sha256::new();
    for event in events {
        part(&mut hash, event.descriptor.name.as_bytes());
        part(&mut hash, event.data.get().as_bytes());
        let options = &event.options;
        part(
            &mut hash,
            &options.roles.map_or([0xff; 9], |r| {
                let mut bytes = [0; 9];
                bytes[1..].copy_from_slice(&r.bits().to_le_bytes());
                bytes
            }),
        );
        match &options.user_ids {
            Some(users) => list(&mut hash, users),
            None => part(&mut hash, b"all users"),
        }
        list(&mut hash, &options.exclude_user_ids);
        list(&mut hash, &options.exclude_session_ids);
        part(&mut hash, options.namespace.unwrap_or("").as_bytes());
        part(
            &mut hash,
            &event.timestamp.map_or([0xff; 9], |t| {
                let mut bytes = [0; 9];
                bytes[1..].copy_from_slice(&t.to_le_bytes());
                bytes
            }),
        );
    }
    hash.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a key's memory says about a request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Not within its window: publish it.
    New,
    /// The same request published these ids.
    Same(Vec<String>),
    /// Another request was published under the key.
    Reused,
}

/// Results by key, expiring after each key's window.
#[derive(Debug, Default)]
pub(crate) struct Keys {
    results: HashMap<String, (String, Vec<String>)>,
    /// Keys in the order they were stored, with when they expire.
    expiry: VecDeque<(u64, String)>,
}

impl Keys {
    /// What `key` says about a request with `fingerprint`.
    pub(crate) fn get(&mut self, key: &str, fingerprint: &str, now_ms: u64) -> Seen {
        self.expire(now_ms);
        match self.results.get(key) {
            None => Seen::New,
            Some((seen, ids)) if seen == fingerprint => Seen::Same(ids.clone()),
            Some(_) => Seen::Reused,
        }
    }

    /// Remembers `ids` as the result of `key` for a request with `fingerprint`.
    pub(crate) fn insert(
        &mut self,
        key: String,
        fingerprint: String,
        ids: Vec<String>,
        window: Duration,
        now_ms: u64,
    ) {
        self.expire(now_ms);
        let until = now_ms + window.as_millis() as u64;
        // Kept in expiry order: the windows are one of two lengths, so a key with the shorter
        // one may wait behind longer ones (and stay a little longer than its window).
        let at = self.expiry.partition_point(|(other, _)| *other <= until);
        self.expiry.insert(at, (until, key.clone()));
        self.results.insert(key, (fingerprint, ids));
    }

    fn expire(&mut self, now_ms: u64) {
        while let Some((until, _)) = self.expiry.front()
            && *until <= now_ms
        {
            let (_, key) = self.expiry.pop_front().expect("front exists");
            self.results.remove(&key);
            self.results.shrink_when_sparse();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_remembered_for_its_window_and_bound_to_its_request() {
        let mut keys = Keys::default();
        let ids = vec!["orders.e.1".to_owned()];
        keys.insert("k".into(), "f1".into(), ids.clone(), WINDOW, 1_000);
        assert_eq!(keys.get("k", "f1", 2_000), Seen::Same(ids));
        assert_eq!(keys.get("k", "f2", 2_000), Seen::Reused);
        assert_eq!(keys.get("other", "f1", 2_000), Seen::New);
        let end = 1_000 + WINDOW.as_millis() as u64;
        assert!(matches!(keys.get("k", "f1", end - 1), Seen::Same(_)));
        assert_eq!(keys.get("k", "f1", end), Seen::New);
    }

    #[test]
    fn shorter_windows_expire_in_order_too() {
        let mut keys = Keys::default();
        keys.insert("long".into(), "f".into(), vec![], WINDOW, 0);
        keys.insert("short".into(), "f".into(), vec![], ASSIGNED_WINDOW, 0);
        let short_end = ASSIGNED_WINDOW.as_millis() as u64;
        assert_eq!(keys.get("short", "f", short_end), Seen::New);
        assert!(matches!(keys.get("long", "f", short_end), Seen::Same(_)));
    }
}
