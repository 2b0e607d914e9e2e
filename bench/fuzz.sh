#!/bin/bash
# SPDX-License-Identifier: MIT
# The packet fuzzer's long run, for releases: tests/fuzz/test_fuzz_planes.sh
# (the CI test: 20,000 frames per program, seed 1) with more seeds and frames.
# The default, 62,500 frames per program and seed over seeds 1-4 and the four
# programs (lb, ct, ctxdp, filter), is 1,000,000 frames: about 15-20 minutes
# on one busy core. Exit status 0 only if every check passed; the figures
# (frames, verdicts, reasons, checks per program and seed) are in the output.
# usage: bench/fuzz.sh BUILD_DIR [FRAMES_PER_PROGRAM_AND_SEED] [SEEDS]
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
export LUABPF="$BUILD/luabpf" LUABPF_SOURCE_DIR="$SRC" LUABPF_BUILD_DIR="$BUILD" \
  LUABPF_TEST_BPF_DIR="$BUILD/tests/bpf" LUA_PATH="$SRC/tests/lua/?.lua;;"
export FUZZ_PACKETS=${2:-62500} FUZZ_SEEDS=${3:-1,2,3,4}
start=$(date +%s)
bash "$SRC/tests/fuzz/test_fuzz_planes.sh"
echo "bench/fuzz.sh: seeds $FUZZ_SEEDS, $FUZZ_PACKETS frames per program and seed, $(( $(date +%s) - start )) s"
