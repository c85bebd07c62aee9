//! The catalog's presence events (`customer:online` / `customer:offline`), with a grace period:
//! a user whose last connection closed is announced offline only if they have not come back
//! (to this node or another) within `presence_grace`. A client that reconnects (a network
//! blip, a page reload, a node restarting) is neither announced offline nor online again, so
//! staff see one online and one offline per visit, and a deployment with many reconnecting
//! customers does not send every staff connection two events per reconnect.
//!
//! The pending departures live on the node whose connection closed: the broker is told of the
//! departure only once the grace has passed, so for every other node the user is still here
//! meanwhile (a join elsewhere is not their first). A node killed during the grace is reaped
//! as before: its users no other node holds are announced offline.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::catalog::{PresenceRule, PresenceTrigger};
use crate::role::RoleMask;
use crate::server::broker::PresenceChange;
use crate::server::error::PublishError;
use crate::server::publication::now_ms;
use crate::server::shrink::Shrink;
use crate::server::state::AppState;

/// Departures waiting out their grace on this node, by user and role.
#[derive(Default)]
pub(crate) struct Departures {
    pending: Mutex<HashMap<(Arc<str>, u32), u64>>,
    tickets: AtomicU64,
}

impl Departures {
    /// Whether `user` (as `role`) was leaving: if so, they are no longer.
    fn cancel(&self, user: &str, role: u32) -> bool {
        let mut pending = self.pending.lock().expect("departures lock");
        let cancelled = pending.remove(&(Arc::from(user), role)).is_some();
        pending.shrink_when_sparse();
        cancelled
    }

    fn begin(&self, user: &str, role: u32) -> u64 {
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        let mut pending = self.pending.lock().expect("departures lock");
        pending.insert((Arc::from(user), role), ticket);
        ticket
    }

    /// Whether the departure `ticket` is still pending: if so, it is done.
    fn complete(&self, user: &str, role: u32, ticket: u64) -> bool {
        let mut pending = self.pending.lock().expect("departures lock");
        let key = (Arc::from(user), role);
        if pending.get(&key) != Some(&ticket) {
            return false;
        }
        pending.remove(&key);
        pending.shrink_when_sparse();
        true
    }
}

/// A user's first connection of `role` on this node opened.
pub(crate) async fn joined(state: &AppState, user_id: &str, role: u32) {
    if !has_rules(state, role) {
        return;
    }
    // Back within the grace: they never left, for anyone.
    if state.departures.cancel(user_id, role) {
        return;
    }
    announce(state, PresenceTrigger::FirstConnect, user_id, role).await;
}

/// A user's last connection of `role` on this node closed: announced once the grace has passed
/// without them coming back.
pub(crate) async fn left(state: &Arc<AppState>, user_id: &str, role: u32) {
    if !has_rules(state, role) {
        return;
    }
    let grace = state.config.presence_grace;
    if grace.is_zero() {
        announce(state, PresenceTrigger::LastDisconnect, user_id, role).await;
        return;
    }
    let ticket = state.departures.begin(user_id, role);
    let (state, user_id) = (state.clone(), user_id.to_owned());
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        if state.departures.complete(&user_id, role, ticket) {
            announce(&state, PresenceTrigger::LastDisconnect, &user_id, role).await;
        }
    });
}

/// Whether the catalog has presence events for `role` (either way): the broker counts the
/// connections of those roles only.
fn has_rules(state: &AppState, role: u32) -> bool {
    let mask = RoleMask::single(role);
    state
        .hub
        .catalog()
        .presence
        .iter()
        .any(|rule| rule.roles.contains(mask))
}

fn applies(rule: &PresenceRule, trigger: PresenceTrigger, role: u32) -> bool {
    rule.on == trigger && rule.roles.contains(RoleMask::single(role))
}

/// Tells the broker, and emits the catalog's presence events for this trigger and role when
/// the broker says this was the user's first (or last) connection on every node.
async fn announce(state: &AppState, trigger: PresenceTrigger, user_id: &str, role: u32) {
    let change = PresenceChange {
        user_id,
        role,
        joined: trigger == PresenceTrigger::FirstConnect,
    };
    if !state.publisher.broker().presence(change).await {
        return;
    }
    let rules = state.hub.catalog().presence.iter();
    for rule in rules.filter(|rule| applies(rule, trigger, role)) {
        let published = match (rule.build)(user_id, now_ms()) {
            Ok(event) => state.publisher.publish(event).await,
            Err(err) => Err(PublishError::from(err)),
        };
        match published {
            // Closes caused by the shutdown itself announce nothing: everyone is leaving.
            Ok(_) | Err(PublishError::ShuttingDown) => {}
            Err(err) => tracing::warn!(event = rule.event, %err, "presence event not published"),
        }
    }
}
