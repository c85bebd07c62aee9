//! The soak's publishers: every node gets its share of a fixed rate, one event per request,
//! each under its own `Idempotency-Key`. A request without a certain answer is retried under
//! the same key (on the next node), one refused with 503 likewise; a share of the accepted ones
//! is sent again on purpose, which must answer the same id and publish nothing.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use omnicast::CATALOG;
use omnicast::runtime::{EmitOptions, OutgoingEvent};
use serde_json::{Value, json};

use crate::publish::now_us;
use crate::target::API_KEY;

/// How a publish ended, after its retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Answered 202 with these ids (the first answer's, and any deliberate repeat's).
    Accepted(Vec<String>),
    /// Every attempt answered 503: certainly nothing stored.
    Refused,
    /// The last attempt got no certain answer (504, a lost connection): stored or not.
    Unknown,
    /// An answer no retry explains (409, 4xx): a finding.
    Wrong(String),
}

/// One publish: the event (decoded by the catalog, for the delivery rules), its namespace and
/// how it ended.
pub struct Record {
    pub event: OutgoingEvent,
    pub outcome: Outcome,
    /// Attempts it took, the first included.
    pub attempts: u32,
}

/// Everything published, by sequence number (the events' `timestamp`), and when each was
/// first sent (microseconds since the epoch), for the clients' latencies.
pub struct Ledger {
    pub records: Mutex<Vec<Option<Record>>>,
    pub sent_us: Vec<AtomicU64>,
    next: AtomicU64,
    /// What this ledger's `Idempotency-Key`s start with: its own, so that a later wave's
    /// publish is never taken for a retry of an earlier wave's of the same number.
    key_prefix: String,
}

impl Ledger {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Ledger {
            records: Mutex::new((0..capacity).map(|_| None).collect()),
            sent_us: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            next: AtomicU64::new(1),
            key_prefix: format!("soak-{}-{}", std::process::id(), now_us()),
        })
    }

    /// The next sequence number, if there is room for it.
    fn take(&self) -> Option<u64> {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        ((seq as usize) < self.sent_us.len()).then_some(seq)
    }

    /// How many were published.
    pub fn published(&self) -> u64 {
        self.next
            .load(Ordering::Relaxed)
            .saturating_sub(1)
            .min(self.sent_us.len() as u64 - 1)
    }
}

/// The customers events are owned by: user ids of the clients with the customer role.
pub type Customers = Arc<Vec<String>>;

/// Publishes through `nodes` at `rate` events per second in all, `threads` per node, until
/// `stop`. Every `repeat_every`-th accepted publish is sent again under its key.
pub fn start(
    nodes: &[SocketAddr],
    rate: f64,
    threads: usize,
    customers: Customers,
    ledger: Arc<Ledger>,
    stop: Arc<AtomicBool>,
    repeat_every: u64,
) -> Vec<std::thread::JoinHandle<()>> {
    let total = (nodes.len() * threads) as f64;
    let interval = Duration::from_secs_f64(total / rate);
    let nodes: Arc<Vec<SocketAddr>> = Arc::new(nodes.to_vec());
    (0..nodes.len() * threads)
        .map(|p| {
            let (nodes, customers, ledger, stop) = (
                nodes.clone(),
                customers.clone(),
                ledger.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                let agent = agent();
                let mut next = Instant::now() + interval.mul_f64(p as f64 / total);
                while !stop.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    if now < next {
                        std::thread::sleep((next - now).min(Duration::from_millis(50)));
                        continue;
                    }
                    next += interval;
                    let Some(seq) = ledger.take() else { return };
                    publish_one(
                        &agent,
                        &nodes,
                        p % nodes.len(),
                        seq,
                        &customers,
                        &ledger,
                        repeat_every,
                    );
                }
            })
        })
        .collect()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(15)))
        .build()
        .into()
}

/// The `seq`-th event: the catalog's events in turn, with their examples, each owned by a
/// customer picked by `seq`, its `timestamp` the sequence number.
fn body(seq: u64, customers: &[String]) -> (String, OutgoingEvent) {
    let entry = &CATALOG.events[seq as usize % CATALOG.events.len()];
    let mut data: Value = serde_json::from_str(entry.example()).expect("examples are JSON");
    if let Some(owner) = entry.descriptor.owner_field
        && !customers.is_empty()
    {
        data[owner] = json!(customers[(seq as usize * 7919) % customers.len()]);
    }
    let raw = serde_json::value::to_raw_value(&data).expect("JSON");
    let event = CATALOG
        .decode(entry.descriptor.name, &raw, EmitOptions::default())
        .expect("the catalog's examples decode");
    let body = json!({ "type": entry.descriptor.name, "data": data, "timestamp": seq });
    (body.to_string(), event)
}

/// Publishes, through `node`, as many events into each namespace as its history keeps (in
/// batches, without sequence numbers), so that every node's history is as full as it will be.
pub fn fill_histories(node: SocketAddr, customers: &[String]) -> Result<(), String> {
    let agent = agent();
    let mut counts = vec![0u32; CATALOG.namespaces.len()];
    let full = |counts: &[u32]| {
        CATALOG
            .namespaces
            .iter()
            .zip(counts)
            .all(|(ns, n)| ns.history.is_none_or(|h| *n >= h.size))
    };
    let mut k = 0u64;
    while !full(&counts) {
        let batch: Vec<Value> = (0..100)
            .map(|_| {
                k += 1;
                let (body, event) = body(k, customers);
                let index = CATALOG
                    .namespace_index(event.descriptor.namespace)
                    .expect("a catalog namespace");
                counts[index] += 1;
                let mut body: Value = serde_json::from_str(&body).expect("JSON");
                body.as_object_mut().expect("an object").remove("timestamp");
                body
            })
            .collect();
        let response = agent
            .post(format!("http://{node}/api/events"))
            .header("Authorization", &format!("Bearer {API_KEY}"))
            .send_json(&batch)
            .map_err(|e| e.to_string())?;
        if response.status().as_u16() != 202 {
            return Err(format!("filling the histories: {}", response.status()));
        }
    }
    Ok(())
}

/// The most attempts one publish makes (about 40 s of retrying at most).
const ATTEMPTS: u32 = 40;

fn publish_one(
    agent: &ureq::Agent,
    nodes: &[SocketAddr],
    first_node: usize,
    seq: u64,
    customers: &[String],
    ledger: &Ledger,
    repeat_every: u64,
) {
    let (body, event) = body(seq, customers);
    let key = format!("{}-{seq}", ledger.key_prefix);
    ledger.sent_us[seq as usize].store(now_us(), Ordering::Relaxed);
    let mut outcome = Outcome::Unknown;
    let mut attempts = 0;
    let mut refused_every_time = true;
    while attempts < ATTEMPTS {
        let node = nodes[(first_node + attempts as usize) % nodes.len()];
        attempts += 1;
        match post(agent, node, &body, &key) {
            Answer::Accepted(id) => {
                outcome = Outcome::Accepted(vec![id]);
                break;
            }
            Answer::Refused(wait) => std::thread::sleep(wait),
            Answer::Uncertain(wait) => {
                refused_every_time = false;
                std::thread::sleep(wait);
            }
            Answer::Wrong(what) => {
                outcome = Outcome::Wrong(what);
                break;
            }
        }
    }
    if attempts == ATTEMPTS && refused_every_time {
        outcome = Outcome::Refused;
    }
    if let Outcome::Accepted(ids) = &mut outcome
        && seq.is_multiple_of(repeat_every)
    {
        // The same request again, on another node: a retry after a lost answer.
        let node = nodes[(first_node + 1) % nodes.len()];
        match post(agent, node, &body, &key) {
            Answer::Accepted(id) => ids.push(id),
            Answer::Wrong(what) => outcome = Outcome::Wrong(what),
            // Redis unreachable just then: nothing learned.
            Answer::Refused(_) | Answer::Uncertain(_) => {}
        }
    }
    let mut records = ledger.records.lock().expect("ledger");
    records[seq as usize] = Some(Record {
        event,
        outcome,
        attempts,
    });
}

enum Answer {
    Accepted(String),
    /// 503: nothing stored; retry after this.
    Refused(Duration),
    /// No certain answer: stored or not; retry (same key) after this.
    Uncertain(Duration),
    Wrong(String),
}

fn post(agent: &ureq::Agent, node: SocketAddr, body: &str, key: &str) -> Answer {
    let response = agent
        .post(format!("http://{node}/api/events"))
        .header("Content-Type", "application/json")
        .header("Authorization", &format!("Bearer {API_KEY}"))
        .header("Idempotency-Key", key)
        .send(body);
    let mut response = match response {
        Ok(response) => response,
        // A node down, a connection lost on the way: perhaps stored.
        Err(_) => return Answer::Uncertain(Duration::from_millis(200)),
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(Duration::from_millis(500), |s| {
            Duration::from_secs_f64(s.min(2.0))
        });
    let reply: Value = response.body_mut().read_json().unwrap_or(Value::Null);
    match status {
        202 => match reply["id"].as_str() {
            Some(id) => Answer::Accepted(id.to_owned()),
            None => Answer::Wrong(format!("202 without an id: {reply}")),
        },
        503 => Answer::Refused(retry_after),
        504 => Answer::Uncertain(retry_after),
        _ => Answer::Wrong(format!("{status}: {reply}")),
    }
}
