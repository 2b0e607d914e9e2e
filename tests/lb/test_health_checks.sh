#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Health checks of every type against real misbehaving servers (503, never
# answers, resets, slow body, flapping) in a namespace of their own; the
# checker runs in the same namespace: luabpf --netns.
source "$LUABPF_SOURCE_DIR/tests/lib.sh"
t_netns NS
ip netns exec "$NS" "$PY" "$LUABPF_SOURCE_DIR/tests/lb/health_servers.py" \
  ok:8001 503:8002 hang:8003 reset:8004 slow:8005 flap:8006 banner:8007 udp:9001 >"/tmp/hs$T_ID" 2>&1 &
T_PIDS+=($!)
t_wait 10 grep -q ready "/tmp/hs$T_ID" || { cat "/tmp/hs$T_ID"; t_fail "servers did not start"; t_done; }
rm -f "/tmp/hs$T_ID"
rc=0
out=$("$LUABPF" --netns "$NS" run "$LUABPF_SOURCE_DIR/tests/lb/health_checks.lua" 2>&1) || rc=$?
echo "$out"
t_eq "$rc" 0 "checks script exit code"
t_contains "$out" "flapping server:" "the state machine part ran"
t_done
