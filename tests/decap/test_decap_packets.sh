# SPDX-License-Identifier: MIT
# The decapsulator on its own, through test_run: every tunnel the balancer
# sends (IPIP 4in4/6in6/4in6, GUE variants 1 and 0) stripped to the exact
# inner packet; other addresses' tunnels, ordinary traffic, GUE control and
# fragments untouched; truncated and malformed tunnels dropped; each with its
# counter (tests/decap/decap_packets.py).
source "$LUABPF_SOURCE_DIR/tests/lib.sh"
HERE="$LUABPF_SOURCE_DIR/tests/decap"
rc=0
$PY "$HERE/decap_packets.py" --luabpf "$LUABPF" --script "$HERE/decap_driver.lua" || rc=$?
t_eq "$rc" 0 "decap_packets.py exit status"
t_done
