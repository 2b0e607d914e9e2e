# SPDX-License-Identifier: MIT
# A stuck handler: interrupted when the VM can be (the service goes on),
# else the process exits 1 after 3 x the limit instead of hanging forever.
source "$LUABPF_SOURCE_DIR/tests/lib.sh"

rc=0
out=$("$LUABPF" --watchdog 1 -e '
local uv = require("luv")
uv.new_timer():start(10, 0, function() while true do local x = os.date() end end)
uv.new_timer():start(1500, 0, function() print("loop still alive") end)' 2>&1) || rc=$?
t_eq "$rc" 0 "interruptible handler: exit code"
t_contains "$out" "handler stopped by the watchdog after 1 s" "interruptible handler: error raised in it"
t_contains "$out" "loop still alive" "interruptible handler: later callbacks run"

rc=0
start=$(date +%s)
out=$("$LUABPF" --watchdog 1 -e '
require("luv").new_timer():start(10, 0, function() local x = 0; while true do x = x + 1 end end)' 2>&1) || rc=$?
took=$(( $(date +%s) - start ))
t_eq "$rc" 1 "compiled endless loop: exit code"
t_contains "$out" "has run for 3 s without returning: exiting" "compiled endless loop: message"
[ "$took" -le 6 ] && t_pass "exited after ${took}s" || t_fail "took ${took}s to exit"

rc=0
out=$("$LUABPF" --watchdog x -e '' 2>&1) || rc=$?
t_eq "$rc" 2 "bad --watchdog value: exit code"
t_done
