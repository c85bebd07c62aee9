//! The `Event` trait that every generated payload implements, and the ready-to-send event.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::options::EmitOptions;
use crate::role::RoleMask;

/// What the permission filter needs to know about one event type; one per event in the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventDescriptor {
    /// The wire name, `namespace:action` (`order:created`).
    pub name: &'static str,
    /// The namespace a connection subscribes to in order to receive it (`orders`).
    pub namespace: &'static str,
    /// One line on what happened.
    pub description: &'static str,
    /// The roles allowed to see it; [`RoleMask::ALL`] for `all`.
    pub roles: RoleMask,
    /// The payload field (wire name) naming the user who owns the event, if any. Roles that see only
    /// their own events receive the event only when this field equals their user id.
    pub owner_field: Option<&'static str>,
    /// The payload field (wire name) that, when present, narrows the roles to those listed.
    pub target_roles_field: Option<&'static str>,
}

/// A typed event payload. Implemented by `#[derive(Event)]` from `omnicast-macros`; the generated
/// catalog derives it for every payload struct.
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The event's type, namespace, roles, owner and targeting.
    const DESCRIPTOR: EventDescriptor;

    /// The owner's user id, for events with an owner field.
    fn owner(&self) -> Option<&str>;

    /// The roles the payload itself targets (`targetRoles`), when it names any.
    fn target_roles(&self) -> Option<RoleMask>;

    /// Computes derived fields (`difference = newStock - oldStock`, ...) from the fields they
    /// derive from, so no event leaves with values that disagree. `sent` says what a value already
    /// present means: a stale one to replace (typed emitters, whose inputs are the truth) or a
    /// publisher's claim to verify (JSON from the publish API). Errs when a formula overflows or a
    /// verified value disagrees; the payload is then not sent.
    fn compute(&mut self, sent: SentValues) -> Result<(), ComputeError> {
        let _ = sent;
        Ok(())
    }
}

/// Every event of a catalog as one type: what a client decodes each received event into. The
/// generated `AnyEvent` implements it.
pub trait CatalogEvents: Sized + Send + 'static {
    /// The version of the catalog these events come from (`CATALOG_VERSION`).
    const CATALOG_VERSION: &'static str;

    /// Decodes the payload `data` (JSON) of an event of type `event_type`; `None` when the
    /// catalog has no such type.
    fn decode(event_type: &str, data: &str) -> Option<Result<Self, PayloadError>>;
}

/// A payload that does not match its event's type.
pub type PayloadError = serde_json::Error;

/// Decodes a JSON payload (for generated code).
pub fn decode_json<T: DeserializeOwned>(data: &str) -> Result<T, PayloadError> {
    serde_json::from_str(data)
}

/// What [`Event::compute`] does with a computed field's value that is already present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentValues {
    /// Overwrite it: the payload's own inputs decide (typed emitters).
    Replace,
    /// Keep it only if it equals the computed value, else refuse (a publisher's JSON).
    Verify,
}

/// A computed field that cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComputeError {
    /// The formula's result does not fit the field (`newStock - oldStock` at the i64 edges, or a
    /// percent change too large for a finite number).
    #[error("`{field}` = `{formula}` does not fit the field: the result overflows")]
    Overflow {
        /// The field's wire name.
        field: &'static str,
        /// The formula, as written in events.yaml.
        formula: &'static str,
    },
    /// A publisher sent a value that disagrees with the formula.
    #[error(
        "`{field}` is computed as `{formula}` = {expected}, but the payload says {sent}; omit it or send {expected}"
    )]
    Mismatch {
        /// The field's wire name.
        field: &'static str,
        /// The formula, as written in events.yaml.
        formula: &'static str,
        /// The value the formula gives.
        expected: String,
        /// The value sent.
        sent: String,
    },
}

impl ComputeError {
    /// The field's wire name.
    pub fn field(&self) -> &'static str {
        match self {
            ComputeError::Overflow { field, .. } | ComputeError::Mismatch { field, .. } => field,
        }
    }
}

/// An event ready for delivery: its payload serialized once, plus what filtering needs.
#[derive(Debug, Clone)]
pub struct OutgoingEvent {
    /// The event type.
    pub descriptor: &'static EventDescriptor,
    /// The payload as JSON, serialized once and shared by every recipient.
    pub data: Box<RawValue>,
    /// The owner's user id (see [`EventDescriptor::owner_field`]).
    pub owner: Option<String>,
    /// The roles named by the payload's target-roles field, when present.
    pub target_roles: Option<RoleMask>,
    /// Milliseconds since the Unix epoch; the server sets it when the emitter did not.
    pub timestamp: Option<u64>,
    /// The emitter's targeting options.
    pub options: EmitOptions,
}

impl OutgoingEvent {
    /// Computes (replacing stale values) and serializes a typed payload.
    pub fn new<E: Event>(mut payload: E, options: EmitOptions) -> Result<Self, ComputeError> {
        payload.compute(SentValues::Replace)?;
        Ok(Self::computed(payload, options))
    }

    /// Serializes a payload whose computed fields are already computed.
    pub(crate) fn computed<E: Event>(payload: E, options: EmitOptions) -> Self {
        let data = serde_json::value::to_raw_value(&payload)
            .expect("generated payloads contain only JSON-representable values");
        OutgoingEvent {
            descriptor: &E::DESCRIPTOR,
            owner: payload.owner().map(str::to_owned),
            target_roles: payload.target_roles(),
            data,
            timestamp: None,
            options,
        }
    }

    /// The roles that may receive this event: the event's roles, narrowed by the payload's target
    /// roles and by the emitter's `roles` option. Nothing here can widen the event's roles.
    pub fn allowed_roles(&self) -> RoleMask {
        let mut allowed = self.descriptor.roles;
        if let Some(target) = self.target_roles {
            allowed = allowed & target;
        }
        if let Some(roles) = self.options.roles {
            allowed = allowed & roles;
        }
        allowed
    }

    /// The namespace whose subscribers are addressed: the emitter's `namespace` option, or the
    /// event's own namespace.
    pub fn namespace(&self) -> &'static str {
        self.options.namespace.unwrap_or(self.descriptor.namespace)
    }
}

/// The change from `old` to `new` in percent, rounded to two decimals (`3000 -> 2500` is `-16.67`).
///
/// From zero the change is undefined; it is `0.0`. `None` when the result is not a finite number
/// (`1e-300 -> 1e300`), which JSON cannot carry: such a payload is refused, never sent as `null`.
pub fn percent_change(old: f64, new: f64) -> Option<f64> {
    if old == 0.0 {
        return Some(0.0);
    }
    let percent = ((new - old) / old * 10_000.0).round() / 100.0;
    // `-0.0` (a tiny negative change rounded away) is sent as `0`.
    percent.is_finite().then_some(percent + 0.0)
}

#[cfg(test)]
mod tests {
    use super::percent_change;

    #[test]
    fn percent_change_rounds_to_two_decimals() {
        assert_eq!(percent_change(3000.0, 2500.0), Some(-16.67));
        assert_eq!(percent_change(100.0, 150.0), Some(50.0));
        assert_eq!(percent_change(0.0, 10.0), Some(0.0));
        assert_eq!(percent_change(3.0, 4.0), Some(33.33));
    }

    #[test]
    fn percent_change_is_never_infinite_or_nan() {
        assert_eq!(percent_change(1e-300, 1e300), None);
        assert_eq!(percent_change(-1e-300, 1e300), None);
        assert_eq!(percent_change(f64::MAX, -f64::MAX), None);
        let tiny = percent_change(1e6, 1e6 - 1e-9).unwrap();
        assert!(tiny == 0.0 && tiny.is_sign_positive(), "{tiny}");
    }
}
