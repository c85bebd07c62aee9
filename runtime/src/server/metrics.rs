//! `GET /metrics`: what an operator asks of a node, in the Prometheus text format (the
//! `prometheus` crate: the classic format every scraper and `promtool check metrics` read, and
//! no dependencies beyond a few small ones).
//!
//! Every label comes from the catalog or from a fixed list (roles, namespaces, event types,
//! refusal and close reasons, error codes), never from a user, a session or a request, so
//! every label set is bounded.
//!
//! The fan-out, the hot path, never touches a labelled metric: it adds each publication's
//! deliveries and refusals to atomics preallocated per event type ([`Deliveries`]), once per
//! publication, and the scrape turns them into counters. The connection gauges are read from the
//! hub at scrape time too.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::catalog::Catalog;
use crate::delivery::Refusal;
use crate::protocol::CloseReason;

/// The node's metrics, recorded where things happen.
pub struct Metrics {
    catalog: &'static Catalog,
    registry: Registry,
    deliveries: Deliveries,
    published: IntCounterVec,
    connects_refused: IntCounterVec,
    closes: IntCounterVec,
    recoveries: IntCounterVec,
    resyncs: IntCounterVec,
    epochs: IntCounterVec,
    refreshes: IntCounterVec,
    follower_lag: IntGaugeVec,
    pub(crate) publish_seconds: Histogram,
    pub(crate) fanout_seconds: Histogram,
    pub(crate) replay_events: Histogram,
    pub(crate) replay_seconds: Histogram,
    pub(crate) redis_seconds: Histogram,
    pub(crate) redis_reconnects: IntCounter,
    pub(crate) presence_reaps: IntCounter,
    pub(crate) reauthorizations: IntCounter,
    pub(crate) subscribes_refused: IntCounter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// How a publish ended, for `omnicast_events_published_total{outcome}`: `accepted`, or the
/// publish API's error code.
pub const ACCEPTED: &str = "accepted";

/// Time buckets from 50 µs to about 3 s.
fn seconds() -> Vec<f64> {
    prometheus::exponential_buckets(0.000_05, 3.0, 11).expect("valid buckets")
}

impl Metrics {
    /// The metrics of a node serving `catalog`.
    pub fn new(catalog: &'static Catalog) -> Self {
        let registry = Registry::new_custom(Some("omnicast".into()), None).expect("a valid prefix");
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("registered once");
            metric
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let metric = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
                .expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("registered once");
            metric
        };
        let single = |name: &str, help: &str| {
            let metric = IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("registered once");
            metric
        };
        let follower_lag = IntGaugeVec::new(
            Opts::new(
                "redis_follower_lag_events",
                "Events of a namespace this node had not received when the last one arrived from Redis (0 when it follows in order; the gap it then resyncs otherwise).",
            ),
            &["namespace"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(follower_lag.clone()))
            .expect("registered once");
        Metrics {
            catalog,
            deliveries: Deliveries::new(catalog.events.len()),
            published: counter(
                "events_published_total",
                "Events a publish asked for, by type and outcome: accepted, or the publish API's error code (invalid_data, idempotency_key_reused, broker_unavailable, outcome_unknown ...).",
                &["event", "outcome"],
            ),
            connects_refused: counter(
                "connects_refused_total",
                "WebSocket handshakes refused, by the error code answered (missing_token, invalid_token, token_expired, origin_not_allowed, too_many_connections, connect_rate, broker_unavailable, shutting_down ...).",
                &["reason"],
            ),
            closes: counter(
                "connections_closed_total",
                "Connections closed, by close code and reason (1000 bye, 1001 server shutting down, 4001 token expired, 4008 slow consumer, 4010 reconnect and resume ...).",
                &["code", "reason"],
            ),
            recoveries: counter(
                "recoveries_total",
                "Namespaces resumed with `since`, by namespace and whether every missed event followed.",
                &["namespace", "recovered"],
            ),
            resyncs: counter(
                "redis_resyncs_total",
                "Catch-ups of a namespace from Redis' history after a gap, another epoch or a reconnect.",
                &["namespace"],
            ),
            epochs: counter(
                "redis_epoch_changes_total",
                "Times this node started a namespace over at Redis' top (its clients resume: 4010).",
                &["namespace"],
            ),
            refreshes: counter(
                "refreshes_total",
                "Refreshes (a fresh token on an open connection), by outcome: refreshed, or the error code answered (refresh_refused) with why (invalid_token, token_expired, other_user, token_revoked, stale_token, too_fast).",
                &["outcome"],
            ),
            reauthorizations: single(
                "reauthorizations_total",
                "Connections asked to re-authorize (`POST /api/reauthorizations`) on this node.",
            ),
            subscribes_refused: single(
                "subscribes_refused_total",
                "Subscription changes refused for coming too fast (`subscribe_rate_exceeded`).",
            ),
            follower_lag,
            publish_seconds: histogram(
                "publish_request_duration_seconds",
                "Time to answer one `POST /api/events`, from its body read to its answer.",
                seconds(),
            ),
            fanout_seconds: histogram(
                "fanout_duration_seconds",
                "Time to queue one publication for every connection of this node that receives it.",
                seconds(),
            ),
            replay_events: histogram(
                "replay_events",
                "Events replayed to one connection resuming one or more namespaces.",
                prometheus::exponential_buckets(1.0, 4.0, 8).expect("valid buckets"),
            ),
            replay_seconds: histogram(
                "replay_duration_seconds",
                "Time to find and queue one connection's replay.",
                seconds(),
            ),
            redis_seconds: histogram(
                "redis_command_duration_seconds",
                "Round trips of the scripts this node runs on Redis (publishes, history reads, heartbeats).",
                seconds(),
            ),
            redis_reconnects: single(
                "redis_reconnects_total",
                "Times this node's command connection to Redis was opened again.",
            ),
            presence_reaps: single(
                "presence_reaps_total",
                "Presence entries of nodes that stopped heartbeating, removed by this node.",
            ),
            registry,
        }
    }

    /// A publish of `event` (a type name, or `""` when unknown) ended with `outcome`.
    pub(crate) fn published(&self, event: &str, outcome: &str) {
        let event = self.known_event(event);
        self.published.with_label_values(&[event, outcome]).inc();
    }

    /// A handshake was refused with `code`.
    pub(crate) fn connect_refused(&self, code: &str) {
        self.connects_refused.with_label_values(&[code]).inc();
    }

    /// A connection was closed for `reason`.
    pub(crate) fn closed(&self, reason: CloseReason) {
        self.closes
            .with_label_values(&[&reason.code.to_string(), reason.reason])
            .inc();
    }

    /// A refresh took effect (`refreshed`) or was refused (why).
    pub(crate) fn refresh(&self, outcome: &str) {
        self.refreshes.with_label_values(&[outcome]).inc();
    }

    /// A resume of `namespace` recovered everything missed, or did not.
    pub(crate) fn recovered(&self, namespace: &str, recovered: bool) {
        let value = if recovered { "true" } else { "false" };
        self.recoveries.with_label_values(&[namespace, value]).inc();
    }

    /// `namespace` was caught up from Redis.
    pub(crate) fn resynced(&self, namespace: &str) {
        self.resyncs.with_label_values(&[namespace]).inc();
    }

    /// `namespace` was started over at Redis' top.
    pub(crate) fn epoch_changed(&self, namespace: &str) {
        self.epochs.with_label_values(&[namespace]).inc();
    }

    /// How many events of `namespace` this node lacked when the last one arrived.
    pub(crate) fn follower_lag(&self, namespace: &str, events: u64) {
        self.follower_lag
            .with_label_values(&[namespace])
            .set(events.min(i64::MAX as u64) as i64);
    }

    /// The counts the fan-out adds to.
    pub(crate) fn deliveries(&self) -> &Deliveries {
        &self.deliveries
    }

    /// The text exposition: the recorded metrics, the delivery counts, and `gauges` (what the
    /// hub holds now: connections by role, subscriptions by namespace).
    pub(crate) fn render(&self, gauges: &[Gauge<'_>]) -> String {
        let mut families = self.registry.gather();
        families.extend(self.delivery_families());
        for gauge in gauges {
            let metric = IntGaugeVec::new(Opts::new(gauge.name, gauge.help), &[gauge.label])
                .expect("valid metric");
            for (value, count) in &gauge.values {
                metric
                    .with_label_values(&[*value])
                    .set((*count).min(i64::MAX as u64) as i64);
            }
            families.extend(metric.collect());
        }
        // The encoder refuses a family without samples (a gauge of a node with no connection).
        families.retain(|f| !f.get_metric().is_empty());
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&families, &mut out)
            .expect("metrics encode");
        String::from_utf8(out).expect("the text format is UTF-8")
    }

    fn delivery_families(&self) -> Vec<MetricFamily> {
        let delivered = IntCounterVec::new(
            Opts::new(
                "omnicast_deliveries_total",
                "Events queued for a connection, by event type.",
            ),
            &["event"],
        )
        .expect("valid metric");
        let refused = IntCounterVec::new(
            Opts::new(
                "omnicast_not_delivered_total",
                "Events not delivered to a connection subscribed to the namespace they were addressed to, by event type and the rule that decided: role (events.yaml), target_roles (the payload's), publisher_roles, not_owner, not_named_user (the publisher's userIds), excluded_user, excluded_session.",
            ),
            &["event", "reason"],
        )
        .expect("valid metric");
        for (i, entry) in self.catalog.events.iter().enumerate() {
            let name = entry.descriptor.name;
            let sent = self.deliveries.delivered[i].load(Ordering::Relaxed);
            if sent > 0 {
                delivered.with_label_values(&[name]).inc_by(sent);
            }
            for refusal in Refusal::ALL {
                let n = self.deliveries.refused[i * Refusal::ALL.len() + refusal as usize]
                    .load(Ordering::Relaxed);
                if n > 0 {
                    refused.with_label_values(&[name, refusal.name()]).inc_by(n);
                }
            }
        }
        let mut families = delivered.collect();
        families.extend(refused.collect());
        families
    }

    fn known_event<'a>(&self, event: &'a str) -> &'a str {
        if self.catalog.event(event).is_some() {
            event
        } else {
            "unknown"
        }
    }
}

/// Deliveries and refusals per event type, added to once per publication by the fan-out.
pub(crate) struct Deliveries {
    delivered: Box<[AtomicU64]>,
    /// Per event type, one count per [`Refusal`].
    refused: Box<[AtomicU64]>,
}

impl Deliveries {
    fn new(events: usize) -> Self {
        Deliveries {
            delivered: (0..events).map(|_| AtomicU64::new(0)).collect(),
            refused: (0..events * Refusal::ALL.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    /// One publication of the event at `index`: `sent` deliveries, and `refused[r]` subscribed
    /// connections kept from it by refusal `r`.
    pub(crate) fn add(&self, index: usize, sent: u64, refused: &[u64; Refusal::ALL.len()]) {
        if let Some(counter) = self.delivered.get(index) {
            counter.fetch_add(sent, Ordering::Relaxed);
        }
        for (r, n) in refused.iter().enumerate() {
            if *n > 0
                && let Some(counter) = self.refused.get(index * Refusal::ALL.len() + r)
            {
                counter.fetch_add(*n, Ordering::Relaxed);
            }
        }
    }
}

/// A gauge read from the hub at scrape time.
pub(crate) struct Gauge<'a> {
    /// Its full name (`omnicast_connections`).
    pub(crate) name: &'static str,
    /// What it means.
    pub(crate) help: &'static str,
    /// Its one label (`role`).
    pub(crate) label: &'static str,
    /// Each label value with its value.
    pub(crate) values: Vec<(&'a str, u64)>,
}
