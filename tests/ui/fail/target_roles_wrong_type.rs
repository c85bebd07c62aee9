#![allow(unused_imports)] // the derive fails before it uses the role enum
use omnicast::Role;
use omnicast_macros::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
#[event(name = "system:notice", namespace = "system", roles(all), target_roles = target_roles)]
pub struct SystemNotice {
    pub target_roles: Vec<Role>,
}
fn main() {}
