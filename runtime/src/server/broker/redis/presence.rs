//! Presence across nodes: which nodes hold which users and a heartbeat per node, in Redis; a node
//! whose heartbeat expired is reaped by one surviving node, which emits its users' offline events.

use std::sync::Arc;
use std::time::Duration;

use super::Inner;
use crate::catalog::PresenceTrigger;
use crate::role::RoleMask;
use crate::server::broker::Batch;
use crate::server::publication::now_ms;

impl Inner {
    /// Beats this node's heartbeat and reaps dead nodes, emitting their users' offline events.
    pub(super) async fn keep_presence(self: Arc<Self>) {
        let ttl = self.config.presence_ttl;
        let every = (ttl / 5).max(Duration::from_millis(100));
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let mut beat = self.heartbeat.prepare_invoke();
            beat.key(self.nodes_key())
                .arg(&self.node)
                .arg(ttl.as_millis() as u64);
            if let Err(err) = self.writer.link.invoke::<i64>(&beat).await {
                tracing::debug!(%err, "heartbeat not recorded");
                continue;
            }
            let mut reap = self.reap.prepare_invoke();
            reap.key(self.nodes_key()).arg(&self.config.prefix);
            let gone: Vec<String> = match self.writer.link.invoke(&reap).await {
                Ok(gone) => gone,
                Err(err) => {
                    tracing::debug!(%err, "dead nodes not reaped");
                    continue;
                }
            };
            for pair in gone.chunks_exact(2) {
                self.hub.metrics().presence_reaps.inc();
                self.announce_offline(&pair[0], &pair[1]).await;
            }
        }
    }

    /// Publishes the catalog's offline events for a user of a dead node.
    pub(super) async fn announce_offline(&self, user_id: &str, role: &str) {
        let Some(role) = self.catalog.role_index(role) else {
            return;
        };
        tracing::info!(user = user_id, "offline: their node stopped");
        for rule in self.catalog.presence {
            if rule.on != PresenceTrigger::LastDisconnect
                || !rule.roles.contains(RoleMask::single(role))
            {
                continue;
            }
            let event = match (rule.build)(user_id, now_ms()) {
                Ok(event) => event,
                Err(err) => {
                    tracing::warn!(event = rule.event, %err, "presence event not built");
                    continue;
                }
            };
            let batch = Batch {
                events: vec![event],
                idempotency: None,
            };
            if let Err(err) = self.writer.publish(batch).await {
                tracing::warn!(event = rule.event, %err, "presence event not published");
            }
        }
    }

    // Every presence key shares the hash tag `{presence}`: on a cluster they live on one shard,
    // where the join, leave and reap scripts find them all.

    pub(super) fn nodes_key(&self) -> String {
        format!("{}:{{presence}}:nodes", self.config.prefix)
    }

    pub(super) fn node_users_key(&self, node: &str) -> String {
        format!("{}:{{presence}}:node:{node}", self.config.prefix)
    }

    pub(super) fn user_nodes_key(&self, user: &str) -> String {
        format!("{}:{{presence}}:user:{user}", self.config.prefix)
    }
}
