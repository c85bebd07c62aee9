//! The soak's short version (`omnicast-bench soak --short`, bench/src/soak): three nodes on one
//! `redis-server`, 300 clients, 40 events/s for a minute through Redis paused, Redis restarted
//! from its AOF, a node killed and Redis restarted without its data, then the loss checker; and
//! the same on a Redis Cluster of three shards (each Redis fault hitting one shard). Latencies
//! are printed, never asserted.

use std::path::Path;
use std::process::Command;

/// One after the other: two soaks at once would share the machine's cores.
#[test]
fn the_short_soak_loses_nothing_accepted_and_leaks_nothing() {
    short_soak(&[]);
    short_soak(&["--redis-cluster"]);
}

fn short_soak(extra: &[&str]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ sits in the project's root");
    let output = Command::new(env!("CARGO_BIN_EXE_omnicast-bench"))
        .args(["soak", "--short"])
        .args(extra)
        .current_dir(root)
        .output()
        .expect("the soak runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(output.status.success(), "{extra:?}: {stdout}\n{stderr}");
    assert!(
        stdout.contains("checker: nothing lost, repeated, reordered or wrongly delivered"),
        "{stdout}"
    );
    // Every fault happened, and each showed: retries, `recovered: false` after the data loss,
    // connections cut by the killed node, slow readers closed.
    for fault in [
        "PauseRedis",
        "RestartRedisFromAof",
        "KillNode",
        "RestartRedisWithoutData",
    ] {
        assert!(stdout.contains(fault), "{fault} missing: {stdout}");
    }
    let number = |before: &str| -> u64 {
        let at = stdout
            .find(before)
            .unwrap_or_else(|| panic!("no `{before}` in {stdout}"));
        let rest = &stdout[at + before.len()..];
        rest.trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no number after `{before}`"))
    };
    assert!(number("deliveries checked:") > 0, "{stdout}");
    assert!(number("`recovered: false`:") > 0, "{stdout}");
    assert!(number("slow readers") > 0, "{stdout}");
}
