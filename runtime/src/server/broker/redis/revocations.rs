//! Revocations across nodes: recorded in one Redis hash (`<prefix>:revocations`, revocation →
//! until when) and announced on a channel every node follows. A node applies each announcement
//! as it arrives, and reads the whole hash whenever it (re)subscribes, so one that started, or
//! lost Redis, meanwhile misses none; a revocation reaches every following node as fast as a
//! published event does.

use redis::Value;

use super::Inner;
use super::resume::from_value;
use crate::server::broker::BrokerError;
use crate::server::publication::now_ms;
use crate::server::revocation::Revocation;

impl Inner {
    pub(super) fn revocations_key(&self) -> String {
        format!("{}:revocations", self.config.prefix)
    }

    pub(super) fn revocations_channel(&self) -> String {
        format!("{}:revocations:announce", self.config.prefix)
    }

    /// Records `revocation` for every node; answers once Redis holds it.
    pub(super) async fn record_revocation(
        &self,
        revocation: &Revocation,
        until_ms: u64,
    ) -> Result<(), BrokerError> {
        let json = serde_json::to_string(revocation).expect("revocations serialize");
        let mut call = self.revoke.prepare_invoke();
        call.key(self.revocations_key())
            .arg(json)
            .arg(until_ms)
            .arg(self.revocations_channel());
        self.writer.link.invoke::<i64>(&call).await.map(drop)
    }

    /// Applies an announcement (`<until> <json>`); ignores what it cannot read.
    pub(super) fn on_revocation(&self, payload: &str) {
        let parsed = payload.split_once(' ').and_then(|(until, json)| {
            Some((
                until.parse::<u64>().ok()?,
                serde_json::from_str::<Revocation>(json).ok()?,
            ))
        });
        match parsed {
            Some((until_ms, revocation)) if until_ms > now_ms() => {
                let closed = self.hub.revoke(revocation, until_ms);
                tracing::debug!(closed, "revocation applied");
            }
            Some(_) => {}
            None => tracing::warn!("unreadable revocation announcement: ignored"),
        }
    }

    /// Reads every revocation in force and applies it.
    pub(super) async fn load_revocations(&self) -> Result<(), BrokerError> {
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
                && let Ok(revocation) = serde_json::from_str::<Revocation>(&json)
            {
                self.hub.revoke(revocation, until_ms);
            }
        }
        Ok(())
    }
}
