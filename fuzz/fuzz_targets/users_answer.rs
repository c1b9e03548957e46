//! Clever's `/users/{id}` answer: any bytes parse leniently (or are refused) into a record
//! whose values render as header values.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| clever_gateway::testing::invariants::check_user(data));
