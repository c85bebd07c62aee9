//! `omnicast check --against`, run as CI would: a catalog edited against the project's own
//! events.yaml (as a file and as a git revision), the exit codes that tell breaking from
//! widening, `--allow`, and the JSON for tools.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ sits in the project's root")
}

/// A fresh directory holding `old.yaml` (the project's catalog) and `events.yaml` (it, edited).
fn workspace(edits: &[(&str, &str)]) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "omnicast-check-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let original = std::fs::read_to_string(root().join("events.yaml")).unwrap();
    let mut edited = original.clone();
    for (from, to) in edits {
        assert!(edited.contains(from), "`{from}` is not in events.yaml");
        edited = edited.replacen(from, to, 1);
    }
    std::fs::write(dir.join("old.yaml"), original).unwrap();
    std::fs::write(dir.join("events.yaml"), edited).unwrap();
    dir
}

/// Runs `omnicast` in `dir`; the exit code, stdout and stderr.
fn omnicast(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_omnicast"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the binary runs");
    (
        output.status.code().expect("exited"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A text replaced by another in events.yaml.
type Edit = (&'static str, &'static str);

const FIELD_OPTIONAL: (&str, &str) = (
    "          customerName: string\n",
    "          customerName: string?\n",
);
const CUSTOMER_SEES_ALL: (&str, &str) = ("    own_events_only: true\n", "");
const DESCRIPTION: (&str, &str) = (
    "description: New order placed",
    "description: A new order was placed",
);

#[test]
fn exit_codes_tell_breaking_from_widening() {
    let cases: [(&str, &[Edit], i32); 5] = [
        ("nothing", &[], 0),
        ("a description", &[DESCRIPTION], 0),
        ("a field made optional", &[FIELD_OPTIONAL], 2),
        (
            "customers see every customer's events",
            &[CUSTOMER_SEES_ALL],
            4,
        ),
        ("both", &[FIELD_OPTIONAL, CUSTOMER_SEES_ALL], 6),
    ];
    for (name, edits, expected) in cases {
        let dir = workspace(edits);
        let (code, stdout, stderr) = omnicast(&dir, &["check", "--against", "old.yaml"]);
        assert_eq!(code, expected, "{name}: {stdout}{stderr}");
        assert!(
            stdout.ends_with(" against old.yaml\n") || stdout.contains(" against old.yaml:"),
            "{name}: {stdout}"
        );
    }
}

#[test]
fn each_change_is_one_line_with_its_class_place_and_id() {
    let dir = workspace(&[FIELD_OPTIONAL, CUSTOMER_SEES_ALL, DESCRIPTION]);
    let (code, stdout, _) = omnicast(&dir, &["check", "--against", "old.yaml"]);
    assert_eq!(code, 6);
    let source = std::fs::read_to_string(dir.join("events.yaml")).unwrap();
    let line_of = |needle: &str| source.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let expected = [
        format!(
            "widens who receives: events.yaml:{}:3: `customer`: own events only removed: `true` → `false`\n  = id: own-events-only-removed:customer",
            line_of("  customer:")
        ),
        format!(
            "breaking for receivers: events.yaml:{}:11: event `order:created`, field `customerName`: field made optional\n  = id: field-made-optional:order:created.customerName",
            line_of("customerName: string?")
        ),
        format!(
            "safe: events.yaml:{}:9: event `order:created`: event description changed\n  = id: event-description-changed:order:created",
            line_of("A new order was placed")
        ),
    ];
    for line in expected {
        assert!(stdout.contains(&line), "no\n{line}\nin\n{stdout}");
    }
    assert!(
        stdout.ends_with(
            "3 changes against old.yaml: 1 breaking for receivers, 1 widens who receives, 1 safe\n"
        ),
        "{stdout}"
    );
}

#[test]
fn allowed_changes_are_reported_and_do_not_fail() {
    let dir = workspace(&[FIELD_OPTIONAL, CUSTOMER_SEES_ALL]);
    let by_id = ["--allow", "own-events-only-removed:customer"];
    let (code, stdout, _) = omnicast(
        &dir,
        &[&["check", "--against", "old.yaml"][..], &by_id].concat(),
    );
    assert_eq!(code, 2, "{stdout}");
    assert!(stdout.contains("allowed: widens who receives"), "{stdout}");
    let by_rule = [
        "--allow",
        "own-events-only-removed",
        "--allow",
        "field-made-optional",
    ];
    let (code, stdout, _) = omnicast(
        &dir,
        &[&["check", "--against", "old.yaml"][..], &by_rule].concat(),
    );
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.ends_with("2 changes against old.yaml (2 allowed)\n"),
        "{stdout}"
    );
}

#[test]
fn json_for_tools() {
    let dir = workspace(&[FIELD_OPTIONAL, CUSTOMER_SEES_ALL]);
    let (code, stdout, _) = omnicast(
        &dir,
        &["check", "--against", "old.yaml", "--format", "json"],
    );
    assert_eq!(code, 6);
    let report: Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(report["exit"], 6);
    let changes = report["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2);
    let field = changes
        .iter()
        .find(|c| c["rule"] == "field-made-optional")
        .unwrap();
    assert_eq!(field["classes"], serde_json::json!(["breaking_receivers"]));
    assert_eq!(
        (field["event"].as_str(), field["field"].as_str()),
        (Some("order:created"), Some("customerName"))
    );
    let line = field["line"].as_u64().unwrap() as usize;
    let source = std::fs::read_to_string(dir.join("events.yaml")).unwrap();
    assert!(
        source
            .lines()
            .nth(line - 1)
            .unwrap()
            .contains("customerName")
    );
}

#[test]
fn against_a_git_revision() {
    let dir = workspace(&[]);
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&status.stderr)
        );
    };
    git(&["init", "-q"]);
    git(&["add", "events.yaml"]);
    git(&["commit", "-q", "-m", "first"]);
    let source = std::fs::read_to_string(dir.join("events.yaml")).unwrap();
    std::fs::write(
        dir.join("events.yaml"),
        source.replacen(CUSTOMER_SEES_ALL.0, "", 1),
    )
    .unwrap();
    // From elsewhere, naming the catalog by its path: git reads the file beside it.
    let (code, stdout, stderr) = omnicast(
        dir.parent().unwrap(),
        &[
            "check",
            dir.join("events.yaml").to_str().unwrap(),
            "--against",
            "HEAD",
        ],
    );
    assert_eq!(code, 4, "{stdout}{stderr}");
    assert!(
        stdout.contains("own-events-only-removed:customer"),
        "{stdout}"
    );

    let (code, _, stderr) = omnicast(&dir, &["check", "--against", "no-such-revision"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("`--against no-such-revision` is neither a file nor a git revision"),
        "{stderr}"
    );
}

#[test]
fn an_invalid_catalog_on_either_side_is_an_error() {
    let dir = workspace(&[]);
    std::fs::write(dir.join("old.yaml"), "roles: [").unwrap();
    let (code, stdout, stderr) = omnicast(&dir, &["check", "--against", "old.yaml"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stderr.contains("the catalog to compare with is not valid"),
        "{stderr}"
    );
    let dir = workspace(&[("roles: [admin, manager, staff]", "roles: [admin, root]")]);
    let (code, _, stderr) = omnicast(&dir, &["check", "--against", "old.yaml"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("root"), "{stderr}");
}
