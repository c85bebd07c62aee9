//! See `omnicast_runtime::server::harness::targets::messages`.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use omnicast_runtime::server::harness::{Harness, targets};

static HARNESS: LazyLock<Harness> = LazyLock::new(|| Harness::new(&omnicast::CATALOG));

fuzz_target!(|data: &[u8]| targets::messages(&HARNESS, data));
