#!/bin/bash
# SPDX-License-Identifier: MIT
# End to end through the load balancer lab (scripts/lab.sh): requests/s with
# wrk (keep-alive, and a new connection per request) and TCP throughput with
# iperf3, from the client namespace to
#   direct      one backend, no balancer (the baseline of every ratio)
#   luabpf-nat  the VIP through luabpf (scripts/examples/lb.lua), full NAT
#   luabpf-dsr  the same in DSR mode (replies go straight to the client)
#   nft-dnat    nftables DNAT in the balancer namespace (numgen inc, masquerade)
#   haproxy     HAProxy in TCP mode in the balancer namespace (roundrobin)
# Same namespaces, same backends; only one balancer is up at a time (XDP is
# detached for the others). Backends run nginx on :80 answering their name,
# and iperf3 -s on b1 (the :5201 VIP has b1 only: iperf3's control and data
# connections must reach the same server). Client tools run on CPU 0,
# servers on CPU 1; the balancers are not pinned. Each setup is measured
# RUNS times, each right after a direct run (the machine's load drifts); the
# table has medians of the figures and of each run's ratio to its direct run.
# usage: bench/lb_e2e.sh BUILD_DIR [SECONDS] [RUNS] [BACKENDS] [CONNECTIONS]
#   LB_E2E_SETUPS="haproxy luabpf-nat" measures only those (and direct).
#   LB_E2E_BEFORE=DIR adds before-nat and before-dsr: the same service from
#   another tree, DIR (its luabpf in DIR/build, its scripts/examples/lb.lua),
#   e.g. commit e1ec3e1's (issue 15's baseline):
#     mkdir /tmp/old && git archive e1ec3e1 | tar -x -C /tmp/old
#     cmake -S /tmp/old -B /tmp/old/build && cmake --build /tmp/old/build
set -euo pipefail
. "$(dirname "$0")/lib.sh" # BENCH, bench_*
bench_lab_init "$@" # BUILD DUR RUNS from arguments 1-3, SRC, PY
NB=${4:-2}
CONNS=${5:-50}
CLIENT_CPU=0
SERVER_CPU=1

bench_need lb_e2e wrk iperf3 haproxy nft nginx

# shellcheck source=../scripts/lab.sh
source "$SRC/scripts/lab.sh"
P=lbe$$
TMP=$(mktemp -d /tmp/lb_e2e.XXXXXX)
VIP=10.10.100.1
PIDS=()
BAL_PID=

stop_balancer() {
  if [ -n "$BAL_PID" ]; then
    kill "$BAL_PID" 2>/dev/null || true
    wait "$BAL_PID" 2>/dev/null || true
    BAL_PID=
  fi
  ip netns exec "$P-lb" nft delete table ip lbbench 2>/dev/null || true
  ip -n "$P-lb" addr del "$VIP/32" dev lo 2>/dev/null || true
}

cleanup() {
  stop_balancer
  local p
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && { kill "$p" 2>/dev/null || true; }; done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && { wait "$p" 2>/dev/null || true; }; done
  lab_down
  rm -rf "$TMP"
}
trap cleanup EXIT

lab_up "$P" "$NB"
# The client opens a connection per request in one of the runs.
ip netns exec "$P-cl" sysctl -qw net.ipv4.ip_local_port_range="1024 65535"

backends=()
for i in $(seq "$NB"); do backends+=("10.10.0.1$i"); done
lab_nginx 80 "$SERVER_CPU" # nginx answering bN on :80 (scripts/lab.sh)
taskset -c "$SERVER_CPU" ip netns exec "$P-b1" iperf3 -s -p 5201 >/dev/null 2>&1 &
PIDS+=($!)

wait_http() { # URL: until it answers (a balancer just started)
  local t=100
  until ip netns exec "$P-cl" curl -s --max-time 1 "$1" 2>/dev/null | grep -q '^b'; do
    if [ $((t -= 1)) -eq 0 ]; then
      echo "lb_e2e: $1 does not answer" >&2
      tail -n 20 "$TMP"/*.log >&2 2>/dev/null || true
      return 1
    fi
    sleep 0.1
  done
}

lb_config() { # MODE
  local list="" i
  for i in $(seq "$NB"); do
    list+="{ name = \"b$i\", addr = \"10.10.0.1$i\", port = 80 },"
  done
  cat >"$TMP/lb.conf.lua" <<EOF
service = "lbe2e$$"
interface = "eth0"
pin = false
vips = {
  { name = "web", addr = "$VIP", port = 80, mode = "$1", backends = { $list } },
  { name = "iperf", addr = "$VIP", port = 5201, mode = "$1",
    backends = { { name = "b1", addr = "10.10.0.11", port = 5201 } } },
}
EOF
}

start_balancer() { # SETUP -> prints the HTTP and iperf3 target addresses
  case $1 in
    direct) ;;
    luabpf-nat | luabpf-dsr)
      lb_config "${1#luabpf-}"
      "$BUILD/luabpf" --netns "$P-lb" run "$SRC/scripts/examples/lb.lua" "$TMP/lb.conf.lua" \
        >"$TMP/lb.log" 2>&1 &
      BAL_PID=$!
      ;;
    before-nat | before-dsr)
      lb_config "${1#before-}"
      "$BEFORE/build/luabpf" --netns "$P-lb" run "$BEFORE/scripts/examples/lb.lua" "$TMP/lb.conf.lua" \
        >"$TMP/lb.log" 2>&1 &
      BAL_PID=$!
      ;;
    nft-dnat)
      local map="" i
      for i in $(seq "$NB"); do map+="$((i - 1)) : 10.10.0.1$i, "; done
      ip netns exec "$P-lb" nft -f - <<EOF
table ip lbbench {
  chain pre {
    type nat hook prerouting priority dstnat;
    ip daddr $VIP tcp dport 80 dnat to numgen inc mod $NB map { ${map%, } }
    ip daddr $VIP tcp dport 5201 dnat to 10.10.0.11
  }
  chain post {
    type nat hook postrouting priority srcnat;
    ct status dnat masquerade
  }
}
EOF
      ;;
    haproxy)
      ip -n "$P-lb" addr add "$VIP/32" dev lo
      {
        printf 'global\n  maxconn 8192\n  pidfile %s/haproxy.pid\n' "$TMP"
        printf 'defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n'
        printf 'frontend web\n  bind %s:80\n  default_backend web\n' "$VIP"
        printf 'backend web\n  balance roundrobin\n'
        for i in $(seq "$NB"); do printf '  server b%d 10.10.0.1%d:80\n' "$i" "$i"; done
        printf 'frontend iperf\n  bind %s:5201\n  default_backend iperf\n' "$VIP"
        printf 'backend iperf\n  server b1 10.10.0.11:5201\n'
      } >"$TMP/haproxy.cfg"
      ip netns exec "$P-lb" haproxy -db -f "$TMP/haproxy.cfg" >"$TMP/haproxy.log" 2>&1 &
      BAL_PID=$!
      ;;
  esac
}

target() { [ "$1" = direct ] && echo 10.10.0.11 || echo "$VIP"; }

wrk_rps() { # URL [wrk args...]
  local out
  out=$(taskset -c "$CLIENT_CPU" ip netns exec "$P-cl" wrk -t1 -c"$CONNS" -d"${DUR}s" "${@:2}" "$1")
  if ! grep -q '^Requests/sec' <<<"$out"; then echo "lb_e2e: wrk failed: $out" >&2; return 1; fi
  if grep -q 'Non-2xx\|Socket errors' <<<"$out"; then echo "lb_e2e: $(grep 'Non-2xx\|Socket errors' <<<"$out") ($1 ${*:2})" >&2; fi
  awk '/^Requests\/sec/ { print $2 }' <<<"$out"
}

iperf_bps() { # HOST
  taskset -c "$CLIENT_CPU" ip netns exec "$P-cl" iperf3 -c "$1" -p 5201 -t "$DUR" -J >"$TMP/iperf.json"
  "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"])' \
    "$TMP/iperf.json"
}

BEFORE=${LB_E2E_BEFORE:-}
if [ -n "$BEFORE" ] && [ ! -x "$BEFORE/build/luabpf" ]; then
  echo "lb_e2e: LB_E2E_BEFORE=$BEFORE has no build/luabpf (build that tree first)" >&2
  exit 2
fi
DEFAULT_SETUPS="luabpf-nat luabpf-dsr nft-dnat haproxy${BEFORE:+ before-nat before-dsr}"
read -r -a SETUPS <<<"${LB_E2E_SETUPS:-$DEFAULT_SETUPS}"
measure() { # SETUP: one line of results.tsv
  local t ka close bps
  start_balancer "$1"
  t=$(target "$1")
  wait_http "http://$t/"
  ka=$(wrk_rps "http://$t/")
  close=$(wrk_rps "http://$t/" -H "Connection: close")
  bps=$(iperf_bps "$t")
  stop_balancer
  printf '%s\t%s\t%s\t%s\n' "$1" "$ka" "$close" "$bps" >>"$TMP/results.tsv"
  echo "lb_e2e: run $run/$RUNS $1: $ka req/s keep-alive, $close req/s close, $bps bit/s" >&2
}

: >"$TMP/results.tsv"
for run in $(seq "$RUNS"); do
  for s in "${SETUPS[@]}"; do
    # Direct just before each balancer: the load from elsewhere on a shared
    # machine changes by the minute, so each ratio is of a pair taken together.
    measure direct
    measure "$s"
  done
done

"$PY" - "$TMP/results.tsv" "$DUR" "$RUNS" "$NB" "$CONNS" <<'EOF'
import statistics, sys
path, dur, runs, nb, conns = sys.argv[1:]
lines = [l.rstrip("\n").split("\t") for l in open(path)]
absolute, ratios = {}, {}
for (_, *dv), (s, *sv) in zip(lines[0::2], lines[1::2]):
    dv, sv = [float(x) for x in dv], [float(x) for x in sv]
    for name, v in (("direct", dv), (s, sv)):
        a = absolute.setdefault(name, [[], [], []])
        for i in range(3):
            a[i].append(v[i])
    r = ratios.setdefault(s, [[], [], []])
    for i in range(3):
        r[i].append(sv[i] / dv[i])
med = statistics.median
print(f"lb_e2e: {nb} backends (nginx), wrk -t1 -c{conns} -d{dur}s, iperf3 -t {dur} (1 stream); "
      f"{runs} runs, each balancer right after a direct run;")
print("medians of the figures, and medians of each balancer run's ratio to the direct run before it")
print()
print("| setup | req/s keep-alive | ratio | req/s new connection each | ratio | iperf3 Gbit/s | ratio |")
print("|---|---:|---:|---:|---:|---:|---:|")
for s in ["direct"] + list(ratios):
    ka, close, bps = (med(x) for x in absolute[s])
    rk, rc, rb = (med(x) for x in ratios[s]) if s in ratios else (1, 1, 1)
    print(f"| {s} | {ka:,.0f} | {rk:.2f} | {close:,.0f} | {rc:.2f} | {bps / 1e9:.2f} | {rb:.2f} |")
EOF
