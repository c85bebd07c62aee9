//! See `omnicast_runtime::server::harness::targets::since`.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use omnicast_runtime::server::PositionKey;
use omnicast_runtime::server::harness::{Harness, targets};

static KEY: LazyLock<PositionKey> =
    LazyLock::new(|| PositionKey::derive(Harness::SECRET.as_bytes()));

fuzz_target!(|data: &[u8]| targets::since(&omnicast::CATALOG, &KEY, data));
