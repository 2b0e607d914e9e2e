# SPDX-License-Identifier: MIT
# The scale-out lab (docs/scale-out.md), shared by tests/scale_out/test_*.sh:
#
#   $P-cl  client 10.41.0.1 --- 10.41.0.2 $P-rt (router: ECMP, BIRD, BFD)
#                                10.42.0.1 |
#   one L2 segment (bridge in $P-br): nodes $P-n1..n4 10.42.0.21..24 (luabpf
#   lb.lua in DSR + BIRD announcing the VIP 10.43.0.1/32 by BGP with BFD),
#   backends $P-b1..b3 10.42.0.11..13 (so_server.py on :7000, the VIP on lo,
#   answering the client directly through the router).
#
# so_up NODES [ROUTER]: ROUTER "bird" (default) runs BIRD with merge paths;
# "none" leaves the VIP's route to the test (a resilient nexthop group).
source "$LUABPF_SOURCE_DIR/tests/lib.sh"
source "$LUABPF_SOURCE_DIR/tests/scale_out/so_lan.sh" # so_ns, so_bridge, so_lan
P="so$T_ID"
SO_DIR=$(mktemp -d)
chmod 755 "$SO_DIR"
SO_PY=/usr/bin/python3
SO_HERE="$LUABPF_SOURCE_DIR/tests/scale_out"
VIP=10.43.0.1
VPORT=7000
declare -A SO_LB_PID SO_BIRD

so_cleanup() {
  set +e # a cleanup step that fails must not skip the ones after it
  local n p
  for n in "${!SO_LB_PID[@]}"; do
    p=${SO_LB_PID[$n]}
    [ -n "$p" ] && kill -INT "$p" 2>/dev/null && wait "$p" 2>/dev/null
  done
  for n in "${!SO_BIRD[@]}"; do
    [ -f "$SO_DIR/$n.pid" ] && kill "$(cat "$SO_DIR/$n.pid")" 2>/dev/null
  done
  t_cleanup
  for n in "${SO_NS[@]:-}"; do [ -n "$n" ] && ip netns del "$n" 2>/dev/null; done
  for n in 1 2 3 4; do
    rm -rf "/sys/fs/bpf/luabpf/lb/${P}n$n" "${LUABPF_RUN_DIR:-/run/luabpf}/${P}n$n.drained"
  done
  rmdir /sys/fs/bpf/luabpf/lb /sys/fs/bpf/luabpf 2>/dev/null
  [ "${SO_KEEP:-0}" = 1 ] && echo "kept $SO_DIR" || rm -rf "$SO_DIR"
}
trap so_cleanup EXIT

so_bird_router() {
  local i
  {
    echo "router id 10.42.0.1;"
    echo "protocol device { scan time 1; }"
    echo "protocol kernel { ipv4 { import none; export all; }; merge paths on; }"
    echo "protocol bfd { interface \"eth0\" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }; }"
    echo "template bgp node { local 10.42.0.1 as 65000; hold time 3; keepalive time 1; connect retry time 1;"
    echo "  error wait time 1, 5; bfd on; ipv4 { import all; export none; }; }"
    for i in 1 2 3 4; do echo "protocol bgp n$i from node { neighbor 10.42.0.2$i as 65001; }"; done
  } >"$SO_DIR/rt.conf"
  ip netns exec "$P-rt" bird -c "$SO_DIR/rt.conf" -s "$SO_DIR/rt.ctl" -P "$SO_DIR/rt.pid"
  SO_BIRD[rt]=1
}

# so_bird_node I: node I's BIRD; its static protocol vip_web starts disabled:
# luabpf enables it once it can serve (lua/luabpf/lb/_bgp.lua).
so_bird_node() {
  cat >"$SO_DIR/n$1.conf" <<EOC
router id 10.42.0.2$1;
protocol device { scan time 1; }
protocol static vip_web { disabled; ipv4; route $VIP/32 blackhole; }
protocol bfd { interface "eth0" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }; }
protocol bgp uplink { local 10.42.0.2$1 as 65001; neighbor 10.42.0.1 as 65000; hold time 3; keepalive time 1;
  connect retry time 1; error wait time 1, 5; bfd on;
  ipv4 { import none; export where proto = "vip_web"; next hop self; }; }
EOC
  ip netns exec "$P-n$1" bird -c "$SO_DIR/n$1.conf" -s "$SO_DIR/n$1.ctl" -P "$SO_DIR/n$1.pid"
  SO_BIRD[n$1]=1
}

# so_conf I [WEIGHTS...]: node I's CONFIG (the same for every node but its name).
so_conf() {
  local i=$1 w1=${2:-1} w2=${3:-1} w3=${4:-1}
  cat >"$SO_DIR/n$i.lua" <<EOC
service = "${P}n$i"
interface = "eth0"
vips = { { name = "web", addr = "$VIP", port = $VPORT, proto = "tcp", mode = "dsr", backends = {
  { name = "b1", addr = "10.42.0.11", weight = $w1 },
  { name = "b2", addr = "10.42.0.12", weight = $w2 },
  { name = "b3", addr = "10.42.0.13", weight = $w3 } } } }
bgp = { socket = "$SO_DIR/n$i.ctl", protocol = "vip_web", interval = 1 }
EOC
}

# so_lb I: start node I's luabpf (its config must exist); waits until it runs.
so_lb() {
  local log="$SO_DIR/n$1.out" before=0
  [ -f "$log" ] && before=$(wc -l <"$log")
  "$LUABPF" --netns "$P-n$1" run "$LUABPF_SOURCE_DIR/scripts/examples/lb.lua" "$SO_DIR/n$1.lua" >>"$log" 2>&1 &
  SO_LB_PID[n$1]=$!
  t_wait 15 sh -c "tail -n +$((before + 1)) '$log' | grep -q \"service '${P}n$1' on\"" ||
    { cat "$log" >&2; t_fail "node $1's luabpf did not start"; t_done; }
}

so_lb_stop() { # I: SIGINT (the program stays pinned and attached)
  local p=${SO_LB_PID[n$1]}
  kill -INT "$p"; wait "$p" || true
  SO_LB_PID[n$1]=
}

# so_node_bird I: node I without its luabpf: namespace, link, BIRD.
so_node_bird() {
  so_ns "n$1"
  so_lan "n$1" "10.42.0.2$1"
  # The data plane's FIB lookup (the backend's MAC) needs forwarding on.
  ip netns exec "$P-n$1" sysctl -qw net.ipv4.conf.all.forwarding=1
  # Native XDP_TX out of a veth needs a program on the receiving peer.
  ip -n "$P-br" link set dev "n$1" xdp obj "$LUABPF_BUILD_DIR/bpf/xdp_pass.bpf.o" sec xdp
  so_bird_node "$1"
}

# so_node I: a node: namespace, link, BIRD, luabpf.
so_node() {
  so_node_bird "$1"
  [ -f "$SO_DIR/n$1.lua" ] || so_conf "$1"
  so_lb "$1"
}

so_up() {
  local nodes=$1 router=${2:-bird} i
  for n in br cl rt; do so_ns "$n"; done
  so_bridge
  ip -n "$P-cl" link add eth0 type veth peer name ecl netns "$P-rt"
  ip -n "$P-cl" addr add 10.41.0.1/24 dev eth0
  ip -n "$P-rt" addr add 10.41.0.2/24 dev ecl
  ip -n "$P-cl" link set eth0 up
  ip -n "$P-rt" link set ecl up
  ip -n "$P-cl" route add default via 10.41.0.2
  ip netns exec "$P-cl" ethtool -K eth0 tx off >/dev/null
  ip netns exec "$P-rt" ethtool -K ecl tx off >/dev/null
  # The client's sockets keep their hash (the router hashes on it here, docs/scale-out.md).
  ip netns exec "$P-cl" sysctl -qw net.core.txrehash=0
  so_lan rt 10.42.0.1
  ip netns exec "$P-rt" sysctl -qw net.ipv4.conf.all.forwarding=1 net.ipv4.fib_multipath_hash_policy=1 \
    net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
  for i in 1 2 3; do
    so_ns "b$i"
    so_lan "b$i" "10.42.0.1$i"
    ip -n "$P-b$i" addr add "$VIP/32" dev lo
    ip netns exec "$P-b$i" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
      net.core.somaxconn=1024
    ip -n "$P-b$i" route add default via 10.42.0.1
    ip netns exec "$P-b$i" "$SO_PY" "$SO_HERE/so_server.py" "b$i" "$VPORT" >/dev/null 2>&1 &
    T_PIDS+=($!)
  done
  [ "$router" = bird ] && so_bird_router
  for i in $(seq "$nodes"); do so_node "$i"; done
  for i in 1 2 3; do
    t_wait 10 sh -c "ip netns exec '$P-b$i' ss -Hltn 'sport = :$VPORT' | grep -q LISTEN" ||
      { t_fail "backend b$i did not start"; t_done; }
  done
}

# so_paths: how many next hops the router's route to the VIP has (0: none).
so_paths() {
  local r
  r=$(ip -n "$P-rt" route show "$VIP/32" 2>/dev/null)
  if [ -z "$r" ]; then echo 0; elif grep -q nexthop <<<"$r"; then grep -c "nexthop via" <<<"$r"
  elif grep -q "nhid" <<<"$r"; then echo nhid; else echo 1; fi
}

# so_wait_paths N SECONDS: until the router's route has N next hops; prints the ms it took.
so_wait_paths() {
  local t0 t1
  t0=$(date +%s%N)
  t_wait "$2" sh -c "[ \"\$(ip -n '$P-rt' route show '$VIP/32' | grep -c 'via')\" = '$1' ]" || return 1
  t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000000 ))
}

# so_start_conns N: the client's long-lived connections; waits until all answered.
so_start_conns() {
  SO_STATUS="$SO_DIR/conns.json"
  ip netns exec "$P-cl" "$SO_PY" "$SO_HERE/so_conns.py" "$VIP" "$VPORT" "$1" "$SO_STATUS" >"$SO_DIR/conns.out" 2>&1 &
  T_PIDS+=($!)
  t_wait 30 sh -c "[ -f '$SO_STATUS' ] && $SO_PY -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(d[\"answered\"] != $1)' '$SO_STATUS'" ||
    { t_fail "not all $1 connections answered: $(so_q 'd["answered"], d["broken"]')"; t_done; }
}

# so_q EXPR: a Python expression over the client's status d.
so_q() { "$SO_PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print($1)" "$SO_STATUS"; }

# so_settle SECONDS: until every open connection has had an answer in the last 0.5 s.
so_settle() {
  t_wait "$1" sh -c "$SO_PY -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(d[\"max_age_ms\"] > 500)' '$SO_STATUS'"
}

# so_sports I: the client source ports in node I's flow table.
so_sports() {
  echo 'local t = {} for _, f in ipairs(lb_service:flows()) do t[#t + 1] = f.sport end local _ = io.write(table.concat(t, " "), "\n")' |
    "$LUABPF" attach "${P}n$1" 2>&1
}

# so_broken WHAT: assert no connection broke (and all still answer).
so_broken() {
  local b
  b=$(so_q 'd["broken"]')
  if [ "$b" = 0 ]; then t_pass "$1: 0 of $(so_q 'd["n"]') connections broken"
  else t_fail "$1: $b connections broken: $(so_q '[c["state"] for c in d["conns"] if c["state"] != "ok"][:5]')"; fi
}

# so_mark: remember each node's flows (client ports) and each connection's answers.
so_mark() {
  local i
  for i in 1 2 3 4; do
    if [ -n "${SO_LB_PID[n$i]:-}" ]; then
      so_sports "$i" >"$SO_DIR/mark.n$i" || t_fail "node $i's flow table: $(cat "$SO_DIR/mark.n$i")"
    else : >"$SO_DIR/mark.n$i"; fi
  done
  cp "$SO_STATUS" "$SO_DIR/mark.json"
}

# so_progress N SECONDS: until every open connection has had N more answers since so_mark.
so_progress() {
  t_wait "$2" "$SO_PY" -c '
import json, sys
a = {c["i"]: c["got"] for c in json.load(open(sys.argv[1]))["conns"]}
d = json.load(open(sys.argv[2]))
sys.exit(any(c["state"] == "ok" and c["got"] < a[c["i"]] + int(sys.argv[3]) for c in d["conns"]))
' "$SO_DIR/mark.json" "$SO_STATUS" "$1"
}

# so_moved: connections now in a node's flow table that were not in it at so_mark
# (each one went through another node after the step).
so_moved() {
  local i n=0 now
  for i in 1 2 3 4; do
    [ -n "${SO_LB_PID[n$i]:-}" ] || continue
    now=$(so_sports "$i")
    n=$((n + $(comm -13 <(tr ' ' '\n' <"$SO_DIR/mark.n$i" | sort -u) <(tr ' ' '\n' <<<"$now" | sort -u) | grep -c . || true)))
  done
  echo "$n"
}

# so_moved_some STEP N SECONDS [WHERE]: after STEP, every open connection has
# N more answers within SECONDS, and some went through another node (WHERE
# ends the message, e.g. " to the new node"); their count in SO_MOVED.
so_moved_some() {
  so_progress "$2" "$3" || t_fail "$1: connections stopped answering"
  SO_MOVED=$(so_moved)
  [ "$SO_MOVED" -gt 0 ] && t_pass "$1: $SO_MOVED connections moved${4:-}" || t_fail "$1: no connection moved"
}

# so_bird_state PROTOCOL: its state in node 1's BIRD (up, down).
so_bird_state() { birdc -s "$SO_DIR/n1.ctl" show protocols "$1" | awk -v p="$1" '$1 == p { print $4 }'; }

# so_until_state PROTOCOL STATE SECONDS: until node 1's BIRD has PROTOCOL in STATE.
so_until_state() {
  t_wait "$3" sh -c '[ "$(birdc -s "$1" show protocols "$2" | awk -v p="$2" "\$1 == p { print \$4 }")" = "$3" ]' \
    sh "$SO_DIR/n1.ctl" "$1" "$2"
}

# so_blackhole I on|off: node I's link drops everything both ways (a frozen
# node; its carrier stays up, so only BFD or the BGP hold time can tell).
so_blackhole() {
  if [ "$2" = on ]; then
    ip netns exec "$P-br" nft -f - <<EON
table bridge so_bh$1 {
  chain hole { type filter hook forward priority 0; iifname "n$1" drop; oifname "n$1" drop; }
}
EON
  else
    ip netns exec "$P-br" nft delete table bridge "so_bh$1"
  fi
}

# so_group I...: the router's route to the VIP is a resilient nexthop group
# of nodes I... (what a routing daemon would keep it at): a node leaving
# moves only its own buckets; one joining takes buckets after 1 s unbalanced.
so_group() {
  local i ids=()
  for i in "$@"; do
    ip -n "$P-rt" nexthop replace id "$i" via "10.42.0.2$i" dev eth0
    ids+=("$i")
  done
  local g
  g=$(IFS=/; echo "${ids[*]}")
  ip -n "$P-rt" nexthop replace id 100 group "$g" type resilient buckets 128 idle_timer 1 unbalanced_timer 1
  ip -n "$P-rt" route replace "$VIP/32" nhid 100
}

# so_group_of I: how many of the group's buckets node I has.
so_buckets() {
  ip -n "$P-rt" nexthop bucket show id 100 | grep -c "nhid $1\b" || true
}
