//! Namespace sets as bitmasks, like [`RoleMask`](crate::RoleMask): a connection's subscription
//! is one of these, so checking it is a single AND.

use std::fmt;

/// A set of namespaces, one bit per namespace in the catalog's namespace order (at most 64; the
/// code generator checks this).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NamespaceSet(u64);

impl NamespaceSet {
    /// No namespace.
    pub const EMPTY: NamespaceSet = NamespaceSet(0);

    /// The set with the given bits.
    pub const fn from_bits(bits: u64) -> Self {
        NamespaceSet(bits)
    }

    /// The first `count` namespaces: every namespace of a catalog that has `count`.
    pub const fn first(count: usize) -> Self {
        if count >= 64 {
            NamespaceSet(u64::MAX)
        } else {
            NamespaceSet((1 << count) - 1)
        }
    }

    /// The set holding only the namespace at `index`.
    ///
    /// # Panics
    /// When `index >= 64`; generated catalogs never have that many namespaces.
    pub const fn single(index: usize) -> Self {
        assert!(index < 64, "a catalog has at most 64 namespaces");
        NamespaceSet(1 << index)
    }

    /// The raw bits.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Whether the namespace at `index` is in the set.
    pub const fn contains(self, index: usize) -> bool {
        index < 64 && self.0 & (1 << index) != 0
    }

    /// Both sets together.
    pub const fn union(self, other: NamespaceSet) -> Self {
        NamespaceSet(self.0 | other.0)
    }

    /// The namespaces in both sets.
    pub const fn intersection(self, other: NamespaceSet) -> Self {
        NamespaceSet(self.0 & other.0)
    }

    /// The namespaces of `self` that are not in `other`.
    pub const fn difference(self, other: NamespaceSet) -> Self {
        NamespaceSet(self.0 & !other.0)
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The namespace indexes in the set, lowest first.
    pub fn indexes(self) -> impl Iterator<Item = usize> {
        (0..64).filter(move |&i| self.contains(i))
    }
}

impl FromIterator<usize> for NamespaceSet {
    fn from_iter<I: IntoIterator<Item = usize>>(indexes: I) -> Self {
        indexes.into_iter().fold(NamespaceSet::EMPTY, |set, i| {
            set.union(NamespaceSet::single(i))
        })
    }
}

impl fmt::Debug for NamespaceSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.indexes()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::NamespaceSet;

    #[test]
    fn set_operations() {
        let a: NamespaceSet = [0, 2, 5].into_iter().collect();
        let b: NamespaceSet = [2, 3].into_iter().collect();
        assert_eq!(a.union(b).indexes().collect::<Vec<_>>(), [0, 2, 3, 5]);
        assert_eq!(a.intersection(b).indexes().collect::<Vec<_>>(), [2]);
        assert_eq!(a.difference(b).indexes().collect::<Vec<_>>(), [0, 5]);
        assert!(a.contains(5) && !a.contains(1) && !a.contains(64));
        assert_eq!(NamespaceSet::first(3).bits(), 0b111);
        assert_eq!(NamespaceSet::first(64).bits(), u64::MAX);
        assert_eq!(format!("{a:?}"), "{0, 2, 5}");
    }
}
