//! Maps that give memory back. A map keyed by connection (or user, session, address) grows to
//! the most connections it ever held and keeps that capacity after they leave: a node that
//! took a burst of reconnects (a neighbour killed, an epoch change) would hold the burst's
//! tables for good. Each such map is shrunk as it empties, the way a vector is: once under a
//! quarter full, to twice what it holds. A shrink costs a rehash of what remains, and the next
//! one takes at least as many removals, so removal stays O(1) amortized.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

/// Maps below this capacity are left alone: too small to matter, and they churn most.
const FLOOR: usize = 64;

/// A map (or set) whose capacity can be brought down to what it holds.
pub(crate) trait Shrink {
    fn held(&self) -> usize;
    fn room(&self) -> usize;
    fn shrink(&mut self, to: usize);

    /// Called after a removal: shrinks the map once it is under a quarter full.
    fn shrink_when_sparse(&mut self) {
        let room = self.room();
        if room > FLOOR && self.held() < room / 4 {
            self.shrink((self.held() * 2).max(FLOOR / 2));
        }
    }
}

impl<K: Hash + Eq, V, S: BuildHasher> Shrink for HashMap<K, V, S> {
    fn held(&self) -> usize {
        self.len()
    }
    fn room(&self) -> usize {
        self.capacity()
    }
    fn shrink(&mut self, to: usize) {
        self.shrink_to(to);
    }
}

impl<K: Hash + Eq, V, S: BuildHasher> Shrink for indexmap::IndexMap<K, V, S> {
    fn held(&self) -> usize {
        self.len()
    }
    fn room(&self) -> usize {
        self.capacity()
    }
    fn shrink(&mut self, to: usize) {
        self.shrink_to(to);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_emptied_after_a_peak_gives_its_room_back() {
        let mut map = HashMap::new();
        for i in 0..100_000u32 {
            map.insert(i, i);
        }
        let peak = map.capacity();
        for i in 0..99_000u32 {
            map.remove(&i);
            map.shrink_when_sparse();
            assert!(
                map.capacity() <= 8 * map.len().max(FLOOR),
                "{} held in room for {} after {} removals",
                map.len(),
                map.capacity(),
                i + 1
            );
        }
        assert!(
            map.capacity() <= 4 * map.len(),
            "{} of {peak}",
            map.capacity()
        );
        assert_eq!(map.len(), 1_000);
    }

    #[test]
    fn shrinking_is_amortized() {
        // Removing and adding around a boundary does not rehash on every step.
        let mut map: indexmap::IndexMap<u32, ()> = (0..1_000).map(|i| (i, ())).collect();
        let mut shrinks = 0;
        for round in 0..1_000u32 {
            let before = map.capacity();
            map.swap_remove(&(round % 1_000));
            map.shrink_when_sparse();
            shrinks += usize::from(map.capacity() < before);
            map.insert(round % 1_000, ());
        }
        assert_eq!(shrinks, 0, "a map that stays full never shrinks");
        let mut shrinks = 0;
        for i in 0..1_000u32 {
            let before = map.capacity();
            map.swap_remove(&i);
            map.shrink_when_sparse();
            shrinks += usize::from(map.capacity() < before);
        }
        assert!(
            (1..=5).contains(&shrinks),
            "{shrinks} shrinks to empty 1,000"
        );
        assert!(map.capacity() <= FLOOR, "{}", map.capacity());
    }
}
