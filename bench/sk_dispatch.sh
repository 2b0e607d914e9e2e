#!/bin/bash
# SPDX-License-Identifier: MIT
# New TCP connections per second through the sk_lookup dispatcher against
# straight to the listener, in a namespace of its own. nginx listens on
# 127.0.0.1:7080; wrk sends one request per connection (Connection: close),
# so every request pays one socket lookup:
#   direct        to :7080, no sk_lookup program in the namespace (the baseline)
#   attached      to :7080 with the dispatcher attached: its program runs on
#                 every lookup and matches nothing (what other ports pay)
#   dispatched    to :8500, steered by a binding of 8000-8999 to nginx's socket
# Each setup runs RUNS times, each right after a direct run (the shared
# machine's load drifts); the table has medians of requests/s and of each
# run's ratio to its own direct run.
# usage: bench/sk_dispatch.sh BUILD_DIR [SECONDS] [RUNS] [CONNECTIONS]
set -euo pipefail
. "$(dirname "$0")/lib.sh" # BENCH, bench_*
bench_lab_init "${1:-build}" "${2:-3}" "${3:-5}" # BUILD DUR RUNS, SRC, PY
CONNS=${4:-20}
bench_need "sk_dispatch bench" wrk nginx
NS=skbench$$
TMP=$(mktemp -d /tmp/sk_bench.XXXXXX)
SKD="$SRC/scripts/examples/sk_dispatch.lua"

cleanup() {
  "$BUILD/luabpf" --netns "$NS" run "$SKD" remove >/dev/null 2>&1 || true
  [ -f "$TMP/nginx.pid" ] && kill "$(cat "$TMP/nginx.pid")" 2>/dev/null || true
  sleep 0.2
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

ip netns add "$NS"
ip -n "$NS" link set lo up
cat >"$TMP/nginx.conf" <<EOF
worker_processes 1;
pid $TMP/nginx.pid;
error_log $TMP/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  server { listen 127.0.0.1:7080 backlog=4096; location / { return 200 "ok\n"; } }
}
EOF
ip netns exec "$NS" taskset -c 1 nginx -c "$TMP/nginx.conf"
for _ in $(seq 50); do [ -s "$TMP/nginx.pid" ] && break; sleep 0.1; done

# rps URL: requests/s of one wrk run, a new connection per request.
rps() {
  ip netns exec "$NS" taskset -c 0 wrk -t1 -c"$CONNS" -d"${DUR}s" -H "Connection: close" "$1" |
    awk '/Requests\/sec/ { print $2 }'
}
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

declare -A R RATIO
for setup in attached dispatched; do
  for _ in $(seq "$RUNS"); do
    "$BUILD/luabpf" --netns "$NS" run "$SKD" remove >/dev/null 2>&1 || true
    d=$(rps http://127.0.0.1:7080/)
    R[direct]+="$d "
    "$BUILD/luabpf" --netns "$NS" run "$SKD" --pid "$(cat "$TMP/nginx.pid")" --ports 8000-8999 \
      --addr 127.0.0.0/8 >/dev/null
    if [ "$setup" = attached ]; then x=$(rps http://127.0.0.1:7080/); else x=$(rps http://127.0.0.1:8500/); fi
    R[$setup]+="$x "
    RATIO[$setup]+="$(awk -v a="$x" -v b="$d" 'BEGIN { printf "%.3f", a / b }') "
  done
done

echo "sk_dispatch: new connections/s (wrk -c$CONNS, Connection: close, ${DUR}s x $RUNS runs, medians)"
printf "%-12s %12s %10s\n" setup "requests/s" "vs direct"
printf "%-12s %12.0f %10s\n" direct "$(tr ' ' '\n' <<<"${R[direct]}" | grep . | median)" "1.000"
for s in attached dispatched; do
  printf "%-12s %12.0f %10.3f\n" "$s" "$(tr ' ' '\n' <<<"${R[$s]}" | grep . | median)" \
    "$(tr ' ' '\n' <<<"${RATIO[$s]}" | grep . | median)"
done
