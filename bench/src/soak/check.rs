//! The loss checker: from every publish's answer and everything every client was told, proves
//! (or refutes) that each event answered 202 reached, exactly once and in order, every client
//! allowed to see it that was connected across it or resumed across it with `recovered: true`;
//! that no client got an event it may not see; that every `recovered: false` had a cause (its
//! namespace's stream started a new epoch); and that no event whose publish was refused was
//! delivered, while those of unknown outcome were delivered to all or none.

use std::collections::{BTreeMap, HashMap};

use omnicast::CATALOG;
use omnicast::runtime::delivery::Audience;
use omnicast::runtime::server::PositionKey;

use super::clients::{Log, Spec};
use super::publishers::{Outcome, Record};

/// What the checker found.
#[derive(Debug, Default)]
pub struct Verdict {
    pub violations: Vec<String>,
    /// Publishes answered 202, refused to the end (503), of unknown outcome.
    pub accepted: u64,
    pub refused: u64,
    pub unknown: u64,
    /// Unknown outcomes that turned out stored (some client received them).
    pub unknown_stored: u64,
    /// Accepted publishes also stored by an earlier attempt in an epoch Redis then lost.
    pub stored_before_data_loss: u64,
    /// Publishes that needed more than one attempt.
    pub retried: u64,
    /// Deliberate repeats under the same key that answered the first id.
    pub repeats_same_id: u64,
    /// Repeats answered with an id in another epoch (the key's record was lost with Redis's data).
    pub repeats_after_data_loss: u64,
    /// Deliveries checked (received events of the soak's publishers).
    pub deliveries: u64,
    /// Events each client had to receive, summed.
    pub expected: u64,
    /// `recovered: false` answers explained by a new epoch (Redis lost its data).
    pub unrecovered_new_epoch: u64,
    /// `recovered: false` answers explained by the client being further behind than its
    /// namespace's history keeps (in events, or in time).
    pub unrecovered_behind: u64,
    /// Stored events no client was owed: in an epoch Redis lost (restarted without
    /// persistence), or early in the new epoch, before where clients told `recovered: false`
    /// joined it.
    pub lost_with_redis_data: u64,
    pub before_rejoin: u64,
}

type Stream = (String, String);

/// How long before Redis lost its data an accepted event may have been lost with it,
/// undelivered: publishes retried through the outage wait at most this long.
const LOSS_WINDOW_US: u64 = 5_000_000;

impl Verdict {
    fn violation(&mut self, message: String) {
        // Enough to diagnose; the count says the rest.
        if self.violations.len() < 10_000 {
            self.violations.push(message);
        }
    }
}

/// Checks `logs` (client `i`'s is `logs[i]`, of `specs[i]`) against `records` and `sent_us`
/// (when each was first sent; both indexed by sequence number); `data_losses_us` are when Redis
/// was restarted without its data.
pub fn check(
    specs: &[Spec],
    logs: &[Log],
    records: &[Option<Record>],
    sent_us: &[u64],
    data_losses_us: &[u64],
    key: &PositionKey,
) -> Verdict {
    let mut verdict = Verdict::default();
    // Every stored event by stream and offset: its sequence number.
    let mut stored: HashMap<Stream, BTreeMap<u64, u64>> = HashMap::new();
    for (seq, record) in records.iter().enumerate() {
        let Some(record) = record else { continue };
        if record.attempts > 1 {
            verdict.retried += 1;
        }
        match &record.outcome {
            Outcome::Accepted(ids) => {
                verdict.accepted += 1;
                let positions: Vec<_> = ids.iter().filter_map(|id| key.open(id).ok()).collect();
                if positions.len() != ids.len() {
                    verdict.violation(format!("#{seq}: an answered id does not open: {ids:?}"));
                    continue;
                }
                for (k, position) in positions.iter().enumerate() {
                    if k > 0 {
                        if *position == positions[0] {
                            verdict.repeats_same_id += 1;
                        } else if position.epoch != positions[0].epoch {
                            verdict.repeats_after_data_loss += 1;
                        } else {
                            verdict.violation(format!(
                                "#{seq}: a repeat under its key answered another id: {ids:?}"
                            ));
                        }
                    }
                    let stream = (position.namespace.clone(), position.epoch.clone());
                    stored
                        .entry(stream)
                        .or_default()
                        .insert(position.offset, seq as u64);
                }
            }
            Outcome::Refused => verdict.refused += 1,
            Outcome::Unknown => verdict.unknown += 1,
            Outcome::Wrong(what) => verdict.violation(format!("#{seq}: answered {what}")),
        }
    }
    // What clients received that no answer named: stored publishes of unknown outcome.
    for log in logs {
        for segment in &log.segments {
            let stream = (segment.namespace.clone(), segment.epoch.clone());
            for &(offset, seq) in segment.events.iter().filter(|(_, seq)| *seq > 0) {
                if stored.get(&stream).and_then(|s| s.get(&offset)).is_some() {
                    continue;
                }
                let record = records.get(seq as usize).and_then(Option::as_ref);
                match record.map(|r| &r.outcome) {
                    // An attempt stored it, its answer was lost, Redis then lost its data with
                    // the key's record, and a retry stored it again in the new epoch.
                    Some(Outcome::Accepted(ids))
                        if record.is_some_and(|r| r.attempts > 1)
                            && ids.iter().filter_map(|id| key.open(id).ok()).all(|p| {
                                p.namespace == segment.namespace && p.epoch != segment.epoch
                            }) =>
                    {
                        verdict.stored_before_data_loss += 1;
                        stored.entry(stream.clone()).or_default().insert(offset, seq);
                    }
                    Some(Outcome::Unknown) => {
                        verdict.unknown_stored += 1;
                        stored.entry(stream.clone()).or_default().insert(offset, seq);
                    }
                    Some(Outcome::Refused) => verdict.violation(format!(
                        "#{seq} delivered at {stream:?}/{offset}, though every attempt was refused with 503"
                    )),
                    other => verdict.violation(format!(
                        "#{seq} delivered at {stream:?}/{offset}, a position no answer gave it ({other:?})"
                    )),
                }
            }
        }
    }
    // Positions some client allowed to see them was owed.
    let mut owed: std::collections::HashSet<(Stream, u64)> = std::collections::HashSet::new();
    let mut replaced_epochs: Vec<Stream> = Vec::new();
    // Where clients told `recovered: false` joined each stream: what came before, they reload.
    let mut rejoined: HashMap<Stream, u64> = HashMap::new();
    for (spec, log) in specs.iter().zip(logs) {
        let role = CATALOG.role_index(spec.role).expect("a catalog role");
        let may_see = |seq: u64| {
            records
                .get(seq as usize)
                .and_then(Option::as_ref)
                .is_some_and(|record| {
                    Audience::of(&CATALOG, &record.event).admits(role, || (spec.user.as_str(), ""))
                })
        };
        let who = format!("client {} ({} {})", spec.index, spec.role, spec.user);
        for anomaly in &log.anomalies {
            verdict.violation(format!("{who}: {anomaly}"));
        }
        if !log.connected_at_end {
            verdict.violation(format!("{who}: not connected at the end"));
        }
        for answer in &log.unrecovered {
            let history = CATALOG
                .namespace_index(&answer.namespace)
                .and_then(|ns| CATALOG.namespaces[ns].history);
            if answer.before != answer.after {
                verdict.unrecovered_new_epoch += 1;
                replaced_epochs.push((answer.namespace.clone(), answer.before.clone()));
            } else if history.is_none_or(|h| {
                answer.behind > u64::from(h.size) || answer.age.as_secs() >= u64::from(h.ttl_secs)
            }) {
                verdict.unrecovered_behind += 1;
            } else {
                verdict.violation(format!(
                    "{who}: `{}` not recovered within epoch {}, {} events behind",
                    answer.namespace, answer.before, answer.behind
                ));
            }
        }
        for segment in &log.segments {
            let stream = (segment.namespace.clone(), segment.epoch.clone());
            let mut last = segment.from;
            for &(offset, seq) in &segment.events {
                if offset <= last {
                    verdict.violation(format!(
                        "{who}: {stream:?} offset {offset} after {last}: a repeat or out of order"
                    ));
                }
                last = last.max(offset);
                if seq > 0 {
                    verdict.deliveries += 1;
                    if !may_see(seq) {
                        verdict.violation(format!("{who}: received #{seq}, which it may not see"));
                    }
                }
            }
            // A segment ended by `recovered: false` owes what came before its last event; the
            // rest was accounted for by the answer. Every other one owes everything after.
            if segment.began_unrecovered {
                let joined = rejoined.entry(stream.clone()).or_insert(0);
                *joined = (*joined).max(segment.from);
            }
            let until = if segment.ended_unrecovered {
                last
            } else {
                u64::MAX
            };
            if until <= segment.from {
                continue;
            }
            let received: std::collections::HashSet<u64> =
                segment.events.iter().map(|(offset, _)| *offset).collect();
            for (&offset, &seq) in stored
                .get(&stream)
                .into_iter()
                .flat_map(|s| s.range(segment.from + 1..=until))
            {
                if !may_see(seq) {
                    continue;
                }
                verdict.expected += 1;
                owed.insert((stream.clone(), offset));
                if !received.contains(&offset) {
                    verdict.violation(format!("{who}: missed #{seq} at {stream:?}/{offset}"));
                }
            }
        }
    }
    // Stored events no client was owed: only an epoch Redis lost, or the part of a new epoch
    // before where clients told `recovered: false` joined it, may hold them.
    for (stream, events) in &stored {
        for (&offset, &seq) in events {
            if owed.contains(&(stream.clone(), offset)) {
                continue;
            }
            let anyone_may_see = specs.iter().any(|spec| {
                let role = CATALOG.role_index(spec.role).expect("a catalog role");
                records[seq as usize].as_ref().is_some_and(|record| {
                    Audience::of(&CATALOG, &record.event).admits(role, || (spec.user.as_str(), ""))
                })
            });
            if !anyone_may_see {
                continue;
            }
            // Only what was published just before a data loss may have been lost with it;
            // anything older was there to be delivered.
            let sent = sent_us.get(seq as usize).copied().unwrap_or(0);
            let just_before_loss = data_losses_us
                .iter()
                .any(|&loss| sent <= loss && loss - sent < LOSS_WINDOW_US);
            if replaced_epochs.contains(stream) && just_before_loss {
                verdict.lost_with_redis_data += 1;
            } else if rejoined.get(stream).is_some_and(|joined| offset <= *joined) {
                verdict.before_rejoin += 1;
            } else {
                verdict.violation(format!(
                    "#{seq} at {stream:?}/{offset} stored, owed to no client"
                ));
            }
        }
    }
    if std::env::var_os("OMNICAST_SOAK_DEBUG").is_some() {
        // Every epoch clients saw per namespace: clients, lowest start, highest offset.
        let mut epochs: BTreeMap<Stream, (usize, u64, u64)> = BTreeMap::new();
        for log in logs {
            for segment in &log.segments {
                let entry = epochs
                    .entry((segment.namespace.clone(), segment.epoch.clone()))
                    .or_insert((0, u64::MAX, 0));
                entry.0 += 1;
                entry.1 = entry.1.min(segment.from);
                entry.2 = entry.2.max(segment.events.last().map_or(0, |e| e.0));
            }
        }
        for (stream, (clients, from, to)) in &epochs {
            let accepted = stored.get(stream).map_or(0, BTreeMap::len);
            eprintln!(
                "epoch {stream:?}: {clients} segments, from {from} to {to}; {accepted} stored"
            );
        }
    }
    verdict
}
