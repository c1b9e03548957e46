//! Cookie header: `strip` forwards no gateway cookie and keeps every other pair byte for byte;
//! `read` finds what the cookie crate's `split_parse` finds, and never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    clever_gateway::testing::invariants::check_strip(data);
    clever_gateway::testing::invariants::check_read(&[data]);
});
