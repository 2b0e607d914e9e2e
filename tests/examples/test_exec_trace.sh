# SPDX-License-Identifier: MIT
# scripts/examples/exec_trace.lua sees a process this test starts: its pid,
# its parent (this shell), its command and its arguments; the per-command
# count is exported and promtool accepts it. libbpf finds tracepoints in
# tracefs: where it is not mounted, the test runs in a private mount
# namespace with tracefs mounted there.
source "$LUABPF_SOURCE_DIR/tests/lib.sh"
if [ ! -d /sys/kernel/tracing/events ] && [ -z "${LBT_TRACEFS:-}" ]; then
  LBT_TRACEFS=1 exec unshare -m bash -c 'mount -t tracefs tracefs /sys/kernel/tracing && exec bash "$0"' "$0"
fi
OUT=$(mktemp)
PIDF=$(mktemp)
trap 'rm -f "$OUT" "$PIDF"; t_cleanup' EXIT

"$LUABPF" run "$LUABPF_SOURCE_DIR/scripts/examples/exec_trace.lua" --listen 127.0.0.1:0 >"$OUT" 2>&1 &
PID=$!
T_PIDS+=("$PID")
t_wait 10 grep -q "tracing execs" "$OUT" || { cat "$OUT"; t_fail "exec_trace did not start"; t_done; }
URL=$(sed -n 's/^metrics on \(http[^ ]*\)$/\1/p' "$OUT")

MARK="lbt-exec-$T_ID"
# sh writes its pid, then becomes /bin/echo: same pid, parent this shell.
sh -c 'echo $$ > "$1"; exec /bin/echo "$2" "two words" third' sh "$PIDF" "$MARK" >/dev/null
want_pid=$(cat "$PIDF")
t_wait 5 grep -q -- "$MARK" "$OUT" || true
line=$(grep -- "args=/bin/echo $MARK" "$OUT" | head -1)
t_contains "$line" "pid=$want_pid ppid=$$ uid=$(id -u) comm=echo file=/bin/echo" "pid, parent, uid, comm, file"
t_contains "$line" "args=/bin/echo $MARK two words third" "the arguments"

metrics=$(curl -sf "$URL")
n=$(grep -F 'luabpf_exec_events_total{comm="echo"} ' <<<"$metrics" | awk '{print $2}')
[ "${n:-0}" -ge 1 ] && t_pass "echo counted ($n)" || t_fail "echo not counted: $metrics"
t_contains "$metrics" 'luabpf_prog_runs_total{prog="exec_trace"' "program run counts exported"
if promtool check metrics <<<"$metrics" >/dev/null 2>&1; then t_pass "promtool check metrics"; else
  t_fail "promtool: $(promtool check metrics <<<"$metrics" 2>&1)"; fi

kill -INT "$PID"; wait "$PID" || t_fail "exec_trace exited with $?"
T_PIDS=()
t_contains "$(cat "$OUT")" "totals: " "totals printed at exit"
t_eq "$(bpftool link show | grep -c 'prog_name exec_trace\|exec_trace' || true)" 0 "no link left"
t_done
