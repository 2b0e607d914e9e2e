# SPDX-License-Identifier: MIT
# A client for the load balancer tests. Prints one JSON object.
#   lb_client.py spread URL N          N new connections, one GET each: {"b1": n, ...}
#   lb_client.py hold HOST PORT K SECS [STOP]
#                                      K keep-alive connections, a GET on each every
#                                      100 ms for SECS: per connection its backends, errors
#                                      and the first error's kind (ConnectionResetError, ...).
#                                      With STOP (a path): until that file exists (SECS at
#                                      most), then one more GET on each open connection, so
#                                      each is used after what the caller did before it.
import json
import os
import socket
import sys
import time


def get(sock):
    sock.sendall(b"GET / HTTP/1.1\r\nHost: lb\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed by peer")
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0].split(b":")[1])
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed by peer")
        body += chunk
    return body.decode().strip()


def connect(host, port, timeout=2):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect((host, port))
    return s


def spread(host, port, n):
    counts, errors = {}, 0
    for _ in range(n):
        try:
            s = connect(host, port)
            name = get(s)
            s.close()
            counts[name] = counts.get(name, 0) + 1
        except OSError:
            errors += 1
    counts["errors"] = errors
    return counts


def hold(host, port, k, secs, stop=None):
    conns = []
    for _ in range(k):
        # A generous timeout: a slow answer on a busy machine is not a reset.
        c = {"sock": connect(host, port, 10), "backends": [], "errors": 0, "requests": 0}
        conns.append(c)
    end = time.time() + secs

    def round_():
        for c in conns:
            if c["sock"] is None:
                continue
            try:
                name = get(c["sock"])
                c["requests"] += 1
                if not c["backends"] or c["backends"][-1] != name:
                    c["backends"].append(name)
            except OSError as e:
                c["errors"] += 1
                c["error"] = type(e).__name__
                c["sock"].close()
                c["sock"] = None

    while time.time() < end and not (stop and os.path.exists(stop)):
        round_()
        time.sleep(0.1)
    if stop:
        round_()
    return [{k: v for k, v in c.items() if k != "sock"} for c in conns]


cmd = sys.argv[1]
if cmd == "spread":
    print(json.dumps(spread(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
elif cmd == "hold":
    print(json.dumps(hold(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]),
                          sys.argv[6] if len(sys.argv) > 6 else None)))
