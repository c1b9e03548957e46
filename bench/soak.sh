#!/usr/bin/env bash
# Soak: a bounded mixed load (signed-in, anonymous, logins, logouts, bad requests) against a
# release build of the gateway, with the test upstream checking every request for a spoofed
# identity. Prints error counts by kind and gateway RSS after warm-up and at the end; fails on
# any spoofed identity, any 5xx or unexpected answer, or RSS growth of 10% or more.
#
#   bench/soak.sh            # 10 minutes
#   DURATION=3m bench/soak.sh   # the shortest useful run: 90 s warm-up, then the measure
#
# The driver is the #[ignore]d test tests/soak.rs (its header says why the warm-up is 90 s and
# the gateway's login_timeout 1m). .ci/run runs it for 3 minutes on the debug build.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-10m}"
SOAK_DURATION="$DURATION" exec cargo test --release --locked --test soak -- --ignored --nocapture
