# SPDX-License-Identifier: MIT
# `cmake --install` to a fresh prefix: the installed binary finds its Lua
# library, shipped objects and scripts there, with no environment variables.
source "$LUABPF_SOURCE_DIR/tests/lib.sh"
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"; t_cleanup' EXIT

cmake --install "$LUABPF_BUILD_DIR" --prefix "$prefix" >/dev/null
unset LUA_PATH LUABPF_LUA_DIR LUABPF_OBJECT_DIR
cd /
out=$("$prefix/bin/luabpf" -e '
local args = require("luabpf.args")
local obj = assert(bpf.open("xdp_count"))
print("lib: " .. package.searchpath("luabpf.args", package.path))
print("object: " .. obj:name())' 2>&1) || t_fail "installed binary failed: $out"
t_contains "$out" "lib: $prefix/bin/../share/luabpf/lua/luabpf/args.lua" "Lua library found under the prefix"
t_contains "$out" "object: xdp_count" "shipped object found by name under the prefix"
[ -f "$prefix/share/luabpf/examples/xdp_count.lua" ] && t_pass "examples installed" || t_fail "examples missing"
out=$("$prefix/bin/luabpf" run "$prefix/share/luabpf/examples/xdp_count.lua" --help 2>&1) || true
t_contains "$out" "usage: luabpf run xdp_count.lua" "installed example runs"
t_done
