#!/bin/bash
# SPDX-License-Identifier: MIT
# The load balancer's two flow tables (and the conntrack one's XDP fast path) in one run (docs/lb.md, "Flow table:
# LRU or conntrack"):
#  1. per-packet cost of each data plane's program under test_run
#     (bench/lb_ct_pkt.lua);
#  2. HTTP requests/s through the lab (scripts/lab.sh, 3 nginx backends on
#     :8080) with wrk, keep-alive and a new connection per request, for
#     direct (one backend, no balancer: the baseline), lru (XDP, full NAT)
#     conntrack (tc + the kernel's conntrack NAT) and fast (conntrack with
#     ct_fastpath: established packets sent from XDP). Each balancer run is
#     paired with a direct run just before it; the table has medians of the
#     requests/s and of each run's ratio to its direct run.
# usage: bench/lb_ct.sh BUILD_DIR [SECONDS] [RUNS] [CONNECTIONS]
set -euo pipefail
. "$(dirname "$0")/lib.sh" # BENCH, bench_*
bench_lab_init "$@" # BUILD DUR RUNS from arguments 1-3, SRC, PY
CONNS=${4:-50}
bench_need lb_ct wrk nginx nft conntrack
# shellcheck source=../scripts/lab.sh
source "$SRC/scripts/lab.sh"
P=lbct$$
TMP=$(mktemp -d /tmp/lb_ct.XXXXXX)
PIDS=()
DRV_PID=
stop_lb() {
  if [ -n "$DRV_PID" ]; then kill -INT "$DRV_PID" 2>/dev/null || true; wait "$DRV_PID" 2>/dev/null || true; DRV_PID=; fi
}
cleanup() {
  stop_lb
  local p
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && { kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; }; done
  lab_down
  [ -n "${N:-}" ] && ip netns del "$N" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

echo "== per packet (test_run, kernel duration_ns) =="
N=lbctp$$
ip netns add "$N" # not in LAB_NS: lab_up resets that list
ip -n "$N" link set lo up
ip -n "$N" link add e0 address 02:00:0a:0a:00:02 type veth peer name e1
ip -n "$N" link set e0 up
ip -n "$N" link set e1 up
ip -n "$N" addr add 10.10.0.2/16 dev e0
ip netns exec "$N" sysctl -qw net.ipv4.conf.all.forwarding=1
# nf_nat's hooks, for the fast path's entry made with conntrack -I --dst-nat.
ip netns exec "$N" nft -f - <<'EOF'
table inet lbctpkt {
  chain p { type nat hook prerouting priority dstnat; policy accept; ct state new counter; }
  chain o { type nat hook postrouting priority srcnat; policy accept; }
}
EOF
for n in 1 11 12; do ip -n "$N" neigh add "10.10.0.$n" lladdr "02:00:0a:0a:00:$n" dev e0 nud permanent; done
"$BUILD/luabpf" --netns "$N" run "$BENCH/lb_ct_pkt.lua" e0 2000 7

echo "== requests/s through the lab =="
lab_up "$P" 3
ip netns exec "$P-cl" sysctl -qw net.ipv4.ip_local_port_range="1024 65535" net.ipv4.tcp_tw_reuse=1
lab_nginx 8080 # the lab's Python servers make way for nginx (scripts/lab.sh)

start_lb() { # MODE
  mkfifo "$TMP/in.$1"
  "$BUILD/luabpf" --netns "$P-lb" run "$SRC/tests/lb/lb_ct.lua" "lbct$$" "$1" <"$TMP/in.$1" >"$TMP/lb.$1.log" 2>&1 &
  DRV_PID=$!
  exec 9>"$TMP/in.$1" # keeps the driver's stdin open
  local t=100
  until grep -q "^ready" "$TMP/lb.$1.log"; do
    t=$((t - 1)); [ "$t" -gt 0 ] || { cat "$TMP/lb.$1.log" >&2; exit 1; }
    sleep 0.1
  done
}

rps() { # URL [close]: requests/s from wrk
  local extra=()
  [ "${2:-}" = close ] && extra=(-H "Connection: close")
  ip netns exec "$P-cl" wrk -t1 -c"$CONNS" -d"$DUR"s "${extra[@]}" "$1" 2>&1 |
    awk '/Requests\/sec/ { print int($2) }'
}

declare -A R
for kind in keepalive close; do
  for mode in lru conntrack fast; do
    for run in $(seq "$RUNS"); do
      d=$(rps http://10.10.0.11:8080/ "$kind")
      start_lb "$mode"
      rps http://10.10.100.1/ "$kind" >/dev/null # warm: neighbours, conntrack
      b=$(rps http://10.10.100.1/ "$kind")
      stop_lb
      exec 9>&-
      rm -f "$TMP/in.$mode"
      ip netns exec "$P-lb" conntrack -F >/dev/null 2>&1 || true
      echo "$kind $mode run $run: direct $d, $mode $b req/s"
      R[$kind.$mode.rps]+="$b "
      R[$kind.$mode.direct]+="$d "
      R[$kind.$mode.ratio]+="$("$PY" -c "print(f'{$b / max($d, 1):.3f}')") "
    done
  done
done
med() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
echo
printf "%-10s %-10s %12s %12s %10s\n" requests mode "req/s" "direct" "x direct"
for kind in keepalive close; do
  for mode in lru conntrack fast; do
    printf "%-10s %-10s %12s %12s %10s\n" "$kind" "$mode" "$(med <<<"${R[$kind.$mode.rps]}")" \
      "$(med <<<"${R[$kind.$mode.direct]}")" "$(med <<<"${R[$kind.$mode.ratio]}")"
  done
done
