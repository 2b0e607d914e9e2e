# SPDX-License-Identifier: MIT
# `luabpf check` points into the file as bpftrace does: after each
# "file:line: error: ..." the line itself and a caret under what the message
# is about. An interface this machine lacks is a warning (exit 0), looked for
# in the config's netns when it names one.
source "$LUABPF_SOURCE_DIR/tests/lib.sh"
WORK=$(mktemp -d)
cleanup() { rm -rf "$WORK"; t_cleanup; }
trap cleanup EXIT
cd "$WORK"

cat >bad.conf.lua <<'CONF'
service = "demo"
interface = "lo"
vips = {
  { name = "web", addr = "10.10.100.1", port = 80, proto = "tcp",
    backends = {
	{ name = "b1", addr = "10.10.0.300", port = 8080 },
      { name = "b2", addr = "10.10.0.12", port = 70000 },
    },
  },
}
CONF
rc=0; out=$("$LUABPF" check bad.conf.lua) || rc=$?
echo "$out"
t_eq "$rc" 1 "exit code of an invalid config"
# The caret's line must sit right under the quoted token (tabs kept).
want=$(printf '%s\n' \
  "bad.conf.lua:6: error: vip 'web': backend addr: '10.10.0.300' is not an IPv4 or IPv6 address" \
  "    6 | 	{ name = \"b1\", addr = \"10.10.0.300\", port = 8080 }," \
  "      | 	                       ^~~~~~~~~~~" \
  "bad.conf.lua:7: error: vip 'web': backend 10.10.0.12: port must be 1-65535, got 70000" \
  "    7 |       { name = \"b2\", addr = \"10.10.0.12\", port = 70000 }," \
  "      |                                                  ^~~~~")
t_eq "$(head -6 <<<"$out")" "$want" "errors with their line and caret"
grep -q "warning" <<<"$out" && t_fail "lo exists, yet: $out" || t_pass "no warning for an interface that exists"

printf 'x = 1\nif x then\n  y = = 2\nend\n' >syn.lua
rc=0; out=$("$LUABPF" check syn.lua) || rc=$?
t_eq "$rc" 1 "exit code of a syntax error"
t_eq "$(head -3 <<<"$out")" "$(printf '%s\n' "syn.lua:3: error: unexpected symbol near '='" \
  "    3 |   y = = 2" "      |     ^")" "syntax error with its line and caret"

# A missing interface: a warning with the line, and the file still valid.
ifname="nope$T_ID"
sed "s/interface = \"lo\"/interface = \"$ifname\"/; s/10.10.0.300/10.10.0.11/; s/70000/8080/" bad.conf.lua >if.conf.lua
rc=0; out=$("$LUABPF" check if.conf.lua) || rc=$?
echo "$out"
t_eq "$rc" 0 "a missing interface is not an error"
t_contains "$out" "if.conf.lua:2: warning: interface '$ifname' does not exist on this machine (it has " "the warning names it"
t_contains "$out" "      |              ^~~~" "caret under the interface name"
t_contains "$out" "if.conf.lua: OK: load balancer 'demo' on $ifname" "still OK"
rc=0; out=$("$LUABPF" check -q if.conf.lua) || rc=$?
t_contains "$out" "warning: interface '$ifname'" "-q still prints warnings"

# In a netns: looked for there.
t_netns N
ip -n "$N" link add "$ifname" type veth peer name "p$T_ID"
sed "s/^service = \"demo\"/service = \"demo\"\nnetns = \"$N\"/" if.conf.lua >ns.conf.lua
out=$("$LUABPF" check ns.conf.lua)
grep -q warning <<<"$out" && t_fail "the interface is in netns $N: $out" || t_pass "found in the config's netns"
ip -n "$N" link del "$ifname"
out=$("$LUABPF" check ns.conf.lua)
t_contains "$out" "warning: interface '$ifname' does not exist in netns '$N' on this machine" "missing in the netns"
t_done
