# SPDX-License-Identifier: MIT
# The namespaces and the L2 segment of both scale-out labs (so_env.sh,
# ct_lab.sh); the sourcing file sets P (the namespaces' prefix) and removes
# the namespaces in SO_NS on exit.
SO_NS=()

# so_ns ROLE: namespace $P-ROLE with lo up, listed in SO_NS.
so_ns() { ip netns add "$P-$1"; SO_NS+=("$P-$1"); ip -n "$P-$1" link set lo up; }

# so_bridge: the segment, bridge br0 in $P-br (its namespace must exist).
so_bridge() {
  ip -n "$P-br" link add br0 type bridge
  ip -n "$P-br" link set br0 up
  ip netns exec "$P-br" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
}

# so_lan ROLE ADDR: eth0 in $P-ROLE on the bridge; checksums filled in (XDP sees bytes).
so_lan() {
  ip -n "$P-$1" link add name eth0 type veth peer name "$1" netns "$P-br"
  ip -n "$P-br" link set "$1" master br0 up
  ip -n "$P-$1" addr add "$2/24" dev eth0
  ip -n "$P-$1" link set eth0 up
  ip netns exec "$P-$1" ethtool -K eth0 tx off >/dev/null
}
