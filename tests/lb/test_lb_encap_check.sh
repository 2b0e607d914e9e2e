# SPDX-License-Identifier: MIT
# `luabpf check` on configs with the tunnel modes (issue 21): a valid ipip/gue
# config without encap_src passes (the default source is the interface's
# address, not known to a check); each misuse is an error that names the VIP
# and says what to do.
source "$LUABPF_SOURCE_DIR/tests/lib.sh"
D=$(mktemp -d); T_DIRS+=("$D")

conf() { # NAME VIPS...: a config file $D/NAME.lua with these VIP lines
  local n=$1; shift
  { echo 'service = "enc"'; echo 'interface = "eth0"'; echo 'vips = {'; printf '  %s,\n' "$@"; echo '}'; } >"$D/$n.lua"
}
check() { "$LUABPF" check --kind lb "$D/$1.lua" 2>&1; }

conf good \
  '{ name = "i", addr = "10.10.100.1", port = 80, mode = "ipip", backends = { { name = "b1", addr = "10.21.0.11" } } }' \
  '{ name = "g", addr = "10.10.100.1", port = 81, mode = "gue", gue_port = 7777, backends = { { addr = "10.21.0.11" } } }' \
  '{ name = "g6", addr = "fd10:100::1", port = 80, mode = "gue", backends = { { addr = "fd21::11" } } }' \
  '{ name = "i46", addr = "10.10.100.2", port = 80, mode = "ipip", backends = { { addr = "fd21::11" } } }' \
  '{ name = "s", addr = "10.10.100.3", port = 80, mode = "gue", encap_src = "10.10.0.2", backends = { { addr = "10.21.0.11" } } }'
out=$(check good) && rc=0 || rc=$?
t_eq "$rc" 0 "a valid ipip/gue config (default source, gue_port, 6in6, 4in6, encap_src) passes: $out"

bad() { # NAME EXPECTED VIP
  conf "$1" "$3"
  out=$(check "$1") && rc=0 || rc=$?
  t_eq "$rc" 1 "$1: refused"
  t_contains "$out" "$2" "$1: the message"
}
bad port "port 8080 is not the VIP's port 80, and IPIP can't change it" \
  '{ name = "p", addr = "10.10.100.1", port = 80, mode = "ipip", backends = { { addr = "10.21.0.11", port = 8080 } } }'
bad six_in_four "an IPv6 VIP's tunnels go over IPv6" \
  '{ name = "x", addr = "fd10:100::1", port = 80, mode = "gue", backends = { { addr = "10.21.0.11" } } }'
bad families "sends its tunnels over IPv4: backend fd21::12 must be IPv4 too" \
  '{ name = "f", addr = "10.10.100.1", port = 80, mode = "ipip", backends = { { addr = "10.21.0.11" }, { addr = "fd21::12" } } }'
bad gue_port_on_ipip "gue_port is for mode 'gue'" \
  '{ name = "q", addr = "10.10.100.1", port = 80, mode = "ipip", gue_port = 7777, backends = {} }'
bad encap_src_on_nat "encap_src is for modes 'ipip' and 'gue'" \
  '{ name = "n", addr = "10.10.100.1", port = 80, mode = "nat", snat = "10.10.0.2", encap_src = "10.10.0.2", backends = {} }'
bad bad_port "gue_port: port must be 1-65535" \
  '{ name = "b", addr = "10.10.100.1", port = 80, mode = "gue", gue_port = 70000, backends = {} }'
t_done
