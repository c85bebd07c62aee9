#![allow(unused_imports)] // the derive fails before it uses the role enum
use omnicast::Role;
use omnicast_macros::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
#[event(namespace = "orders", roles(Role::Admin))]
pub struct OrderCreated {
    pub order_id: String,
}
fn main() {}
