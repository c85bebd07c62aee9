//! `generated-docs/` must be exactly what this build generates. When it is not, the test rewrites
//! it (so `git diff` shows the change) and fails, naming the command that refreshes it.

use std::path::Path;

use omnicast_cli::docs::{self, Drift};

#[test]
fn generated_docs_are_fresh() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../generated-docs");
    let drift = docs::drift(&dir).expect("generated-docs/ is readable");
    if drift.is_empty() {
        return;
    }
    // CI checks a clean clone: leave it untouched there so the failure is the only change.
    if std::env::var_os("CI").is_none() {
        docs::write(&dir).expect("generated-docs/ is writable");
    }
    let lines: Vec<String> = drift
        .iter()
        .map(|d| match d {
            Drift::Missing(p) => format!("  missing: {}", p.display()),
            Drift::Stale(p) => format!("  stale:   {}", p.display()),
            Drift::Orphan(p) => format!("  orphan:  {}", p.display()),
        })
        .collect();
    panic!(
        "generated-docs/ is out of date with events.yaml:\n{}\nrefresh it with `cargo run -- gen` and commit the result",
        lines.join("\n")
    );
}

/// The client's TypeScript types, likewise.
#[test]
fn typescript_types_are_fresh() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/typescript/src/catalog.ts");
    let Some(drift) = docs::typescript_drift(&path).expect("catalog.ts is readable") else {
        return;
    };
    if std::env::var_os("CI").is_none() {
        docs::write_typescript(&path).expect("catalog.ts is writable");
    }
    panic!(
        "clients/typescript/src/catalog.ts is out of date with events.yaml ({drift:?}):\nrefresh it with `cargo run -- gen` and commit the result"
    );
}

#[test]
fn every_event_has_a_schema_and_a_reference_row() {
    let files = docs::files();
    for entry in omnicast::CATALOG.events {
        let name = entry.descriptor.name;
        let schema = format!(
            "schemas/{}.json",
            omnicast::runtime::names::schema_stem(name)
        );
        assert!(files.keys().any(|p| p == Path::new(&schema)), "no {schema}");
        assert!(
            docs::EVENTS_MD.contains(&format!("| [`{name}`]")),
            "EVENTS.md has no quick-reference row for {name}"
        );
    }
}

#[test]
fn drift_reports_stale_missing_and_orphan_files() {
    let dir = std::env::temp_dir().join(format!("omnicast-docs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    docs::write(&dir).expect("write docs");
    assert!(docs::drift(&dir).unwrap().is_empty());

    std::fs::write(dir.join("EVENTS.md"), "edited by hand").unwrap();
    std::fs::remove_file(dir.join("schemas/order.created.json")).unwrap();
    std::fs::write(dir.join("schemas/order.gone.json"), "{}").unwrap();
    let mut drift = docs::drift(&dir).unwrap();
    drift.sort_by_key(|d| format!("{d:?}"));
    assert_eq!(
        drift,
        vec![
            Drift::Missing("schemas/order.created.json".into()),
            Drift::Orphan("schemas/order.gone.json".into()),
            Drift::Stale("EVENTS.md".into()),
        ]
    );
    docs::write(&dir).unwrap();
    assert!(docs::drift(&dir).unwrap().is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
