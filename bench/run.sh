#!/bin/bash
# SPDX-License-Identifier: MIT
# Run every benchmark: `cmake --build build --target bench`, or bench/run.sh BUILD_DIR.
# Benchmarks are not tests; each reports ratios against a baseline measured in
# the same run. Keep this a plain list of bench/<x> invocations.
set -euo pipefail
BUILD=${1:-build}
BENCH=$(cd "$(dirname "$0")" && pwd)
bash "$BENCH/../scripts/setup.sh" --bench

"$BUILD/luabpf" run "$BENCH/map_ops.lua" "$BUILD"
bash "$BENCH/ringbuf.sh" "$BUILD"
"$BUILD/luabpf" run "$BENCH/prog_ops.lua" "$BUILD"
bash "$BENCH/lb_pkt.sh" "$BUILD"
"$BUILD/luabpf" run "$BENCH/lb_maglev.lua"
bash "$BENCH/lb_e2e.sh" "$BUILD"
bash "$BENCH/lb_ct.sh" "$BUILD"
"$BUILD/luabpf" run "$BENCH/metrics_scrape.lua"
bash "$BENCH/sk_dispatch.sh" "$BUILD"
bash "$BENCH/filter_pkt.sh" "$BUILD"
bash "$BENCH/filter_flood.sh" "$BUILD"
bash "$BENCH/health_lag.sh" "$BUILD"
bash "$BENCH/scale_out_withdraw.sh" "$BUILD"
