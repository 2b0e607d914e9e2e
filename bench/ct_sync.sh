#!/bin/bash
# SPDX-License-Identifier: MIT
# Conntrack mode across nodes (docs/scale-out.md), in the lab of
# tests/scale_out/ct_lab.sh (two nodes, conntrackd FTFW between them):
#  1. how long a new flow's entry takes to reach the other node: node 1 makes
#     N entries (new connections, 20 ms apart, the router sending all to it);
#     `conntrack -E -o timestamp` on both nodes stamps the NEW event of each
#     entry on node 1 and of its copy on node 2; the table has percentiles of
#     the difference, and how many of node 1's entries raised an event at all
#     (ct_sync, and bpf_ct_alloc's for comparison);
#  2. what ct_sync costs per new connection: HTTP requests/s through node 1
#     with a new connection each (wrk -c CONNS, nginx backends), for alloc
#     (bpf_ct_alloc entries), sync (ct_sync) and sync+ctd (ct_sync with
#     conntrackd running on both nodes), each paired with a direct run
#     (client -> backend through the router, no balancer) just before it;
#     medians of the requests/s and of each run's ratio to its direct run.
# usage: bench/ct_sync.sh BUILD_DIR [SECONDS] [RUNS] [CONNECTIONS] [FLOWS]
set -euo pipefail
. "$(dirname "$0")/lib.sh" # BENCH, bench_*
bench_lab_init "$@" # BUILD DUR RUNS from arguments 1-3, SRC, PY
CONNS=${4:-50}
FLOWS=${5:-200}
bench_need ct_sync wrk nginx nft conntrack conntrackd
export LUABPF=$BUILD/luabpf LUABPF_SOURCE_DIR=$SRC LUABPF_BUILD_DIR=$BUILD
source "$SRC/tests/scale_out/ct_lab.sh"
source "$SRC/scripts/lab.sh" # lab_nginx_run
trap 'ct_cleanup; for p in "${NGX[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done' EXIT

# nginx on :8081 beside each backend's ct_echo.py.
NGX=()
chmod 755 "$DIR"
for i in 1 2; do
  lab_nginx_run "$P-b$i" "$DIR/ngx-b$i" 8081 "b$i"
  NGX+=($!)
done
ip netns exec "$P-cl" sysctl -qw net.ipv4.ip_local_port_range="1024 65535" net.ipv4.tcp_tw_reuse=1
for i in 1 2; do
  t_wait 10 sh -c "ip netns exec $P-b$i ss -Hltn 'sport = :8081' | grep -q LISTEN" || { echo "nginx on b$i did not start" >&2; exit 1; }
done

echo "== 1. sync delay of a new entry ($FLOWS new connections, 20 ms apart, all through node 1) =="
route_n1() { ip -n "$P-rt" route replace 10.9.0.1/32 via 10.2.0.11; }
delay() { # MODE
  local mode=$1 i
  route_n1
  start_nodes "$mode" 8081
  start_ctd
  for i in 1 2; do
    ip netns exec "$P-n$i" conntrack -E -e NEW -o timestamp -p tcp --orig-dst 10.9.0.1 >"$DIR/ev-$mode-n$i" 2>/dev/null &
    T_PIDS+=($!)
  done
  # conntrack -E is listening once a first flow's event shows up: one flow the stack makes, not measured.
  t_wait 10 sh -c "ip netns exec $P-cl curl -s -m 1 -o /dev/null http://10.9.0.1/; grep -q 'dport=80 ' '$DIR/ev-$mode-n1'" || true
  ip netns exec "$P-cl" /usr/bin/python3 - "$FLOWS" <<'PY'
import socket, sys, time
for _ in range(int(sys.argv[1])):
    s = socket.create_connection(("10.9.0.1", 80), timeout=5)
    s.close()
    time.sleep(0.02)
PY
  # Events still on their way: until node 2 holds as many of node 1's as node 1 made (or 10 s).
  t_wait 10 sh -c "[ \$(grep -c 'dst=10.2.0.11 ' '$DIR/ev-$mode-n2') -ge \$(grep -c 'dst=10.2.0.11 ' '$DIR/ev-$mode-n1') ]" || true
  stop_nodes
  /usr/bin/python3 - "$mode" "$FLOWS" "$DIR/ev-$mode-n1" "$DIR/ev-$mode-n2" <<'PY'
import re, sys
mode, flows = sys.argv[1], int(sys.argv[2])
def events(path):
    out = {}
    for line in open(path):
        m = re.match(r"\[(\d+\.\d+)\].*sport=(\d+) dport=80 .*dst=10\.2\.0\.11 ", line)
        if m:
            out.setdefault(m.group(2), float(m.group(1)))
    return out
n1, n2 = events(sys.argv[3]), events(sys.argv[4])
d = sorted((n2[k] - n1[k]) * 1000 for k in n1 if k in n2)
pct = lambda p: d[min(len(d) - 1, int(p * len(d)))] if d else float("nan")
print("%-6s node 1 raised %d NEW events for %d connections; node 2 got %d; delay ms p50 %.2f p90 %.2f p99 %.2f max %.2f"
      % (mode, len(n1), flows + 1, len(d), pct(0.5), pct(0.9), pct(0.99), d[-1] if d else float("nan")))
PY
}
delay sync
delay alloc

echo "== 2. HTTP requests/s, a new connection each (wrk -c$CONNS, ${DUR} s, $RUNS runs) =="
rps() { # URL
  ip netns exec "$P-cl" wrk -t1 -c"$CONNS" -d"$DUR"s -H "Connection: close" "$1" 2>&1 |
    awk '/Requests\/sec/ { print int($2) }'
}
declare -A R
for run in $(seq "$RUNS"); do
  for mode in alloc sync sync+ctd; do
    route_n1
    d=$(rps http://10.2.0.21:8081/)
    start_nodes "${mode%+ctd}" 8081
    [ "$mode" = sync+ctd ] && start_ctd
    rps http://10.9.0.1/ >/dev/null # warm: neighbours
    b=$(rps http://10.9.0.1/)
    stop_nodes
    for i in 1 2; do ip netns exec "$P-n$i" conntrack -F >/dev/null 2>&1 || true; done
    echo "run $run $mode: direct $d, $mode $b req/s"
    R[$mode.rps]+="$b "
    R[$mode.direct]+="$d "
    R[$mode.ratio]+="$(/usr/bin/python3 -c "print(f'{$b / max($d, 1):.3f}')") "
  done
done
med() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
echo
printf "%-10s %12s %12s %10s\n" mode "req/s" "direct" "x direct"
for mode in alloc sync sync+ctd; do
  printf "%-10s %12s %12s %10s\n" "$mode" "$(med <<<"${R[$mode.rps]}")" "$(med <<<"${R[$mode.direct]}")" \
    "$(med <<<"${R[$mode.ratio]}")"
done
