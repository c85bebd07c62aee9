//! Snapshot tests of validation messages: each `invalid/<case>.yaml` must produce exactly the
//! diagnostics in `invalid/<case>.stderr`. Refresh with `OMNICAST_BLESS=1 cargo test -p
//! omnicast-codegen --test diagnostics` and review the change in `git diff`.

use std::fs;
use std::path::Path;

#[test]
fn every_invalid_catalog_reports_its_snapshot() {
    let bless = std::env::var_os("OMNICAST_BLESS").is_some();
    let mut cases: Vec<_> = fs::read_dir("tests/invalid")
        .expect("tests/invalid exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 10, "the invalid-catalog cases went missing");
    let mut failures = Vec::new();
    for case in &cases {
        let diagnostics = match omnicast_codegen::load(case) {
            Ok(_) => {
                failures.push(format!("{}: loaded without errors", case.display()));
                continue;
            }
            Err(diagnostics) => diagnostics,
        };
        let actual = format!("{diagnostics}\n");
        let snapshot = case.with_extension("stderr");
        if bless {
            fs::write(&snapshot, &actual).expect("write snapshot");
            continue;
        }
        match fs::read_to_string(&snapshot) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => failures.push(format!(
                "{}:\n--- expected\n{expected}--- actual\n{actual}",
                case.display()
            )),
            Err(_) => failures.push(format!(
                "{}: no snapshot {}; run with OMNICAST_BLESS=1\n{actual}",
                case.display(),
                snapshot.display()
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_shipped_catalog_is_valid() {
    let catalog =
        omnicast_codegen::load(Path::new("../events.yaml")).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(catalog.events.len(), 23);
    assert_eq!(catalog.namespaces.len(), 6);
    let names: Vec<&str> = catalog.roles.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["admin", "manager", "staff", "customer"]);
}

#[test]
fn an_unreadable_file_is_a_diagnostic() {
    let err = omnicast_codegen::load(Path::new("tests/invalid/does-not-exist.yaml")).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("error: tests/invalid/does-not-exist.yaml: cannot read the catalog:"),
        "{text}"
    );
}
