# Shared by bench/run.sh and bench/callgrind.sh (sourced, not run): a work directory `$work`,
# the `pids` of everything started (killed and waited for on exit), free loopback ports, and
# waiting for an HTTP answer.
work=$(mktemp -d -t "clever-gateway-${BENCH_NAME:-bench}.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_http() { # url [accepted status regex]
  for _ in $(seq 1 1200); do # up to 60 s: a gateway under valgrind starts slowly
    code=$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)
    if [[ $code =~ ${2:-^200$} ]]; then return 0; fi
    sleep 0.05
  done
  echo "no answer from $1" >&2
  return 1
}

# gateway_toml PORT THREADS: the gateway config both scripts run, on the simulator `sim_base`
# (with `client_id`) and the nginx upstream `up_port`; the secret comes from
# CLEVER_GATEWAY_BENCH_SECRET. $UPSTREAM_EXTRA, when set, is added to the [[upstream]] table
# (e.g. "$(cat bench/set_headers.toml)": three set_headers).
gateway_toml() {
  cat <<EOF
[server]
listen = ["127.0.0.1:$1"]
threads = $2

[clever]
client_id = "$client_id"
client_secret_env = "CLEVER_GATEWAY_BENCH_SECRET"
redirect_uri = "http://127.0.0.1:$1/oauth/clever/callback"
authorize_url = "$sim_base/oauth/authorize"
token_url = "$sim_base/oauth/tokens"
api_base = "$sim_base"

[session]
cookie_secure = false

[[upstream]]
name = "app"
url = "http://127.0.0.1:$up_port"
public_paths = ["/public/"]
${UPSTREAM_EXTRA:-}
EOF
}
