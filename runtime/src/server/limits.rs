//! Limits at the handshake: how often a user may connect, so that a client reconnecting in a loop
//! cannot flood every staff connection with presence events or the hub with churn; and how many
//! connections the node, and one source address, may hold (`Admissions`).

use crate::server::shrink::Shrink;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often one user may open connections: a token bucket of `burst` connects, refilled at
/// `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnectRate {
    /// Connects allowed at once.
    pub burst: u32,
    /// Connects regained per second.
    pub per_second: f64,
}

impl ConnectRate {
    /// 30 connects at once, then 5 per second: far more than tabs and reconnects need.
    pub const DEFAULT: ConnectRate = ConnectRate {
        burst: 30,
        per_second: 5.0,
    };
}

/// Token buckets per key: a user id (connects), an API key (publish requests).
#[derive(Debug)]
pub(crate) struct ConnectLimiter {
    rate: ConnectRate,
    /// Keys are kept as their 64-bit hash under this limiter's random keys: no copy of each
    /// user id is held, and as nobody can choose ids that collide, two users sharing a bucket
    /// is as likely as a random 64-bit collision.
    keys: RandomState,
    buckets: Mutex<Buckets>,
}

#[derive(Debug, Default)]
struct Buckets {
    by_user: HashMap<u64, Bucket>,
    /// Acquisitions since full buckets were last dropped.
    since_prune: usize,
}

/// Full buckets (users who have not connected for a while) are dropped every this many
/// acquisitions, once there are at least this many users: the map holds recent connectors only,
/// and pruning costs O(1) per acquisition on average.
const PRUNE_EVERY: usize = 1024;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl ConnectLimiter {
    pub(crate) fn new(rate: ConnectRate) -> Self {
        ConnectLimiter {
            rate: ConnectRate {
                burst: rate.burst.max(1),
                per_second: rate.per_second.max(0.0),
            },
            keys: RandomState::new(),
            buckets: Mutex::new(Buckets::default()),
        }
    }

    /// Takes one connect from `user_id`'s bucket, or says how long until one is available.
    pub(crate) fn acquire(&self, user_id: &str, now: Instant) -> Result<(), Duration> {
        let burst = f64::from(self.rate.burst);
        let refill = |bucket: &Bucket| {
            let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
            (bucket.tokens + elapsed * self.rate.per_second).min(burst)
        };
        let key = self.keys.hash_one(user_id);
        let mut buckets = self.buckets.lock().expect("limiter lock");
        buckets.since_prune += 1;
        if buckets.since_prune >= PRUNE_EVERY && buckets.by_user.len() >= PRUNE_EVERY {
            buckets.since_prune = 0;
            buckets.by_user.retain(|_, bucket| refill(bucket) < burst);
            buckets.by_user.shrink_when_sparse();
            buckets.by_user.shrink_to_fit();
        }
        let bucket = buckets.by_user.entry(key).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let tokens = refill(bucket);
        if tokens < 1.0 {
            if self.rate.per_second == 0.0 {
                return Err(Duration::MAX);
            }
            return Err(Duration::from_secs_f64(
                (1.0 - tokens) / self.rate.per_second,
            ));
        }
        *bucket = Bucket {
            tokens: tokens - 1.0,
            at: now,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_the_refill_rate() {
        let limiter = ConnectLimiter::new(ConnectRate {
            burst: 3,
            per_second: 2.0,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.acquire("u", t0), Ok(()));
        }
        let wait = limiter.acquire("u", t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert_eq!(limiter.acquire("other", t0), Ok(()), "buckets are per user");
        assert_eq!(
            limiter.acquire("u", t0 + Duration::from_millis(500)),
            Ok(())
        );
        assert!(
            limiter
                .acquire("u", t0 + Duration::from_millis(500))
                .is_err()
        );
        // A long pause refills to the burst, never past it.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(limiter.acquire("u", later), Ok(()));
        }
        assert!(limiter.acquire("u", later).is_err());
    }

    #[test]
    fn full_buckets_are_forgotten_so_the_map_tracks_active_users() {
        let limiter = ConnectLimiter::new(ConnectRate {
            burst: 2,
            per_second: 1.0,
        });
        let t0 = Instant::now();
        // The prune among these (at the 1,025th) finds every bucket in use; the newcomer's is
        // the 1,024th acquisition after it, with every bucket full by then.
        for i in 0..2048 {
            limiter.acquire(&format!("u{i}"), t0).unwrap();
        }
        let later = t0 + Duration::from_secs(10);
        limiter.acquire("newcomer", later).unwrap();
        let buckets = limiter.buckets.lock().unwrap();
        assert_eq!(buckets.by_user.len(), 1, "only the newcomer is left");
    }
}

/// The peer's address, which the accept loop puts in every request's extensions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub(crate) std::net::IpAddr);

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// The node holds `--max-connections`.
    Node(usize),
    /// The source address holds `--max-connections-per-ip`.
    Address(usize),
}

/// The node's WebSocket connections, counted from the handshake (before they register, so that
/// concurrent handshakes cannot overshoot) to the end of their session, in all and per source
/// address.
#[derive(Debug)]
pub(crate) struct Admissions {
    max: usize,
    max_per_ip: Option<usize>,
    counts: Mutex<AdmissionCounts>,
}

#[derive(Debug, Default)]
struct AdmissionCounts {
    total: usize,
    /// Only addresses holding connections; only kept when a per-address limit is set.
    by_ip: HashMap<std::net::IpAddr, usize>,
}

/// One admitted connection: counted until dropped.
#[derive(Debug)]
pub(crate) struct Admission {
    admissions: std::sync::Arc<Admissions>,
    ip: Option<std::net::IpAddr>,
}

impl Admissions {
    pub(crate) fn new(max: usize, max_per_ip: Option<usize>) -> Self {
        Admissions {
            max: max.max(1),
            max_per_ip: max_per_ip.map(|m| m.max(1)),
            counts: Mutex::new(AdmissionCounts::default()),
        }
    }

    /// Counts a connection from `ip` in, unless the node or the address is full.
    pub(crate) fn admit(
        self: &std::sync::Arc<Self>,
        ip: Option<std::net::IpAddr>,
    ) -> Result<Admission, Full> {
        let mut counts = self.counts.lock().expect("admissions lock");
        if counts.total >= self.max {
            return Err(Full::Node(self.max));
        }
        let ip = ip.filter(|_| self.max_per_ip.is_some());
        if let (Some(ip), Some(limit)) = (ip, self.max_per_ip) {
            let held = counts.by_ip.entry(ip).or_insert(0);
            if *held >= limit {
                return Err(Full::Address(limit));
            }
            *held += 1;
        }
        counts.total += 1;
        Ok(Admission {
            admissions: self.clone(),
            ip,
        })
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut counts = self.admissions.counts.lock().expect("admissions lock");
        counts.total -= 1;
        if let Some(ip) = self.ip
            && let Some(held) = counts.by_ip.get_mut(&ip)
        {
            *held -= 1;
            if *held == 0 {
                counts.by_ip.remove(&ip);
                counts.by_ip.shrink_when_sparse();
            }
        }
    }
}

/// One connection's budget of subscription changes (`subscribe`, `unsubscribe`): a token bucket
/// of `--subscribe-burst`, refilled at `--subscribes-per-sec`. Held by the connection's session
/// (a few bytes), so that a client cannot make its node resubscribe it in a tight loop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    tokens: f32,
    at: Instant,
}

impl Budget {
    pub(crate) fn full(rate: ConnectRate) -> Self {
        Budget {
            tokens: rate.burst.max(1) as f32,
            at: Instant::now(),
        }
    }

    /// Takes one change, if there is one left.
    pub(crate) fn take(&mut self, rate: ConnectRate, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f32();
        let tokens = (self.tokens + elapsed * rate.per_second as f32).min(rate.burst.max(1) as f32);
        self.at = now;
        if tokens < 1.0 {
            self.tokens = tokens;
            return false;
        }
        self.tokens = tokens - 1.0;
        true
    }
}
