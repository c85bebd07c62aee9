//! Generates the catalog crate code from events.yaml into OUT_DIR.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    omnicast_codegen::build(&manifest.join("events.yaml"), &out_dir);
}
