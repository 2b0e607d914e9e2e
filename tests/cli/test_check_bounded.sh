# SPDX-License-Identifier: MIT
# A config is data read in a bounded sandbox (issue 17, fault 2): `luabpf
# check` on a config that loops ends with an error at the loop's file:line
# (also when the config catches the error and loops again), a config that
# uses io, os.execute or require is refused naming what it used (and the
# command did not run), os.getenv still works, and `luabpf run lb.lua` on a
# looping config exits 1 without having made anything. Before: check never
# returned (systemd's ExecReload runs it) and os.execute ran.
source "$LUABPF_SOURCE_DIR/tests/lib.sh"
DIR=$(mktemp -d)
SVC="chk$T_ID"
cleanup() { rm -rf "$DIR" "/sys/fs/bpf/luabpf/lb/$SVC"; t_cleanup; }
trap cleanup EXIT

conf() { # NAME BODY...: a minimal lb config followed by BODY
  local f="$DIR/$1.lua"; shift
  printf 'service = "%s"\ninterface = "eth0"\nvips = {}\n' "$SVC" >"$f"
  printf '%s\n' "$@" >>"$f"
  echo "$f"
}

# check_out FILE: run luabpf check (at most 20 s), set OUT and RC.
check_out() {
  RC=0
  OUT=$(timeout 20 "$LUABPF" check --kind lb "$1" 2>&1) || RC=$?
}

f=$(conf loop 'while true do end')
start=$(date +%s%N)
check_out "$f"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "a looping config was refused in $ms ms"
t_eq "$RC" 1 "looping config: exit code (124: check never ended)"
t_contains "$OUT" "$f:4: error: the config did not finish within" "looping config: the error names the loop's file:line"

f=$(conf caught 'local n = 0' 'for i = 1, 5 do pcall(function() while true do n = n + 1 end end) end' 'print("still running")')
check_out "$f"
t_eq "$RC" 1 "a loop whose error the config catches: exit code"
t_contains "$OUT" "$f:5: error: the config did not finish" "a caught loop is still stopped at its line"
grep -q "still running" <<<"$OUT" && t_fail "the config ran on after its budget was spent" ||
  t_pass "nothing of the config runs after its budget is spent"

f=$(conf handler 'xpcall(function() while true do end end, function() while true do end end)')
check_out "$f"
t_eq "$RC" 1 "a loop in xpcall's message handler: exit code"
t_contains "$OUT" "the config did not finish" "a looping message handler is stopped too"

f=$(conf osx "os.execute('touch $DIR/ran')")
check_out "$f"
t_eq "$RC" 1 "os.execute in a config: exit code"
t_contains "$OUT" "$f:4: error: a config can't use os.execute" "os.execute: refused, named, at its line"
[ -e "$DIR/ran" ] && t_fail "the config's os.execute ran" || t_pass "the config's command did not run"

f=$(conf io "local t = io.open('/etc/hostname'):read('*a')")
check_out "$f"
t_contains "$OUT" "$f:4: error: a config can't use io" "io: refused, named"

f=$(conf req "local uv = require('luv')")
check_out "$f"
t_contains "$OUT" "$f:4: error: a config can't use require" "require: refused, named"

f=$(conf env 'interface = os.getenv("LB_IF") or "eth9"')
RC=0
OUT=$(LB_IF=veth7 timeout 20 "$LUABPF" check --kind lb "$f" 2>&1) || RC=$?
t_eq "$RC" 0 "os.getenv in a config: exit code"
t_contains "$OUT" "OK: load balancer '$SVC' on veth7" "os.getenv: the unit's environment chooses the interface"

# The shipped service reads its config the same way: a loop fails the start
# before anything is loaded or pinned.
f=$(conf runloop 'while true do end')
RC=0
OUT=$(timeout 20 "$LUABPF" --no-control run "$LUABPF_SOURCE_DIR/scripts/examples/lb.lua" "$f" 2>&1) || RC=$?
t_eq "$RC" 1 "lb.lua on a looping config: exit code"
t_contains "$OUT" "$f:4: the config did not finish" "lb.lua: the error names the loop's file:line"
[ -e "/sys/fs/bpf/luabpf/lb/$SVC" ] && t_fail "a refused config left /sys/fs/bpf/luabpf/lb/$SVC" ||
  t_pass "a refused config made no pin directory"
t_done
