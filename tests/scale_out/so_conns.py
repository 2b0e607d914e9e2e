# SPDX-License-Identifier: MIT
# The clients of tests/scale_out: N long-lived TCP connections to HOST:PORT,
# each sending a numbered line every 100 ms and reading the answer
# ("BACKEND LINE", so_server.py). Every 0.2 s it writes STATUS (JSON, by
# rename): per connection its source port, the backend that answered first,
# its state ("ok" or why it broke: reset, closed, other backend, a reply
# that does not match), the age of its last answer (ms), and totals.
# A connection that breaks is not reopened: broken means broken.
# Usage: so_conns.py HOST PORT N STATUS
import asyncio
import json
import os
import sys
import time

HOST, PORT, N, STATUS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
conns = []


class Conn:
    def __init__(self, i):
        self.i, self.sport, self.backend, self.state, self.last, self.sent, self.got = i, 0, None, "opening", 0.0, 0, 0

    async def run(self):
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, PORT), 10)
        except (OSError, asyncio.TimeoutError) as e:
            self.state = "connect failed: " + type(e).__name__
            return
        self.sport = writer.get_extra_info("sockname")[1]
        self.state, self.last = "ok", time.monotonic()
        n = 0
        try:
            while True:
                n += 1
                writer.write(b"%d\n" % n)
                self.sent = n
                line = await reader.readline()
                if not line:
                    self.state = "closed by peer"
                    return
                name, _, seq = line.decode().strip().partition(" ")
                if seq != str(n):
                    self.state = "bad reply %r" % line
                    return
                if self.backend is None:
                    self.backend = name
                elif name != self.backend:
                    self.state = "moved from %s to %s" % (self.backend, name)
                    return
                self.got, self.last = n, time.monotonic()
                await asyncio.sleep(0.1)
        except (ConnectionError, OSError) as e:
            self.state = type(e).__name__


async def report():
    while True:
        now = time.monotonic()
        recs = [{"i": c.i, "sport": c.sport, "backend": c.backend, "state": c.state,
                 "age_ms": int((now - c.last) * 1000) if c.last else None, "got": c.got} for c in conns]
        ok = sum(1 for c in conns if c.state == "ok")
        up = sum(1 for c in conns if c.state == "ok" and c.got > 0)
        tmp = STATUS + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"n": len(conns), "ok": ok, "answered": up,
                       "broken": sum(1 for c in conns if c.state not in ("ok", "opening")),
                       "max_age_ms": max([r["age_ms"] or 0 for r in recs if r["state"] == "ok"] or [0]),
                       "conns": recs}, f)
        os.replace(tmp, STATUS)
        await asyncio.sleep(0.2)


async def main():
    asyncio.get_running_loop().create_task(report())
    tasks = []
    for i in range(N):
        c = Conn(i)
        conns.append(c)
        tasks.append(asyncio.create_task(c.run()))
        if i % 20 == 19:
            await asyncio.sleep(0.05)  # no SYN storm: the backlog and the router see a steady ramp
    await asyncio.gather(*tasks)
    await asyncio.sleep(3600)


asyncio.run(main())
