//! The load tool, run as `bench/run.sh` runs it (without pinning), from the project's root.

use std::path::Path;
use std::process::Command;

fn bench(args: &[&str]) -> (bool, String, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ sits in the project's root");
    let output = Command::new(env!("CARGO_BIN_EXE_omnicast-bench"))
        .args(args)
        .current_dir(root)
        .output()
        .expect("the load tool runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The benchmark's load tool itself works: a quick run against omnicast (no peers, no pinning)
/// reports every scenario with nothing lost and nothing wrongly delivered. No figure is asserted:
/// speed is the benchmark's business, not the test suite's.
#[test]
fn the_benchmark_runs_and_finds_no_lost_or_wrong_deliveries() {
    let (ok, stdout, stderr) = bench(&[
        "--quick",
        "--runs",
        "1",
        "--no-pin",
        "--targets",
        "omnicast",
        "--scenarios",
        "fanout-1k,fanout-1k-single,fixed-1k,idle-10k,targeted-1k,mixed-10k",
        // 100 or 1,000 clients per scenario: several source addresses, as beyond 20,000.
        "--per-source-address",
        "40",
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("100 connections from 3 source addresses"),
        "clients not spread over source addresses: {stderr}"
    );
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .filter(|l| l.starts_with("| omnicast |"))
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    assert_eq!(rows.len(), 6, "{stdout}");
    for row in rows {
        // | server | connected/failed | connect | deliveries/s | events/s | p50 | p99 | p99.9 | max | lost | wrong | ...
        assert!(row[2].ends_with("/0"), "failed connections: {row:?}");
        assert_eq!(
            (row[10], row[11]),
            ("0", "0"),
            "lost or wrong deliveries: {row:?}"
        );
    }
}

/// The same with the Redis broker, one node and three (the load tool starts its own
/// `redis-server`): fan-out loses nothing across nodes, and the publish and recovery scenarios
/// report a rate and a time.
#[test]
fn the_redis_targets_run_and_lose_nothing() {
    let (ok, stdout, stderr) = bench(&[
        "--quick",
        "--runs",
        "1",
        "--no-pin",
        "--targets",
        "omnicast-redis,omnicast-redis3",
        "--scenarios",
        "fanout-1k-single,mixed-10k,publish-16,recover-1k",
    ]);
    assert!(ok, "{stderr}");
    let rows = |prefix: &str| -> Vec<Vec<String>> {
        stdout
            .lines()
            .filter(|l| l.starts_with(prefix))
            .map(|l| l.split('|').map(|c| c.trim().to_owned()).collect())
            .collect()
    };
    let (one, three) = (rows("| omnicast+redis |"), rows("| omnicast+redis ×3 |"));
    assert_eq!((one.len(), three.len()), (4, 4), "{stdout}");
    for row in one.iter().chain(&three) {
        if row.len() > 12 {
            // A fan-out table: lost and wrong.
            assert!(row[2].ends_with("/0"), "failed connections: {row:?}");
            assert_eq!((&*row[10], &*row[11]), ("0", "0"), "{row:?}");
        } else {
            // Publish (events/s) or recovery (p50 ms): a positive figure.
            let figure: f64 = row[2].split(' ').next().unwrap().parse().unwrap();
            assert!(figure > 0.0, "{row:?}");
        }
    }
}
