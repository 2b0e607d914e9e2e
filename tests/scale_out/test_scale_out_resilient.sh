# SPDX-License-Identifier: MIT
# Scale-out behind a router with a resilient nexthop group (docs/scale-out.md):
# the steps of test_scale_out_bird.sh, with the router's group changed as a
# routing daemon would. A node leaving moves only its own flows (a plain
# multipath route moves about half of everyone's); DSR with one table on
# every node: 0 connections broken in each step.
source "$LUABPF_SOURCE_DIR/tests/scale_out/so_env.sh"
N=${SO_CONNS:-300}

so_up 3 none
so_group 1 2 3
so_start_conns "$N"
t_pass "$N connections through the VIP answered (resilient group of 3 nodes)"

# Step 1: node 1 drained: out of the group. Only its flows move.
so_mark
had=$(wc -w <"$SO_DIR/mark.n1")
"$LUABPF" lb drain-node "${P}n1" >/dev/null
so_group 2 3
so_progress 10 20 || t_fail "drain: connections stopped answering"
moved=$(so_moved)
[ "$moved" -gt 0 ] && [ "$moved" -le "$had" ] && t_pass "drain: $moved connections moved, none but node 1's ($had)" ||
  t_fail "drain: $moved connections moved, node 1 had $had"
so_broken "drain a node"
"$LUABPF" lb enable-node "${P}n1" >/dev/null
so_group 1 2 3
t_wait 20 sh -c '[ "$(ip -n "$1" nexthop bucket show id 100 | grep -c "nhid 1 ")" -gt 30 ]' sh "$P-rt" ||
  t_fail "enable: node 1 got no buckets back"
so_progress 5 20 || t_fail "enable: connections stopped answering"
so_broken "enable the node again"

# Step 2: node 2 fails: black-holed, then out of the group.
so_mark
had=$(wc -w <"$SO_DIR/mark.n2")
so_blackhole 2 on
so_group 1 3
so_moved_some fail 10 30 " to other nodes"
so_broken "fail a node"
so_blackhole 2 off
so_group 1 2 3

# Step 3: node 4 added.
so_mark
so_node 4
so_group 1 2 3 4
t_wait 20 sh -c '[ "$(ip -n "$1" nexthop bucket show id 100 | grep -c "nhid 4 ")" -gt 20 ]' sh "$P-rt" ||
  t_fail "add: node 4 got no buckets"
so_moved_some add 10 20
so_broken "add a node"

# Step 4: node 1's luabpf restarts (its pinned program serves meanwhile).
so_mark
so_lb_stop 1
so_lb 1
so_progress 10 20 || t_fail "restart: connections stopped answering"
so_broken "restart a node's luabpf"
t_done
