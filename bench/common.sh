# Shared by the bench scripts (sourced, not run): a work directory `$work`, the `pids` of
# everything started (killed and waited for on exit), free loopback ports, waiting for an HTTP
# answer, nginx servers in `$work` and the nginx upstream every bench proxies to.
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

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
declare -A server_pid

# nginx_conf NAME PORT WORKERS HTTP-BLOCK: starts an nginx named NAME with its files in $work
# and HTTP-BLOCK inside `http {}`; its pid in server_pid[NAME].
nginx_conf() {
  cat >"$work/$1.conf" <<EOF
worker_processes $3;
daemon off;
pid $work/$1.pid;
error_log $work/$1.error.log warn;
events { worker_connections 4096; }
http {
  client_body_temp_path $work/$1.body; proxy_temp_path $work/$1.proxy;
  fastcgi_temp_path $work/$1.fcgi; uwsgi_temp_path $work/$1.uwsgi; scgi_temp_path $work/$1.scgi;
  keepalive_requests 1000000;
  $4
}
EOF
  "$NGINX" -p "$work" -c "$work/$1.conf" -e "$work/$1.error.log" &
  pids+=($!)
  server_pid[$1]=$!
}

# start_upstream CONTENT-TYPE BODY: the app behind the gateway, an nginx on `up_port` that
# answers every path with 200 and BODY.
start_upstream() {
  up_port=$(free_port)
  nginx_conf upstream "$up_port" 1 "access_log off;
  server { listen 127.0.0.1:$up_port; default_type $1;
    location / { return 200 \"$2\\n\"; } }"
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
