//! OAuth callback query: total; any invalid percent-encoding is refused; no lossy values.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| clever_gateway::testing::invariants::check_callback(data));
