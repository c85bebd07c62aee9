//! The `omnicast` binary's catalog commands, run as a user would.

use std::path::Path;
use std::process::Command;

fn omnicast(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_omnicast"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn check_accepts_the_catalog() {
    let (ok, stdout, _) = omnicast(&["check"]);
    assert!(ok);
    assert_eq!(
        stdout,
        "events.yaml: ok (23 events in 6 namespaces, 4 roles)\n"
    );
}

#[test]
fn check_reports_every_problem_and_fails() {
    let (ok, stdout, stderr) = omnicast(&["check", "codegen/tests/invalid/unknown_type.yaml"]);
    assert!(!ok);
    assert!(stdout.is_empty());
    let snapshot =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("codegen/tests/invalid/unknown_type.stderr");
    let expected = std::fs::read_to_string(snapshot).unwrap();
    // Same messages as the snapshot, with the path as given on the command line.
    assert_eq!(
        stderr,
        expected.replace("tests/invalid/", "codegen/tests/invalid/")
    );
}

#[test]
fn gen_check_reports_drift_without_writing() {
    let dir = std::env::temp_dir().join(format!("omnicast-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.to_str().unwrap();
    let (ok, stdout, stderr) = omnicast(&["gen", "--check", "--out", out]);
    assert!(!ok);
    assert!(
        stdout.contains("out of date: Missing(\"EVENTS.md\")"),
        "{stdout}"
    );
    assert!(stderr.contains("run `cargo run -- gen`"), "{stderr}");
    assert!(!dir.exists(), "--check must not write");

    let (ok, _, _) = omnicast(&["gen", "--out", out]);
    assert!(ok);
    let (ok, stdout, _) = omnicast(&["gen", "--check", "--out", out]);
    assert!(ok, "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}
