//! Role sets as bitmasks, so permission checks are a single AND.

use std::fmt;
use std::ops::{BitAnd, BitOr};

/// A set of roles, one bit per role in the catalog's role order.
///
/// A catalog has at most 64 roles (the code generator checks this). [`RoleMask::ALL`] has every bit
/// set and stands for "every role", whatever the catalog defines.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RoleMask(u64);

impl RoleMask {
    /// No role.
    pub const EMPTY: RoleMask = RoleMask(0);
    /// Every role (`roles: all` in events.yaml).
    pub const ALL: RoleMask = RoleMask(u64::MAX);

    /// The mask with the given bits.
    pub const fn from_bits(bits: u64) -> Self {
        RoleMask(bits)
    }

    /// The mask holding only the role at `index` in the catalog's role list.
    ///
    /// # Panics
    /// When `index >= 64`; generated catalogs never have that many roles.
    pub const fn single(index: u32) -> Self {
        assert!(index < 64, "a catalog has at most 64 roles");
        RoleMask(1 << index)
    }

    /// The raw bits.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Both sets together.
    pub const fn union(self, other: RoleMask) -> Self {
        RoleMask(self.0 | other.0)
    }

    /// The roles in both sets.
    pub const fn intersection(self, other: RoleMask) -> Self {
        RoleMask(self.0 & other.0)
    }

    /// Whether every role in `other` is in `self`.
    pub const fn contains(self, other: RoleMask) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the sets share a role.
    pub const fn intersects(self, other: RoleMask) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The role indexes in the set, lowest first.
    pub fn indexes(self) -> impl Iterator<Item = u32> {
        (0..64).filter(move |i| self.0 & (1 << i) != 0)
    }
}

impl BitOr for RoleMask {
    type Output = RoleMask;
    fn bitor(self, rhs: RoleMask) -> RoleMask {
        self.union(rhs)
    }
}

impl BitAnd for RoleMask {
    type Output = RoleMask;
    fn bitand(self, rhs: RoleMask) -> RoleMask {
        self.intersection(rhs)
    }
}

impl<R: Into<RoleMask>> FromIterator<R> for RoleMask {
    fn from_iter<I: IntoIterator<Item = R>>(iter: I) -> Self {
        iter.into_iter()
            .fold(RoleMask::EMPTY, |mask, role| mask | role.into())
    }
}

impl fmt::Debug for RoleMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == RoleMask::ALL {
            f.write_str("RoleMask(ALL)")
        } else {
            write!(f, "RoleMask({:#b})", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let admin = RoleMask::single(0);
        let staff = RoleMask::single(2);
        let both: RoleMask = [admin, staff].into_iter().collect();
        assert!(both.contains(admin));
        assert!(!admin.contains(both));
        assert!(both.intersects(staff));
        assert!(!admin.intersects(staff));
        assert_eq!(both & staff, staff);
        assert_eq!(both.indexes().collect::<Vec<_>>(), vec![0, 2]);
        assert!(RoleMask::ALL.contains(both));
        assert!(RoleMask::EMPTY.is_empty());
    }
}
