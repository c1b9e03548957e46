#!/usr/bin/env bash
# The 8:00 AM sign-in storm, on loopback: the Clever simulator over HTTPS (a test CA) with a
# jittered latency on every Clever call, a static upstream (nginx), the gateway, and Apache httpd
# with mod_auth_openidc as a peer relying party against the same simulator. For each of them in
# turn: BROWSING browsers sign in and keep browsing (a page every PAUSE_MS on average), then
# SIGNINS new browsers arrive evenly over OVER seconds and sign in (examples/storm.rs). Prints
# and writes bench/results/storm.md: the time each relying party adds to Clever's own latency
# (p50/p99), sign-ins per CPU-second, the connections it opened to the simulator for its
# server-to-server calls against the most Clever calls in flight at once, signed-in p99 during
# the storm against before it, errors, and peak RSS, with the ratios.
#
#   bench/storm.sh                               # 3000 sign-ins over 60 s, 200 browsing
#   SIGNINS=600 OVER=20 BROWSING=50 bench/storm.sh   # quicker
#   PROFILE=1 SKIP_APACHE=1 bench/storm.sh       # where the gateway's added time goes
#
# Environment: SIGNINS (3000), OVER seconds (60), BROWSING (200), PAUSE_MS (100), BEFORE
# seconds of browsing before the storm and again after it (10), LATENCY (150ms) and JITTER (50ms) of each Clever
# call, GATEWAY_THREADS (2), SKIP_APACHE=1, SKIP_BUILD=1 (run the binaries already built), CARGO_TARGET_DIR (target), SMOKE=1 (debug builds,
# to check the rig quickly; its figures mean nothing), PROFILE=1 (the gateway logs JSON with its
# access lines and each call to Clever, and bench/results/storm-profile.md splits each sign-in's
# time at the gateway by where it went; its logging costs CPU, so its headline figures go there
# too, not to storm.md).
# GATEWAY_NICE (0): the gateway's nice value (-10: it gets a CPU before the rig that loads it,
# as on a machine of its own; an experiment for the profile, not the benchmark's setting).
# Installs nginx, apache2 and libapache2-mod-auth-openidc with apt-get when they are missing and
# it runs as root; starts nothing off loopback; stops every process it started, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

SIGNINS=${SIGNINS:-3000}
OVER=${OVER:-60}
BROWSING=${BROWSING:-200}
PAUSE_MS=${PAUSE_MS:-100}
BEFORE=${BEFORE:-10}
LATENCY=${LATENCY:-150ms}
JITTER=${JITTER:-50ms}
GATEWAY_THREADS=${GATEWAY_THREADS:-2}
target_dir=${CARGO_TARGET_DIR:-$repo/target}

need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ "${SKIP_APACHE:-0}" != 1 ]; then
  [ -x /usr/sbin/apache2 ] || need+=(apache2)
  [ -e /usr/lib/apache2/modules/mod_auth_openidc.so ] || need+=(libapache2-mod-auth-openidc)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "== installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    # Debian starts the packaged services; this script runs its own on free ports.
    for svc in nginx apache2; do service "$svc" stop >/dev/null 2>&1 || true; done
  else
    echo "missing: ${need[*]} (run as root, or install them)" >&2
    exit 1
  fi
fi

if [ "${SMOKE:-0}" = 1 ]; then
  echo "== building (SMOKE=1: debug builds, figures mean nothing)"
  CARGO_TARGET_DIR=$target_dir cargo build --bin clever-gateway --example sim_server --example storm >/dev/null
  gateway_bin=$target_dir/debug/clever-gateway
  bin=$target_dir/debug/examples
else
  if [ "${SKIP_BUILD:-0}" != 1 ]; then
    echo "== building: clever-gateway (production profile); examples sim_server and storm (release)"
    CARGO_TARGET_DIR=$target_dir cargo build --profile production --bin clever-gateway >/dev/null
    CARGO_TARGET_DIR=$target_dir cargo build --release --example sim_server --example storm >/dev/null
  fi
  gateway_bin=$target_dir/production/clever-gateway
  bin=$target_dir/release/examples
fi

BENCH_NAME=storm
# shellcheck source=bench/common.sh
source "$repo/bench/common.sh"

start_upstream text/html "<!doctype html><title>app</title><p>signed in</p>"

gw_port=$(free_port)
ap_port=$(free_port)
SIM_TLS_DIR=$work/pki SIM_LATENCY=$LATENCY SIM_JITTER=$JITTER SIM_API_LISTENER=1 SIM_AUTO_LOGIN=none \
  "$bin/sim_server" "http://127.0.0.1:$gw_port/oauth/clever/callback" \
  "http://127.0.0.1:$ap_port/app/redirect_uri" >"$work/sim.out" 2>"$work/sim.err" &
pids+=($!)
for _ in $(seq 1 200); do [ -s "$work/sim.out" ] && break; sleep 0.05; done
read -r sim_base client_id client_secret sim_api <"$work/sim.out"
ca=$work/pki/ca.pem
api_port=${sim_api##*:}

cat >"$work/gateway.toml" <<EOF
[server]
listen = ["127.0.0.1:$gw_port"]
threads = $GATEWAY_THREADS
log_format = "$( [ "${PROFILE:-0}" = 1 ] && echo json || echo human )"

[clever]
client_id = "$client_id"
client_secret_env = "CLEVER_GATEWAY_BENCH_SECRET"
redirect_uri = "http://127.0.0.1:$gw_port/oauth/clever/callback"
authorize_url = "$sim_base/oauth/authorize"
token_url = "$sim_api/oauth/tokens"
api_base = "$sim_api"

[session]
cookie_secure = false

[[upstream]]
name = "app"
url = "http://127.0.0.1:$up_port"
EOF
# SSL_CERT_FILE: the gateway's Clever client trusts the test CA (and nothing else) here.
gateway_log=warn
[ "${PROFILE:-0}" = 1 ] && gateway_log=warn,access=info,clever_gateway::clever=debug
CLEVER_GATEWAY_BENCH_SECRET=$client_secret SSL_CERT_FILE=$ca RUST_LOG=$gateway_log \
  nice -n "${GATEWAY_NICE:-0}" "$gateway_bin" run --config "$work/gateway.toml" 2>"$work/gateway.log" >/dev/null &
gw_pid=$!
pids+=($!)

ap_pid=""
if [ "${SKIP_APACHE:-0}" != 1 ]; then
  mkdir -p "$work/apache"
  # A fixed set of processes (no spawning during the storm), event MPM, the OIDC relying
  # party on /app with its session in shared memory, proxying to the same upstream. Its calls
  # to Clever go to the simulator's second address, as the gateway's do.
  cat >"$work/apache/httpd.conf" <<EOF
ServerRoot /usr/lib/apache2
PidFile $work/apache/httpd.pid
ErrorLog $work/apache/error.log
LogLevel warn
Listen 127.0.0.1:$ap_port
ServerName 127.0.0.1
LoadModule mpm_event_module modules/mod_mpm_event.so
LoadModule authz_core_module modules/mod_authz_core.so
LoadModule authn_core_module modules/mod_authn_core.so
LoadModule authz_user_module modules/mod_authz_user.so
LoadModule proxy_module modules/mod_proxy.so
LoadModule proxy_http_module modules/mod_proxy_http.so
LoadModule auth_openidc_module modules/mod_auth_openidc.so
StartServers 2
ServerLimit 2
ThreadsPerChild 64
MaxRequestWorkers 128
MinSpareThreads 1
MaxSpareThreads 128
MaxConnectionsPerChild 0
KeepAliveTimeout 60
MaxKeepAliveRequests 0
$( [ "$(id -u)" = 0 ] && printf 'User nobody\nGroup nogroup\n' )
OIDCProviderIssuer $sim_api
OIDCProviderAuthorizationEndpoint $sim_base/oauth/authorize
OIDCProviderTokenEndpoint $sim_api/oauth/tokens
OIDCProviderTokenEndpointAuth client_secret_basic
OIDCProviderUserInfoEndpoint $sim_api/userinfo
OIDCProviderJwksUri $sim_api/oauth/certs
OIDCCABundlePath $ca
OIDCClientID $client_id
OIDCClientSecret $client_secret
OIDCRedirectURI http://127.0.0.1:$ap_port/app/redirect_uri
OIDCCryptoPassphrase $(head -c 24 /dev/urandom | base64)
OIDCScope "openid"
OIDCRemoteUserClaim sub
OIDCCacheType shm
OIDCSessionInactivityTimeout 7200
<Location /app>
  AuthType openid-connect
  Require valid-user
</Location>
ProxyPass /app http://127.0.0.1:$up_port/app
EOF
  # Apache's children run as nobody: they read the CA file and write their own directory.
  chmod 755 "$work" "$work/pki" && chmod 644 "$ca"
  [ "$(id -u)" = 0 ] && chown -R nobody "$work/apache"
  /usr/sbin/apache2 -f "$work/apache/httpd.conf" -DFOREGROUND &
  ap_pid=$!
  pids+=($!)
fi

wait_http "http://127.0.0.1:$up_port/"
wait_http "http://127.0.0.1:$gw_port/_gateway/healthz"
[ -n "$ap_pid" ] && wait_http "http://127.0.0.1:$ap_port/app/page" '^302$'

storm() { # name mode target pid [more driver options]
  echo "== storm through $1: $SIGNINS sign-ins over ${OVER}s, $BROWSING browsing" >&2
  "$bin/storm" --mode "$2" --target "$3" --pid "$4" "${@:5}" --sim "$sim_base" --ca "$ca" \
    --client-id "$client_id" --path /app/page --expect "signed in" --signins "$SIGNINS" --over "$OVER" \
    --browsing "$BROWSING" --pause-ms "$PAUSE_MS" --before "$BEFORE"
}
profile_opts=()
[ "${PROFILE:-0}" = 1 ] && profile_opts=(--hops-out "$work/hops.jsonl")
storm gateway gateway "http://127.0.0.1:$gw_port" "$gw_pid" "${profile_opts[@]}" >"$work/gateway.json"
[ -n "$ap_pid" ] && storm "Apache + mod_auth_openidc" rp "http://127.0.0.1:$ap_port" "$ap_pid" >"$work/apache.json"
[ -n "$ap_pid" ] || echo null >"$work/apache.json"
if [ "${SMOKE:-0}" = 1 ]; then
  cat "$work/gateway.json" "$work/apache.json" >&2
  [ -n "$ap_pid" ] && tail -5 "$work/apache/error.log" >&2
fi

results=bench/results/storm.md
[ "${PROFILE:-0}" = 1 ] && results=bench/results/storm-profile.md
[ "${SMOKE:-0}" = 1 ] && results=$work/storm.md
mkdir -p bench/results
GATEWAY_LOG=$gateway_log python3 - "$work/gateway.json" "$work/apache.json" "$api_port" "$SIGNINS" "$OVER" "$BROWSING" \
  "$PAUSE_MS" "$LATENCY" "$JITTER" "$GATEWAY_THREADS" >"$results" <<'PY'
import datetime, json, os, platform, subprocess, sys
gw_path, ap_path, api_port, signins, over, browsing, pause, latency, jitter, threads = sys.argv[1:11]
def nan(o):
    # An empty sample (BROWSING=0) has null percentiles: print them as nan.
    if isinstance(o, dict):
        return {k: float("nan") if v is None and k.endswith("_ms") else nan(v) for k, v in o.items()}
    return o
gw = nan(json.load(open(gw_path)))
ap = nan(json.load(open(ap_path)))
cpu = "?"
for l in open("/proc/cpuinfo"):
    if l.startswith("model name"):
        cpu = l.split(":", 1)[1].strip()
        break
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
def api_conns(r):
    for l in r["sim"]["listeners"]:
        if str(l["port"]) == api_port:
            return l["connections"], l["tls_handshakes"]
    return None, None
print("# The sign-in storm\n")
print(f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}")
def out(*cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except Exception:
        return "?"
ram = "?"
for l in open("/proc/meminfo"):
    if l.startswith("MemTotal:"):
        ram = f"{int(l.split()[1]) / 1024 / 1024:.1f} GiB"
        break
print(f"- machine: {os.cpu_count()} CPUs (`nproc`; {cpu}), {ram} RAM, kernel {platform.release()}, loopback only; the "
      "simulator, the upstream, the relying parties and the storm driver share these CPUs: compare figures "
      f"within this run (ratios); load average when the storm ended: {open('/proc/loadavg').read().split()[0]}")
print(f"- versions: {out('/usr/sbin/apache2', '-v').replace('Server version: ', '')}; mod_auth_openidc "
      f"{out('dpkg-query', '-W', '-f=${Version}', 'libapache2-mod-auth-openidc')}; "
      f"{out('nginx', '-v').replace('nginx version: ', '')}; {out('rustc', '--version')}")
print(f"- storm: {signins} Clever-initiated sign-ins by new browsers arriving evenly over {over} s, while "
      f"{browsing} signed-in browsers load a page every {pause} ms on average; every Clever call "
      f"(authorize, token exchange, API) held {latency} ± {jitter} by the simulator, over HTTPS")
print(f"- gateway: production-profile build, threads = {threads}, memory store, `RUST_LOG={os.environ['GATEWAY_LOG']}`; "
      "Apache httpd 2.4 event MPM (2 processes x 64 threads) with mod_auth_openidc (Debian's), "
      "session cache in shared memory, the same upstream\n")
rows = [("gateway", gw)] + ([("Apache + mod_auth_openidc", ap)] if ap else [])
print("| | sign-ins ok / errors | added p50 / p99 ms | of which at the relying party p50 / p99 ms | wall p50 / p99 ms | CPU ms per sign-in | sign-ins per CPU-s | "
      "new connections (TLS handshakes) to Clever's API / peak Clever calls in flight | browsing p99 before / during ms | peak RSS MiB |")
print("| --- | --- | --- | --- | --- | ---: | ---: | --- | --- | ---: |")
for name, r in rows:
    c, h = api_conns(r)
    cpu_ = r.get("cpu") or {}
    at = r.get("added_at_target") or {"p50_ms": float("nan"), "p99_ms": float("nan")}
    print(f"| {name} | {r['ok']} / {r['errors']} | {r['added']['p50_ms']:.1f} / {r['added']['p99_ms']:.1f} | "
          f"{at['p50_ms']:.1f} / {at['p99_ms']:.1f} | "
          f"{r['wall']['p50_ms']:.0f} / {r['wall']['p99_ms']:.0f} | {cpu_.get('cpu_ms_per_signin', float('nan')):.2f} | "
          f"{cpu_.get('signins_per_cpu_s', float('nan')):.0f} | {c} ({h}) / {r['sim']['peak_in_flight']} | "
          f"{r['browsing_before']['p99_ms']:.1f} / {r['browsing_during']['p99_ms']:.1f} | "
          f"{cpu_.get('peak_rss_kib', 0) / 1024:.1f} |")
print()
b, d = gw["browsing_before"], gw["browsing_during"]
print("Targets:\n")
print(f"- gateway added time at p99: **{gw['added']['p99_ms']:.1f} ms** (target <= 5 ms); errors {gw['errors']} (target 0)")
if gw.get("added_at_target"):
    print(f"  - of which in the requests to the gateway (its hops, less Clever's time in its token exchange and API "
          f"calls; the rest is the browser's request to Clever's authorize and its own work between hops): "
          f"**{gw['added_at_target']['p99_ms']:.1f} ms** at p99, {gw['added_at_target']['p50_ms']:.1f} ms at p50")
c, h = api_conns(gw)
print(f"- connections the gateway opened to Clever's API during the storm: **{c}** against {gw['sim']['peak_in_flight']} "
      "Clever calls in flight at the peak (target: no more than the peak, not one per call)")
print(f"- signed-in p99 during the storm / before it: **{d['p99_ms'] / b['p99_ms']:.2f}x** (target <= 1.5x; "
      f"{b['p99_ms']:.1f} ms before, {d['p99_ms']:.1f} ms during, {d['errors']} errors)")
if ap and gw.get("cpu") and ap.get("cpu"):
    print(f"- sign-ins per CPU-second, gateway / Apache + mod_auth_openidc: **{gw['cpu']['signins_per_cpu_s'] / ap['cpu']['signins_per_cpu_s']:.1f}x** (target >= 5x)")
    print(f"- added time p99, Apache / gateway: {ap['added']['p99_ms'] / max(gw['added']['p99_ms'], 1e-9):.1f}x")
if gw.get("error_kinds"):
    print(f"\nGateway errors (kinds): {gw['error_kinds']}")
if ap and ap.get("error_kinds"):
    print(f"\nApache errors (kinds): {ap['error_kinds']}")
print("\nRaw results (examples/storm.rs):\n")
print("```json")
print(json.dumps({"gateway": gw, "apache": ap}, indent=1, sort_keys=True))
print("```")
PY
if [ "${PROFILE:-0}" = 1 ]; then
  python3 - "$work/gateway.log" "$work/hops.jsonl" "$work/gateway.json" >>"$results" <<'PY'
# Where each sign-in's time at the gateway went, joined by request id: the browser's wait on
# each request to the gateway (the driver), the gateway's own time for it (its access line, from
# the request's header read to the end of its answer), the gateway's calls to Clever as it saw
# them ("clever call" debug lines, in the request's span), and Clever's time in them as the
# simulator held them.
import json, sys
log_path, hops_path, gw_path = sys.argv[1:4]
access, clever, calls = {}, {}, {}
for line in open(log_path):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    rid = e.get("request_id")
    if not rid:
        continue
    if e.get("target") == "access":
        access[rid] = e["duration_ms"]
    elif e.get("message") == "clever call":
        clever[rid] = clever.get(rid, 0.0) + e["duration_ms"]
        calls[rid] = calls.get(rid, 0) + 1
parts = {k: [] for k in ("at", "outside", "own", "between", "clever_seen", "clever_held", "ncalls")}
by_hop = {}  # hop number -> [(the browser's wait, the gateway's own time less its Clever calls)]
missing = 0
for line in open(hops_path):
    s = json.loads(line)
    ids = [h["request_id"] for h in s["hops"]]
    if not all(i in access for i in ids):
        missing += 1
        continue
    a = sum(h["ms"] for h in s["hops"])
    g = sum(access[i] for i in ids)
    c = sum(clever.get(i, 0.0) for i in ids)
    held = s["clever_ms"]
    parts["at"].append(a - held)
    parts["outside"].append(a - g)
    parts["own"].append(g - c)
    parts["between"].append(c - held)
    parts["clever_seen"].append(c)
    parts["clever_held"].append(held)
    parts["ncalls"].append(sum(calls.get(i, 0) for i in ids))
    for k, h in enumerate(s["hops"]):
        by_hop.setdefault(k, []).append((h["ms"], access[h["request_id"]] - clever.get(h["request_id"], 0.0),
                                         calls.get(h["request_id"], 0)))
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, max(0, -(-len(v) * p // 100) - 1))] if v else float("nan")
gw = json.load(open(gw_path))
n = len(parts["at"])
print("\n## Where the time at the gateway goes (PROFILE=1)\n")
print(f"{n} sign-ins joined by request id ({missing} not found in the gateway's log). Per sign-in, summed over its "
      f"requests to the gateway (the bounce, the callback, the first page); {pct(parts['ncalls'], 50)} calls to Clever "
      "per sign-in at p50.\n")
print("| part of a sign-in's time at the gateway | p50 ms | p99 ms | max ms |")
print("| --- | ---: | ---: | ---: |")
rows = [
    ("at the gateway, less Clever's time as held (= the storm's \"at the relying party\")", "at"),
    ("outside the gateway's requests: the browser's connection and the request on the wire before the gateway read its header, and the answer's way back", "outside"),
    ("the gateway's own, less its calls to Clever: its code, the store, and waiting for a CPU", "own"),
    ("between the gateway and Clever's handler: the calls as the gateway saw them less as the simulator held them (TLS and HTTP in both processes, both runtimes' wake-ups)", "between"),
    ("the gateway's calls to Clever, as it saw them", "clever_seen"),
    ("the same calls, as the simulator held them", "clever_held"),
]
for label, k in rows:
    v = parts[k]
    print(f"| {label} | {pct(v, 50):.2f} | {pct(v, 99):.2f} | {max(v) if v else float('nan'):.2f} |")
print("\nBy request (the browser's wait on it, and the gateway's own time for it less its calls to Clever):\n")
print("| request | calls to Clever | browser waited p50 / p99 ms | gateway's own p50 / p99 ms |")
print("| --- | ---: | --- | --- |")
names = {0: "the callback without a state (the bounce to authorize)", 1: "the callback with the code",
         2: "the first page (proxied to the app)"}
for k in sorted(by_hop):
    rows_ = by_hop[k]
    waited, own = [r[0] for r in rows_], [r[1] for r in rows_]
    print(f"| {names.get(k, k)} | {pct([r[2] for r in rows_], 50)} | {pct(waited, 50):.2f} / {pct(waited, 99):.2f} | "
          f"{pct(own, 50):.2f} / {pct(own, 99):.2f} |")
cpu = gw.get("cpu") or {}
if cpu.get("run_queue_wait_s") is not None:
    print(f"\nThe gateway's threads waited {cpu['run_queue_wait_s']:.2f} s for a CPU during the {gw['storm_s']:.0f} s storm "
          f"(runnable, not running; /proc/<pid>/task/*/schedstat), against {cpu['storm_cpu_s']:.2f} s of CPU they used.")
PY
fi
cat "$results"
