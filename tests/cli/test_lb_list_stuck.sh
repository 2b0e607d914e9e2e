#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `luabpf lb list` with a service whose loop is stuck (a handler that never
# returns, watchdog off): it is left out, named, after a few seconds, and the
# list ends; `lb show` on it gives up with an error instead of hanging.
source "$LUABPF_SOURCE_DIR/tests/lib.sh"
export LUABPF_RUN_DIR
LUABPF_RUN_DIR=$(mktemp -d)
T_DIRS+=("$LUABPF_RUN_DIR")
NAME="stuck$T_ID"
"$LUABPF" --watchdog 0 --name "$NAME" -e '
print("up")
io.stdout:flush()
require("luv").new_timer():start(300, 0, function() while true do end end)' >"$LUABPF_RUN_DIR/out" 2>&1 &
STUCK=$!
T_PIDS+=($STUCK)
# Its loop never returns and nothing times it: only SIGKILL ends it.
trap 'kill -KILL "$STUCK" 2>/dev/null; t_cleanup' EXIT
t_wait 10 grep -q up "$LUABPF_RUN_DIR/out" || t_fail "the service did not start"
# Wait until its loop is stuck: it no longer greets (attach with a short deadline fails).
stuck() { ! timeout 1 "$LUABPF" attach "$NAME" -e 1 >/dev/null 2>&1; }
t_wait 10 stuck || t_fail "the service's loop never got stuck"

start=$(date +%s)
rc=0
out=$(timeout 60 "$LUABPF" lb list 2>&1) || rc=$?
took=$(( $(date +%s) - start ))
t_eq "$rc" 0 "lb list with a stuck service: exit status (124: it hung)"
t_contains "$out" "service '$NAME' left out" "lb list names the service it left out"
t_contains "$out" "no answer in 3 s" "lb list says why"
[ "$took" -le 30 ] && t_pass "lb list ended in ${took} s" || t_fail "lb list took ${took} s"

rc=0
out=$(timeout 60 "$LUABPF" lb show "$NAME" 2>&1) || rc=$?
t_eq "$rc" 1 "lb show on a stuck service: exit status (124: it hung)"
t_contains "$out" "no answer in 10 s" "lb show says why"
t_done
