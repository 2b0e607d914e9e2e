# SPDX-License-Identifier: MIT
# Stands in for systemd's end of sd_notify: binds the datagram socket PATH and
# prints each message's fields on one line, "+SECONDS READY=1 STATUS=...",
# flushed at once. With --on-ready CMD, runs CMD (sh -c) when READY=1 arrives
# and prints its output as "ready-check: ..." before the next message is read,
# so a test sees what was true at the moment readiness was reported.
import os
import socket
import subprocess
import sys
import time

path = sys.argv[1]
on_ready = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--on-ready" else None
try:
    os.unlink(path)
except FileNotFoundError:
    pass
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
t0 = time.time()
print("listening", flush=True)
while True:
    msg = s.recv(4096).decode()
    print("+%.3f %s" % (time.time() - t0, " ".join(msg.split("\n"))), flush=True)
    if on_ready and "READY=1" in msg.split("\n"):
        r = subprocess.run(["sh", "-c", on_ready], capture_output=True, text=True)
        print("ready-check: %s" % " ".join((r.stdout + r.stderr).split()), flush=True)
