//! The scenarios: how many clients, with which roles, and what load, in the shapes users have
//! (one event per request as well as batches, fixed rates, targeted and mixed streams, the
//! publish path alone, recovery).

#[derive(Debug, Clone, Copy)]
pub enum Load {
    /// Every client receives every event, published as fast as the publish API takes them:
    /// `batch` events per request, from `publishers` concurrent publishers (each one request
    /// at a time, over its own keep-alive connection).
    Fanout {
        events: usize,
        batch: usize,
        publishers: usize,
    },
    /// Events at a fixed rate, for latency and CPU per delivery, `batch` per request.
    Fixed {
        per_second: usize,
        seconds: usize,
        batch: usize,
    },
    /// Connections that only sit there (reading, so they answer pings): memory per connection,
    /// then the server's CPU over `cpu_seconds` of that idleness (heartbeats, timers).
    Idle { cpu_seconds: u64 },
    /// `events` payments, round robin over the customers: each receives only its own
    /// `payment:received`. Both sizes publish the same number, so their rates compare.
    Targeted { events: usize },
    /// All roles, a stream of the catalog's events, every delivery checked.
    Mixed { events: usize },
    /// No clients: `events` published one per request from `publishers` concurrent publishers,
    /// each answered 202 before its next: the publish path's own rate (through Redis, the
    /// requests of one node are pipelined on its one connection). `spread`: round robin over
    /// three namespaces (`system`, `orders`, `inventory`: a shard each on a three-shard Redis
    /// Cluster) instead of `system` alone.
    Publish {
        events: usize,
        publishers: usize,
        spread: bool,
    },
    /// A client that missed `missed` events resumes, `trials` times (on each node in turn):
    /// how long from the connect until the whole replay arrived. With Redis the nodes are
    /// restarted first, so the replay is read from Redis, not from a node's own recent stream.
    Recover { missed: usize, trials: usize },
}

#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    pub name: &'static str,
    pub clients: usize,
    pub load: Load,
}

pub const SCENARIOS: [Scenario; 15] = [
    Scenario {
        name: "fanout-1k",
        clients: 1_000,
        load: Load::Fanout {
            events: 1_000,
            batch: 20,
            publishers: 1,
        },
    },
    // The shape services have: one event per request, from several processes at once.
    Scenario {
        name: "fanout-1k-single",
        clients: 1_000,
        load: Load::Fanout {
            events: 1_000,
            batch: 1,
            publishers: 4,
        },
    },
    Scenario {
        name: "fixed-1k",
        clients: 1_000,
        load: Load::Fixed {
            per_second: 100,
            seconds: 10,
            batch: 1,
        },
    },
    // The same rate, 10 events per request (10 requests a second).
    Scenario {
        name: "fixed-1k-batch",
        clients: 1_000,
        load: Load::Fixed {
            per_second: 100,
            seconds: 10,
            batch: 10,
        },
    },
    // A lone event at a time: what coalescing must not delay.
    Scenario {
        name: "lone-1k",
        clients: 1_000,
        load: Load::Fixed {
            per_second: 1,
            seconds: 10,
            batch: 1,
        },
    },
    Scenario {
        name: "fanout-10k",
        clients: 10_000,
        load: Load::Fanout {
            events: 100,
            batch: 20,
            publishers: 1,
        },
    },
    Scenario {
        name: "fanout-10k-single",
        clients: 10_000,
        load: Load::Fanout {
            events: 100,
            batch: 1,
            publishers: 4,
        },
    },
    Scenario {
        name: "idle-10k",
        clients: 10_000,
        load: Load::Idle { cpu_seconds: 60 },
    },
    Scenario {
        name: "idle-50k",
        clients: 50_000,
        load: Load::Idle { cpu_seconds: 60 },
    },
    Scenario {
        name: "targeted-1k",
        clients: 1_000,
        load: Load::Targeted { events: 10_000 },
    },
    Scenario {
        name: "targeted-10k",
        clients: 10_000,
        load: Load::Targeted { events: 10_000 },
    },
    Scenario {
        name: "mixed-10k",
        clients: 10_000,
        load: Load::Mixed { events: 200 },
    },
    Scenario {
        name: "publish-16",
        clients: 0,
        load: Load::Publish {
            events: 20_000,
            publishers: 16,
            spread: false,
        },
    },
    // The same over three namespaces: on a Redis Cluster, one per shard.
    Scenario {
        name: "publish-16-spread",
        clients: 0,
        load: Load::Publish {
            events: 20_000,
            publishers: 16,
            spread: true,
        },
    },
    Scenario {
        name: "recover-1k",
        clients: 0,
        load: Load::Recover {
            missed: 1_000,
            trials: 50,
        },
    },
];

impl Scenario {
    /// The same scenario with every client and event count divided by 10 (`--quick`).
    pub fn quick(mut self) -> Self {
        self.clients = (self.clients / 10).max(1);
        self.load = match self.load {
            Load::Fanout {
                events,
                batch,
                publishers,
            } => Load::Fanout {
                events: (events / 10).max(1),
                batch,
                publishers,
            },
            Load::Fixed {
                per_second, batch, ..
            } => Load::Fixed {
                per_second,
                seconds: 2,
                batch,
            },
            Load::Mixed { events } => Load::Mixed {
                events: (events / 10).max(1),
            },
            Load::Targeted { events } => Load::Targeted {
                events: (events / 10).max(1),
            },
            Load::Publish {
                events,
                publishers,
                spread,
            } => Load::Publish {
                events: (events / 10).max(1),
                publishers,
                spread,
            },
            Load::Recover { missed, trials } => Load::Recover {
                missed,
                trials: (trials / 10).max(2),
            },
            Load::Idle { .. } => Load::Idle { cpu_seconds: 5 },
        };
        self
    }
}
