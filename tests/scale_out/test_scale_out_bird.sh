# SPDX-License-Identifier: MIT
# Scale-out behind an ECMP router fed by BIRD (docs/scale-out.md): 3 nodes in
# DSR announce the VIP by BGP + BFD; long-lived connections (300, each sending
# every 100 ms) go on through each step with 0 broken, because every node
# builds the same Maglev table: a node drained by the operator (luabpf lb
# drain-node), a node failing (its link black-holed: BFD), a node added, a
# node's luabpf restarted (the pinned program serves and stays announced).
# Each step checks that flows really moved to other nodes, so a node with
# another table (or per-node NAT) would break them.
source "$LUABPF_SOURCE_DIR/tests/scale_out/so_env.sh"
N=${SO_CONNS:-300}

so_up 3
so_wait_paths 3 20 >/dev/null || { t_fail "the router never had 3 paths: $(ip -n "$P-rt" route show "$VIP/32")"; t_done; }
t_pass "router: one route to $VIP with 3 next hops (BIRD, merge paths)"
# Different histories, one pool: node 2 gets b1 removed and added back (a new
# id), node 3 reloads (SIGHUP) a config that lists the backends in another order.
"$LUABPF" lb remove "${P}n2" web b1 >/dev/null
"$LUABPF" lb add "${P}n2" web b1 10.42.0.11 >/dev/null
sed -i 's/{ name = "b1", addr = "10.42.0.11", weight = 1 },//; s/{ name = "b3", addr = "10.42.0.13", weight = 1 } } } }/{ name = "b3", addr = "10.42.0.13", weight = 1 }, { name = "b1", addr = "10.42.0.11", weight = 1 } } } }/' "$SO_DIR/n3.lua"
grep -q '"b3", addr = "10.42.0.13", weight = 1 }, { name = "b1"' "$SO_DIR/n3.lua" || t_fail "the reordered config"
kill -HUP "${SO_LB_PID[n3]}"
t_wait 10 grep -q "reloaded $SO_DIR/n3.lua" "$SO_DIR/n3.out" || t_fail "node 3 did not reload"
so_start_conns "$N"
t_pass "$N connections through the VIP answered"

# Step 1: the operator drains node 1.
so_mark
t0=$(date +%s%N)
out=$("$LUABPF" lb drain-node "${P}n1")
t_contains "$out" "node drained" "lb drain-node"
so_wait_paths 2 10 >/dev/null || t_fail "drain: the router still has $(so_paths) paths"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "withdraw after drain-node: $ms ms"
show=$("$LUABPF" lb show "${P}n1")
t_contains "$show" "WITHDRAWN: the node is drained" "lb show: withdrawn, why"
so_moved_some drain 10 20 " to other nodes"
so_broken "drain a node"
"$LUABPF" lb enable-node "${P}n1" >/dev/null
so_wait_paths 3 10 >/dev/null || t_fail "enable-node: the router has $(so_paths) paths"
so_progress 5 20 || t_fail "enable-node: connections stopped answering"
so_broken "enable the node again"

# Step 2: node 2 fails (its link black-holed): BFD takes it out.
so_mark
t0=$(date +%s%N)
so_blackhole 2 on
so_wait_paths 2 10 >/dev/null || t_fail "fail: the router still has $(so_paths) paths"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "withdraw after black-holing a node: $ms ms"
so_moved_some fail 10 30 " to other nodes"
so_broken "fail a node"
so_blackhole 2 off
so_wait_paths 3 20 >/dev/null || t_fail "recovery: the router has $(so_paths) paths"
so_progress 5 20 || t_fail "recovery: connections stopped answering"
so_broken "the failed node comes back"

# Step 3: a node is added.
so_mark
so_node 4
so_wait_paths 4 20 >/dev/null || t_fail "add: the router has $(so_paths) paths"
so_moved_some add 10 20 " to the new node"
so_broken "add a node"

# Step 4: node 1's luabpf restarts; its pinned program serves meanwhile and stays announced.
so_mark
so_lb_stop 1
[ "$(so_paths)" = 4 ] && t_pass "restart: still announced while stopped (the program is pinned)" ||
  t_fail "restart: the router has $(so_paths) paths while node 1's luabpf is stopped"
so_lb 1
grep -q "took over the pinned XDP link" "$SO_DIR/n1.out" && t_pass "restart: took over the pinned link" ||
  t_fail "restart: no take-over in the log"
so_progress 10 20 || t_fail "restart: connections stopped answering"
[ "$(so_paths)" = 4 ] || t_fail "restart: the router has $(so_paths) paths"
so_broken "restart a node's luabpf"

# Four nodes with four histories (added and removed, reloaded, restarted, added
# last): one digest, and the same full table read back from each node's maps.
digest() { "$LUABPF" lb show "${P}n$1" --json | "$SO_PY" -c 'import json,sys; print(json.load(sys.stdin)["vips"][0]["table"]["digest"])'; }
for i in 1 2 3 4; do
  echo 'local _ = io.write(table.concat(lb_service:table("web"), "\n"), "\n")' | "$LUABPF" attach "${P}n$i" >"$SO_DIR/table.n$i" 2>&1
done
[ "$(grep -c ':7000$' "$SO_DIR/table.n1")" = 65537 ] && t_pass "node 1's table: 65,537 slots" || t_fail "node 1's table: $(head -3 "$SO_DIR/table.n1")"
for i in 2 3 4; do
  t_eq "$(digest "$i")" "$(digest 1)" "node $i's table digest (node 1's)"
  cmp -s "$SO_DIR/table.n1" "$SO_DIR/table.n$i" && t_pass "node $i's full table is node 1's" ||
    t_fail "node $i's full table differs from node 1's in $(diff "$SO_DIR/table.n1" "$SO_DIR/table.n$i" | grep -c '^<') slots"
done
t_done
