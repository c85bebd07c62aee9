//! Generator golden tests: `fixtures/shop.yaml` must generate exactly `fixtures/shop.rs` and
//! `fixtures/shop.md`. Refresh with `OMNICAST_BLESS=1 cargo test -p omnicast-codegen --test golden`
//! and review the change in `git diff`.

use std::fs;
use std::path::Path;

use omnicast_codegen::generate;

fn check(path: &str, actual: &str) {
    let path = Path::new(path);
    if std::env::var_os("OMNICAST_BLESS").is_some() {
        fs::write(path, actual).expect("write golden file");
        return;
    }
    let expected = fs::read_to_string(path).unwrap_or_default();
    assert!(
        expected == actual,
        "{} differs from the generator's output; if the change is intended, run \
         OMNICAST_BLESS=1 cargo test -p omnicast-codegen --test golden\n--- generated\n{actual}",
        path.display()
    );
}

#[test]
fn rust_output_matches_golden() {
    let catalog = omnicast_codegen::load(Path::new("tests/fixtures/shop.yaml"))
        .unwrap_or_else(|d| panic!("{d}"));
    let rendered = generate::rust::render(&catalog);
    assert!(rendered.starts_with("// @generated"));
    syn::parse_file(&rendered).expect("generated Rust parses");
    check("tests/fixtures/shop.rs", &rendered);
}

#[test]
fn markdown_output_matches_golden() {
    let catalog = omnicast_codegen::load(Path::new("tests/fixtures/shop.yaml"))
        .unwrap_or_else(|d| panic!("{d}"));
    check(
        "tests/fixtures/shop.md",
        &generate::markdown::render(&catalog),
    );
}

#[test]
fn output_is_deterministic() {
    let a = omnicast_codegen::load(Path::new("../events.yaml")).unwrap_or_else(|d| panic!("{d}"));
    let b = omnicast_codegen::load(Path::new("../events.yaml")).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(generate::rust::render(&a), generate::rust::render(&b));
    assert_eq!(
        generate::markdown::render(&a),
        generate::markdown::render(&b)
    );
}
