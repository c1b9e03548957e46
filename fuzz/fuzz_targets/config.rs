//! `gateway.toml` loading: any text gives a config or a list of problems, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| clever_gateway::testing::invariants::check_config(data));
