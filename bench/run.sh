#!/usr/bin/env bash
# Load benchmark on loopback: a static upstream (nginx, 1 worker), bare nginx reverse proxies
# (1 and 2 workers), the engine baseline (pingora's proxy with one header insert and nothing of
# the gateway, examples/engine_baseline.rs, 1 and 2 threads), the Clever simulator, and the
# gateway (1 and 2 threads), measured with wrk
# in interleaved rounds. Prints req/s, p50 and p99 per target (medians over the rounds) and the
# ratios; then the proxies again at the same paced load (each connection waits between
# requests), where latency is each proxy's own rather than a queue; writes
# bench/results/latest.md. Then sign-ins through the full flow (logins/s, the
# gateway's CPU time per login) and the memory store's RSS per session.
#
#   bench/run.sh                      # 5 rounds x 5 s, 50 connections
#   ROUNDS=3 DURATION=3 bench/run.sh  # quicker
#
# Environment: ROUNDS (5), DURATION seconds per run (5), CONNECTIONS (50), WRK_THREADS (1),
# LOGINS (2000), PACE_MS (5: the paced runs' mean wait; 0 skips them), SKIP_MEMORY=1 to skip
# the memory benchmark, GATEWAY_RUST_LOG (info: one access-log line per request, as in
# production), UPSTREAM_EXTRA (default: bench/set_headers.toml, the demo's identity headers;
# empty for none), SKIP_BUILD=1 (run the binaries already built), CARGO_TARGET_DIR (target).
# Installs nginx and wrk with apt-get when they are missing and it runs as root; starts nothing
# off loopback; stops every process it started, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-50}
WRK_THREADS=${WRK_THREADS:-1}
LOGINS=${LOGINS:-2000}
PACE_MS=${PACE_MS:-5}
GATEWAY_RUST_LOG=${GATEWAY_RUST_LOG:-info}
target_dir=${CARGO_TARGET_DIR:-$repo/target}

need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "== installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # policy-rc.d keeps Debian's postinst from starting a system nginx.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing: ${need[*]} (run as root, or install them)" >&2
    exit 1
  fi
fi

# The gateway as districts deploy it (the production profile); the simulator and the login
# load generator, which are not measured, in the quicker-to-build release profile.
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  echo "== building: clever-gateway and the engine baseline (production profile); examples sim_server and login_load (release)"
  CARGO_TARGET_DIR=$target_dir cargo build --profile production --bin clever-gateway --example engine_baseline >/dev/null
  CARGO_TARGET_DIR=$target_dir cargo build --release --example sim_server --example login_load >/dev/null
fi
gateway_bin=$target_dir/production/clever-gateway
engine_bin=$target_dir/production/examples/engine_baseline
bin=$target_dir/release

BENCH_NAME=bench
# The app gets the identity headers of the demo (gateway.md section 4b: X-Remote-User and
# two more), as districts configure them; UPSTREAM_EXTRA= (empty) measures without them.
UPSTREAM_EXTRA=${UPSTREAM_EXTRA-$(cat "$repo/bench/set_headers.toml")}
# shellcheck source=bench/common.sh
source "$repo/bench/common.sh"

start_upstream text/plain "upstream ok"

declare -A nginx_port
for w in 1 2; do
  nginx_port[$w]=$(free_port)
  nginx_conf "proxy$w" "${nginx_port[$w]}" "$w" "access_log $work/proxy$w.access.log;
  upstream app { server 127.0.0.1:$up_port; keepalive 64; }
  server { listen 127.0.0.1:${nginx_port[$w]};
    location / { proxy_pass http://app; proxy_http_version 1.1;
      proxy_set_header Connection \"\"; proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme; } }"
done

declare -A engine_port engine_pid
for t in 1 2; do
  engine_port[$t]=$(free_port)
  "$engine_bin" "127.0.0.1:${engine_port[$t]}" "127.0.0.1:$up_port" "$t" 2>"$work/engine$t.log" &
  engine_pid[$t]=$!
  pids+=($!)
done

declare -A gw_port
redirects=()
for t in 1 2; do
  gw_port[$t]=$(free_port)
  redirects+=("http://127.0.0.1:${gw_port[$t]}/oauth/clever/callback")
done
"$bin/examples/sim_server" "${redirects[@]}" >"$work/sim.out" 2>"$work/sim.err" &
pids+=($!)
for _ in $(seq 1 200); do [ -s "$work/sim.out" ] && break; sleep 0.05; done
read -r sim_base client_id client_secret <"$work/sim.out"

declare -A gw_pid
for t in 1 2; do
  port=${gw_port[$t]}
  gateway_toml "$port" "$t" >"$work/gateway$t.toml"
  CLEVER_GATEWAY_BENCH_SECRET=$client_secret RUST_LOG=$GATEWAY_RUST_LOG \
    "$gateway_bin" run --config "$work/gateway$t.toml" 2>"$work/gateway$t.log" >/dev/null &
  gw_pid[$t]=$!
  pids+=($!)
done

wait_http "http://127.0.0.1:$up_port/"
for w in 1 2; do wait_http "http://127.0.0.1:${nginx_port[$w]}/"; done
for t in 1 2; do wait_http "http://127.0.0.1:${engine_port[$t]}/"; done
for t in 1 2; do wait_http "http://127.0.0.1:${gw_port[$t]}/_gateway/healthz"; done

# Sign in through the simulator's auto-login (the gateway, Clever's authorize, the callback).
declare -A cookie
for t in 1 2; do
  jar=$work/jar$t
  code=$(curl -s -o /dev/null -w '%{http_code}' -L -c "$jar" -b "$jar" \
    -H 'Accept: text/html' "http://127.0.0.1:${gw_port[$t]}/")
  [ "$code" = 200 ] || { echo "sign-in through gateway $t failed ($code)" >&2; exit 1; }
  cookie[$t]="clever_gateway=$(awk '$6 == "clever_gateway" { print $7 }' "$jar" | tail -1)"
  who=$(curl -s -H "Cookie: ${cookie[$t]}" "http://127.0.0.1:${gw_port[$t]}/_gateway/me")
  echo "signed in on gateway threads=$t: $who"
done

# Sign-ins first, on a fresh gateway, before the anonymous wrk target below starts a sign-in per
# request (the server keeps nothing for those: each lives in its browser's login cookie).
echo "== sign-ins: $LOGINS through gateway threads=1 (8 at a time)"
login_line=$("$bin/examples/login_load" "http://127.0.0.1:${gw_port[1]}" "${gw_pid[1]}" "$LOGINS" 8)
echo "  $login_line"

# CPU clock ticks (user, kernel) of a server process, its threads and its children (nginx's
# workers), from /proc: what the server spent, whatever else the machine ran meanwhile.
cpu_ticks() {
  local user=0 kernel=0 p task f
  for p in "$1" $(pgrep -P "$1" || true); do
    for task in /proc/"$p"/task/*; do
      stat=$(cat "$task/stat" 2>/dev/null) || continue
      # Fields 14 and 15 (utime, stime), counted after the command name, which ends with the
      # last ')' and may hold spaces (pingora names its threads "Pingora HTTP Proxy ...").
      read -r -a f <<<"${stat##*) }"
      user=$((user + f[11])) kernel=$((kernel + f[12]))
    done
  done
  echo "$user $kernel"
}
clk_tck=$(getconf CLK_TCK)

# name | url | extra wrk args | server pid
targets=(
  "upstream direct|http://127.0.0.1:$up_port/app/page||${server_pid[upstream]}"
  "nginx proxy (1 worker)|http://127.0.0.1:${nginx_port[1]}/app/page||${server_pid[proxy1]}"
  "nginx proxy (2 workers)|http://127.0.0.1:${nginx_port[2]}/app/page||${server_pid[proxy2]}"
)
for t in 1 2; do
  base="http://127.0.0.1:${gw_port[$t]}"
  targets+=(
    "engine t$t|http://127.0.0.1:${engine_port[$t]}/app/page||${engine_pid[$t]}"
    "gateway t$t public path|$base/public/page||${gw_pid[$t]}"
    "gateway t$t signed in|$base/app/page|Cookie: ${cookie[$t]}|${gw_pid[$t]}"
    "gateway t$t anonymous (302)|$base/app/page|Accept: text/html|${gw_pid[$t]}"
  )
done

# One wrk run of a target: appends a line to the results file $1 and prints it.
# wrk_round RESULTS ROUND "name|url|header|pid" [extra wrk args...]
wrk_round() {
  local results=$1 r=$2 name url header spid cpu_before cpu_after out
  IFS='|' read -r name url header spid <<<"$3"
  shift 3
  local args=(-t "$WRK_THREADS" -c "$CONNECTIONS" -d "${DURATION}s" --latency "$@")
  [ -n "$header" ] && args+=(-H "$header")
  cpu_before=$(cpu_ticks "$spid")
  out=$(wrk "${args[@]}" "$url")
  cpu_after=$(cpu_ticks "$spid")
  python3 - "$r" "$name" "$results" "$cpu_before" "$cpu_after" "$clk_tck" <<'PY' "$out"
import re, sys
r, name, path, before, after, tck = sys.argv[1:7]
out = sys.argv[7]
requests = int(re.search(r"(\d+) requests in", out).group(1))
(u0, k0), (u1, k1) = (map(int, x.split()) for x in (before, after))
# Microseconds of the server's CPU per request, user and kernel.
user_us = (u1 - u0) * 1e6 / int(tck) / max(requests, 1)
kernel_us = (k1 - k0) * 1e6 / int(tck) / max(requests, 1)
def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s|m)", v)
    n, u = float(m.group(1)), m.group(2)
    return n * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
err = re.search(r"Socket errors: (.*)", out)
with open(path, "a") as f:
    f.write(f"{r}\t{name}\t{rps}\t{p50}\t{p99}\t{bad.group(1) if bad else 0}\t{err.group(1) if err else ''}\t{user_us}\t{kernel_us}\n")
print(f"  round {r}: {name:<30} {rps:>9.0f} req/s  p50 {p50:.3f} ms  p99 {p99:.3f} ms  cpu/req {user_us:.1f}+{kernel_us:.1f} us" + (f"  non-2xx/3xx {bad.group(1)}" if bad else ""))
PY
}

results=$work/results.tsv
: >"$results"
echo "== wrk: $ROUNDS rounds x ${#targets[@]} targets x ${DURATION}s, $CONNECTIONS connections, $WRK_THREADS wrk thread(s)"
for r in $(seq 1 "$ROUNDS"); do
  for entry in "${targets[@]}"; do
    wrk_round "$results" "$r" "$entry"
  done
done

# Paced: the same connections, each waiting PACE_MS on average between a response and its next
# request (wrk's delay() hook), so every server gets the same load, well under what any of them can
# serve. Unpaced wrk keeps CONNECTIONS requests in flight, so there latency is mostly queueing:
# mean latency = CONNECTIONS / req/s (Little's law). Paced, it is each proxy's own latency.
paced_results=$work/paced.tsv
: >"$paced_results"
if [ "$PACE_MS" != 0 ]; then
  # A random wait (0 to 2 x PACE_MS, whole ms) keeps the connections from falling into step: a
  # fixed one makes all of them send at the same millisecond tick, and latency is then the time
  # to drain a burst of CONNECTIONS requests.
  printf 'function delay()\n  return math.random(0, %d)\nend\n' "$((2 * PACE_MS))" >"$work/pace.lua"
  paced=()
  for entry in "${targets[@]}"; do
    case $entry in "nginx proxy"* | "engine t"* | "gateway t"?" signed in"*) paced+=("$entry") ;; esac
  done
  echo "== paced wrk: each connection waits 0 to $((2 * PACE_MS)) ms between requests (about $((CONNECTIONS * 1000 / PACE_MS)) req/s at most)"
  for r in $(seq 1 "$ROUNDS"); do
    for entry in "${paced[@]}"; do
      wrk_round "$paced_results" "$r" "$entry" -s "$work/pace.lua"
    done
  done
fi

memory_line=""
if [ "${SKIP_MEMORY:-0}" != 1 ]; then
  echo "== memory store: RSS per session (cargo bench --bench session_memory)"
  memory_line=$(CARGO_TARGET_DIR=$target_dir cargo bench --bench session_memory 2>/dev/null | grep -E '^(profile|sessions)=' || true)
  echo "$memory_line" | sed 's/^/  /'
fi

mkdir -p bench/results
python3 - "$results" "$ROUNDS" "$DURATION" "$CONNECTIONS" "$WRK_THREADS" "$login_line" "$memory_line" "$GATEWAY_RUST_LOG" "$paced_results" "$PACE_MS" "${UPSTREAM_EXTRA:+set_headers}" >bench/results/latest.md <<'PY'
import platform, os, statistics, subprocess, sys, datetime
path, rounds, dur, conns, wthreads, login, memory, gwlog, paced_path, pace_ms, extra = sys.argv[1:12]
def load(path):
    """Rows per target in first-seen order, and their medians (req/s, p50, p99, user, kernel)."""
    rows, order = {}, []
    for line in open(path):
        r, name, rps, p50, p99, bad, err, user_us, kernel_us = line.rstrip("\n").split("\t")
        if name not in rows:
            rows[name] = []
            order.append(name)
        rows[name].append((float(rps), float(p50), float(p99), int(bad), err, float(user_us), float(kernel_us)))
    med = {n: tuple(statistics.median(x[i] for x in v) for i in (0, 1, 2, 5, 6)) for n, v in rows.items()}
    return rows, order, med
def table(rows, order, med):
    print("| target | req/s | p50 ms | p99 ms | server CPU us/request (user + kernel) | non-2xx/3xx (all rounds) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for n in order:
        rps, p50, p99, user_us, kernel_us = med[n]
        bad = sum(x[3] for x in rows[n])
        print(f"| {n} | {rps:.0f} | {p50:.3f} | {p99:.3f} | {user_us + kernel_us:.1f} ({user_us:.1f} + {kernel_us:.1f}) | {bad} |")
    print()
rows, order, med = load(path)
paced_rows, paced_order, paced_med = load(paced_path)
cpu = "?"
for l in open("/proc/cpuinfo"):
    if l.startswith("model name"):
        cpu = l.split(":", 1)[1].strip()
        break
try:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
except Exception:
    commit = "?"
nginx_v = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip().replace("nginx version: ", "")
print("# clever-gateway load benchmark\n")
print(f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}")
print(f"- machine: {os.cpu_count()} CPUs ({cpu}), kernel {platform.release()}, loopback only; "
      "load generator, upstream, proxies and simulator share these CPUs, and other work (builds) may share "
      "the machine: compare figures within one run (ratios, CPU per request)")
print(f"- wrk {wthreads} thread(s), {conns} connections, {rounds} interleaved rounds x {dur} s per target; "
      f"figures are medians over the rounds; upstream and proxies: {nginx_v}, "
      "`return 200` upstream (12-byte body), proxies keep upstream connections alive")
print(f"- gateway: production-profile build (release + fat LTO), `RUST_LOG={gwlog}` (info: one access-log line per request to stderr, as nginx's access_log to a file), memory session store, "
      + ("the demo's identity headers (`bench/set_headers.toml`: X-Remote-User, X-Display-Name, X-App-Role) besides the X-Clever-* ones"
         if extra else "the X-Clever-* identity headers only") + "\n")
table(rows, order, med)
print("Server CPU per request: the server process's (nginx: its workers') user and kernel CPU time "
      "over the run, from /proc, divided by the requests wrk completed; a figure that holds when "
      "other work shares the machine, unlike req/s.\n")
up = med.get("upstream direct")
for t, w in (("1", "1 worker"), ("2", "2 workers")):
    s = med.get(f"gateway t{t} signed in")
    p = med.get(f"gateway t{t} public path")
    n = med.get(f"nginx proxy ({w})")
    if not (s and n):
        continue
    print(f"- threads={t}: signed-in / nginx proxy ({w}) req/s = **{s[0]/n[0]:.2f}x** (target >= 1.0); "
          f"public / nginx = {p[0]/n[0]:.2f}x; signed-in p99 - nginx p99 = {s[2]-n[2]:+.3f} ms (target <= +0.5); "
          f"signed-in / upstream direct = {s[0]/up[0]:.2f}x")
    print(f"  CPU per request: nginx proxy / gateway signed in = **{(n[3]+n[4])/(s[3]+s[4]):.2f}x**; "
          f"gateway kernel time alone / nginx's whole = {s[4]/(n[3]+n[4]):.2f}x; "
          f"gateway user time / nginx user time = {s[3]/max(n[3], 1e-9):.1f}x")
    e = med.get(f"engine t{t}")
    if e:
        print(f"  Over the engine (pingora's proxy with one header insert, same settings): signed-in / engine t{t} "
              f"req/s = **{s[0]/e[0]:.2f}x** (target >= 0.9); public / engine = {p[0]/e[0]:.2f}x; "
              f"CPU per request gateway signed in / engine = {(s[3]+s[4])/(e[3]+e[4]):.2f}x; "
              f"engine / nginx proxy ({w}) req/s = {e[0]/n[0]:.2f}x")
    # wrk keeps `conns` requests in flight, so mean latency = conns / req/s (Little's law).
    print(f"  Queueing at saturation: {conns} in flight / req/s = {int(conns)/n[0]*1e3:.3f} ms mean for nginx, "
          f"{int(conns)/s[0]*1e3:.3f} ms for the gateway; the throughput ratio alone puts "
          f"{(int(conns)/s[0]-int(conns)/n[0])*1e3:+.3f} ms between their means")
print()
if paced_order:
    print(f"Paced, the same {conns} connections each waiting a random 0 to {2 * int(pace_ms)} ms ({pace_ms} on average) "
          "between a response and the next request (wrk's `delay()`), so every server gets the same load, well under its capacity, and "
          "latency is the proxy's own rather than a queue:\n")
    table(paced_rows, paced_order, paced_med)
    for t, w in (("1", "1 worker"), ("2", "2 workers")):
        s = paced_med.get(f"gateway t{t} signed in")
        n = paced_med.get(f"nginx proxy ({w})")
        if s and n:
            print(f"- threads={t}, paced: signed-in p99 - nginx proxy ({w}) p99 = **{s[2]-n[2]:+.3f} ms** (target <= +0.5); "
                  f"p50 {s[1]-n[1]:+.3f} ms; req/s {s[0]/n[0]:.2f}x (same offered load)")
    print()
if login:
    print(f"Sign-ins (full flow through gateway threads=1 and the simulator, 8 concurrent): `{login}`\n")
if memory:
    print("Memory store (`cargo bench --bench session_memory`):\n")
    for l in memory.splitlines():
        print(f"- `{l}`")
PY
echo
cat bench/results/latest.md
