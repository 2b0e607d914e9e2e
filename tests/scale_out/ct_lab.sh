# SPDX-License-Identifier: MIT
# The conntrack scale-out lab of tests/scale_out/test_ct_sync.sh and
# bench/ct_sync.sh (docs/scale-out.md, "Conntrack mode across nodes"):
#
#   $P-cl client 10.1.0.2 --- 10.1.0.1 $P-rt router (VIP 10.9.0.1 via n1, n2)
#                              10.2.0.1 |
#   one L2 segment (bridge in $P-br): n1 10.2.0.11, n2 10.2.0.12 (luabpf
#   ct_node.lua, conntrackd), b1 10.2.0.21, b2 10.2.0.22 (ct_echo.py serve
#   on :8080)
#
# Sourcing it builds the lab (removed on exit). Then: route_both / route_n2
# (the router's route to the VIP), start_nodes MODE [PORT], start_ctd,
# stop_nodes.
source "$LUABPF_SOURCE_DIR/tests/lib.sh"
P="cts$T_ID"
HERE="$LUABPF_SOURCE_DIR/tests/scale_out"
source "$HERE/so_lan.sh" # so_ns, so_bridge, so_lan
DIR=$(mktemp -d)
declare -A NODE_PID CTD_PID

ct_cleanup() {
  set +e # a cleanup step that fails must not skip the ones after it
  stop_nodes
  t_cleanup
  for n in "${SO_NS[@]:-}"; do [ -n "$n" ] && ip netns del "$n" 2>/dev/null; done
  rm -rf "/sys/fs/bpf/luabpf/lb/${P}n1" "/sys/fs/bpf/luabpf/lb/${P}n2"
  rmdir /sys/fs/bpf/luabpf/lb /sys/fs/bpf/luabpf 2>/dev/null
  [ "${CT_SYNC_KEEP:-0}" = 1 ] && echo "kept $DIR" || rm -rf "$DIR"
}
trap ct_cleanup EXIT

command -v conntrackd >/dev/null || { t_fail "conntrackd is not installed (scripts/setup.sh)"; t_done; }

for r in br cl rt n1 n2 b1 b2; do so_ns "$r"; done
so_bridge
ip -n "$P-cl" link add eth0 type veth peer name c0 netns "$P-rt"
ip -n "$P-cl" addr add 10.1.0.2/24 dev eth0
ip -n "$P-cl" link set eth0 up
ip -n "$P-cl" route add default via 10.1.0.1
# The router hashes a forwarded packet on the client socket's hash: keep it (lab only).
ip netns exec "$P-cl" sysctl -qw net.core.txrehash=0
ip -n "$P-rt" addr add 10.1.0.1/24 dev c0
ip -n "$P-rt" link set c0 up
so_lan rt 10.2.0.1
ip netns exec "$P-rt" sysctl -qw net.ipv4.conf.all.forwarding=1 net.ipv4.fib_multipath_hash_policy=1
for i in 1 2; do
  so_lan "n$i" "10.2.0.1$i"
  ip -n "$P-n$i" route add default via 10.2.0.1
  ip netns exec "$P-n$i" sysctl -qw net.ipv4.conf.all.forwarding=1
  # XDP_TX toward a veth needs an XDP program on its peer (the LRU phase).
  ip -n "$P-br" link set dev "n$i" xdp obj "$LUABPF_BUILD_DIR/bpf/xdp_pass.bpf.o" sec xdp
  so_lan "b$i" "10.2.0.2$i"
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
  local states=${CTD_STATES-"State Accept { ESTABLISHED CLOSED TIME_WAIT CLOSE_WAIT for TCP }"}
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
  Filter From ${CTD_FILTER:-Kernelspace} {
    Protocol Accept { TCP UDP }
    Address Ignore { IPv4_address 127.0.0.1 IPv4_address $me IPv4_address $peer }
    $states
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

# start_nodes MODE [PORT] [pin]: ct_node.lua on both nodes (MODE: sync, alloc,
# lru; backends on PORT, default 8080), each NATing to its own address.
start_nodes() {
  local i
  for i in 1 2; do ip netns exec "$P-n$i" conntrack -F >/dev/null 2>&1 || true; done
  for i in 1 2; do start_node "$i" "$@" || return 1; done
}

# start_node I MODE [PORT] [pin]: ct_node.lua on node I (its log: $DIR/nI-MODE.log, appended).
start_node() {
  local i=$1 mode=$2 port=${3:-8080} pin=${4:-} log="$DIR/n$1-$2.log" before
  touch "$log"
  before=$(wc -l <"$log")
  # Each its own control socket name: two starts at once must not race for one.
  "$LUABPF" --netns "$P-n$i" --name "${P}n$i" run "$HERE/ct_node.lua" "${P}n$i" "$mode" "10.2.0.1$i" "$port" \
    $pin >>"$log" 2>&1 &
  NODE_PID[n$i]=$!
  t_wait 20 sh -c "tail -n +$((before + 1)) '$log' | grep -qx ready" ||
    { cat "$log" >&2; t_fail "$mode: node $i did not start"; return 1; }
}

# stop_node I: SIGINT to node I's luabpf (a pinned one leaves its data plane serving).
stop_node() {
  kill -INT "${NODE_PID[n$1]}" 2>/dev/null && wait "${NODE_PID[n$1]}" 2>/dev/null || true
  unset "NODE_PID[n$1]"
}

# start_ctd: conntrackd on both nodes, up when its control socket is.
start_ctd() {
  local i
  for i in 1 2; do
    rm -f "$DIR/ctd-n$i.lock" "$DIR/ctd-n$i.ctl"
    ctd_conf "$i" >"$DIR/ctd-n$i.conf"
    ip netns exec "$P-n$i" conntrackd -C "$DIR/ctd-n$i.conf" >"$DIR/ctd-n$i.out" 2>&1 &
    CTD_PID[n$i]=$!
  done
  for i in 1 2; do
    t_wait 10 test -S "$DIR/ctd-n$i.ctl" ||
      { cat "$DIR/ctd-n$i.out" "$DIR/ctd-n$i.log" >&2; t_fail "conntrackd on node $i did not start"; return 1; }
  done
}

stop_nodes() {
  local n
  for n in "${!NODE_PID[@]}"; do
    kill -INT "${NODE_PID[$n]}" 2>/dev/null && wait "${NODE_PID[$n]}" 2>/dev/null || true
  done
  for n in "${!CTD_PID[@]}"; do
    kill "${CTD_PID[$n]}" 2>/dev/null && wait "${CTD_PID[$n]}" 2>/dev/null || true
  done
  NODE_PID=() CTD_PID=()
}

