#!/bin/bash
# SPDX-License-Identifier: MIT
# Ring and perf buffer consumption: Lua handlers against libbpf's C consumers, same run.
# usage: bench/ringbuf.sh BUILD_DIR [N] [ROUNDS]
set -euo pipefail
BUILD=${1:-build}
BENCH=$(cd "$(dirname "$0")" && pwd)
exec "$BUILD/luabpf" run "$BENCH/ringbuf_bench.lua" "$BUILD" "${@:2}"
