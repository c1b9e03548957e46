//! Header scrubbing: exactly the `x-clever-*` and configured-name equivalents are removed
//! (one header name per input line).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| clever_gateway::testing::invariants::check_spoofable_lines(data));
