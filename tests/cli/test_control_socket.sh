# SPDX-License-Identifier: MIT
# The control socket: a name too long for a socket path is refused before
# anything is made; clients that never say hello, and clients idle for too
# long, are closed (idle ones told why) and logged; the service goes on.
source "$LUABPF_SOURCE_DIR/tests/lib.sh"
NAME="ctl$T_ID"
LOG=$(mktemp)
SOCK=/run/luabpf/$NAME.sock
cleanup() { rm -f "$LOG"; t_cleanup; }
trap cleanup EXIT

LUABPF_CONTROL_HELLO_TIMEOUT=1 LUABPF_CONTROL_IDLE_TIMEOUT=2 \
  "$LUABPF" -v --name "$NAME" -e 'ticks = 0
    local tm = require("luv").new_timer()
    tm:start(10, 10, function() ticks = ticks + 1 if ticks > 3000 then tm:close() end end)' >"$LOG" 2>&1 &
T_PIDS+=($!)
t_wait 10 test -S "$SOCK" || { cat "$LOG"; t_fail "the service's socket $SOCK never appeared"; t_done; }

# A name whose socket path would not fit in sun_path (107 bytes).
long=$(printf 'n%.0s' $(seq 1 110))
rc=0; out=$("$LUABPF" --name "$long" -e 'print("ran")' 2>&1) || rc=$?
t_eq "$rc" 1 "a too-long --name: exit status"
t_contains "$out" "the control socket's path is 127 bytes, at most 107 fit" "a too-long --name: the message"
t_contains "$out" "HINT: give the service a shorter name with --name NAME" "a too-long --name: the hint"
[[ "$out" == *ran* ]] && t_fail "the script ran with a refused name" || t_pass "the script did not run"
ls /run/luabpf | grep -q "^nnnnnnnnnn" && t_fail "a truncated socket file was left in /run/luabpf" ||
  t_pass "no truncated socket file left"

# A client that connects and says nothing: closed after the hello timeout.
res=$(timeout 20 /usr/bin/python3 - "$SOCK" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); t0 = time.time(); data = b""
while True:
    d = s.recv(4096)
    if not d: break
    data += d
print("closed after %.1f s" % (time.time() - t0))
PY
)
echo "silent client: $res"
t_contains "$res" "closed after" "a client that never says hello is closed"
t_wait 5 grep -q "said no hello in 1 s: closing it" "$LOG" && t_pass "logged: said no hello" || t_fail "no log line for the silent client"

# A client that says hello, then nothing: told "bye" after the idle timeout.
res=$(timeout 20 /usr/bin/python3 - "$SOCK" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
p = b"pid=1 tty=false"; s.sendall(b"hello %d\n%s" % (len(p), p)); data = b""
while True:
    d = s.recv(4096)
    if not d: break
    data += d
print(data.decode(errors="replace").replace("\n", " | "))
PY
)
echo "idle client: $res"
t_contains "$res" "bye" "an idle client is told bye"
t_contains "$res" "idle for 2 s" "and why"
t_wait 5 grep -q "idle for 2 s: closing it" "$LOG" && t_pass "logged: idle" || t_fail "no log line for the idle client"
# The service still answers.
t_eq "$(echo 'return ticks > 0' | "$LUABPF" attach "$NAME" 2>&1)" "true" "the service still answers attach"
t_done
