//! Resuming from Redis: reading a namespace's history after a position, and attaching a
//! connection to the streams with the shared history joined to what this node delivered since.

use std::sync::Arc;

use redis::{FromRedisValue, Value};

use super::{Inner, record};
use crate::server::broker::streams::{self, Local, Remote, Stream};
use crate::server::broker::{BrokerError, ResumeRequest, Resumed, new_epoch};
use crate::server::publication::now_ms;

/// What reading a stream after an offset found.
pub(super) struct Read {
    pub(super) epoch: String,
    pub(super) top: u64,
    /// The kept entries after the offset (offset, kept at, record); `None` when more were
    /// missed than asked for.
    pub(super) entries: Option<Vec<(u64, u64, String)>>,
}

impl Inner {
    /// Reads `namespace`'s stream after `after`, at most `most` entries: its epoch and top
    /// (a script, which starts an epoch for a stream that has none), then the entries up to
    /// that top and the epoch again, pipelined. An epoch that changed in between (Redis lost
    /// its data, or went back and was rotated) would make the entries another epoch's: the
    /// read starts over.
    pub(super) async fn read(
        &self,
        namespace: usize,
        after: u64,
        most: u64,
    ) -> Result<Read, BrokerError> {
        let keys = &self.writer.keys[namespace];
        let unexpected = |err: String| BrokerError::new(format!("unexpected reply: {err}"));
        for _ in 0..3 {
            let mut call = self.head.prepare_invoke();
            call.key(&keys.meta).key(&keys.history).arg(new_epoch());
            let (epoch, top): (String, u64) = self.writer.link.invoke(&call).await?;
            let missed = top.saturating_sub(after);
            if missed == 0 || missed > most {
                let entries = (missed == 0).then(Vec::new);
                return Ok(Read {
                    epoch,
                    top,
                    entries,
                });
            }
            let mut pipe = redis::pipe();
            pipe.cmd("XRANGE")
                .arg(&keys.history)
                .arg(format!("{}-0", after + 1))
                .arg(format!("{top}-0"))
                .cmd("HGET")
                .arg(&keys.meta)
                .arg("epoch");
            let (entries, still): (Value, Option<String>) = self.writer.link.query(&pipe).await?;
            if still.as_deref() != Some(epoch.as_str()) {
                continue;
            }
            let entries = parse_entries(entries).map_err(unexpected)?;
            return Ok(Read {
                epoch,
                top,
                entries: Some(entries),
            });
        }
        Err(BrokerError::new(
            "the stream's epoch changed during each of three reads",
        ))
    }

    /// Every event of `namespace` after `since`, from the shared history, when it still holds
    /// all of them (and no more than `max_behind`); `Ok(None)` otherwise. An error when the
    /// history did not answer: then nobody knows whether the events can be replayed.
    pub(super) async fn fetch(
        &self,
        namespace: usize,
        since: u64,
        max_behind: u64,
    ) -> Result<Option<Remote>, BrokerError> {
        let _turn = self
            .history_reads
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let read = self.read(namespace, since, max_behind).await?;
        Ok(self.recoverable(namespace, since, read))
    }

    /// What of `read` (the history after `since`) a client at `since` can be given: all of it,
    /// or `None` when the history no longer reaches back to `since` in events or age.
    fn recoverable(&self, namespace: usize, since: u64, read: Read) -> Option<Remote> {
        let (size, ttl_ms) = self.catalog.namespaces[namespace]
            .history
            .map_or((0, 0), |h| {
                (u64::from(h.size), u64::from(h.ttl_secs) * 1000)
            });
        // Redis trims approximately and keeps more: recovery holds to the declared size.
        if read.top.saturating_sub(since) > size {
            return None;
        }
        let now = now_ms();
        let mut entries = Vec::new();
        for (expected, (offset, kept, record)) in (since + 1..).zip(read.entries?) {
            if offset != expected || now.saturating_sub(kept) >= ttl_ms {
                return None;
            }
            let publication = record::decode(
                self.catalog,
                self.hub.positions(),
                &read.epoch,
                offset,
                &record,
            )
            .ok()?;
            entries.push(Arc::new(publication));
        }
        if since + entries.len() as u64 != read.top && read.top >= since {
            return None;
        }
        Some(Remote {
            epoch: read.epoch,
            top: read.top,
            entries,
        })
    }

    pub(super) async fn resume(
        &self,
        requests: &[ResumeRequest],
        max_behind: u64,
        attach: &mut (dyn FnMut(&[Resumed]) + Send),
    ) -> Result<(), BrokerError> {
        // A stream this node has not read from Redis yet (its shard did not answer when the
        // node started) has no epoch here: nothing about a position in it can be told, and
        // "not recovered" would make the client reload events that may all still be there.
        let unknown = requests.iter().find(|request| {
            request.since.is_some() && self.streams.lock(request.namespace).epoch.is_empty()
        });
        if let Some(request) = unknown {
            let name = self.catalog.namespaces[request.namespace].name;
            return Err(BrokerError::new(format!(
                "this node has not read `{name}`'s stream from Redis yet"
            )));
        }
        // What the shared history said, per request, once read (`Some(None)`: not recoverable).
        let mut remote: Vec<Option<Option<Remote>>> = requests.iter().map(|_| None).collect();
        for attempt in 1.. {
            let last = attempt == 3;
            let pending = self.try_attach(requests, max_behind, &remote, last, attach);
            if pending.is_empty() {
                return Ok(());
            }
            for (i, local) in pending {
                let request = &requests[i];
                let since = request.since.as_ref().expect("only resumes are pending");
                match local {
                    // This node has not yet delivered what the client saw on another: it will
                    // in a moment.
                    Local::Ahead if remote[i].is_some() => {
                        let wait = self.config.response_timeout;
                        self.streams
                            .wait_for(request.namespace, since.offset, wait)
                            .await;
                    }
                    _ => {
                        let read = self.fetch(request.namespace, since.offset, max_behind);
                        remote[i] = Some(read.await.inspect_err(|err| {
                            let redis = &self.address;
                            tracing::warn!(%redis, %err, "history unreadable: resume refused");
                        })?);
                    }
                }
            }
        }
        unreachable!("the third attempt decides every request")
    }

    /// Attaches when every request is decided (or `last`, deciding the rest as not recovered);
    /// otherwise returns the undecided requests.
    pub(super) fn try_attach(
        &self,
        requests: &[ResumeRequest],
        max_behind: u64,
        remote: &[Option<Option<Remote>>],
        last: bool,
        attach: &mut (dyn FnMut(&[Resumed]) + Send),
    ) -> Vec<(usize, Local)> {
        let mut locked = self.streams.lock_all(requests);
        let now = now_ms();
        let mut pending = Vec::new();
        let mut decided = Vec::with_capacity(requests.len());
        for (i, request) in requests.iter().enumerate() {
            let stream: &mut Stream = locked.get(request.namespace);
            let local = request.since.as_ref().map(|since| match &remote[i] {
                None => stream.decide(since, max_behind, now),
                Some(None) => Local::Lost,
                Some(Some(remote)) if since.offset > remote.top => Local::Lost,
                Some(Some(remote)) => stream.decide_with(since, max_behind, remote),
            });
            match local {
                Some(local @ (Local::Ahead | Local::Older)) if !last => pending.push((i, local)),
                local => decided.push(streams::resumed(request, stream, local)),
            }
        }
        if pending.is_empty() {
            attach(&decided);
        }
        pending
    }
}

/// An `XRANGE` reply as (offset, kept at, record) per entry.
fn parse_entries(value: Value) -> Result<Vec<(u64, u64, String)>, String> {
    match value {
        Value::Array(entries) => entries.into_iter().map(parse_entry).collect(),
        other => Err(format!("entries: {other:?}")),
    }
}

/// `[id, [field, value, …]]` as (offset, kept at, record).
fn parse_entry(entry: Value) -> Result<(u64, u64, String), String> {
    let (id, fields): (String, Vec<String>) = from_value(entry)?;
    let offset = id
        .split_once('-')
        .and_then(|(offset, _)| offset.parse().ok())
        .ok_or_else(|| format!("entry id `{id}`"))?;
    let field = |name: &str| {
        fields
            .chunks_exact(2)
            .find(|pair| pair[0] == name)
            .map(|pair| pair[1].clone())
            .ok_or_else(|| format!("entry {id} has no `{name}`"))
    };
    let kept = field("t")?
        .parse()
        .map_err(|_| format!("entry {id}: bad time"))?;
    Ok((offset, kept, field("r")?))
}

pub(super) fn from_value<T: FromRedisValue>(value: Value) -> Result<T, String> {
    T::from_redis_value(value).map_err(|err| err.to_string())
}
