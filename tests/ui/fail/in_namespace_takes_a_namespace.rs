//! `in_namespace` takes the generated `Namespace`, so a misspelt name cannot compile.

use omnicast::runtime::{ComputeError, EventSink, OutgoingEvent};
use omnicast::{Events, MaintenancePayload};

struct Drop;
impl EventSink for Drop {
    type Output = ();
    fn publish(&self, _: OutgoingEvent) {}
    fn refuse(&self, _: ComputeError) {}
}

fn main() {
    let events = Events::new(Drop);
    let payload = MaintenancePayload { message: "m".into(), scheduled_at: None, duration: None };
    events.system_maintenance(payload).in_namespace("ordrs").send();
}
