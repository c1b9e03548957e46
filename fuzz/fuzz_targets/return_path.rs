//! `rd` / return-path validator: an accepted value never resolves off the site.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| clever_gateway::testing::invariants::check_return_path(data));
