//! `events.yaml` as any text: the loader returns a catalog or diagnostics, never panics or
//! hangs (see `omnicast_codegen::fuzz_catalog`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| omnicast_codegen::fuzz_catalog(data));
