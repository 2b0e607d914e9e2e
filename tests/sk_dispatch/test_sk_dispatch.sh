# SPDX-License-Identifier: MIT
# The sk_lookup dispatcher CLI against real servers in a namespace of its own:
# an HTTP server on one port answers on 1,000 others (IPv4 and IPv6), a UDP
# echo on a range; another process's socket is found past decoys; the process
# exits (misses counted, clients refused, nothing leaks to another server) and
# comes back; dispatch outlives luabpf; every refusal says why.
source "$LUABPF_SOURCE_DIR/tests/lib.sh"
SKD="$LUABPF_SOURCE_DIR/scripts/examples/sk_dispatch.lua"
SERVER=$(mktemp --suffix=.py)
CLIENT=$(mktemp --suffix=.py)

t_netns NS
t_netns OTHER
ip -n "$NS" addr add 10.0.0.1/24 dev lo
ip -n "$NS" addr add fd00::1/64 dev lo nodad

sk_cleanup() {
  "$LUABPF" --netns "$NS" run "$SKD" remove >/dev/null 2>&1 || true
  rm -f "$SERVER" "$SERVER.other" "$CLIENT"
  t_cleanup
}
trap sk_cleanup EXIT

skd() { "$LUABPF" --netns "$NS" run "$SKD" "$@" 2>&1 || true; }
inns() { ip netns exec "$NS" "$@"; }

# An HTTP server on [::]:PORT (dual-stack) that says which port the client
# dialed, with decoys open beside it: a UDP socket, a connected TCP pair, a
# unix listener. Prints its fds as "listener udp conn unix". MODE "two" adds a
# second listener; "udp" makes it a UDP echo on PORT instead.
cat >"$SERVER" <<'EOF'
import http.server, os, socket, sys, threading
port, mode = int(sys.argv[1]), (sys.argv[2] if len(sys.argv) > 2 else "")
if mode == "udp":
    u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    u.bind(("::", port))
    print(u.fileno(), flush=True)
    while True:
        data, peer = u.recvfrom(2048)
        u.sendto(b"echo " + data, peer)
class Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
    request_queue_size = 4096
    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("port %d\n" % self.connection.getsockname()[1]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
srv = Server(("::", port), Handler)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind(("127.0.0.1", 0))
conn = socket.create_connection(("127.0.0.1", port))
unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); unix.bind("\0skd-%d" % os.getpid()); unix.listen()
fds = [srv.socket.fileno(), udp.fileno(), conn.fileno(), unix.fileno()]
if mode == "two":
    two = socket.socket(); two.bind(("127.0.0.1", port + 1)); two.listen()
    fds.append(two.fileno())
print(*fds, flush=True)
srv.serve_forever()
EOF

# Connect to every port of a range; print "ok N refused M other K".
cat >"$CLIENT" <<'EOF'
import socket, sys
host, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ok = refused = other = 0
for p in range(lo, hi + 1):
    try:
        s = socket.create_connection((host, p), timeout=3); s.close(); ok += 1
    except ConnectionRefusedError:
        refused += 1
    except OSError:
        other += 1
print("ok %d refused %d other %d" % (ok, refused, other))
EOF

# start_server PORT [MODE]: sets SPID and FDS (its fds, as printed).
start_server() {
  local out
  out=$(mktemp)
  ip netns exec "$NS" "$PY" "$SERVER" "$@" >"$out" 2>&1 &
  SPID=$!
  T_PIDS+=("$SPID")
  t_wait 10 test -s "$out" || { cat "$out" >&2; t_fail "server on $1 did not start"; t_done; }
  read -r -a FDS <"$out"
  [[ "${FDS[0]}" =~ ^[0-9]+$ ]] || { cat "$out" >&2; t_fail "server on $1: no fds"; t_done; }
  rm -f "$out"
}
curl_port() { inns curl -s -m 5 "http://$1/" 2>&1; }

# --- an HTTP server answers on 1,000 ports it does not listen on ----------
start_server 7080
HTTP_PID=$SPID
flags_before=$(grep '^flags' "/proc/$HTTP_PID/fdinfo/${FDS[0]}")
out=$(skd --pid "$HTTP_PID" --ports 8000-8999)
t_contains "$out" "registered pid $HTTP_PID (python3) fd ${FDS[0]}: TCP listening on [::]:7080 (dual-stack) for label 'python3:7080'" "found the listener past the decoys"
t_contains "$out" "bound tcp 0.0.0.0/0 ports 8000-8999 -> 'python3:7080'" "IPv4 bound"
t_contains "$out" "bound tcp ::/0 ports 8000-8999 -> 'python3:7080'" "IPv6 bound"
t_eq "$(grep '^flags' "/proc/$HTTP_PID/fdinfo/${FDS[0]}")" "$flags_before" "the target's socket flags"
t_eq "$(curl_port 10.0.0.1:8000)" "port 8000" "curl IPv4 8000"
t_eq "$(curl_port 10.0.0.1:8999)" "port 8999" "curl IPv4 8999"
t_eq "$(curl_port '[fd00::1]:8443')" "port 8443" "curl IPv6 8443"
t_eq "$(curl_port 127.0.0.1:8123)" "port 8123" "curl loopback 8123"
t_eq "$(inns "$PY" "$CLIENT" 10.0.0.1 8000 8999)" "ok 1000 refused 0 other 0" "IPv4 connect loop"
t_eq "$(inns "$PY" "$CLIENT" fd00::1 8000 8999)" "ok 1000 refused 0 other 0" "IPv6 connect loop"
t_eq "$(inns "$PY" "$CLIENT" 10.0.0.1 7998 7999)" "ok 0 refused 2 other 0" "ports outside the range untouched"

# --- dispatch outlives luabpf; a new run lists the same bindings ----------
out=$(skd list)
t_contains "$out" "python3:7080" "list shows the label"
line4=$(grep "python3:7080.*0.0.0.0/0" <<<"$out")
t_contains "$line4" "8000-8999" "list: IPv4 binding"
t_contains "$line4" "pid $HTTP_PID (python3) fd ${FDS[0]}" "list: the socket"
read -r _ _ _ _ _ lookups hits misses errors _ <<<"$(sed 's/no (drop)/no/' <<<"$line4")"
t_eq "$([ "$lookups" -ge 1003 ] && [ "$hits" -eq "$lookups" ] && echo yes)" "yes" "IPv4 lookups ($lookups) all hits ($hits)"
t_eq "$misses/$errors" "0/0" "no misses or errors yet"
t_eq "$(bpftool link show | grep -c "netns_ino $(stat -L -c %i /run/netns/"$NS")")" "1" "one sk_lookup link in the namespace"

# --- UDP echo over a range ----------------------------------------------------
start_server 5353 udp
UDP_PID=$SPID
out=$(skd --pid "$UDP_PID" --proto udp --ports 6000-6099 --label echo)
t_contains "$out" "UDP bound to [::]:5353 (dual-stack) for label 'echo'" "UDP socket registered"
udp_echo() {
  inns "$PY" -c '
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(b"hi %d" % port, (host, port))
data, peer = s.recvfrom(100)
print(data.decode(), peer[1])' "$1" "$2" 2>&1 | tail -1
}
# Replies come from the socket's own port: it is bound to 5353, not to 6000.
t_eq "$(udp_echo 10.0.0.1 6000)" "echo hi 6000 5353" "UDP IPv4 6000"
t_eq "$(udp_echo 10.0.0.1 6099)" "echo hi 6099 5353" "UDP IPv4 6099"
t_eq "$(udp_echo fd00::1 6050)" "echo hi 6050 5353" "UDP IPv6 6050"
t_contains "$(udp_echo 10.0.0.1 6100)" "timed out" "UDP outside the range untouched"

# --- the server exits: fail closed, counted, nothing leaks --------------------
ip netns exec "$NS" "$PY" -m http.server 8500 --bind 127.0.0.1 >/dev/null 2>&1 &
T_PIDS+=($!)
t_wait 10 inns curl -s -o /dev/null http://127.0.0.1:8500/ || t_fail "decoy server on 8500 did not start"
kill "$HTTP_PID"
wait "$HTTP_PID" 2>/dev/null || true
start=$(date +%s%N)
out=$(curl_port 127.0.0.1:8500; echo "rc=$?")
t_contains "$out" "rc=7" "a client of a dead label is refused (curl: couldn't connect), not served by the other server on 8500"
t_eq "$(( ($(date +%s%N) - start) / 1000000000 ))" "0" "refused at once, not after a timeout"
t_eq "$(inns "$PY" "$CLIENT" 10.0.0.1 8000 8099)" "ok 0 refused 100 other 0" "100 connections refused"
out=$(skd list)
line4=$(grep "python3:7080.*0.0.0.0/0" <<<"$out")
t_contains "$line4" "GONE" "list says the socket is gone"
read -r _ _ _ _ _ _ _ misses _ <<<"$(sed 's/no (drop)/no/' <<<"$line4")"
t_eq "$([ "$misses" -ge 101 ] && echo yes)" "yes" "misses counted ($misses) in: $line4"

# --- it comes back and is registered again ---------------------------------
start_server 7080
out=$(skd --pid "$SPID" --ports 8000-8999)
t_contains "$out" "registered pid $SPID (python3)" "registered again"
t_eq "$(curl_port 10.0.0.1:8777)" "port 8777" "serves again"
t_eq "$(skd list | grep -c 'python3:7080')" "2" "the same two bindings, not new ones"

# --- refusals, each with its message -----------------------------------------
PID2=$SPID
out=$(skd --pid "$PID2" --fd "${FDS[3]}" --ports 7000)
t_contains "$out" "ERROR: pid $PID2 (python3) fd ${FDS[3]} is a unix socket: sk_lookup steers only TCP and UDP" "unix socket refused"
out=$(skd --pid "$PID2" --fd "${FDS[2]}" --ports 7000)
t_contains "$out" "fd ${FDS[2]} is TCP connected 127.0.0.1:" "connected socket refused"
t_contains "$out" "a connected socket can't take new connections" "connected socket: why"
out=$(skd --pid "$PID2" --fd "${FDS[1]}" --ports 7000)
t_contains "$out" "fd ${FDS[1]} is UDP bound to 127.0.0.1:" "UDP socket for a TCP binding refused"
out=$(skd --pid "$PID2" --fd 99 --ports 7000)
t_contains "$out" "ERROR: pid $PID2 has no fd 99" "missing fd"
out=$(skd --pid 2999999 --ports 7000)
t_contains "$out" "ERROR: pid 2999999: ESRCH: No such process" "missing pid"
out=$(bash -c 'exec "$0" --netns "$1" run "$2" --pid $$ --ports 7000 2>&1' "$LUABPF" "$NS" "$SKD" || true)
t_contains "$out" "is this luabpf process" "own pid refused"
start_server 9090 two
TWO=$SPID
out=$(skd --pid "$TWO" --ports 7000)
t_contains "$out" "has 2 sockets that fit: fd ${FDS[0]} (TCP listening on [::]:9090 (dual-stack)), fd ${FDS[4]} (TCP listening on 127.0.0.1:9091)" "several listeners refused, listed"
t_contains "$out" "HINT: add --fd" "several listeners: hint"
out=$(skd --pid "$TWO" --fd "${FDS[4]}" --ports 7000 --label two)
t_contains "$out" "registered pid $TWO (python3) fd ${FDS[4]}: TCP listening on 127.0.0.1:9091" "--fd picks one"
out=$(skd --pid "$TWO" --fd "${FDS[4]}" --ports 7100 --addr fd00::/64 --label two6)
t_contains "$out" "can't take IPv6, and IPv6 prefixes are bound" "IPv4 socket for an IPv6 prefix refused"
# A socket of another namespace (its listener lives 60 s: a duration, killed at exit).
ip netns exec "$OTHER" "$PY" -c 'import socket,time; s=socket.socket(); s.bind(("0.0.0.0", 7080)); s.listen(); print(1, flush=True); time.sleep(60)' >"$SERVER.other" &
OPID=$!
T_PIDS+=("$OPID")
# Wait for python's line, not for a socket: `ip netns exec` has netlink sockets of its own.
t_wait 10 test -s "$SERVER.other"
out=$(skd --pid "$OPID" --ports 7000)
t_contains "$out" "TCP listening on 0.0.0.0:7080 in another netns" "other netns: the socket is named"
OFD=$(for f in /proc/"$OPID"/fd/*; do readlink "$f" | grep -q '^socket:' && basename "$f"; done | head -1)
out=$(skd --pid "$OPID" --fd "$OFD" --ports 7000)
t_contains "$out" "lives in another network namespace" "another netns refused"
t_contains "$out" "HINT: run in the target's namespace" "another netns: hint"
out=$(skd --pid "$PID2" --ports 70000)
t_contains "$out" "ports '70000' is not a range within 1-65535" "bad ports"
out=$(skd --pid "$PID2" --ports 7000 --addr 10.0.0.1/24)
t_contains "$out" "has host bits set (did you mean 10.0.0.0/24?)" "host bits"
t_eq "$(skd list | grep -v '^two ' | grep -c -E ' 7000 |two6')" "0" "refusals bound nothing"

# --- unbind, remove: nothing left ---------------------------------------------
out=$(skd unbind --label two)
t_contains "$out" "label 'two': 1 binding(s) and 1 socket(s) removed" "unbind a label"
out=$(skd remove)
t_contains "$out" "removed the sk_lookup dispatcher" "remove"
t_eq "$(ls /sys/fs/bpf/luabpf/sk_dispatch 2>/dev/null | grep -c "^$(stat -L -c %i /run/netns/"$NS")$")" "0" "no pins left"
t_eq "$(bpftool link show | grep -c "netns_ino $(stat -L -c %i /run/netns/"$NS")")" "0" "no link left"
t_eq "$(curl_port 10.0.0.1:7080)" "port 7080" "the server's own port still works"
t_eq "$(curl_port 10.0.0.1:7081; echo " rc=$?")" " rc=7" "and only its own port"
t_done
