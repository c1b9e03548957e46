#!/usr/bin/env bash
# Instructions per request of the whole gateway process (pingora included), counted by
# callgrind, so the figure repeats whatever else the machine is doing. Starts a `return 200`
# nginx upstream, the Clever simulator and a production-profile gateway (threads = 1, RUST_LOG=info,
# memory store) under `valgrind --tool=callgrind` with collection off, signs in, sends WARMUP
# requests, then collects over N keep-alive requests from one connection per kind:
#
#   bench/callgrind.sh                 # signed in, public path, anonymous 302; N=2000
#   N=500 KINDS="signed_in" bench/callgrind.sh
#   UPSTREAM_EXTRA="$(cat bench/set_headers.toml)" KINDS=signed_in bench/callgrind.sh
#                                      # the app also gets three set_headers (section 4b)
#
# Prints `kind instructions_per_request` lines and keeps each profile as
# $OUT/callgrind.<kind>.out (OUT defaults to a fresh temporary directory) for
# `callgrind_annotate --inclusive=yes`. Needs valgrind, nginx, curl and python3.
#
# valgrind counts every byte a `rep movsb` copies as one instruction, and glibc's memcpy uses
# it for copies of a few KiB and more: pingora moves its ~7 KiB per-request future twice a
# request (and tokio its per-connection task), which makes up 14k to 50k of the figures. With
# GLIBC_TUNABLES=glibc.cpu.x86_rep_movsb_threshold=4294967295 those copies run as vector loops
# instead and count as about one instruction per 8 bytes, closer to what they cost.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

N=${N:-2000}
WARMUP=${WARMUP:-200}
KINDS=${KINDS:-"signed_in public anonymous"}
target_dir=${CARGO_TARGET_DIR:-$repo/target}
OUT=${OUT:-$(mktemp -d -t clever-gateway-callgrind.XXXXXX)}
mkdir -p "$OUT"

CARGO_TARGET_DIR=$target_dir cargo build --profile production --locked --bin clever-gateway \
  >/dev/null 2>&1
CARGO_TARGET_DIR=$target_dir cargo build --release --locked --example sim_server >/dev/null 2>&1
gateway_bin=$target_dir/production/clever-gateway
bin=$target_dir/release

BENCH_NAME=cg
# shellcheck source=bench/common.sh
source "$repo/bench/common.sh"

start_upstream text/plain "upstream ok"

gw_port=$(free_port)
"$bin/examples/sim_server" "http://127.0.0.1:$gw_port/oauth/clever/callback" \
  >"$work/sim.out" 2>"$work/sim.err" &
pids+=($!)
for _ in $(seq 1 200); do [ -s "$work/sim.out" ] && break; sleep 0.05; done
read -r sim_base client_id client_secret <"$work/sim.out"

gateway_toml "$gw_port" 1 >"$work/gateway.toml"
CLEVER_GATEWAY_BENCH_SECRET=$client_secret RUST_LOG=info \
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/cg.%p.out" \
  "$gateway_bin" run --config "$work/gateway.toml" 2>"$work/gateway.log" >/dev/null &
gw=$!
pids+=($gw)
wait_http "http://127.0.0.1:$up_port/"
wait_http "http://127.0.0.1:$gw_port/_gateway/healthz"

jar=$work/jar
code=$(curl -s -o /dev/null -w '%{http_code}' -L -c "$jar" -b "$jar" \
  -H 'Accept: text/html' "http://127.0.0.1:$gw_port/")
[ "$code" = 200 ] || { echo "sign-in failed ($code)" >&2; exit 1; }
cookie="clever_gateway=$(awk '$6 == "clever_gateway" { print $7 }' "$jar" | tail -1)"

# Sends COUNT requests on one keep-alive connection (reconnecting when the gateway closes it)
# and checks every status.
drive() { # path count header expect
  python3 - "$gw_port" "$@" <<'PY'
import http.client, sys
port, path, count, header, expect = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
headers = {"User-Agent": "callgrind-driver"}
if header:
    k, v = header.split(": ", 1)
    headers[k] = v
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
for _ in range(count):
    conn.request("GET", path, headers=headers)
    r = conn.getresponse()
    r.read()
    if r.status != expect:
        sys.exit(f"{path}: status {r.status}, expected {expect}")
    if r.will_close:
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
PY
}

for kind in $KINDS; do
  case $kind in
    signed_in) path=/app/page; header="Cookie: $cookie"; expect=200 ;;
    public) path=/public/page; header=""; expect=200 ;;
    anonymous) path=/app/page; header="Accept: text/html"; expect=302 ;;
    *) echo "unknown kind $kind" >&2; exit 2 ;;
  esac
  drive "$path" "$WARMUP" "$header" "$expect"
  callgrind_control -z "$gw" >/dev/null 2>&1
  callgrind_control -i on "$gw" >/dev/null 2>&1
  drive "$path" "$N" "$header" "$expect"
  callgrind_control -i off "$gw" >/dev/null 2>&1
  rm -f "$work"/cg.*.out*
  callgrind_control -d "$gw" >/dev/null 2>&1
  sleep 1
  dump=$(ls -t "$work"/cg.*.out* | head -1)
  cp "$dump" "$OUT/callgrind.$kind.out"
  total=$(callgrind_annotate "$OUT/callgrind.$kind.out" 2>/dev/null |
    awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
  echo "$kind $((total / N))"
done
echo "profiles: $OUT"
