# SPDX-License-Identifier: MIT
# A client for the health tests: a new connection and one GET per request,
# from THREADS threads for SECS seconds; prints one JSON list of
# [wall time, backend or null, error kind or null] per request.
#   health_client.py HOST PORT SECS THREADS
#   health_client.py HOST PORT -N         N requests one after another: {"b1": n, ..., "errors": n,
#                                         "kinds": {"ConnectionRefusedError": n, ...}}
import json
import socket
import sys
import threading
import time

HOST, PORT, SECS = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
out = []
lock = threading.Lock()


def one():
    t = time.time()
    try:
        s = socket.create_connection((HOST, PORT), timeout=2)
        s.sendall(b"GET / HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n")
        buf = b""
        while True:
            c = s.recv(4096)
            if not c:
                break
            buf += c
        s.close()
        body = buf.split(b"\r\n\r\n", 1)[1].decode().strip() if b"\r\n\r\n" in buf else None
        r = [t, body, None if body else "EmptyReply"]
    except OSError as e:
        r = [t, None, type(e).__name__]
    with lock:
        out.append(r)


def worker():
    end = time.time() + SECS
    while time.time() < end:
        one()
        time.sleep(0.02)


if SECS < 0:
    for _ in range(int(-SECS)):
        one()
    res = {"errors": 0, "kinds": {}}
    for _, b, e in out:
        if e:
            res["errors"] += 1
            res["kinds"][e] = res["kinds"].get(e, 0) + 1
        else:
            res[b] = res.get(b, 0) + 1
    print(json.dumps(res))
    sys.exit(0)
THREADS = int(sys.argv[4])
ts = [threading.Thread(target=worker) for _ in range(THREADS)]
for x in ts:
    x.start()
for x in ts:
    x.join()
print(json.dumps(sorted(out)))
