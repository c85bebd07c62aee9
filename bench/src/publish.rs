//! Publishing: request bodies prepared ahead of time and stamped at send time, sent from
//! blocking threads over keep-alive connections, one or several publishers at once.

use serde_json::{Value, json};

use crate::target::{self, Kind, Target};

/// An HTTP agent keeping a connection per concurrent publisher.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        // One keep-alive connection per concurrent publisher (ureq keeps 3 per host by
        // default: 16 publishers would otherwise reconnect on most requests).
        .max_idle_connections_per_host(64)
        .max_idle_connections(256)
        .build()
        .into()
}

/// Stands for the send time in prepared request bodies; replaced (same width) right before each
/// request is sent, so building bodies is not part of the measured latency.
pub const STAMP: &str = "9999999999999999";

/// A `system:maintenance` event stamped with its send time.
pub fn maintenance() -> Value {
    json!({ "type": "system:maintenance", "data": { "message": "bench", "scheduledAt": STAMP.parse::<u64>().unwrap() } })
}

/// An `order:created` (the `orders` namespace).
pub fn order() -> Value {
    json!({ "type": "order:created", "data": { "orderId": "ORD-1", "customerId": "cust-0",
        "customerName": "C", "total": 10, "status": "pending", "channel": "online" } })
}

/// An `inventory:updated` (the `inventory` namespace).
pub fn inventory() -> Value {
    json!({ "type": "inventory:updated", "data": { "productId": "PROD-1", "productName": "P",
        "sku": "P-1", "oldStock": 5, "newStock": 4 } })
}

/// Request bodies of `size` events each, serialized ahead of time; a lone event (not an array)
/// when `size` is 1.
pub fn prepare(events: &[Value], size: usize) -> Vec<String> {
    if size == 1 {
        // The publish APIs take a single event as well as a batch.
        return events.iter().map(Value::to_string).collect();
    }
    events
        .chunks(size)
        .map(|chunk| serde_json::to_string(chunk).expect("JSON"))
        .collect()
}

/// Sends the bodies from `publishers` threads at once, each taking every `publishers`-th body in
/// turn over its own keep-alive connection (the agent pools one per thread), so that several
/// requests are in flight as when several services publish. With several nodes, publisher `k`
/// publishes through node `k` (round robin).
pub async fn publish_concurrently(
    target: &Target,
    agent: &ureq::Agent,
    bodies: Vec<String>,
    publishers: usize,
) -> Result<(), String> {
    if publishers <= 1 {
        return publish_all(target, target.addr, agent, bodies).await;
    }
    let mut shares = vec![Vec::new(); publishers];
    for (i, body) in bodies.into_iter().enumerate() {
        shares[i % publishers].push(body);
    }
    let sent = futures_util::future::join_all(
        shares
            .into_iter()
            .enumerate()
            .map(|(k, share)| publish_all(target, target.addr_for(k), agent, share)),
    )
    .await;
    sent.into_iter().collect()
}

/// Sends prepared bodies one after another from a blocking thread, stamping each at send time.
pub async fn publish_all(
    target: &Target,
    addr: std::net::SocketAddr,
    agent: &ureq::Agent,
    bodies: Vec<String>,
) -> Result<(), String> {
    let (kind, agent) = (target.kind, agent.clone());
    tokio::task::spawn_blocking(move || {
        bodies.iter().try_for_each(|body| {
            let sent = post_to((kind, addr), &agent, body);
            // The readers share this core: let them run between requests rather than wait for
            // the scheduler to preempt a publisher that never sleeps.
            std::thread::yield_now();
            sent
        })
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Publishes a batch of `{type, data}` through the target's publish endpoint.
pub fn post_to(
    (kind, addr): (Kind, std::net::SocketAddr),
    agent: &ureq::Agent,
    body: &str,
) -> Result<(), String> {
    let (path, auth) = if kind.is_omnicast() {
        ("/api/events", Some(format!("Bearer {}", target::API_KEY)))
    } else {
        ("/publish", None)
    };
    let mut request = agent
        .post(format!("http://{addr}{path}"))
        .header("Content-Type", "application/json");
    if let Some(auth) = &auth {
        request = request.header("Authorization", auth);
    }
    let mut response = request
        .send(body.replace(STAMP, &format!("{:016}", now_us())))
        .map_err(|e| e.to_string())?;
    // Read to the end, so that the connection goes back to the agent's pool: otherwise every
    // request would pay for a new TCP connection (and so would the server).
    let body = response.body_mut().read_to_string().unwrap_or_default();
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("publish failed: {}: {body}", response.status()))
    }
}

/// Publishes one event; its id.
pub fn publish_id(
    addr: std::net::SocketAddr,
    agent: &ureq::Agent,
    body: &str,
) -> Result<String, String> {
    let mut response = agent
        .post(format!("http://{addr}/api/events"))
        .header("Content-Type", "application/json")
        .header("Authorization", &format!("Bearer {}", target::API_KEY))
        .send(body)
        .map_err(|e| e.to_string())?;
    let reply: Value = response.body_mut().read_json().map_err(|e| e.to_string())?;
    reply["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("publish failed: {reply}"))
}

/// Microseconds since the Unix epoch: the stamp in each request and each receipt.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
