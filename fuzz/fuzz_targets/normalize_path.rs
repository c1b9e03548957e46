//! Request path normalisation: total, resolved output, a public path stays public upstream;
//! and the path readings: every route an app server reads the path under has its rules applied.
#![no_main]
use std::sync::LazyLock;

use clever_gateway::config::Config;
use libfuzzer_sys::fuzz_target;

static CFG: LazyLock<Config> = LazyLock::new(clever_gateway::testing::invariants::public_config);
static ROUTES: LazyLock<Config> = LazyLock::new(clever_gateway::testing::invariants::routes_config);

fuzz_target!(|data: &str| {
    clever_gateway::testing::invariants::check_normalize(&CFG, data);
    clever_gateway::testing::invariants::check_placement(&ROUTES, data);
});
