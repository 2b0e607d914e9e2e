# SPDX-License-Identifier: MIT
# No process outlives a SIGKILLed balancer (issue 17 follow-up): the
# service's `ip -o monitor` children (lb/_neigh.lua's neighbour and route
# watch, lb/_life.lua's interface watch) and a running exec health check end
# when luabpf dies, however it dies (luabpf/_spawn.lua). Before, the monitors
# ran on until they next wrote (SIGPIPE), in a quiet namespace for good, and
# the check until it ended by itself.
source "$LUABPF_SOURCE_DIR/tests/lb/lb_env.sh"
lab_up "$P" 2

KIDS=""
# alive PID: PID is a process (not a zombie) running ip or sleep (not a reused pid).
alive() { ps -o stat=,comm= -p "$1" 2>/dev/null | awk '$1 !~ /^Z/ && ($2 == "ip" || $2 == "sleep") { f = 1 } END { exit !f }'; }
orphans_cleanup() {
  set +e
  local p
  for p in $KIDS; do alive "$p" && kill -KILL "$p" 2>/dev/null; done
  lb_env_cleanup
}
trap orphans_cleanup EXIT

# The check (first run within 1 s) lasts 300 s: it runs when luabpf is killed.
lb_conf "check = { type = 'exec', command = { 'sleep', '300' }, interval = 1, timeout = 300 }," \
  "b1 10.10.0.11 1" "b2 10.10.0.12 1"
lb_start

# Both monitors and one check per backend run as children of luabpf (each may
# first show as its wrapper: setpriv, sh).
kids() { [ "$(pgrep -P "$LBPID" -x ip | wc -l)" -ge 2 ] && [ "$(pgrep -P "$LBPID" -x sleep | wc -l)" -ge 2 ]; }
t_wait 10 kids || t_fail "luabpf ($LBPID) has not two 'ip' and two 'sleep' children within 10 s: $(ps --ppid "$LBPID" -o pid=,args=)"
KIDS=$(pgrep -P "$LBPID" -x 'ip|sleep' | tr '\n' ' ')
t_eq "$(for p in $KIDS; do ps -o args= -p "$p"; done | grep -c -- '-o monitor')" 2 "ip -o monitor children of luabpf"
t_eq "$(for p in $KIDS; do ps -o args= -p "$p"; done | grep -c -- '^sleep 300$')" 2 "exec check children of luabpf"

kill -KILL "$LBPID"
wait "$LBPID" 2>/dev/null || true
LBPID=

# luabpf is gone (waited for); each child must follow within 5 s.
none_alive() {
  local p
  for p in $KIDS; do alive "$p" && return 1; done
  return 0
}
if t_wait 5 none_alive; then
  t_pass "every 'ip monitor' and exec check child ended within 5 s of SIGKILL"
else
  t_fail "children still running 5 s after luabpf was SIGKILLed: $(for p in $KIDS; do alive "$p" && ps -o pid=,args= -p "$p"; done)"
fi
t_done
