#!/bin/bash
# SPDX-License-Identifier: MIT
# Run every benchmark: `cmake --build build --target bench`, or bench/run.sh BUILD_DIR.
# bench/run.sh BUILD_DIR NAME... runs only those (e.g. `map_ops ringbuf`: every
# ratio of the map and event-buffer fast paths, issue 16), without setup.sh.
# Benchmarks are not tests; each reports ratios against a baseline measured in
# the same run. Keep this a plain list of bench/<x> invocations.
set -euo pipefail
BUILD=${1:-build}
BENCH=$(cd "$(dirname "$0")" && pwd)
ONLY=" ${*:2} "
want() { [ "$ONLY" = "  " ] || [[ "$ONLY" == *" $1 "* ]]; }
[ "$ONLY" = "  " ] && bash "$BENCH/../scripts/setup.sh" --bench

want map_ops && "$BUILD/luabpf" run "$BENCH/map_ops.lua" "$BUILD"
want ringbuf && bash "$BENCH/ringbuf.sh" "$BUILD"
want prog_ops && "$BUILD/luabpf" run "$BENCH/prog_ops.lua" "$BUILD"
want lb_pkt && bash "$BENCH/lb_pkt.sh" "$BUILD"
want lb_maglev && "$BUILD/luabpf" run "$BENCH/lb_maglev.lua"
want lb_e2e && bash "$BENCH/lb_e2e.sh" "$BUILD"
want lb_ct && bash "$BENCH/lb_ct.sh" "$BUILD"
want metrics_scrape && "$BUILD/luabpf" run "$BENCH/metrics_scrape.lua"
want sk_dispatch && bash "$BENCH/sk_dispatch.sh" "$BUILD"
want filter_pkt && bash "$BENCH/filter_pkt.sh" "$BUILD"
want filter_flood && bash "$BENCH/filter_flood.sh" "$BUILD"
want health_lag && bash "$BENCH/health_lag.sh" "$BUILD"
want scale_out_withdraw && bash "$BENCH/scale_out_withdraw.sh" "$BUILD"
true
