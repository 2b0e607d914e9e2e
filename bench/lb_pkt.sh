#!/bin/bash
# SPDX-License-Identifier: MIT
# The load balancer's cost per packet under test_run (bench/lb_pkt.lua): this
# tree's data plane beside the one of commit e1ec3e1 (the baseline of issue
# 15), both in the same run, in a namespace of its own: one veth with the
# balancer's address, forwarding on (bpf_fib_lookup refuses otherwise) and
# permanent neighbour entries for the backends and the client, so every
# lookup finds a MAC. Pinned to one CPU.
# usage: bench/lb_pkt.sh BUILD_DIR [N] [CHUNK] [CPU]
# For an ablation, BASE_OBJ=file.bpf.o [BASE_NAME=name] compares against that
# object instead of e1ec3e1's, and CASES=dsr_hit,nat_hit runs only those.
# LOADS=3 (the default) makes both services afresh three times and takes the
# median of the loads' ratios: where the maps land moves a case by up to a
# quarter for as long as they live (docs/benchmarks.md).
# KATRAN_SRC=DIR (a checkout of github.com/facebookincubator/katran) builds
# its balancer (katran/lib/bpf/balancer.bpf.c) and times it beside ours, on
# its own VIP, in the same run (bench/_katran.lua).
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
BENCH=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$BENCH/.." && pwd)
N=${2:-1000000}
CHUNK=${3:-50000}
CPU=${4:-1}
NS=lbpkt$$
BASE=${BASE_NAME:-e1ec3e1}
OLD=$(mktemp -d)

. "$BENCH/lib.sh"
trap 'ip netns del "$NS" 2>/dev/null || true; rm -rf "$OLD"' EXIT

# The baseline data plane, compiled as CMakeLists.txt compiles bpf/lb/lb.bpf.c.
CLANG=$(sed -n 's/^CLANG:FILEPATH=//p' "$BUILD/CMakeCache.txt")
case $(uname -m) in x86_64) ARCH=x86 ;; aarch64) ARCH=arm64 ;; *) ARCH=$(uname -m) ;; esac
if [ -n "${BASE_OBJ:-}" ]; then
  cp "$BASE_OBJ" "$OLD/lb.bpf.o"
else
for f in lb.bpf.c lb.h lb_shared.h csum.h parse.h luabpf.h; do
  git -C "$SRC" show "$BASE:bpf/$f" >"$OLD/$f"
done
"${CLANG:-clang}" -g -O2 -Wall -Werror -target bpf -D__TARGET_ARCH_$ARCH -I"$BUILD/vmlinux" \
  -I"$OLD" -c "$OLD/lb.bpf.c" -o "$OLD/lb.bpf.o"
fi

KATRAN_OBJ=
if [ -n "${KATRAN_SRC:-}" ]; then
  bench_need lb_pkt.sh bpftool
  [ -f "$KATRAN_SRC/katran/lib/bpf/balancer.bpf.c" ] || {
    echo "lb_pkt.sh: KATRAN_SRC=$KATRAN_SRC has no katran/lib/bpf/balancer.bpf.c: give a checkout of github.com/facebookincubator/katran" >&2
    exit 2
  }
  # Its sources include <string.h> through the host's headers for a BPF
  # target: an empty gnu/stubs-32.h stands in for the 32-bit glibc stubs.
  mkdir -p "$OLD/stub/gnu"
  : >"$OLD/stub/gnu/stubs-32.h"
  "${CLANG:-clang}" -g -O2 -w -target bpf -D__TARGET_ARCH_$ARCH -I"$KATRAN_SRC" -I"$OLD/stub" \
    -I/usr/include/$(uname -m)-linux-gnu -c "$KATRAN_SRC/katran/lib/bpf/balancer.bpf.c" -o "$OLD/katran.bpf.o"
  KATRAN_OBJ=$OLD/katran.bpf.o
  KATRAN_NAME="Katran $(git -C "$KATRAN_SRC" rev-parse --short HEAD 2>/dev/null || echo "from $KATRAN_SRC")"
fi
export KATRAN_OBJ KATRAN_NAME

bench_fib_netns "$NS"
taskset -c "$CPU" "$BUILD/luabpf" --netns "$NS" run "$BENCH/lb_pkt.lua" "$BUILD" eth0 "$N" "$CHUNK" \
  "$OLD/lb.bpf.o" "$BASE" "${CASES:-}"
