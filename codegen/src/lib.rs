//! omnicast-codegen: loads `events.yaml` into a validated [`Catalog`] and generates from it the
//! Rust catalog crate code ([`generate::rust`]), the markdown reference ([`generate::markdown`])
//! and the TypeScript types of the client ([`generate::typescript`]).
//!
//! Data flows one way: [`load`] (parse -> validate -> model) -> pure generators -> sinks (the build
//! script writes into `OUT_DIR`, `omnicast gen` into `generated-docs/`). The runtime never depends
//! on this crate.

pub mod compare;
pub mod diagnostic;
pub mod generate;
pub mod model;
pub mod version;
pub use omnicast_runtime::names;
mod locate;
mod raw;
mod validate;

use std::io;
use std::path::Path;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use locate::locate;
pub use model::Catalog;
pub use validate::{MAX_NAMESPACES, MAX_ROLES};

/// Reads, parses and validates a catalog file, reporting every problem at once.
pub fn load(path: &Path) -> Result<Catalog, Diagnostics> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(source) => load_str(&file, &source),
        Err(err) => Err(Diagnostics(vec![Diagnostic {
            file,
            location: None,
            event: None,
            field: None,
            message: format!("cannot read the catalog: {err}"),
            help: None,
        }])),
    }
}

/// Parses and validates catalog text; `file` names it in diagnostics.
pub fn load_str(file: &str, source: &str) -> Result<Catalog, Diagnostics> {
    let raw = raw::parse(source).map_err(|err| {
        let location = err.location().map(|l| (l.line(), l.column()));
        let message = strip_position(&err.to_string());
        Diagnostics(vec![Diagnostic {
            file: file.to_owned(),
            location,
            event: None,
            field: None,
            message,
            help: None,
        }])
    })?;
    validate::validate(file, source, raw)
}

/// serde_yaml writes the position into its messages (`... at line 3 column 5, while ...`); the
/// diagnostic shows it already.
fn strip_position(message: &str) -> String {
    let Some(start) = message.find(" at line ") else {
        return message.to_owned();
    };
    let rest = &message[start..];
    let end = rest
        .find(" column ")
        .map(|c| {
            let digits = rest[c + 8..]
                .find(|ch: char| !ch.is_ascii_digit())
                .unwrap_or(rest.len() - c - 8);
            c + 8 + digits
        })
        .unwrap_or(rest.len());
    format!("{}{}", &message[..start], &rest[end..])
}

/// Writes `contents` to `path` unless it already holds exactly that, so mtimes only move on change.
/// Returns whether it wrote.
pub fn write_file_if_changed(path: &Path, contents: &str) -> io::Result<bool> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == contents) {
        return Ok(false);
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, contents)?;
    Ok(true)
}

/// For build scripts: loads `catalog`, writes `catalog.rs`, `EVENTS.md` and `catalog.ts` into `out_dir`, and
/// tells cargo to rerun when the catalog changes. On a bad catalog it prints every problem and
/// exits with status 1: a build error, not a panic.
pub fn build(catalog: &Path, out_dir: &Path) {
    println!("cargo::rerun-if-changed={}", catalog.display());
    let model = match load(catalog) {
        Ok(model) => model,
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            std::process::exit(1);
        }
    };
    let outputs = [
        ("catalog.rs", generate::rust::render(&model)),
        ("EVENTS.md", generate::markdown::render(&model)),
        ("catalog.ts", generate::typescript::render(&model)),
    ];
    for (name, contents) in outputs {
        let path = out_dir.join(name);
        if let Err(err) = write_file_if_changed(&path, &contents) {
            eprintln!("error: cannot write {}: {err}", path.display());
            std::process::exit(1);
        }
    }
}

/// The `catalog` fuzz target's body (`fuzz/`, its findings replayed by `tests/fuzz.rs`): any
/// bytes as `events.yaml`. A refusal carries at least one diagnostic; a catalog that loads
/// renders its Rust, markdown and TypeScript without a panic.
#[doc(hidden)]
pub fn fuzz_catalog(data: &[u8]) {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    match load_str("events.yaml", source) {
        Ok(model) => {
            generate::rust::render(&model);
            generate::markdown::render(&model);
            generate::typescript::render(&model);
        }
        Err(diagnostics) => assert!(!diagnostics.0.is_empty(), "a refusal says why"),
    }
}
