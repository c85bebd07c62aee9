#![allow(unused_imports)] // the derive fails before it uses the role enum
use omnicast::Role;
use omnicast_macros::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
#[event(name = "order:created", namespace = "orders", roles(Role::Customer), owner = custmer_id)]
pub struct OrderCreated {
    pub order_id: String,
    pub customer_id: String,
}
fn main() {}
