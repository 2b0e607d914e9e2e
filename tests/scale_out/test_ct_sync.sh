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
# Then ct_sync with each node's luabpf restarted in turn (pinned: the data
# plane serves meanwhile; the next instance takes it over and rewrites its
# nftables rules and maps): held connections and new ones break none.
# Last, the limit: ct_sync with node 1 failed (its link down, the router's
# route to node 2 only): its moved flows break, their answers go to node 1's
# SNAT address; node 2's don't.
# Which node carried a connection: the backend answers with the source
# address it saw, the node's SNAT address.
# The lab: tests/scale_out/ct_lab.sh.
source "$LUABPF_SOURCE_DIR/tests/scale_out/ct_lab.sh"
K=${CT_SYNC_CONNS:-60}

# ours_on NODE SNAT: how many of the service's entries on NODE go out with SNAT
# (the node that made them: its own address; the other's: synced to it).
ours_on() {
  ip netns exec "$P-$1" conntrack -L -p tcp -m $((0x4c420000))/$((0xffff0000)) --orig-dst 10.9.0.1 \
    --reply-dst "$2" 2>/dev/null | grep -c "dport=80 " || true
}

# phase MODE: run the scenario with the nodes in MODE (sync, alloc, lru);
# leaves the client's JSON in $OUT, node 1's count in $ON1, the sync time in $SYNC_MS.
phase() {
  local mode=$1 t0
  route_both
  start_nodes "$mode" || return 1
  if [ "$mode" != lru ]; then
    ip netns exec "$P-n1" sysctl -qw net.netfilter.nf_conntrack_tcp_be_liberal=1
    ip netns exec "$P-n2" sysctl -qw net.netfilter.nf_conntrack_tcp_be_liberal=1
    start_ctd || return 1
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

# moved_break MODE TITLE WHY: the phase in MODE (its summary under TITLE):
# every connection on node 1 (all moved to node 2) broke (WHY), none on
# node 2 did.
moved_break() {
  phase "$1" || t_done
  S=$(summary "$OUT")
  echo "$2:"; echo "$S"
  n1=$(grep "^10.2.0.11 " <<<"$S"); n2=$(grep "^10.2.0.12 " <<<"$S")
  [ "$(field conns "$n1")" -gt 0 ] || t_fail "$1: no connection on node 1: nothing moved"
  t_eq "$(field broken "$n1")" "$(field conns "$n1")" "$1: node 1's connections broken ($3)"
  t_eq "$(field broken "$n2")" 0 "$1: node 2's connections broken"
}

# 2. The same with bpf_ct_alloc's entries: no events, nothing synced.
moved_break alloc "bpf_ct_alloc entries" "all moved, none synced"

# 3. The LRU flow table: the flows that move break, the others don't.
moved_break lru "LRU flow table" "all moved"

# 4. ct_sync, each node's luabpf restarted in turn while connections run.
route_both
start_nodes sync 8080 pin || t_done
start_ctd || t_done
rm -f "$DIR/mark" "$DIR/mark.up"
ip netns exec "$P-cl" "$PY" "$HERE/ct_echo.py" hold 10.9.0.1 80 30 "$DIR/mark" 15 >"$DIR/out-restart.json" &
cl=$!
t_wait 20 test -f "$DIR/mark.up" || { t_fail "restart: the client's connections did not come up"; t_done; }
for i in 1 2; do
  stop_node "$i"
  start_node "$i" sync 8080 pin || t_done
  rules=$(ip netns exec "$P-n$i" nft list chain inet "luabpf_lb_${P}n$i" prerouting | grep -c "dnat\|counter" || true)
  t_eq "$rules" 3 "node $i after its restart: prerouting rules (IPv4 and IPv6 NAT, the counter; not doubled)"
done
# New connections after the restarts: NATed by the maps the new instances wrote.
touch "$DIR/mark2"
new=$(ip netns exec "$P-cl" "$PY" "$HERE/ct_echo.py" hold 10.9.0.1 80 20 "$DIR/mark2" 15)
touch "$DIR/mark"
wait "$cl" || true
S=$(summary "$(cat "$DIR/out-restart.json")")
echo "held across the restarts:"; echo "$S"
t_eq "$(grep -o "broken=[0-9]*" <<<"$S" | cut -d= -f2 | awk "{ s += \$1 } END { print s + 0 }")" 0 "restart: held connections broken"
S=$(summary "$new")
echo "opened after the restarts:"; echo "$S"
t_eq "$(grep -o "broken=[0-9]*" <<<"$S" | cut -d= -f2 | awk "{ s += \$1 } END { print s + 0 }")" 0 "restart: new connections broken"
t_eq "$(grep -o "conns=[0-9]*" <<<"$S" | cut -d= -f2 | awk "{ s += \$1 } END { print s + 0 }")" 20 "restart: new connections answered"
stop_nodes

# 5. ct_sync, node 1 fails: the synced entry NATs to node 1's address, where
# the backends' answers go and nobody takes them.
route_both
start_nodes sync || t_done
start_ctd || t_done
rm -f "$DIR/mark" "$DIR/mark.up"
ip netns exec "$P-cl" "$PY" "$HERE/ct_echo.py" hold 10.9.0.1 80 30 "$DIR/mark" 10 >"$DIR/out-fail.json" &
cl=$!
t_wait 20 test -f "$DIR/mark.up" || { t_fail "fail: the client's connections did not come up"; t_done; }
on1=$(ours_on n1 10.2.0.11)
t_wait 10 sh -c "[ \$(ip netns exec $P-n2 conntrack -L -p tcp -m $((0x4c420000))/$((0xffff0000)) --orig-dst 10.9.0.1 --reply-dst 10.2.0.11 2>/dev/null | grep -c 'dport=80 ') -ge $on1 ]" ||
  t_fail "fail: node 1's entries did not reach node 2"
ip -n "$P-n1" link set eth0 down
route_n2
touch "$DIR/mark"
wait "$cl" || true
S=$(summary "$(cat "$DIR/out-fail.json")")
echo "node 1 failed:"; echo "$S"
n1=$(grep "^10.2.0.11 " <<<"$S"); n2=$(grep "^10.2.0.12 " <<<"$S")
t_eq "$(field broken "$n1")" "$(field conns "$n1")" "fail: node 1's connections broken (answers to its SNAT address are lost)"
t_eq "$(field broken "$n2")" 0 "fail: node 2's connections broken"
stop_nodes
t_done
