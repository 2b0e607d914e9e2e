#!/bin/bash
# SPDX-License-Identifier: MIT
# How fast a node's VIP leaves the router (docs/scale-out.md), in the lab of
# tests/scale_out/so_env.sh (BIRD router, 2 nodes announcing by BGP + BFD):
# the time from the event to the router's route losing node 1's next hop
# (polled every ~5 ms), for
#   birdc     `birdc disable vip_web` on node 1 by hand: the baseline;
#   drain     `luabpf lb drain-node`: luabpf's control socket, then its loop
#             sends `disable` over BIRD's socket;
#   failure   node 1's link black-holed: BFD (100 ms x 3) on the router.
# RUNS of each, interleaved; medians, min-max, and drain's median over birdc's.
# usage: bench/scale_out_withdraw.sh BUILD_DIR [RUNS]
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${2:-7}
command -v bird >/dev/null || { echo "scale_out_withdraw: bird is missing (scripts/setup.sh installs bird2)" >&2; exit 2; }
export LUABPF=$BUILD/luabpf LUABPF_SOURCE_DIR=$SRC LUABPF_BUILD_DIR=$BUILD
source "$SRC/tests/scale_out/so_env.sh"
set +e

# Node 1 re-sends its state only every 60 s here: the birdc case's manual
# disable is not undone while it is timed.
so_conf 1
sed -i 's/interval = 1 }/interval = 60 }/' "$SO_DIR/n1.lua"
so_up 2 >/dev/null
so_wait_paths 2 30 >/dev/null || { echo "the router never had 2 paths" >&2; exit 1; }

paths() { ip -n "$P-rt" route show "$VIP/32" | grep -c via; }
# until_paths N: ms until the route has N next hops (10 s at most).
until_paths() {
  local t0=$1 want=$2 now
  while :; do
    [ "$(paths)" = "$want" ] && break
    now=$(date +%s%N)
    [ $(( (now - t0) / 1000000 )) -gt 10000 ] && { echo 10000; return; }
    sleep 0.005
  done
  echo $(( ($(date +%s%N) - t0) / 1000000 ))
}
declare -A MS
for r in $(seq "$RUNS"); do
  t0=$(date +%s%N); birdc -s "$SO_DIR/n1.ctl" disable vip_web >/dev/null
  MS[birdc]+=" $(until_paths "$t0" 1)"
  birdc -s "$SO_DIR/n1.ctl" enable vip_web >/dev/null; until_paths "$(date +%s%N)" 2 >/dev/null

  t0=$(date +%s%N); "$LUABPF" lb drain-node "${P}n1" >/dev/null
  MS[drain]+=" $(until_paths "$t0" 1)"
  "$LUABPF" lb enable-node "${P}n1" >/dev/null; until_paths "$(date +%s%N)" 2 >/dev/null

  t0=$(date +%s%N); so_blackhole 1 on
  MS[failure]+=" $(until_paths "$t0" 1)"
  so_blackhole 1 off
  until_paths "$(date +%s%N)" 2 >/dev/null # the session comes back (error wait time 1-5 s)
done
stat() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ a[NR] = $1 } END { printf "%d %d %d", a[int((NR + 1) / 2)], a[1], a[NR] }'; }
echo "withdraw time, node 1's next hop gone from the router's route ($RUNS runs each, ms)"
printf "%-9s %8s %12s\n" case median min-max
for c in birdc drain failure; do
  read -r med lo hi < <(stat "${MS[$c]}")
  printf "%-9s %8d %12s\n" "$c" "$med" "$lo-$hi"
  eval "MED_$c=$med"
done
awk -v a="$MED_drain" -v b="$MED_birdc" 'BEGIN { printf "drain / birdc (medians): %.2f\n", (b > 0 ? a / b : 0) }'
