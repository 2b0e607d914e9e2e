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

ms() { echo $(( $(date +%s%N) / 1000000 )); }
# What starting and stopping luabpf costs right now (a busy machine makes it
# slower): the same program with a handler that returns, just before.
start=$(ms)
"$LUABPF" --watchdog 1 -e 'require("luv").new_timer():start(10, 0, function() end)' >/dev/null 2>&1
ref=$(( $(ms) - start ))
rc=0
start=$(ms)
out=$("$LUABPF" --watchdog 1 -e '
require("luv").new_timer():start(10, 0, function() local x = 0; while true do x = x + 1 end end)' 2>&1) || rc=$?
took=$(( $(ms) - start ))
t_eq "$rc" 1 "compiled endless loop: exit code"
t_contains "$out" "has run for 3 s without returning: exiting" "compiled endless loop: message"
# 3 s of the handler, 2 s to spare, on top of what a run costs right now.
[ "$took" -le $((ref + 5000)) ] && t_pass "exited after ${took} ms (a run that returns: ${ref} ms)" ||
  t_fail "took ${took} ms to exit (a run that returns: ${ref} ms; bound: 5 s more)"

rc=0
out=$("$LUABPF" --watchdog x -e '' 2>&1) || rc=$?
t_eq "$rc" 2 "bad --watchdog value: exit code"
t_contains "$out" "ERROR: --watchdog takes whole seconds from 1 to 86400, or 0 to turn it off (got 'x')" \
  "bad --watchdog value: message"
for v in -1 99999999999 1.5 86401; do
  rc=0
  out=$("$LUABPF" --watchdog "$v" -e 'print("ran")' 2>&1) || rc=$?
  t_eq "$rc" 2 "--watchdog $v: exit code"
  t_contains "$out" "ERROR: --watchdog takes whole seconds from 1 to 86400, or 0 to turn it off (got '$v')" \
    "--watchdog $v: message"
done
rc=0
out=$("$LUABPF" run --watchdog=-1 --no-control x.lua 2>&1) || rc=$?
t_eq "$rc" 2 "run --watchdog=-1: exit code"
t_contains "$out" "(got '-1')" "run --watchdog=-1: message"

# ---- the main chunk runs before the loop: watchdog and signals there too ----
dir=$(mktemp -d)
trap 'rm -rf "$dir"; t_cleanup' EXIT
ms() { date +%s%3N; }

# timed LIMIT_MS WHAT -- ARGS...: run luabpf; $rc, $out, fail if it took longer.
timed() {
  local limit=$1 what=$2 t0
  shift 3
  rc=0
  t0=$(ms)
  out=$(timeout -s KILL 20 "$LUABPF" "$@" 2>&1) || rc=$?
  took=$(( $(ms) - t0 ))
  [ "$took" -le "$limit" ] && t_pass "$what: ended in ${took} ms" || t_fail "$what: took ${took} ms (limit $limit)"
}

timed 8500 "--watchdog 2, compiled loop in the main chunk" -- --watchdog 2 -e 'while true do end'
t_eq "$rc" 1 "--watchdog 2, compiled main chunk loop: exit code"
t_contains "$out" "WARN: the main chunk of (command line) has run for 2 s: interrupting it" \
  "--watchdog 2, compiled main chunk loop: the warning"
t_contains "$out" "ERROR: the main chunk of (command line) has run for 6 s without returning: exiting" \
  "--watchdog 2, compiled main chunk loop: the exit"

timed 4500 "--watchdog 2, interpreted loop in the main chunk" -- --watchdog 2 -e 'jit.off() while true do end'
t_eq "$rc" 1 "--watchdog 2, interpreted main chunk loop: exit code"
t_contains "$out" "ERROR: main chunk stopped by the watchdog after 2 s (--watchdog)" \
  "--watchdog 2, interpreted main chunk loop: the error"

printf 'local function spin() while true do end end\nspin()\n' >"$dir/spin.lua"
timed 5000 "--watchdog 1, compiled loop in a script's main chunk" -- run --watchdog 1 --no-control "$dir/spin.lua"
t_eq "$rc" 1 "script's compiled main chunk loop: exit code"
t_contains "$out" "ERROR: the main chunk of $dir/spin.lua has run for 3 s without returning: exiting" \
  "script's compiled main chunk loop: the exit"

# signalled SIG LIMIT_MS WHAT -- ARGS...: start luabpf, wait until its main
# chunk says "looping", send SIG and wait for it to end by itself (else
# SIGKILL and fail); $rc and $out as above.
signalled() {
  local sig=$1 limit=$2 what=$3 pid t0 i
  shift 4
  # Emptied here, not by the background job's redirection: that truncation
  # runs in the child, later, and the wait below could read the previous
  # run's "looping" and signal a process that has no handlers yet (exit 143).
  : >"$dir/out"
  "$LUABPF" "$@" >>"$dir/out" 2>&1 &
  pid=$!
  t_wait 10 grep -q looping "$dir/out" || t_fail "$what: the main chunk never started"
  t0=$(ms)
  i=0
  for s in $sig; do
    # A second signal sent before the first was taken would merge with it.
    [ $((i++)) -eq 0 ] || t_wait 5 grep -q stopping "$dir/out" || t_fail "$what: first $s not taken"
    kill "-$s" "$pid"
  done
  if t_wait $(( limit / 1000 + 2 )) bash -c "! kill -0 $pid"; then
    took=$(( $(ms) - t0 ))
    [ "$took" -le "$limit" ] && t_pass "$what: ended ${took} ms after $sig" ||
      t_fail "$what: ended ${took} ms after $sig (limit $limit)"
  else
    t_fail "$what: still running after $sig"
    kill -KILL "$pid"
  fi
  rc=0
  wait "$pid" || rc=$?
  out=$(cat "$dir/out")
}

LOOP='io.stderr:write("looping\n") jit.off() while true do end'
signalled TERM 2000 "SIGTERM, interpreted -e loop" -- -e "$LOOP"
t_eq "$rc" 0 "SIGTERM, interpreted -e loop: exit code (stopped by a signal)"
t_contains "$out" "INFO: Terminated: stopping (interrupting the main chunk of (command line))" \
  "SIGTERM, interpreted -e loop: says it stops"
t_contains "$out" "the main chunk of (command line) stopped: interrupted by SIGTERM" \
  "SIGTERM, interpreted -e loop: says where it was"

signalled INT 2000 "SIGINT, interpreted -e loop" -- -e "$LOOP"
t_eq "$rc" 0 "SIGINT, interpreted -e loop: exit code"
t_contains "$out" "INFO: Interrupt: stopping (interrupting the main chunk of (command line))" \
  "SIGINT, interpreted -e loop: says it stops"

printf '%s\n' 'bpf.on_shutdown(function() io.stderr:write("shutdown hook ran\n") end)' "$LOOP" >"$dir/loop.lua"
signalled TERM 2000 "SIGTERM, interpreted loop in a script" -- run --no-control "$dir/loop.lua"
t_eq "$rc" 0 "SIGTERM, interpreted script loop: exit code"
t_contains "$out" "the main chunk of $dir/loop.lua stopped: interrupted by SIGTERM" \
  "SIGTERM, interpreted script loop: message"
t_contains "$out" "shutdown hook ran" "SIGTERM, interpreted script loop: the shutdown sequence ran"

# Compiled loops never see the hook: given up 5 s after the signal.
signalled TERM 7500 "SIGTERM, compiled -e loop" -- -e 'io.stderr:write("looping\n") while true do end'
t_eq "$rc" 1 "SIGTERM, compiled -e loop: exit code"
t_contains "$out" "WARN: the main chunk of (command line) did not stop within 5 s of SIGTERM: exiting" \
  "SIGTERM, compiled -e loop: message"

printf 'io.stderr:write("looping\\n")\nlocal x = 0\nwhile true do x = x + 1 end\n' >"$dir/hot.lua"
signalled INT 7500 "SIGINT, compiled loop in a script" -- run --no-control "$dir/hot.lua"
t_eq "$rc" 1 "SIGINT, compiled script loop: exit code"
t_contains "$out" "the main chunk of $dir/hot.lua did not stop within 5 s of SIGINT: exiting" \
  "SIGINT, compiled script loop: message"

signalled "INT INT" 1500 "two SIGINTs, compiled -e loop" -- -e 'io.stderr:write("looping\n") while true do end'
t_eq "$rc" 1 "two SIGINTs: exit code"
t_contains "$out" "WARN: Interrupt again: exiting now" "two SIGINTs: message"

# Once the main chunk returned, the loop's own handlers stop the service.
signalled TERM 2000 "SIGTERM in the loop" -- -e \
  'require("luv").new_timer():start(60000, 0, function() end) io.stderr:write("looping\n")'
t_eq "$rc" 0 "SIGTERM in the loop: exit code"
t_contains "$out" "INFO: Terminated: stopping" "SIGTERM in the loop: message"
if grep -q "main chunk" <<<"$out"; then t_fail "SIGTERM in the loop: named a main chunk: $out"; else t_pass "SIGTERM in the loop: the loop's handler"; fi
t_done
