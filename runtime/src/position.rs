//! Stream positions: where an event stands in the stream of its namespace, and the event ids
//! that carry them.
//!
//! Every namespace is one stream. Its events are numbered by a dense offset (1, 2, 3 ...) within
//! an epoch, a random token that changes whenever the stream's numbering starts again (a new
//! embedded broker, a Redis that lost its data). An event's id is
//! `<namespace>.<epoch>.<offset>`, e.g. `orders.k3v9q2mf.1042`: no commas, so a list of ids is
//! comma-separated, and offsets compare only within one epoch.

use std::fmt;

/// Where an event stands in its namespace's stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Position {
    /// The namespace's name.
    pub namespace: String,
    /// The stream's epoch.
    pub epoch: String,
    /// The event's offset, from 1; 0 is the position before the first event.
    pub offset: u64,
}

/// The longest epoch an id may carry.
pub const MAX_EPOCH_LEN: usize = 32;

/// Why an id is not a position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{id}` is not an event id: {reason} (ids look like `orders.k3v9q2mf.1042`)")]
pub struct BadPosition {
    id: String,
    reason: &'static str,
}

impl Position {
    /// Reads an event id.
    pub fn parse(id: &str) -> Result<Position, BadPosition> {
        let bad = |reason| BadPosition {
            id: id.chars().take(100).collect(),
            reason,
        };
        let mut parts = id.rsplitn(3, '.');
        let (Some(offset), Some(epoch), Some(namespace)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("it has no `namespace.epoch.offset` parts"));
        };
        if namespace.is_empty() || !crate::names::is_snake(namespace) {
            return Err(bad("its namespace part is not a namespace name"));
        }
        if epoch.is_empty()
            || epoch.len() > MAX_EPOCH_LEN
            || !epoch.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(bad("its epoch part is not an epoch"));
        }
        if offset.is_empty() || !offset.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("its offset part is not a whole number"));
        }
        let offset = offset.parse().map_err(|_| bad("its offset is too large"))?;
        Ok(Position {
            namespace: namespace.to_owned(),
            epoch: epoch.to_owned(),
            offset,
        })
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.namespace, self.epoch, self.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::Position;

    #[test]
    fn ids_read_back_as_the_positions_they_print() {
        let position = Position {
            namespace: "orders".into(),
            epoch: "k3v9q2mf".into(),
            offset: 1042,
        };
        assert_eq!(position.to_string(), "orders.k3v9q2mf.1042");
        assert_eq!(Position::parse("orders.k3v9q2mf.1042"), Ok(position));
        assert_eq!(
            Position::parse("customer_activity.a1.0").unwrap().namespace,
            "customer_activity"
        );
    }

    #[test]
    fn malformed_ids_are_refused_with_the_reason() {
        for (id, reason) in [
            ("", "parts"),
            ("orders.1", "parts"),
            ("orders..1", "epoch"),
            ("orders.k3v9.", "offset"),
            ("orders.k3v9.-1", "offset"),
            ("orders.k3v9.1e3", "offset"),
            ("orders.k3v9.99999999999999999999999", "too large"),
            ("Orders.k3v9.1", "namespace"),
            ("or,ders.k3v9.1", "namespace"),
            ("orders.k3-9.1", "epoch"),
            ("evt_3fa1c09b22e4_1f", "parts"),
        ] {
            let err = Position::parse(id).unwrap_err().to_string();
            assert!(err.contains(reason), "{id:?}: {err}");
        }
    }
}
