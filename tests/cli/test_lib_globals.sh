# SPDX-License-Identifier: MIT
# The Lua library's modules run in the shared global table, not in a strict
# script environment: a name a split left undeclared reads nil silently
# (filter/_policy.lua's V4_PREFIX did). Every global a module reads must be
# a standard one or one the host provides.
source "$LUABPF_SOURCE_DIR/tests/lib.sh"
command -v luajit >/dev/null || { t_fail "luajit is missing (scripts/setup.sh installs it)"; t_done; }
KNOWN="bpf require pairs ipairs type tostring tonumber string table math os io error assert pcall xpcall
select setmetatable getmetatable rawget rawset rawequal rawlen print unpack next debug jit coroutine
collectgarbage load loadstring loadfile dofile setfenv getfenv package arg _G bit newproxy module gcinfo _VERSION"
n=0
while read -r f; do
  n=$((n + 1))
  bad=$(luajit -bl "$f" | sed -n 's/.*GGET .*; "\([A-Za-z_0-9]*\)"$/\1/p' | sort -u |
    grep -vxF -f <(tr ' \n' '\n\n' <<<"$KNOWN" | grep .) || true)
  [ -z "$bad" ] || t_fail "${f#"$LUABPF_SOURCE_DIR"/} reads undeclared global(s): $(tr '\n' ' ' <<<"$bad")"
done < <(find "$LUABPF_SOURCE_DIR/lua" -name '*.lua')
[ "$n" -gt 30 ] && t_pass "$n library modules read only known globals" || t_fail "found only $n modules"
t_done
