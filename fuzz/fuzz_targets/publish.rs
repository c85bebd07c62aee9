//! See `omnicast_runtime::server::harness::targets::publish`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omnicast_runtime::server::harness::targets;

fuzz_target!(|data: &[u8]| targets::publish(&omnicast::CATALOG, data));
