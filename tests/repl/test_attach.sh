# SPDX-License-Identifier: MIT
# `luabpf attach` to a running service: one-shot commands and exit codes, a
# change the service's own output shows, several clients, a prompt with Tab
# completion and Ctrl-C on a runaway command (the service goes on), garbage
# and a client gone mid-command, socket modes and peer credentials, a second
# service with the same name, a stale socket.
source "$LUABPF_SOURCE_DIR/tests/repl/tmux.sh"
SVC="$LUABPF_SOURCE_DIR/tests/repl/svc.lua"
NAME="lbt$T_ID"
SOCK="/run/luabpf/$NAME.sock"
OUT=$(mktemp)
trap 'tmux_cleanup; rm -f "$OUT"' EXIT

"$LUABPF" --name "$NAME" run "$SVC" >"$OUT" 2>&1 &
PID=$!
T_PIDS+=("$PID")
t_wait 10 test -S "$SOCK" || { cat "$OUT"; t_fail "no socket $SOCK"; t_done; }

t_eq "$(stat -c '%a %U' /run/luabpf)" "700 root" "socket directory mode"
t_eq "$(stat -c '%a %U' "$SOCK")" "600 root" "socket mode"

# One-shot: result and status (once the service's timers run: its first
# report of the count comes after the first ticks).
t_wait 10 grep -q '^count=' "$OUT" || t_fail "the service never printed its count"
out=$(echo 'return stats().ticks > 0, "x"' | "$LUABPF" attach "$NAME" 2>&1) && rc=0 || rc=$?
t_eq "$rc" 0 "echo | attach: exit status"
t_eq "$out" $'true\t"x"' "echo | attach: the results, printed"
out=$("$LUABPF" attach "$NAME" -e 'print("from the service") return counts' 2>&1) && rc=0 || rc=$?
t_contains "$out" "from the service" "-e: what the command printed comes back"
t_contains "$out" "luabpf.map 'counts' (hash, 4->8 bytes, 64 max)" "-e: a map, pretty-printed"
out=$(echo 'local function f() error("boom") end f()' | "$LUABPF" attach "$NAME" 2>&1) && rc=0 || rc=$?
t_eq "$rc" 1 "an error: exit status"
t_contains "$out" "ERROR: input:1: boom" "an error: the message"
t_contains "$out" "in function 'f'" "an error: the traceback"
out=$(echo 'for i = 1,' | "$LUABPF" attach "$NAME" 2>&1) && rc=0 || rc=$?
t_eq "$rc" 1 "unfinished input: exit status"
out=$("$LUABPF" attach "nosuch$T_ID" 2>&1) && rc=0 || rc=$?
t_eq "$rc" 1 "no such service: exit status"
t_contains "$out" "HINT: running services: " "no such service: lists the running ones"
t_contains "$("$LUABPF" attach)" "$NAME" "attach without NAME lists services"

# The change shows in the service's own output: reset the counter it prints.
t_wait 10 sh -c "grep -qE '^count=([4-9][0-9]|[0-9]{3,})$' '$OUT'" || t_fail "the count never reached 40"
before=$(wc -l <"$OUT")
t_eq "$(echo 'counts:update(1, 0) return counts:lookup(1) < 5' | "$LUABPF" attach "$NAME")" "true" "reset the counter"
t_wait 5 sh -c "tail -n +$((before + 1)) '$OUT' | grep -qE '^count=([0-9]|1[0-9])$'" &&
  t_pass "the service prints the reset counter" || t_fail "no small count after the reset: $(tail -5 "$OUT")"

# A prompt (a second client stays attached while one-shots come and go).
term_start "'$LUABPF' attach $NAME"
wait_screen "$NAME>" || t_done
keys -l "cou"; keys Tab
wait_screen "$NAME> counts" && t_pass "Tab completes from the service's environment"
keys Enter
wait_screen "  1 => " && t_pass "the map's entries come back"
t_eq "$(echo 'return 1 + 1' | "$LUABPF" attach "$NAME")" "2" "a one-shot while a prompt is attached"
# The command says when it runs in the service (on the service's stderr).
before=$(wc -l <"$OUT")
type_line 'io.stderr:write("spin" .. "ning\n") while true do os.date() end'
wait_until "the command running in the service" 10 sh -c "tail -n +$((before + 1)) '$OUT' | grep -qx spinning"
keys C-c
wait_screen "error: input:1: interrupted" 10 && t_pass "Ctrl-C interrupts the command in the service"
type_line "ticks > 0"
wait_screen "true" && t_pass "the prompt works after the interrupt"
kill -0 "$PID" && t_pass "the service still runs" || t_fail "the service is gone"
n1=$(echo 'return ticks' | "$LUABPF" attach "$NAME")
ticked() { n2=$(echo 'return ticks' | "$LUABPF" attach "$NAME") && [ "$n2" -gt "$n1" ]; }
t_wait 5 ticked && t_pass "its timers still fire ($n1 -> $(echo 'return ticks' | "$LUABPF" attach "$NAME"))" ||
  t_fail "ticks stuck at $n1 for 5 s"
keys C-d
wait_screen "EXIT=0" && t_pass "Ctrl-D detaches with status 0"
grep -q "watchdog" "$OUT" && t_fail "the watchdog had to step in: $(grep watchdog "$OUT")" || t_pass "no watchdog"

# Garbage, and a client that leaves in the middle of a command.
printf 'GET / HTTP/1.0\r\n\r\n' | socat -t 1 - "UNIX-CONNECT:$SOCK" >/dev/null 2>&1 || true
chunk='local t = os.clock() while os.clock() - t < 1 do end mid = true return 1'
printf 'eval %d\n%s' "${#chunk}" "$chunk" | timeout 0.3 socat - "UNIX-CONNECT:$SOCK" >/dev/null 2>&1 || true
# The command ends 1 s of CPU later; a client asking before then gets nil.
mid_set() { [ "$(echo 'return mid' | "$LUABPF" attach "$NAME" 2>&1)" = true ]; }
t_wait 15 mid_set && t_pass "after garbage and a client gone mid-command: the command ran to its end" ||
  t_fail "after garbage and a client gone mid-command: mid is $(echo 'return mid' | "$LUABPF" attach "$NAME" 2>&1)"
t_contains "$(cat "$OUT")" "is not the protocol" "garbage is logged"

# Another uid: without CAP_DAC_OVERRIDE the directory stops it; with it,
# SO_PEERCRED does, and the service logs the refusal. That uid must reach the
# binary and its Lua library first: a build tree in a home directory (0700 on
# Debian 12) is closed to it, so it then runs an install of this build in a
# directory it can reach (t_nobody_luabpf).
t_nobody_luabpf
out=$(t_as_nobody "$NLUABPF" attach "$SOCK" -e 1 2>&1) && rc=0 || rc=$?
t_eq "$rc" 3 "nobody: exit status"
t_contains "$out" "Permission denied" "nobody: the directory refuses"
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=+dac_override --ambient-caps=+dac_override \
  "$NLUABPF" attach "$SOCK" -e 'mid = "owned"' 2>&1) && rc=0 || rc=$?
t_eq "$rc" 3 "nobody past the directory: exit status"
t_contains "$out" "refused the connection: uid 65534 is not allowed" "nobody past the directory: refused"
t_contains "$(cat "$OUT")" "refused a connection from pid" "the refusal is logged"
t_eq "$(echo 'return mid' | "$LUABPF" attach "$NAME")" "true" "the refused client ran nothing"

# The name is taken: a second service refuses to start, before its script runs.
out=$("$LUABPF" --name "$NAME" -e 'print("script ran")' 2>&1) && rc=0 || rc=$?
t_eq "$rc" 1 "same name: exit status"
t_contains "$out" "a service named '$NAME' is already running (pid $PID" "same name: message"
[[ "$out" == *"script ran"* ]] && t_fail "the second script ran" || t_pass "the second script did not run"

# A socket left by a killed service is replaced; a stopped one removes its own.
kill -9 "$PID"; wait "$PID" 2>/dev/null || true
test -S "$SOCK" && t_pass "SIGKILL leaves the socket" || t_fail "no stale socket to test with"
out=$("$LUABPF" --name "$NAME" -e 'print("started")' 2>&1) && rc=0 || rc=$?
t_eq "$rc" 0 "stale socket: a new service starts"
t_contains "$out" "replaced the stale" "stale socket: replaced, and said so"
test -e "$SOCK" && t_fail "a service that stopped left $SOCK" || t_pass "a stopped service removes its socket"
t_done
