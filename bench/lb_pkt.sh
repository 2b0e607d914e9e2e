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

. "$BENCH/lib.sh"
trap 'ip netns del "$NS" 2>/dev/null || true' EXIT
bench_fib_netns "$NS"

taskset -c "$CPU" "$BUILD/luabpf" --netns "$NS" run "$BENCH/lb_pkt.lua" "$BUILD" eth0 "$N" "$CHUNK"
