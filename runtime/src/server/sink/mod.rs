//! Sinks: how a service that runs no node of its own hands typed emitters' events to the nodes.
//! [`HttpSink`] posts to a node's publish API; [`RedisSink`] runs the nodes' own publish script
//! on the Redis they share. Both retry a failure that stored nothing, or may have, under one
//! idempotency key, so a retry never publishes twice; neither retries a key reused.

mod http;
mod redis;

use std::time::Duration;

pub use http::{HttpSink, HttpSinkError};
pub use redis::RedisSink;

/// How many times a sink tries one event before it reports the failure.
const ATTEMPTS: u32 = 3;

/// The longest a sink waits between two attempts.
const MAX_WAIT: Duration = Duration::from_secs(2);
