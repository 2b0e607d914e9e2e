# SPDX-License-Identifier: MIT
# SYN cookies from XDP through test_run (tests/filter/filter_syn.lua), in a
# namespace of its own: the filter sets tcp_syncookies=2 there while ports
# are protected, and the listeners it finds are that namespace's.
source "$LUABPF_SOURCE_DIR/tests/lib.sh"

t_netns N
ip netns exec "$N" sysctl -qw net.ipv4.tcp_syncookies=1
out=$("$LUABPF" --netns "$N" run "$LUABPF_SOURCE_DIR/tests/filter/filter_syn.lua" 2>&1) || {
  echo "$out" >&2
  t_fail "filter_syn.lua failed"
}
t_contains "$out" "ok" "SYN cookie checks"
t_contains "$out" "set net.ipv4.tcp_syncookies=2 (was 1)" "says it set the sysctl"
t_done
