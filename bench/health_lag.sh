#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Health checks at scale: N HTTP backends (one asyncio server on N ports in a
# namespace) checked every second by one luabpf, for N = 250, 1000, 2000.
# Reports the checks/s, luabpf's CPU, and the loop's lag (how late a 10 ms
# timer runs) beside the idle baseline measured in the same run, then the lag
# while all N fail at once (Maglev rebuilds). Usage: bench/health_lag.sh [BUILD_DIR]
set -uo pipefail
BUILD=${1:-build}
SRC=$(cd "$(dirname "$0")/.." && pwd)
export LUA_PATH="$SRC/tests/lua/?.lua;;"
ulimit -n 16384
for N in 250 1000 2000; do
  NS="hbench$$n$N"
  ip netns add "$NS"
  ip -n "$NS" link set lo up
  out=$(mktemp)
  ip netns exec "$NS" /usr/bin/python3 "$SRC/tests/lb/health_servers.py" "many:30000-$((30000 + N - 1))" >"$out" 2>&1 &
  srv=$!
  for _ in $(seq 200); do grep -q ready "$out" && break; sleep 0.1; done
  res=$(mktemp)
  "$BUILD/luabpf" --netns "$NS" run "$SRC/tests/lb/health_scale.lua" "hbench$$" 30000 "$N" >"$res" 2>&1 &
  lb=$!
  for _ in $(seq 300); do grep -q "^kill" "$res" && break; sleep 0.1; done
  kill "$srv" 2>/dev/null; wait "$srv" 2>/dev/null
  wait "$lb"
  echo "== $N backends"
  grep -E "^baseline|^steady|^all servers|max loop lag" "$res" | sed 's/^/  /'
  "$BUILD/luabpf" -e '
    local f = io.open(arg[1]):read("*a")
    local b = tonumber(f:match("baseline.-p99 ([%d.]+) ms"))
    local s = tonumber(f:match("steady.-p99 ([%d.]+) ms"))
    local cpu, rate = f:match("(%d+) checks/s, luabpf at (%d+)%%")
    if b and s then print(("  p99 lag / idle baseline p99: %.1fx; CPU per 1,000 checks/s: %.0f%%"):format(
      s / math.max(b, 0.01), tonumber(rate) / tonumber(cpu) * 1000)) end' "$res"
  rm -f "$out" "$res"
  ip netns del "$NS"
done
