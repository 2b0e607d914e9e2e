# SPDX-License-Identifier: MIT
# Backend and client for tests/scale_out/test_ct_sync.sh.
#   ct_echo.py serve NAME PORT
#       answers each line with "NAME PEER": PEER is the source address the
#       backend saw, i.e. the balancer node whose SNAT address the flow uses.
#   ct_echo.py hold HOST PORT K MARK AFTER
#       K connections, a line on each every 100 ms (a round: all sent, then
#       all answers within 3 s, or broken). MARK.up is created once
#       all are up; from when the file MARK exists (the test drained a node),
#       each live connection must answer AFTER more times, then one JSON list:
#       per connection its local port, nodes seen, requests, answers after
#       MARK, errors and the first error's kind.
import json
import os
import socket
import socketserver
import sys
import time


def serve(name, port):
    class H(socketserver.StreamRequestHandler):
        def handle(self):
            peer = self.client_address[0]
            for _ in self.rfile:
                self.wfile.write(("%s %s\n" % (name, peer)).encode())

    class S(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True
        request_queue_size = 512

    S(("0.0.0.0", port), H).serve_forever()


def answer(c, until):
    s = c["sock"]
    buf = b""
    while not buf.endswith(b"\n"):
        s.settimeout(max(0.01, until - time.time()))
        chunk = s.recv(256)
        if not chunk:
            raise ConnectionError("closed by peer")
        buf += chunk
    return buf.decode().split()


def broken(c, e):
    c["errors"] += 1
    c["error"] = type(e).__name__
    c["sock"].close()
    c["sock"] = None


def hold(host, port, k, mark, after):
    conns = []
    for _ in range(k):
        s = socket.create_connection((host, port), timeout=10)
        conns.append({"sock": s, "port": s.getsockname()[1], "nodes": [], "backend": None,
                      "requests": 0, "after": 0, "errors": 0})
    open(mark + ".up", "w").close()
    marked = None
    deadline = None
    while True:
        if marked is None and os.path.exists(mark):
            marked = time.time()
            deadline = marked + 30
        live = [c for c in conns if c["sock"] is not None]
        if marked is not None and (all(c["after"] >= after for c in live) or time.time() > deadline):
            break
        # A round: a line on every connection, then their answers, all within
        # 3 s (a later one on a busy machine counts as broken); the dead
        # don't cost 3 s each.
        for c in live:
            try:
                c["sock"].settimeout(3)
                c["sock"].sendall(b"ping\n")
            except OSError as e:
                broken(c, e)
        until = time.time() + 3
        for c in live:
            if c["sock"] is None:
                continue
            try:
                name, node = answer(c, until)
                c["requests"] += 1
                c["backend"] = name
                if marked is not None:
                    c["after"] += 1
                if not c["nodes"] or c["nodes"][-1] != node:
                    c["nodes"].append(node)
            except (OSError, ValueError) as e:
                broken(c, e)
        time.sleep(0.1)
    for c in conns:
        if c["sock"] is not None:
            c["sock"].close()
    print(json.dumps([{k: v for k, v in c.items() if k != "sock"} for c in conns]))


if sys.argv[1] == "serve":
    serve(sys.argv[2], int(sys.argv[3]))
elif sys.argv[1] == "hold":
    hold(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], int(sys.argv[6]))
