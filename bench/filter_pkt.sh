#!/bin/bash
# SPDX-License-Identifier: MIT
# The DDoS filter's cost per packet under test_run (bench/filter_pkt.lua): on
# a pass and a drop, and chained in front of the load balancer. The namespace
# is bench/lb_pkt.sh's (bench_fib_netns in bench/lib.sh): an interface with
# forwarding on and static neighbours, so the balancer's bpf_fib_lookup
# answers. Pinned to one CPU.
# usage: bench/filter_pkt.sh BUILD_DIR [N] [CHUNK] [CPU]
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
N=${2:-400000}
CHUNK=${3:-20000}
CPU=${4:-1}
NS=fpkt$$

. "$(dirname "$0")/lib.sh" # BENCH, bench_fib_netns
trap 'ip netns del "$NS" 2>/dev/null || true' EXIT
bench_fib_netns "$NS"

taskset -c "$CPU" "$BUILD/luabpf" --netns "$NS" run "$BENCH/filter_pkt.lua" "$BUILD" eth0 "$N" "$CHUNK"
