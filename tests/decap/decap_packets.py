# SPDX-License-Identifier: MIT
"""Packet tests of the tunnel decapsulator (bpf/decap/decap.bpf.c), checked by scapy.

Drives tests/decap/decap_driver.lua over a pipe: every case is a frame scapy
builds, run through test_run; the verdict, the one counter that moves and
the output frame (the inner packet behind the same Ethernet header, byte for
byte, or the input untouched) are compared with what is expected.
Exit status 0 when every case passed.
"""
import argparse
import os
import sys

from scapy.all import IP, TCP, UDP, Ether, ICMP, IPv6, Raw

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import lib_pkt  # noqa: E402
from lib_pkt import Fatal  # noqa: E402

OURS4, OURS6 = "10.1.0.11", "fd01::11"
LB4, LB6 = "10.0.0.2", "fd00::2"
CL4, CL6, VIP4, VIP6 = "10.0.0.1", "fd00::1", "10.0.100.1", "fd00:100::1"
GUE = 6080
MAC = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


class Driver(lib_pkt.Driver):
    def __init__(self, a):
        super().__init__(a.luabpf, a.script)

    def run(self, frame):
        verdict, moved, out = self.cmd("run", bytes(frame).hex()).split(" ")
        return verdict, moved, bytes.fromhex(out) if out != "-" else b""


def inner4(proto="tcp"):
    l4 = TCP(sport=40000, dport=80, flags="S") if proto == "tcp" else UDP(sport=40000, dport=53)
    return IP(src=CL4, dst=VIP4) / l4 / Raw(b"hello world")


def inner6(proto="tcp"):
    l4 = TCP(sport=40000, dport=80, flags="S") if proto == "tcp" else UDP(sport=40000, dport=53)
    return IPv6(src=CL6, dst=VIP6) / l4 / Raw(b"hello world")


def eth(v6):
    return Ether(type=0x86DD if v6 else 0x0800, **MAC)


def gue0(inner, hlen=0):
    """GUE variant 0: version 0, C 0, hlen words of options, proto, flags 0."""
    proto = 4 if inner.version == 4 else 41
    return Raw(bytes([hlen & 0x1f, proto, 0, 0]) + b"\xab" * (4 * hlen)) / inner


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--luabpf", required=True)
    ap.add_argument("--script", required=True)
    a = ap.parse_args()
    d = Driver(a)
    d.cmd("new", f"{OURS4},{OURS6}", GUE)
    fails = []

    def strips(name, outer, inner, reason):
        frame = eth(outer.version == 6) / outer
        verdict, moved, out = d.run(frame)
        want = bytes(eth(inner.version == 6) / inner)
        if verdict != "TC_ACT_UNSPEC" or moved != f"{reason}:1" or out != want:
            fails.append(f"{name}: got {verdict} {moved} {out.hex()}\n    want TC_ACT_UNSPEC {reason}:1 {want.hex()}")
        else:
            print(f"ok: {name}: stripped ({reason}), the inner packet byte for byte")

    def untouched(name, frame, reason):
        verdict, moved, out = d.run(frame)
        if verdict != "TC_ACT_UNSPEC" or moved != f"{reason}:1" or out != bytes(frame):
            fails.append(f"{name}: got {verdict} {moved} (output {'same' if out == bytes(frame) else 'changed'})"
                         f", want TC_ACT_UNSPEC {reason}:1, untouched")
        else:
            print(f"ok: {name}: passed untouched ({reason})")

    def dropped(name, frame, reason):
        verdict, moved, _ = d.run(frame)
        if verdict != "TC_ACT_SHOT" or moved != f"{reason}:1":
            fails.append(f"{name}: got {verdict} {moved}, want TC_ACT_SHOT {reason}:1")
        else:
            print(f"ok: {name}: dropped ({reason})")

    # Good: every encapsulation the balancer sends, TCP and UDP inside.
    for proto in ("tcp", "udp"):
        i4, i6 = inner4(proto), inner6(proto)
        strips(f"ipip 4in4 {proto}", IP(src=LB4, dst=OURS4, proto=4, flags="DF") / i4, i4, "ipip")
        strips(f"ipip 6in6 {proto}", IPv6(src=LB6, dst=OURS6, nh=41) / i6, i6, "ipip")
        strips(f"ipip 4in6 {proto}", IPv6(src=LB6, dst=OURS6, nh=4) / i4, i4, "ipip")
        strips(f"gue 4in4 {proto}", IP(src=LB4, dst=OURS4) / UDP(sport=50000, dport=GUE) / i4, i4, "gue")
        strips(f"gue 6in6 {proto}", IPv6(src=LB6, dst=OURS6) / UDP(sport=50000, dport=GUE) / i6, i6, "gue")
        strips(f"gue 4in6 {proto}", IPv6(src=LB6, dst=OURS6) / UDP(sport=50000, dport=GUE) / i4, i4, "gue")
    i4, i6 = inner4(), inner6()
    strips("gue variant 0, no options", IP(src=LB4, dst=OURS4) / UDP(sport=1, dport=GUE) / gue0(i4), i4, "gue")
    strips("gue variant 0, 2 option words", IPv6(src=LB6, dst=OURS6) / UDP(sport=1, dport=GUE) / gue0(i6, 2),
           i6, "gue")
    # Ethernet padding after a short tunnel packet stays behind the inner one.
    small = IP(src=CL4, dst=VIP4) / UDP(sport=1, dport=53)
    f = eth(False) / IP(src=LB4, dst=OURS4, proto=4) / small
    verdict, moved, out = d.run(bytes(f) + b"\0" * 6)
    if verdict != "TC_ACT_UNSPEC" or moved != "ipip:1" or out[:14 + 28] != bytes(eth(False) / small):
        fails.append(f"padded ipip: got {verdict} {moved} {out.hex()}")
    else:
        print("ok: padded ipip: stripped, the inner packet first")

    # Wrong outer address: someone else's tunnel, untouched.
    untouched("ipip to another address", eth(False) / IP(src=LB4, dst="10.1.0.99", proto=4) / i4,
              "pass_other_addr")
    untouched("gue to another address", eth(True) / IPv6(src=LB6, dst="fd01::99") / UDP(dport=GUE) / i6,
              "pass_other_addr")
    d.cmd("remove", OURS6)
    untouched("6in6 after its address was removed", eth(True) / IPv6(src=LB6, dst=OURS6, nh=41) / i6,
              "pass_other_addr")

    # Not ours: ordinary traffic, untouched.
    untouched("tcp to the backend", eth(False) / IP(src=CL4, dst=OURS4) / TCP(dport=22), "pass")
    untouched("udp to another port", eth(False) / IP(src=CL4, dst=OURS4) / UDP(dport=6081) / i4, "pass")
    untouched("icmp echo", eth(False) / IP(src=CL4, dst=OURS4) / ICMP(), "pass")
    untouched("ipv6 tcp", eth(True) / IPv6(src=CL6, dst=OURS6) / TCP(dport=80), "pass")
    untouched("arp-like other ethertype", Ether(type=0x0806, **MAC) / Raw(b"\0" * 28), "pass")
    untouched("gue control message", eth(False) / IP(src=LB4, dst=OURS4) / UDP(dport=GUE) /
              Raw(bytes([0x20, 0, 0, 0])), "pass_gue_other")
    untouched("fragment of a tunnel packet", eth(False) / IP(src=LB4, dst=OURS4, proto=4, flags="MF") / i4,
              "pass_fragment")

    # Truncated: a length past the packet, an inner header cut short.
    f = eth(False) / IP(src=LB4, dst=OURS4, proto=4) / i4
    raw = bytearray(bytes(f))
    dropped("outer length past the frame", bytes(raw[:-8]), "drop_truncated")
    cut = IP(src=LB4, dst=OURS4, proto=4, len=20 + 12) / Raw(bytes(i4)[:12])
    dropped("inner header cut short", eth(False) / cut, "drop_truncated")
    long_inner = IP(bytes(i4))
    long_inner.len = len(i4) + 40
    dropped("inner length past the outer", eth(False) / IP(src=LB4, dst=OURS4, proto=4) / Raw(bytes(long_inner)),
            "drop_truncated")
    dropped("gue udp length wrong", eth(False) / IP(src=LB4, dst=OURS4) / UDP(dport=GUE, len=12) / i4,
            "drop_truncated")
    # Bad headers.
    bad = eth(False) / IP(src=LB4, dst=OURS4, proto=4, chksum=0x1234) / i4
    dropped("outer ipv4 checksum wrong", bad, "drop_bad_header")
    dropped("ipip says ipv4, carries ipv6", eth(False) / IP(src=LB4, dst=OURS4, proto=4) / i6, "drop_bad_header")

    try:
        d.close()
    except Fatal as e:
        fails.append(str(e))
    for f in fails:
        print("FAIL:", f)
    return 1 if fails else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Fatal as e:
        print("FAIL:", e)
        sys.exit(1)
