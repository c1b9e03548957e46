//! Cookie header: `strip` forwards no gateway cookie and keeps every other pair byte for byte;
//! `read` never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    clever_gateway::invariants::check_strip(data);
    let _ = clever_gateway::invariants::jar().read(std::iter::once(data));
});
