# SPDX-License-Identifier: MIT
# Shared by test_lb_ct.sh and test_lb_ct_fast.sh: the LB lab (lb_env.sh) with
# UDP servers on the backends, the driver tests/lb/lb_ct.lua as a coprocess
# LB, and the pool-change check both flow tables must pass.
source "$LUABPF_SOURCE_DIR/tests/lb/lb_env.sh"
UDP="$LUABPF_SOURCE_DIR/tests/lb/lb_ct_udp.py"
MARK=$((0x4c420000))

# lb_ct_lab: the lab with 4 backends, each serving UDP on port 5353.
lb_ct_lab() {
  lab_up "$P" 4
  for i in 1 2 3 4; do
    ip netns exec "$P-b$i" "$PY" "$UDP" serve "b$i" 5353 >/dev/null 2>&1 &
    LAB_PIDS+=($!)
  done
}

# drv CMD: one command to the driver, its answer in $ANS (log lines are skipped).
drv() {
  echo "$1" >&"${LB[1]}"
  local line
  while read -r -t 20 line <&"${LB[0]}"; do
    # read strips the space of an empty answer ("@@ ok ").
    case "$line" in "@@ ok"*) ANS=${line#@@ ok}; ANS=${ANS# }; return 0 ;; "@@ err"*) ANS=$line; return 1 ;; esac
    echo "driver: $line"
  done
  t_fail "no answer to '$1'"; return 1
}

ct() { ip netns exec "$P-lb" conntrack "$@" 2>/dev/null; }

# lb_ct_reasons REASON WHAT [REASON WHAT...]: the driver's stats (non-zero
# reasons) have each REASON (WHAT says what it counts).
lb_ct_reasons() {
  drv stats; echo "reasons: $ANS"
  while [ $# -ge 2 ]; do t_contains "$ANS" "$1:" "$2"; shift 2; done
}

# lb_ct_stop: the driver's input closed, then SIGINT, and waited for.
lb_ct_stop() {
  exec {LB[1]}>&-
  kill -INT "$LBPID"; wait "$LBPID" || true; LBPID=
}

# lb_ct_close: lb_ct_stop; the service (pin = false) leaves no nftables
# table and no marked entry behind.
lb_ct_close() {
  lb_ct_stop
  t_eq "$(ip netns exec "$P-lb" nft list tables | grep -c luabpf_lb || true)" 0 "nftables tables left"
  t_eq "$(ct -L -f ipv4 -m "$MARK/0xffff0000" | wc -l)" 0 "marked entries left"
}

# lb_ct_spread NAT: 30 IPv4 and 12 IPv6 connections through the VIP, with
# no errors, IPv4's over the 3 backends (NAT names the way in the message);
# then CT_LIST is the service's marked IPv4 TCP entries (conntrack -L): at
# least 30; CT_BAD those that are not client -> VIP:80, DNAT to a
# backend:8080, SNAT to 10.10.0.2.
lb_ct_spread() {
  local out n
  out=$(client spread 10.10.100.1 80 30)
  echo "IPv4: $out"
  t_eq "$(json 'd["errors"]' "$out")" 0 "IPv4 connections through $1 NAT failed"
  t_eq "$(json 'len([k for k in d if k != "errors"])' "$out")" 3 "backends that answered IPv4"
  out=$(client spread fd10:100::1 80 12)
  echo "IPv6: $out"
  t_eq "$(json 'd["errors"]' "$out")" 0 "IPv6 connections failed"
  CT_LIST=$(ct -L -p tcp -m "$MARK/0xffff0000" --orig-dst 10.10.100.1)
  echo "$CT_LIST" | head -3
  n=$(grep -c "dport=80 " <<<"$CT_LIST" || true)
  [ "$n" -ge 30 ] && t_pass "$n IPv4 TCP entries carry the service's mark" || t_fail "only $n marked IPv4 entries"
  CT_BAD=$(grep -v -E "src=10\.10\.0\.1 dst=10\.10\.100\.1 sport=[0-9]+ dport=80 .*src=10\.10\.0\.1[1-3] dst=10\.10\.0\.2 sport=8080 dport=[0-9]+ .*mark=[0-9]+ " <<<"$CT_LIST" || true)
}

# lb_ct_pool_change NEED_B2 [CHECK]: long-lived connections while the pool
# changes: once all are up, +1 s add b4, +2 s drain b1, +3 s remove b2 with
# flush; CHECK (a command) runs then, while they are still open. The client
# keeps them until a second after that (60 s at most) and then uses each once
# more, so every connection on b2 is used after the flush. Connections on b1
# and b3 must survive on their backend, every one on b2 must be reset;
# NEED_B2=1 fails when none landed on b2 (the flush untested).
lb_ct_pool_change() {
  local need_b2=$1 check=${2:-} hold out summary line conns stop
  stop=$(mktemp -u)
  client hold 10.10.100.1 80 24 60 "$stop" >"$LBOUT" &
  hold=$!
  lb_established 24 80
  # Durations, not waits: the connections run a second in each pool.
  sleep 1; drv "add b4 10.10.0.14 8080"
  sleep 1; drv "weight b1 0"
  sleep 1; drv "remove b2 flush"; echo "removed b2: $ANS"
  if [ -n "$check" ]; then "$check"; fi
  sleep 1; touch "$stop"
  wait "$hold" || true
  rm -f "$stop"
  out=$(cat "$LBOUT")
  summary=$(lb_pool_summary "$out")
  echo "$summary"
  lb_pool_kept "$summary" failed "survived the pool changes"
  line=$(grep "^b2 " <<<"$summary" || true)
  if [ -n "$line" ]; then
    conns=$(sed -E 's/.*conns=([0-9]+).*/\1/' <<<"$line")
    t_contains "$line" "failed=$conns" "every connection on b2 was reset by the flush"
  elif [ "$need_b2" = 1 ]; then
    t_fail "no connection on b2: the flush was not tested"
  fi
}
