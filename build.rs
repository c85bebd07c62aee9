//! Generates the catalog crate code from events.yaml into OUT_DIR.

use std::path::{Path, PathBuf};

fn main() {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    // Build scripts run in the package root; a relative path keeps diagnostics short
    // (`events.yaml:14:9: ...`).
    omnicast_codegen::build(Path::new("events.yaml"), &out_dir);
}
