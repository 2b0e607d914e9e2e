# SPDX-License-Identifier: MIT
# Conntrack mode across nodes (docs/scale-out.md, "Conntrack mode across
# nodes"): two balancer nodes in NAT mode behind a router's multipath route,
# each with its own SNAT address, conntrackd (FTFW) between them. Long-lived
# connections run through both; then node 1 is drained at the router (its
# next hop removed), so its flows arrive at node 2.
#   ct_sync (kernel-made entries, synced by conntrackd): none breaks.
#   bpf_ct_alloc entries (ct_sync off): conntrackd never sees them, and every
#     flow that moved breaks, the others don't.
#   the LRU flow table (XDP, state in one node's maps): the same.
# Which node carried a connection: the backend answers with the source
# address it saw, the node's SNAT address.
#
#   cts-cl client 10.1.0.2 --- 10.1.0.1 cts-rt router (VIP 10.9.0.1 via n1, n2)
#                               10.2.0.1 |
#   one L2 segment (bridge in cts-br): n1 10.2.0.11, n2 10.2.0.12 (luabpf,
#   conntrackd), b1 10.2.0.21, b2 10.2.0.22 (ct_echo.py serve on :8080)
source "$LUABPF_SOURCE_DIR/tests/lib.sh"
P="cts$T_ID"
HERE="$LUABPF_SOURCE_DIR/tests/scale_out"
DIR=$(mktemp -d)
K=${CT_SYNC_CONNS:-60}
NS=()
declare -A NODE_PID CTD_PID

ct_cleanup() {
  set +e # a cleanup step that fails must not skip the ones after it
  stop_nodes
  t_cleanup
  for n in "${NS[@]:-}"; do [ -n "$n" ] && ip netns del "$n" 2>/dev/null; done
  rm -rf "/sys/fs/bpf/luabpf/lb/${P}n1" "/sys/fs/bpf/luabpf/lb/${P}n2"
  rmdir /sys/fs/bpf/luabpf/lb /sys/fs/bpf/luabpf 2>/dev/null
  [ "${CT_SYNC_KEEP:-0}" = 1 ] && echo "kept $DIR" || rm -rf "$DIR"
}
trap ct_cleanup EXIT

command -v conntrackd >/dev/null || { t_fail "conntrackd is not installed (scripts/setup.sh)"; t_done; }

mkns() { ip netns add "$P-$1"; NS+=("$P-$1"); ip -n "$P-$1" link set lo up; }
# lan ROLE ADDR: eth0 in $P-ROLE on the bridge; checksums filled in (XDP sees bytes).
lan() {
  ip -n "$P-$1" link add name eth0 type veth peer name "$1" netns "$P-br"
  ip -n "$P-br" link set "$1" master br0 up
  ip -n "$P-$1" addr add "$2/24" dev eth0
  ip -n "$P-$1" link set eth0 up
  ip netns exec "$P-$1" ethtool -K eth0 tx off >/dev/null
}

for r in br cl rt n1 n2 b1 b2; do mkns "$r"; done
ip -n "$P-br" link add br0 type bridge
ip -n "$P-br" link set br0 up
ip netns exec "$P-br" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
ip -n "$P-cl" link add eth0 type veth peer name c0 netns "$P-rt"
ip -n "$P-cl" addr add 10.1.0.2/24 dev eth0
ip -n "$P-cl" link set eth0 up
ip -n "$P-cl" route add default via 10.1.0.1
# The router hashes a forwarded packet on the client socket's hash: keep it (lab only).
ip netns exec "$P-cl" sysctl -qw net.core.txrehash=0
ip -n "$P-rt" addr add 10.1.0.1/24 dev c0
ip -n "$P-rt" link set c0 up
lan rt 10.2.0.1
ip netns exec "$P-rt" sysctl -qw net.ipv4.conf.all.forwarding=1 net.ipv4.fib_multipath_hash_policy=1
for i in 1 2; do
  lan "n$i" "10.2.0.1$i"
  ip -n "$P-n$i" route add default via 10.2.0.1
  ip netns exec "$P-n$i" sysctl -qw net.ipv4.conf.all.forwarding=1
  # XDP_TX toward a veth needs an XDP program on its peer (the LRU phase).
  ip -n "$P-br" link set dev "n$i" xdp obj "$LUABPF_BUILD_DIR/bpf/xdp_pass.bpf.o" sec xdp
  lan "b$i" "10.2.0.2$i"
  ip -n "$P-b$i" route add default via 10.2.0.1
  ip netns exec "$P-b$i" "$PY" "$HERE/ct_echo.py" serve "b$i" 8080 >/dev/null 2>&1 &
  T_PIDS+=($!)
done
for i in 1 2; do
  t_wait 10 sh -c "ip netns exec $P-b$i ss -Hltn 'sport = :8080' | grep -q LISTEN" ||
    { t_fail "b$i's server did not start"; t_done; }
done

route_both() { ip -n "$P-rt" route replace 10.9.0.1/32 nexthop via 10.2.0.11 nexthop via 10.2.0.12; }
route_n2() { ip -n "$P-rt" route replace 10.9.0.1/32 via 10.2.0.12; }

# conntrackd on node I, FTFW over UDP to the other node; entries it
# receives go straight into the kernel (active-active: no commit step).
ctd_conf() {
  local i=$1 me="10.2.0.1$1" peer="10.2.0.1$((3 - $1))"
  cat <<EOF
General {
  HashSize 8192
  HashLimit 65536
  LogFile $DIR/ctd-n$i.log
  Syslog off
  LockFile $DIR/ctd-n$i.lock
  UNIX { Path $DIR/ctd-n$i.ctl }
  NetlinkBufferSize 2097152
  NetlinkBufferSizeMaxGrowth 8388608
  Filter From Userspace {
    Protocol Accept { TCP UDP }
    Address Ignore { IPv4_address 127.0.0.1 IPv4_address $me IPv4_address $peer }
  }
}
Sync {
  Mode FTFW { DisableExternalCache On }
  UDP {
    IPv4_address $me
    IPv4_Destination_Address $peer
    Port 3780
    Interface eth0
    Checksum on
  }
}
EOF
}

stop_nodes() {
  local n
  for n in "${!NODE_PID[@]}"; do
    kill -INT "${NODE_PID[$n]}" 2>/dev/null && wait "${NODE_PID[$n]}" 2>/dev/null
  done
  for n in "${!CTD_PID[@]}"; do
    kill "${CTD_PID[$n]}" 2>/dev/null && wait "${CTD_PID[$n]}" 2>/dev/null
  done
  NODE_PID=() CTD_PID=()
}

# ours_on NODE SNAT: how many of the service's entries on NODE go out with SNAT
# (the node that made them: its own address; the other's: synced to it).
ours_on() {
  ip netns exec "$P-$1" conntrack -L -p tcp -m $((0x4c420000))/$((0xffff0000)) --orig-dst 10.9.0.1 \
    --reply-dst "$2" 2>/dev/null | grep -c "dport=80 " || true
}

# phase MODE: run the scenario with the nodes in MODE (sync, alloc, lru);
# leaves the client's JSON in $OUT, node 1's count in $ON1, the sync time in $SYNC_MS.
phase() {
  local mode=$1 i line t0
  route_both
  for i in 1 2; do
    ip netns exec "$P-n$i" conntrack -F >/dev/null 2>&1 || true
    "$LUABPF" --netns "$P-n$i" run "$HERE/ct_node.lua" "${P}n$i" "$mode" "10.2.0.1$i" \
      >"$DIR/n$i-$mode.log" 2>&1 &
    NODE_PID[n$i]=$!
  done
  for i in 1 2; do
    t_wait 20 grep -qx ready "$DIR/n$i-$mode.log" ||
      { cat "$DIR/n$i-$mode.log" >&2; t_fail "$mode: node $i did not start"; return 1; }
  done
  if [ "$mode" != lru ]; then
    ip netns exec "$P-n1" sysctl -qw net.netfilter.nf_conntrack_tcp_be_liberal=1
    ip netns exec "$P-n2" sysctl -qw net.netfilter.nf_conntrack_tcp_be_liberal=1
    for i in 1 2; do
      rm -f "$DIR/ctd-n$i.lock" "$DIR/ctd-n$i.ctl"
      ctd_conf "$i" >"$DIR/ctd-n$i.conf"
      ip netns exec "$P-n$i" conntrackd -C "$DIR/ctd-n$i.conf" >"$DIR/ctd-n$i.out" 2>&1 &
      CTD_PID[n$i]=$!
    done
    for i in 1 2; do
      t_wait 10 test -S "$DIR/ctd-n$i.ctl" ||
        { cat "$DIR/ctd-n$i.out" "$DIR/ctd-n$i.log" >&2; t_fail "$mode: conntrackd on node $i did not start"; return 1; }
    done
  fi
  rm -f "$DIR/mark" "$DIR/mark.up"
  ip netns exec "$P-cl" "$PY" "$HERE/ct_echo.py" hold 10.9.0.1 80 "$K" "$DIR/mark" 15 >"$DIR/out-$mode.json" &
  local cl=$!
  t_wait 20 test -f "$DIR/mark.up" || { t_fail "$mode: the client's $K connections did not come up"; kill "$cl"; return 1; }
  t0=$(date +%s%N)
  ON1=0 SYNC_MS=
  if [ "$mode" != lru ]; then
    ON1=$(ours_on n1 10.2.0.11)
    if [ "$mode" = sync ]; then
      # Node 1's entries reach node 2 (and node 2's node 1) by events, not by a resync.
      if t_wait 10 sh -c "[ \$(ip netns exec $P-n2 conntrack -L -p tcp -m $((0x4c420000))/$((0xffff0000)) --orig-dst 10.9.0.1 --reply-dst 10.2.0.11 2>/dev/null | grep -c 'dport=80 ') -ge $ON1 ]"; then
        SYNC_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
      else
        t_fail "sync: node 2 holds $(ours_on n2 10.2.0.11) of node 1's $ON1 entries after 10 s"
      fi
    else
      # A duration, not a wait for an event: what sync mode needed, and then some.
      sleep 1
    fi
  fi
  route_n2
  touch "$DIR/mark"
  wait "$cl" || true
  OUT=$(cat "$DIR/out-$mode.json")
  stop_nodes
}

# summary: conns on each node (first node seen), broken per node, min answers after the drain.
summary() {
  "$PY" - "$1" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
for node in ("10.2.0.11", "10.2.0.12"):
    on = [c for c in d if c["nodes"] and c["nodes"][0] == node]
    broken = [c for c in on if c["errors"]]
    live = [c for c in on if not c["errors"]]
    print("%s conns=%d broken=%d after_min=%d switched=%d errors=%s" % (
        node, len(on), len(broken), min([c["after"] for c in live] or [0]),
        sum(len(c["nodes"]) > 1 for c in on), ",".join(sorted({c.get("error", "") for c in broken})) or "-"))
PY
}
field() { sed -nE "s/.*$1=([0-9]+).*/\1/p" <<<"$2"; }

# 1. ct_sync: nothing breaks.
phase sync || t_done
S=$(summary "$OUT")
echo "ct_sync: node 1 made $ON1 entries; node 2 held them all ${SYNC_MS:-?} ms after the last connection was up"
echo "$S"
n1=$(grep "^10.2.0.11 " <<<"$S"); n2=$(grep "^10.2.0.12 " <<<"$S")
[ "$(field conns "$n1")" -gt 0 ] && [ "$(field conns "$n2")" -gt 0 ] &&
  t_pass "the router spread the connections over both nodes" || t_fail "ct_sync: not spread over both nodes: $S"
t_eq "$(field broken "$n1")" 0 "ct_sync: connections broken among node 1's (moved to node 2)"
t_eq "$(field broken "$n2")" 0 "ct_sync: connections broken among node 2's"
[ "$(field after_min "$n1")" -ge 15 ] && t_pass "ct_sync: every moved connection answered 15 times through node 2" ||
  t_fail "ct_sync: a moved connection stalled: $n1"

# 2. The same with bpf_ct_alloc's entries: no events, nothing synced.
phase alloc || t_done
S=$(summary "$OUT")
echo "bpf_ct_alloc entries:"; echo "$S"
n1=$(grep "^10.2.0.11 " <<<"$S"); n2=$(grep "^10.2.0.12 " <<<"$S")
[ "$(field conns "$n1")" -gt 0 ] || t_fail "alloc: no connection on node 1: nothing moved"
t_eq "$(field broken "$n1")" "$(field conns "$n1")" "alloc: node 1's connections broken (all moved, none synced)"
t_eq "$(field broken "$n2")" 0 "alloc: node 2's connections broken"

# 3. The LRU flow table: the flows that move break, the others don't.
phase lru || t_done
S=$(summary "$OUT")
echo "LRU flow table:"; echo "$S"
n1=$(grep "^10.2.0.11 " <<<"$S"); n2=$(grep "^10.2.0.12 " <<<"$S")
[ "$(field conns "$n1")" -gt 0 ] || t_fail "lru: no connection on node 1: nothing moved"
t_eq "$(field broken "$n1")" "$(field conns "$n1")" "lru: node 1's connections broken (all moved)"
t_eq "$(field broken "$n2")" 0 "lru: node 2's connections broken"
t_done
