# SPDX-License-Identifier: MIT
# No process outlives a SIGKILLed balancer (issue 17 follow-up): the
# service's `ip -o monitor` children (lb/_neigh.lua's neighbour and route
# watch, lb/_life.lua's interface watch) end when luabpf dies, however it
# dies. Before, they ran on until they next wrote (SIGPIPE), in a quiet
# namespace for good.
source "$LUABPF_SOURCE_DIR/tests/lb/lb_env.sh"
lab_up "$P" 2

KIDS=""
# alive PID: PID is a process (not a zombie) whose command is still `ip`.
alive() { [ "$(ps -o stat=,comm= -p "$1" 2>/dev/null | awk '$1 !~ /^Z/ { print $2 }')" = ip ]; }
orphans_cleanup() {
  set +e
  local p
  for p in $KIDS; do alive "$p" && kill -KILL "$p" 2>/dev/null; done
  lb_env_cleanup
}
trap orphans_cleanup EXIT

lb_conf "" "b1 10.10.0.11 1" "b2 10.10.0.12 1"
lb_start

# Both monitors run as children of luabpf (each may first show as its wrapper).
monitors() { [ "$(pgrep -P "$LBPID" -x ip | wc -l)" -ge 2 ]; }
t_wait 10 monitors || t_fail "luabpf ($LBPID) has not two 'ip' children within 10 s: $(ps --ppid "$LBPID" -o pid=,args=)"
KIDS=$(pgrep -P "$LBPID" -x ip | tr '\n' ' ')
t_eq "$(for p in $KIDS; do ps -o args= -p "$p"; done | grep -c -- '-o monitor')" 2 "ip -o monitor children of luabpf"

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
  t_pass "every 'ip monitor' child ended within 5 s of SIGKILL"
else
  t_fail "children still running 5 s after luabpf was SIGKILLed: $(for p in $KIDS; do alive "$p" && ps -o pid=,args= -p "$p"; done)"
fi
t_done
