#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install, build, and run the load balancer demo: a client, the XDP balancer
# and three HTTP backends in network namespaces this script makes, real
# traffic through it, a backend drained live, a backend failing its health
# check and the traffic moving, then coming back; everything removed at the end,
# also on Ctrl-C or failure. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null

LAB_SRC=$PWD LAB_BUILD=$PWD/build
source scripts/lab.sh
P=lbdemo$$
SVC=demo$$
CONF=$(mktemp --suffix=.lua)
LOG=$(mktemp)
LB=
cleanup() {
  [ -n "$LB" ] && { kill -INT "$LB" 2>/dev/null || true; wait "$LB" 2>/dev/null || true; }
  lab_down
  rm -rf "/sys/fs/bpf/luabpf/lb/$SVC" "$CONF" "$LOG"
  rmdir /sys/fs/bpf/luabpf/lb /sys/fs/bpf/luabpf 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
in_ns() { local ns=$1; shift; ip netns exec "$P-$ns" "$@"; }

config() { # WEIGHT_OF_B1
  cat >"$CONF" <<LUA
service = "$SVC"
interface = "eth0"
vips = {
  { name = "web", addr = "10.10.100.1", port = 80, proto = "tcp", mode = "nat",
    check = { type = "http", path = "/", interval = 0.5, timeout = 0.5, rise = 2, fall = 3 },
    backends = {
      { name = "b1", addr = "10.10.0.11", port = 8080, weight = $1 },
      { name = "b2", addr = "10.10.0.12", port = 8080, weight = 1 },
      { name = "b3", addr = "10.10.0.13", port = 8080, weight = 1 } } },
}
LUA
}

say "namespaces: client $P-cl, balancer $P-lb, backends $P-b1..b3 (nginx) on one bridge"
lab_up "$P" 3
lab_nginx 8080
config 1
say "luabpf run scripts/examples/lb.lua (VIP 10.10.100.1:80, full NAT, Maglev over b1 b2 b3)"
./build/luabpf --netns "$P-lb" run scripts/examples/lb.lua "$CONF" --destroy >"$LOG" 2>&1 &
LB=$!
for _ in $(seq 50); do grep -q "service '$SVC' on" "$LOG" && break; sleep 0.1; done
cat "$LOG"

say "9 requests with curl: which backend answered each"
for _ in $(seq 9); do printf '%s ' "$(in_ns cl curl -s -m 2 http://10.10.100.1/)"; done; echo

say "wrk: 32 keep-alive connections for 5 s, through the balancer, then straight to b1"
rps() { sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' <<<"$1"; }
via=$(in_ns cl wrk -t2 -c32 -d5s http://10.10.100.1/)
grep -E "requests in|Requests/sec|errors" <<<"$via" | sed 's/^/  VIP 10.10.100.1:80 (3 backends)  /'
before=$(wc -l <"$LOG")
kill -USR1 "$LB"
direct=$(in_ns cl wrk -t2 -c32 -d5s http://10.10.0.11:8080/)
grep -E "requests in|Requests/sec|errors" <<<"$direct" | sed 's/^/  b1 10.10.0.11:8080 directly     /'
awk -v a="$(rps "$via")" -v b="$(rps "$direct")" 'BEGIN { if (b > 0) printf "  through the balancer: %.2f of one backend straight (the same 2 cores run client, balancer and servers)\n", a / b }'
say "spread per backend (the service's stats, SIGUSR1)"
tail -n +"$((before + 1))" "$LOG" | head -n 4

say "drain b1 (weight 0, SIGHUP): its open connections finish, new ones go elsewhere"
in_ns cl "$LAB_PY" tests/lb/lb_client.py hold 10.10.100.1 80 24 3 >/dev/null &
HOLD=$!
sleep 0.5
config 0
kill -HUP "$LB"
for s in 1 2 3 4 5 6 7; do
  n=$(in_ns b1 ss -Htn state established '( sport = :8080 )' | wc -l)
  new=$(for _ in 1 2 3 4 5 6; do printf '%s ' "$(in_ns cl curl -s -m 2 http://10.10.100.1/)"; done)
  printf '  t=%ds  b1 has %2d established connections;  new requests went to: %s\n' "$s" "$n" "$new"
  [ "$n" -eq 0 ] && break
  sleep 0.8
done
wait "$HOLD" || true

say "b1 back (weight 1) with health checks on; then a backend fails: b2's nginx is stopped, its check (HTTP every 0.5 s, fall 3) takes it out"
config 1
kill -HUP "$LB"
kill "${LAB_PIDS[1]}"; wait "${LAB_PIDS[1]}" 2>/dev/null || true
t0=$(date +%s.%N)
for _ in $(seq 60); do grep -q "backend 'b2'.*is DOWN" "$LOG" && break; sleep 0.1; done
printf '  marked down after %s s:\n' "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
grep "backend 'b2'.*is DOWN" "$LOG" | sed 's/^/  /'
printf '  new requests go to: '
for _ in $(seq 9); do printf '%s ' "$(in_ns cl curl -s -m 2 http://10.10.100.1/ || echo FAILED)"; done; echo
before=$(wc -l <"$LOG")
kill -USR1 "$LB"
for _ in $(seq 30); do [ "$(wc -l <"$LOG")" -ge $((before + 4)) ] && break; sleep 0.1; done
tail -n +"$((before + 1))" "$LOG" | head -n 4

say "b2 comes back: up after 2 passing checks (rise 2), it gets traffic again"
# A simple command, not in_ns: $! must be nginx itself for lab_down to stop
# it (a function in the background is a subshell, and killing it leaves nginx).
ip netns exec "$P-b2" nginx -c "$LAB_NGINX_DIR/b2/nginx.conf" &
LAB_PIDS+=($!)
for _ in $(seq 60); do grep -q "backend 'b2'.*is UP" "$LOG" && break; sleep 0.1; done
grep "backend 'b2'.*is UP" "$LOG" | sed 's/^/  /'
printf '  new requests go to: '
for _ in $(seq 9); do printf '%s ' "$(in_ns cl curl -s -m 2 http://10.10.100.1/)"; done; echo

say "stop (Ctrl-C): final stats, program detached, pins removed"
kill -INT "$LB"; wait "$LB" || true; LB=
tail -n 4 "$LOG"
say "done: namespaces removed"
