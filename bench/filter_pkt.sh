#!/bin/bash
# SPDX-License-Identifier: MIT
# The DDoS filter's cost per packet under test_run (bench/filter_pkt.lua): on
# a pass and a drop, and chained in front of the load balancer. The namespace
# is bench/lb_pkt.sh's: an interface with forwarding on and static neighbours,
# so the balancer's bpf_fib_lookup answers. Pinned to one CPU.
# usage: bench/filter_pkt.sh BUILD_DIR [N] [CHUNK] [CPU]
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
BENCH=$(cd "$(dirname "$0")" && pwd)
N=${2:-400000}
CHUNK=${3:-20000}
CPU=${4:-1}
NS=fpkt$$

trap 'ip netns del "$NS" 2>/dev/null || true' EXIT
ip netns add "$NS"
ip -n "$NS" link add eth0 type veth peer name peer0
ip -n "$NS" addr add 10.10.0.2/24 dev eth0
ip -n "$NS" link set eth0 up
ip -n "$NS" link set peer0 up
ip -n "$NS" link set lo up
ip netns exec "$NS" sysctl -qw net.ipv4.conf.all.forwarding=1 net.ipv4.conf.eth0.forwarding=1
ip -n "$NS" neigh add 10.10.0.1 lladdr 02:00:00:00:00:01 dev eth0 nud permanent
for i in 1 2; do
  ip -n "$NS" neigh add "10.10.0.1$i" lladdr "02:00:00:00:00:1$i" dev eth0 nud permanent
done
ip -n "$NS" route add 10.0.0.0/13 via 10.10.0.1

taskset -c "$CPU" "$BUILD/luabpf" --netns "$NS" run "$BENCH/filter_pkt.lua" "$BUILD" eth0 "$N" "$CHUNK"
