# SPDX-License-Identifier: MIT
# Shared by the load balancer tests: the lab, a unique service, start/stop.
source "$LUABPF_SOURCE_DIR/tests/lib.sh"
LAB_SRC=$LUABPF_SOURCE_DIR
LAB_BUILD=$LUABPF_BUILD_DIR
source "$LUABPF_SOURCE_DIR/scripts/lab.sh"
CLIENT="$LUABPF_SOURCE_DIR/tests/lb/lb_client.py"
SVC="lbt$T_ID"
P="lb$T_ID"
CONF=$(mktemp --suffix=.lua)
LBOUT=$(mktemp)

lb_env_cleanup() {
  set +e # a cleanup step that fails must not skip the ones after it
  if [ -n "${LBPID:-}" ]; then kill -INT "$LBPID" 2>/dev/null || true; wait "$LBPID" 2>/dev/null || true; fi
  lab_down
  rm -rf "/sys/fs/bpf/luabpf/lb/$SVC" "$CONF" "$LBOUT"
  rmdir /sys/fs/bpf/luabpf/lb /sys/fs/bpf/luabpf 2>/dev/null || true
  t_cleanup
}
trap lb_env_cleanup EXIT

# lb_start [ARGS...]: run the shipped service on $CONF in the lab's balancer; wait until ready.
lb_start() {
  local before
  before=$(wc -l <"$LBOUT")
  "$LUABPF" --netns "$P-lb" run "$LUABPF_SOURCE_DIR/scripts/examples/lb.lua" "$CONF" "$@" >>"$LBOUT" 2>&1 &
  LBPID=$!
  if ! t_wait 10 sh -c "tail -n +$((before + 1)) '$LBOUT' | grep -q \"service '$SVC' on\""; then
    cat "$LBOUT" >&2
    t_fail "the service did not start"
    t_done
  fi
}

# lb_stop: SIGINT and wait; sets LBRC.
lb_stop() {
  LBRC=0
  kill -INT "$LBPID"
  wait "$LBPID" || LBRC=$?
  LBPID=
}

# lb_conf VIP_EXTRA BACKENDS...: write $CONF, one VIP 'web' 10.10.100.1:80
# (VIP_EXTRA: more of its fields, e.g. "check = { type = 'tcp' },", or ""),
# each backend "name addr weight" on port 8080.
lb_conf() {
  local extra=$1 b
  shift
  { echo "service = '$SVC'"
    echo "interface = 'eth0'"
    echo "vips = { { name = 'web', addr = '10.10.100.1', port = 80, $extra backends = {"
    for b in "$@"; do set -- $b; echo "  { name = '$1', addr = '$2', port = 8080, weight = $3 },"; done
    echo "} } }"; } >"$CONF"
}

# lb_conf_vips <<LUA ... LUA: write $CONF, the service $SVC on eth0 with the
# VIPs read from stdin (the entries of its vips list).
lb_conf_vips() {
  { printf 'service = "%s"\ninterface = "eth0"\nvips = {\n' "$SVC"; cat; echo "}"; } >"$CONF"
}

client() { ip netns exec "$P-cl" "$PY" "$CLIENT" "$@"; }

# lb_wait_log FROM SECONDS PATTERN: until a line after line FROM of $LBOUT
# matches PATTERN (grep -E).
lb_wait_log() {
  t_wait "$2" sh -c 'tail -n +"$1" "$2" | grep -qE -- "$3"' sh "$(($1 + 1))" "$LBOUT" "$3"
}

# lb_report LAST: SIGUSR1, then REPORT is the stats the service printed, once
# a line matching LAST is in them (the report is written in one flush).
lb_report() {
  local m
  m=$(wc -l <"$LBOUT")
  kill -USR1 "$LBPID"
  lb_wait_log "$m" 10 "$1" || t_fail "no stats report (no line matching '$1') within 10 s of SIGUSR1"
  REPORT=$(tail -n +"$((m + 1))" "$LBOUT")
}

# lb_established N PORT [SECONDS]: until the client has N established TCP
# connections to the VIP's PORT (held connections are up before the test
# changes anything under them).
lb_established() {
  t_wait "${3:-10}" sh -c '[ "$(ip netns exec "$1" ss -Htn state established "( dport = :$2 )" | wc -l)" -ge "$3" ]' \
    sh "$P-cl" "$2" "$1" || t_fail "$1 connections to port $2 not established within ${3:-10} s"
}

# json EXPR JSON: evaluate a Python expression over the parsed JSON in `d`.
json() { "$PY" -c "import json,sys; d=json.loads(sys.argv[2]); print($1)" "$2" "$2"; }
