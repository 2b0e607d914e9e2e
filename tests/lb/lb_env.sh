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

# lb_pool_summary JSON: a line per backend a connection started on (JSON is
# lb_client.py hold's output): "bN conns=C requests=R errors=E failed=F
# switched=S {ERROR: count}", E the errors, F the connections with any, S
# those that moved to another backend.
lb_pool_summary() {
  "$PY" - "$1" <<'PY'
import collections, json, sys
s = collections.defaultdict(lambda: [0, 0, 0, 0, 0, collections.Counter()])
for c in json.loads(sys.argv[1]):
    v = s[c["backends"][0] if c["backends"] else "none"]
    v[0] += 1; v[1] += c["requests"]; v[2] += c["errors"]; v[3] += c["errors"] > 0
    v[4] += len(c["backends"]) > 1
    if "error" in c:
        v[5][c["error"]] += 1
for b, v in sorted(s.items()):
    print("%s conns=%d requests=%d errors=%d failed=%d switched=%d %s" % (b, *v[:5], dict(v[5])))
PY
}

# lb_pool_kept SUMMARY FIELD WHAT: the connections on b1 and b3 (kept, or
# drained) have FIELD=0 in lb_pool_summary's SUMMARY (WHAT says so) and
# stayed on their backend.
lb_pool_kept() {
  local b line
  for b in b1 b3; do
    line=$(grep "^$b " <<<"$1" || true)
    [ -n "$line" ] || { t_fail "no connection landed on $b"; continue; }
    t_contains "$line" "$2=0" "connections on $b (kept, or drained) $3"
    t_contains "$line" "switched=0" "connections on $b stayed on $b"
  done
}

# lb_reload_spread B3_OVER_B2: after a reload to b1 drained, b2 weight 1 and
# b3 weight 2, 300 new connections: none on b1, none failed, and the Python
# expression B3_OVER_B2 over d (the spread) is True.
lb_reload_spread() {
  local out
  out=$(client spread 10.10.100.1 80 300)
  echo "after reload: $out"
  t_eq "$(json 'd.get("b1", 0)' "$out")" 0 "drained b1 gets no new connection"
  t_eq "$(json "$1" "$out")" True "b3 (weight 2) gets more than b2 (weight 1)"
  t_eq "$(json 'd["errors"]' "$out")" 0 "no failed connection after reload"
}

# lb_held_kept FILE ERRORS: the connections client hold held across a
# reload (its output in FILE) had no errors (ERRORS names them) and none
# moved.
lb_held_kept() {
  t_eq "$(json 'sum(c["errors"] for c in d)' "$(cat "$1")")" 0 "held connections: $2 across the reload"
  t_eq "$(json 'sum(1 for c in d if len(c["backends"]) > 1)' "$(cat "$1")")" 0 "held connections: none moved"
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
