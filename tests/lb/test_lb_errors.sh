# SPDX-License-Identifier: MIT
# Bad input to the load balancer's Lua API (tests/lb/lb_errors.lua), in a
# namespace of its own with an ifb interface (no native XDP).
source "$LUABPF_SOURCE_DIR/tests/lib.sh"
t_netns N
ip -n "$N" link add dum0 type ifb  # no native XDP; dummy is not in this kernel
ip -n "$N" addr add 10.20.0.2/24 dev dum0
ip -n "$N" link set dum0 up
LUA_PATH="$LUABPF_SOURCE_DIR/tests/lua/?.lua;;" "$LUABPF" --netns "$N" run \
  "$LUABPF_SOURCE_DIR/tests/lb/lb_errors.lua" "lbe$T_ID"
