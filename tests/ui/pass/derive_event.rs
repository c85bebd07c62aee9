//! A hand-written payload: the derive alone makes it an event the runtime can send.

use omnicast::Role;
use omnicast::runtime::{ComputeError, Emit, Event, EventSink, OutgoingEvent, RoleMask, SentValues};
use omnicast_macros::Event;
use serde::{Deserialize, Serialize};

/// A parcel left the warehouse
#[derive(Serialize, Deserialize, schemars::JsonSchema, Event)]
#[serde(rename_all = "camelCase")]
#[event(name = "order:dispatched", namespace = "orders", roles(Role::Admin, Role::Customer), owner = customer_id)]
pub struct OrderDispatched {
    pub customer_id: String,
    pub parcels: i64,
    pub weight_grams: i64,
    #[event(computed = self.weight_grams.checked_div(self.parcels.max(1)), formula = "weightGrams / parcels")]
    #[serde(default)]
    pub average_grams: Option<i64>,
}

/// Everyone, narrowed by the payload.
#[derive(Serialize, Deserialize, Event)]
#[event(name = "system:ping", namespace = "system", roles(all), target_roles = to)]
pub struct SystemPing {
    #[serde(rename = "toRoles")]
    pub to: Option<Vec<Role>>,
}

struct Last;
impl EventSink for Last {
    type Output = Option<OutgoingEvent>;
    fn publish(&self, event: OutgoingEvent) -> Option<OutgoingEvent> {
        Some(event)
    }
    fn refuse(&self, _: ComputeError) -> Option<OutgoingEvent> {
        None
    }
}

fn main() {
    let d = OrderDispatched::DESCRIPTOR;
    assert_eq!(d.name, "order:dispatched");
    assert_eq!(d.namespace, "orders");
    assert_eq!(d.description, "A parcel left the warehouse");
    assert_eq!(d.roles, Role::Admin.mask() | Role::Customer.mask());
    assert_eq!(d.owner_field, Some("customerId"));
    assert_eq!(d.target_roles_field, None);

    let payload = OrderDispatched { customer_id: "C-1".into(), parcels: 2, weight_grams: 900, average_grams: Some(7) };
    let sent = Emit::new(&Last, payload).send().unwrap();
    assert_eq!(sent.owner.as_deref(), Some("C-1"));
    assert_eq!(sent.data.get(), r#"{"customerId":"C-1","parcels":2,"weightGrams":900,"averageGrams":450}"#);

    let mut claimed = OrderDispatched { customer_id: "C-1".into(), parcels: 2, weight_grams: 900, average_grams: Some(7) };
    let err = claimed.compute(SentValues::Verify).unwrap_err();
    assert_eq!(err.to_string(), "`averageGrams` is computed as `weightGrams / parcels` = 450, but the payload says 7; omit it or send 450");

    assert_eq!(SystemPing::DESCRIPTOR.roles, RoleMask::ALL);
    assert_eq!(SystemPing::DESCRIPTOR.target_roles_field, Some("toRoles"));
    let ping = SystemPing { to: Some(vec![Role::Staff]) };
    assert_eq!(ping.target_roles(), Some(Role::Staff.mask()));
    assert_eq!(SystemPing { to: None }.target_roles(), None);
}
