//! Revocations and re-authorization requests across nodes: recorded in one Redis hash
//! (`<prefix>:{rights}:revocations`, the change as JSON → until when) and announced on a channel every
//! node follows. A node applies each announcement
//! as it arrives, and reads the whole hash whenever it (re)subscribes, so one that started, or
//! lost Redis, meanwhile misses none; a revocation reaches every following node as fast as a
//! published event does.

use redis::Value;

use super::Inner;
use super::resume::from_value;
use crate::server::broker::BrokerError;
use crate::server::publication::now_ms;
use crate::server::revocation::RightsChange;

impl Inner {
    // The hash and its channel share the hash tag `{rights}`: on a cluster both are on one
    // shard, where the revoke script records and announces (`SPUBLISH`) together.

    pub(super) fn revocations_key(&self) -> String {
        format!("{}:{{rights}}:revocations", self.config.prefix)
    }

    pub(super) fn revocations_channel(&self) -> String {
        format!("{}:{{rights}}:announce", self.config.prefix)
    }

    /// Records `change` for every node; answers once Redis holds it.
    pub(super) async fn record_rights_change(
        &self,
        change: &RightsChange,
        until_ms: u64,
    ) -> Result<(), BrokerError> {
        let json = serde_json::to_string(change).expect("rights changes serialize");
        let mut call = self.revoke.prepare_invoke();
        call.key(self.revocations_key())
            .arg(json)
            .arg(until_ms)
            .arg(self.revocations_channel());
        self.writer.link.invoke::<i64>(&call).await.map(drop)
    }

    /// Applies an announcement (`<until> <json>`); ignores what it cannot read.
    pub(super) fn on_rights_change(&self, payload: &str) {
        let parsed = payload.split_once(' ').and_then(|(until, json)| {
            Some((
                until.parse::<u64>().ok()?,
                serde_json::from_str::<RightsChange>(json).ok()?,
            ))
        });
        match parsed {
            Some((until_ms, change)) if until_ms > now_ms() => {
                let connections = self.hub.change_rights(change, until_ms);
                tracing::debug!(connections, "rights change applied");
            }
            Some(_) => {}
            None => tracing::warn!("unreadable rights announcement: ignored"),
        }
    }

    /// Reads every revocation and re-authorization request in force and applies it.
    pub(super) async fn load_rights_changes(&self) -> Result<(), BrokerError> {
        let mut connection = self.writer.link.connection().await?;
        let value: Value = redis::cmd("HGETALL")
            .arg(self.revocations_key())
            .query_async(&mut connection)
            .await
            .map_err(|err| BrokerError::new(format!("cannot read revocations: {err}")))?;
        let entries: std::collections::HashMap<String, u64> =
            from_value(value).map_err(|err| BrokerError::new(format!("revocations: {err}")))?;
        let now = now_ms();
        for (json, until_ms) in entries {
            if until_ms > now
                && let Ok(change) = serde_json::from_str::<RightsChange>(&json)
            {
                self.hub.change_rights(change, until_ms);
            }
        }
        Ok(())
    }
}
