#!/bin/bash
# SPDX-License-Identifier: MIT
# The load balancer's cost per packet under test_run (bench/lb_pkt.lua), in a
# namespace of its own: one veth with the balancer's address, forwarding on
# (bpf_fib_lookup refuses otherwise) and permanent neighbour entries for the
# backends and the client, so every lookup finds a MAC. Pinned to one CPU.
# usage: bench/lb_pkt.sh BUILD_DIR [N] [CHUNK] [CPU]
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
BENCH=$(cd "$(dirname "$0")" && pwd)
N=${2:-1000000}
CHUNK=${3:-50000}
CPU=${4:-1}
NS=lbpkt$$

trap 'ip netns del "$NS" 2>/dev/null || true' EXIT
ip netns add "$NS"
ip -n "$NS" link add eth0 type veth peer name peer0
ip -n "$NS" addr add 10.10.0.2/24 dev eth0
ip -n "$NS" link set eth0 up
ip -n "$NS" link set peer0 up
ip -n "$NS" link set lo up
ip netns exec "$NS" sysctl -qw net.ipv4.conf.all.forwarding=1 net.ipv4.conf.eth0.forwarding=1
ip -n "$NS" neigh add 10.10.0.1 lladdr 02:00:00:00:00:01 dev eth0 nud permanent
for i in 1 2 3; do
  ip -n "$NS" neigh add "10.10.0.1$i" lladdr "02:00:00:00:00:1$i" dev eth0 nud permanent
done
# The misses' sources (10.1.0.0 to 10.5.255.255) route via the client.
ip -n "$NS" route add 10.0.0.0/13 via 10.10.0.1

taskset -c "$CPU" "$BUILD/luabpf" --netns "$NS" run "$BENCH/lb_pkt.lua" "$BUILD" eth0 "$N" "$CHUNK"
