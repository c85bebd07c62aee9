//! Stream positions: where an event stands in the stream of its namespace.
//!
//! Every namespace is one stream. Its events are numbered by a dense offset (1, 2, 3 ...) within
//! an epoch, a random token that changes whenever the stream's numbering starts again (a new
//! embedded broker, a Redis that lost its data). A position reads `<namespace>.<epoch>.<offset>`,
//! e.g. `orders.k3v9q2mf.1042`, on the server's side only: the event ids clients and publishers
//! see carry the offset sealed (`orders.k3v9q2mf.<22 characters>`, see `server::positions`),
//! so that a dense count of events a connection may not see is not handed to it. No commas in
//! either: a list of ids is comma-separated.

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
#[error("`{id}` is not an event id: {reason} (send back an id as the server sent it)")]
pub struct BadPosition {
    id: String,
    reason: &'static str,
}

impl BadPosition {
    /// `id` (its first 100 characters) is not a position, for `reason`.
    pub fn new(id: &str, reason: &'static str) -> Self {
        BadPosition {
            id: id.chars().take(100).collect(),
            reason,
        }
    }
}

impl Position {
    /// The three parts of an id, `namespace.epoch.rest`, with the namespace and the epoch
    /// checked; `rest` is the offset, or (what clients see) the sealed offset.
    pub fn parts(id: &str) -> Result<(&str, &str, &str), BadPosition> {
        let bad = |reason| BadPosition::new(id, reason);
        let mut parts = id.rsplitn(3, '.');
        let (Some(rest), Some(epoch), Some(namespace)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("it has no `namespace.epoch.position` parts"));
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
        Ok((namespace, epoch, rest))
    }

    /// Reads a readable position (`orders.k3v9q2mf.1042`, what [`Display`](fmt::Display)
    /// prints). The ids clients see are sealed (`server::positions`) and read there.
    pub fn parse(id: &str) -> Result<Position, BadPosition> {
        let (namespace, epoch, offset) = Position::parts(id)?;
        let bad = |reason| BadPosition::new(id, reason);
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
