# SPDX-License-Identifier: MIT
"""What the scapy packet tests share (tests/lb/lb_packets.py, lb_ct_packets.py,
lb_encap_packets.py, tests/decap/decap_packets.py, tests/fuzz/fuzz.py).

Driver: a luabpf process running a driver script, one command a line on its
stdin; each is answered by "@@ ok REST" or "@@ err MESSAGE" (the protocol of
tests/lb/lb_packets_driver.lua). Other lines it prints are shown as
"luabpf: ..." (or kept, for a batch of frames).
suite_main: the command line of the suites that run in a test's namespace.
"""
import argparse
import json
import subprocess
import sys


class Fatal(Exception):
    pass


def ip_json(netns, *args):
    out = subprocess.run(["ip", "-n", netns, "-j", *args], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out)


def iface(netns, name, permanent=False):
    """(ifindex, MAC, {neighbour address: its MAC}) of interface NAME in NETNS;
    PERMANENT: only the permanent neighbour entries."""
    link = ip_json(netns, "link", "show", "dev", name)[0]
    neigh = {n["dst"]: n["lladdr"] for n in ip_json(netns, "neigh", "show", "dev", name)
             if "lladdr" in n and (not permanent or "PERMANENT" in n.get("state", []))}
    return link["ifindex"], link["address"], neigh


class Driver:
    """luabpf running SCRIPT, inside NETNS when one is given."""

    def __init__(self, luabpf, script, netns=None):
        argv = [luabpf] + (["--netns", netns] if netns else []) + ["run", script]
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def answer(self, line, keep=None):
        """Reads up to the answer to LINE; the lines before it for which
        keep(line) is true go to keep's caller, the others are shown."""
        while True:
            out = self.p.stdout.readline()
            if not out:
                raise Fatal(f"luabpf exited (status {self.p.wait()}) on '{line[:80]}'")
            if out.startswith("@@ "):
                break
            if keep is None or not keep(out.rstrip("\n")):
                sys.stdout.write("luabpf: " + out)
        status, _, rest = out[3:].rstrip("\n").partition(" ")
        if status != "ok":
            raise Fatal(f"'{line[:80]}': {rest}")
        return rest

    def cmd(self, *words):
        line = " ".join(str(w) for w in words)
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        return self.answer(line)

    def close(self):
        """Ends the driver: it must exit with status 0."""
        try:
            self.cmd("close")
        finally:
            self.p.stdin.close()
            rc = self.p.wait(timeout=60)
        if rc != 0:
            raise Fatal(f"luabpf exited with status {rc}")


def suite_main(suite, doc):
    """Runs suite(args).main() with the options every namespace suite takes;
    a Fatal ends it with FAIL and status 1."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--luabpf", required=True)
    ap.add_argument("--netns", required=True)
    ap.add_argument("--iface", required=True)
    ap.add_argument("--script", required=True)
    ap.add_argument("--service", required=True)
    a = ap.parse_args()
    try:
        return suite(a).main()
    except Fatal as e:
        print(f"FAIL: {e}")
        return 1
