#![allow(unused_imports)] // the derive fails before it uses the role enum
use omnicast::Role;
use omnicast_macros::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
#[event(name = "order", roles(Role::Admin), owner = nobody, size = 3)]
pub struct OrderCreated {
    pub order_id: String,
    #[event(computed = 1, rounded)]
    pub total: i64,
}
fn main() {}
