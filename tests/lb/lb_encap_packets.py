# SPDX-License-Identifier: MIT
"""Packet tests of the balancer's tunnel modes (bpf/lb/lb_encap.h), checked by scapy.

Drives tests/lb/lb_encap_packets.lua over a pipe (lb_packets.py's Plane):
VIPs in mode ipip and gue, IPv4 and IPv6, TCP and UDP, backends behind
routers. Every output is compared field by field with the frame scapy
expects: the router's MAC, an outer header from the balancer to the backend
(TTL 64, DF, the inner TOS / traffic class, the protocol of the tunnel), the
GUE port, the outer IPv4 and UDP checksums recomputed by scapy, and the
client's packet after it byte for byte. The fields the flow hash chooses (GUE
source port, IPv6 flow label) must stay the same for a flow and spread over
flows. A packet with no room for the tunnel on a path of MTU 1400 comes back
to the client as ICMP "fragmentation needed" / ICMPv6 "packet too big" with
MTU 1400 less the tunnel, quoting the client's packet.
Exit status 0 when every case passed.
"""
import sys

from scapy.all import (ICMP, IP, TCP, UDP, Dot1Q, Ether, ICMPv6PacketTooBig, IPv6, Raw)

from lb_packets import Fatal, Plane, checksum_problems, field_diff, iface, suite_main

CL4, CL6 = "10.10.0.1", "fd10::1"
LB4, LB6 = "10.10.0.2", "fd10::2"
R1_4, R1_6, R2_4, R2_6 = "10.10.0.11", "fd10::11", "10.10.0.12", "fd10::12"  # the routers
GUE_DEFAULT = 6080

# name, vip v6, addr, port, proto, mode, encap_src, gue_port, backend, its router (v4/v6 neighbour)
VIPS = [
    ("ipip4t", False, "10.10.100.1", 80, "tcp", "ipip", LB4, None, "10.20.0.5", R1_4),
    ("ipip4u", False, "10.10.100.1", 53, "udp", "ipip", LB4, None, "10.20.0.5", R1_4),
    ("ipip6t", True, "fd10:100::1", 80, "tcp", "ipip", LB6, None, "fd20::5", R1_6),
    ("ipip6u", True, "fd10:100::1", 53, "udp", "ipip", LB6, None, "fd20::5", R1_6),
    ("ipip46t", False, "10.10.100.2", 80, "tcp", "ipip", LB6, None, "fd20::5", R1_6),
    ("gue4t", False, "10.10.100.3", 80, "tcp", "gue", LB4, None, "10.20.0.5", R1_4),
    ("gue4u", False, "10.10.100.3", 53, "udp", "gue", LB4, 7777, "10.20.0.5", R1_4),
    ("gue6t", True, "fd10:100::3", 80, "tcp", "gue", LB6, None, "fd20::5", R1_6),
    ("gue6u", True, "fd10:100::3", 53, "udp", "gue", LB6, 7777, "fd20::5", R1_6),
    ("gue46u", False, "10.10.100.4", 53, "udp", "gue", LB6, None, "fd20::5", R1_6),
    ("gue46t", False, "10.10.100.4", 80, "tcp", "gue", LB6, None, "fd20::5", R1_6),
    # Paths of MTU 1400:
    ("big4", False, "10.10.100.5", 80, "tcp", "ipip", LB4, None, "10.30.0.5", R2_4),
    ("big6", True, "fd10:100::5", 80, "tcp", "gue", LB6, None, "fd30::5", R2_6),
    ("big46", False, "10.10.100.6", 53, "udp", "gue", LB6, None, "fd30::5", R2_6),
    ("big6i", True, "fd10:100::6", 53, "udp", "ipip", LB6, None, "fd30::5", R2_6),
]
VIP = {v[0]: v for v in VIPS}


class Suite:
    def __init__(self, a):
        self.a = a
        self.plane = Plane(a)
        self.fails = 0
        self.sport = 40000
        self.ifindex, self.lbmac, self.mac = iface(a.netns, a.iface)

    def ok(self, cond, what, detail=""):
        if cond:
            print(f"ok: {what}")
        else:
            self.fails += 1
            print(f"FAIL: {what}" + (f"\n    {detail}" if detail else ""))
        return cond

    def client_frame(self, v, sport, size=None, data=None, vlan=None):
        """Ethernet [/ 802.1Q] / IP / TCP or UDP from the client to VIP v; size: the IP packet's length."""
        _, v6, addr, port, proto = VIP[v][:5]
        eth = Ether(src=self.mac[CL6 if v6 else CL4], dst=self.lbmac)
        if vlan:
            eth = eth / Dot1Q(vlan=vlan, prio=3)
        l3 = (IPv6(src=CL6, dst=addr, hlim=64, fl=0x12345, tc=0x28) if v6 else
              IP(src=CL4, dst=addr, ttl=64, id=0x4242, flags="DF", tos=0x28))
        l4 = (TCP(sport=sport, dport=port, flags="S", seq=0x01020304, window=64240) if proto == "tcp" else
              UDP(sport=sport, dport=port))
        hdr = len(l3 / l4)
        if data is None:
            n = (size - hdr) if size else 37 + sport % 50
            data = bytes((sport * 31 + i * 7 + 3) & 0xFF for i in range(n))
        return eth / l3 / l4 / Raw(data)

    def run(self, frame):
        return self.plane.run(self.ifindex, frame)

    def encapsulated(self, v, sport=None, size=None, label="new flow"):
        """A client packet to v: check the tunnel around it. Returns the output frame."""
        name, v6, addr, port, proto, mode, src, gport, backend, router = VIP[v]
        sport = sport or self.next_port()
        f = self.client_frame(v, sport, size)
        inner = bytes(f)[14:]
        verdict, moved, out = self.run(f)
        out6 = ":" in backend
        what = (f"{label}: {mode} {proto.upper()}/IPv{6 if v6 else 4} in IPv{6 if out6 else 4} "
                f"{CL6 if v6 else CL4}:{sport} -> {addr}:{port} to {backend} via {router}"
                f"{f' ({len(inner)}-byte packet)' if size else ''}")
        problems = []
        if verdict != "XDP_TX" or moved != {"forwarded": 1}:
            problems.append(f"verdict {verdict}, counters {moved}; want XDP_TX, forwarded+1")
        got = Ether(out) if out else Ether()
        tos = 0x28
        if out6:
            outer_ip = IPv6(src=src, dst=backend, hlim=64, tc=tos,
                            fl=got[IPv6].fl if IPv6 in got else 0,
                            nh=17 if mode == "gue" else (41 if v6 else 4))
        else:
            outer_ip = IP(src=src, dst=backend, ttl=64, id=0, flags="DF", tos=tos,
                          proto=17 if mode == "gue" else (41 if v6 else 4))
        want = Ether(src=self.lbmac, dst=self.mac[router], type=0x86DD if out6 else 0x0800) / outer_ip
        sp = None
        if mode == "gue":
            L = IPv6 if out6 else IP
            sp = got[L].payload.sport if L in got and isinstance(got[L].payload, UDP) else -1
            want = want / UDP(sport=max(sp, 0), dport=gport or GUE_DEFAULT)
            if not 32768 <= sp <= 65535:
                problems.append(f"GUE source port {sp} outside 32768-65535")
        want = Ether(bytes(want / Raw(inner)))
        problems += field_diff(want, out)
        problems += checksum_problems(out)
        if mode == "gue" and UDP in got and got[UDP].chksum == 0:
            problems.append("outer UDP checksum 0: the inner packet has one, so the outer must too")
        if not out.endswith(inner):
            problems.append("the client's packet is not carried unchanged")
        problems += [f"inner {p}" for p in checksum_problems(bytes(Ether(type=0x86DD if v6 else 0x0800)) + inner)]
        self.ok(not problems, what, "\n    ".join(problems) + (f"\n    got: {out.hex()}" if problems else ""))
        fl = got[IPv6].fl if out6 and IPv6 in got else None
        return sport, sp, fl

    def too_big(self, v, size):
        """A packet of size bytes has no room for v's tunnel: ICMP back to the client."""
        name, v6, addr, port, proto, mode, src, gport, backend, router = VIP[v]
        ovh = (40 if ":" in backend else 20) + (8 if mode == "gue" else 0)
        sport = self.next_port()
        f = self.client_frame(v, sport, size)
        inner = bytes(f)[14:]
        verdict, moved, out = self.run(f)
        mtu = 1400 - ovh
        cl = CL6 if v6 else CL4
        eth = Ether(src=self.lbmac, dst=self.mac[cl])
        if v6:
            want = eth / IPv6(src=addr, dst=cl, hlim=64, nh=58) / ICMPv6PacketTooBig(mtu=mtu) / Raw(inner[:64])
        else:
            want = (eth / IP(src=addr, dst=cl, ttl=64, id=0, flags=0, proto=1) /
                    ICMP(type=3, code=4, nexthopmtu=mtu) / Raw(inner[:64]))
        want = Ether(bytes(want))
        problems = []
        if verdict != "XDP_TX" or moved != {"icmp_too_big": 1}:
            problems.append(f"verdict {verdict}, counters {moved}; want XDP_TX, icmp_too_big+1")
        problems += field_diff(want, out)
        if out != bytes(want):
            problems.append(f"bytes differ:\n    got  {out.hex()}\n    want {bytes(want).hex()}")
        self.ok(not problems, f"too big: {size}-byte {proto.upper()}/IPv{6 if v6 else 4} to {v} ({mode}, "
                f"{ovh} bytes of tunnel, path MTU 1400) -> {'ICMPv6 packet too big' if v6 else 'ICMP frag needed'}"
                f" from {addr}, MTU {mtu}", "\n    ".join(problems))

    def next_port(self):
        self.sport += 1
        return self.sport

    def main(self):
        p = self.plane
        p.cmd("new", self.a.service)
        for name, v6, addr, port, proto, mode, src, gport, backend, _ in VIPS:
            p.cmd("vipx", name, addr, port, proto, mode, src, gport or "-")
            p.cmd("backend", name, "r", backend, port)
        for v in VIPS:
            self.ok(p.cmd("mode", v[0]) == v[5], f"stats show {v[0]}'s mode as {v[5]}")
        # Every encapsulation, a new flow and its next packet (the flow table's).
        for v in VIPS:
            sport, sp, fl = self.encapsulated(v[0])
            name, v6, addr, port, proto, mode, src, gport, backend, _ = v
            want = f"{mode}|{src} > {backend}" + (f" udp/{gport or GUE_DEFAULT}" if mode == "gue" else "")
            got = p.cmd("how", CL6 if v6 else CL4, sport, addr, port, proto)
            self.ok(got == want, f"which() says how {name}'s flow goes: {got}", f"want {want}")
            sport2, sp2, fl2 = self.encapsulated(v[0], sport=sport, label="same flow")
            if sp is not None:
                self.ok(sp == sp2, f"{v[0]}: a flow keeps its GUE source port ({sp}, {sp2})")
            if fl is not None:
                self.ok(fl == fl2 and fl != 0, f"{v[0]}: a flow keeps its IPv6 flow label (0x{fl:05x}, 0x{fl2:05x})")
        # The flow hash spreads flows over source ports (ECMP) and flow labels.
        ports = {self.encapsulated("gue4t", label="spread")[1] for _ in range(24)}
        self.ok(len(ports) >= 20, f"24 flows over GUE/IPv4 use {len(ports)} source ports (>= 20)")
        labels = {self.encapsulated("gue6t", label="spread")[2] for _ in range(24)}
        self.ok(len(labels) >= 20, f"24 flows over IPv6 use {len(labels)} flow labels (>= 20)")
        # The path's MTU: what fits goes, one byte more comes back as ICMP.
        for v, ovh in (("big4", 20), ("big6", 48), ("big46", 48), ("big6i", 40)):
            self.encapsulated(v, size=1400 - ovh, label="just fits")
            self.too_big(v, 1400 - ovh + 1)
            self.too_big(v, 1500)
        # A tagged frame: tunnelled inside its VLAN; too big: the ICMP goes back tagged.
        f = self.client_frame("gue4t", self.next_port(), vlan=7)
        verdict, moved, out = self.run(f)
        got = Ether(out)
        self.ok(verdict == "XDP_TX" and moved == {"forwarded": 1} and Dot1Q in got and got[Dot1Q].vlan == 7
                and got[Dot1Q].type == 0x0800 and out[18:18 + 20 + 8][9] == 17 and out.endswith(bytes(f)[18:])
                and not checksum_problems(out),
                "a VLAN 7 frame to gue4t: tunnelled inside VLAN 7, the client's packet unchanged",
                f"{verdict} {moved} {out.hex()}")
        f = self.client_frame("big4", self.next_port(), size=1500, vlan=7)
        verdict, moved, out = self.run(f)
        got = Ether(out)
        self.ok(verdict == "XDP_TX" and moved == {"icmp_too_big": 1} and Dot1Q in got and got[Dot1Q].vlan == 7
                and ICMP in got and got[ICMP].type == 3 and got[ICMP].nexthopmtu == 1380
                and got.dst == self.mac[CL4] and bytes(got[ICMP].payload)[:64] == bytes(f)[18:18 + 64]
                and not checksum_problems(out[:18 + 20]),
                "a 1500-byte VLAN 7 frame to big4: ICMP frag needed (MTU 1380) back to the client in VLAN 7",
                f"{verdict} {moved} {out.hex()}")

        # A UDP datagram over IPv4 without a checksum: the outer UDP checksum is 0 too.
        f = self.client_frame("gue4u", self.next_port())
        f[UDP].chksum = 0
        verdict, moved, out = self.run(Ether(bytes(f)))
        got = Ether(out)
        self.ok(verdict == "XDP_TX" and got[UDP].chksum == 0 and out.endswith(bytes(f)[14:]),
                "gue: an inner IPv4 UDP datagram without a checksum goes out with outer UDP checksum 0")
        # Misuse: clear errors.
        for words, text in (
            (("vipx", "bad1", "fd10:100::9", 80, "tcp", "ipip", LB4, "-"), "an IPv6 VIP's tunnels go over IPv6"),
            (("vipx", "bad2", "10.10.100.9", 80, "tcp", "ipip", LB4, 7777), "gue_port is for mode 'gue'"),
            (("vipx", "bad3", "10.10.100.9", 80, "tcp", "tunnel", LB4, "-"), "mode must be nat, dsr, ipip or gue"),
        ):
            try:
                p.cmd(*words)
                self.ok(False, f"{words[1]}: refused with '{text}'", "it was accepted")
            except Fatal as e:
                self.ok(text in str(e), f"{words[1]}: refused with '{text}'", str(e))
        try:
            p.cmd("backend", "ipip46t", "r4", "10.20.0.6", 80)
            self.ok(False, "a v4 backend on a VIP that tunnels over IPv6 is refused", "accepted")
        except Fatal as e:
            self.ok("sends its tunnels over IPv6" in str(e), "a v4 backend on a VIP that tunnels over IPv6 is refused",
                    str(e))
        p.close()
        print(f"{'FAIL' if self.fails else 'PASS'}: {self.fails} failed")
        return 1 if self.fails else 0


if __name__ == "__main__":
    sys.exit(suite_main(Suite, __doc__))
