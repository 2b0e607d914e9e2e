# SPDX-License-Identifier: MIT
"""Packet tests of the XDP load balancer (bpf/lb/lb.bpf.c), checked by scapy.

Drives tests/lb/lb_packets.lua (luabpf, inside the test's namespace) over a
pipe: builds a service with VIPs in both modes, IPv4 and IPv6, TCP and UDP,
then sends crafted frames through prog:test_run. Every output is compared
field by field with the frame scapy expects (MACs from the namespace's
neighbour table, addresses and ports per mode), and its IP and TCP/UDP
checksums are recomputed by scapy and compared with what the data plane
wrote. Every case names its verdict and the one reason counter that moves.
NAT replies are built from what the data plane actually sent the backend.

Exit status 0 when every case passed; each failure prints the case and what
differed.
"""
import os
import subprocess
import sys

from scapy.all import (ARP, GRE, ICMP, IP, SCTP, TCP, UDP, Dot1AD, Dot1Q, Ether, ICMPv6EchoRequest,
                       ICMPv6ND_NS, IPOption_Router_Alert, IPv6, IPv6ExtHdrDestOpt,
                       IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, NoPayload,
                       Padding, Raw)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from lib_pkt import Driver, Fatal, iface, suite_main  # noqa: E402,F401 (the other suites import these from here)

CL4, CL6 = "10.10.0.1", "fd10::1"
LB4, LB6 = "10.10.0.2", "fd10::2"
B = {  # backends: name -> (IPv4, IPv6); b9 has no neighbour entry, far no route
    "b1": ("10.10.0.11", "fd10::11"), "b2": ("10.10.0.12", "fd10::12"),
    "b9": ("10.10.0.19", "fd10::19"), "far": ("10.20.0.1", "fd20::1"),
}

# name, v6, addr, port, proto, mode, backends [(name, port)]
VIPS = [
    ("nat4t", False, "10.10.100.1", 80, "tcp", "nat", [("b1", 8080), ("b2", 8080)]),
    ("nat4u", False, "10.10.100.1", 53, "udp", "nat", [("b1", 5353), ("b2", 5353)]),
    ("dsr4t", False, "10.10.100.2", 80, "tcp", "dsr", [("b1", 80), ("b2", 80)]),
    ("dsr4u", False, "10.10.100.2", 53, "udp", "dsr", [("b1", 53), ("b2", 53)]),
    ("nat6t", True, "fd10:100::1", 80, "tcp", "nat", [("b1", 8080), ("b2", 8080)]),
    ("nat6u", True, "fd10:100::1", 53, "udp", "nat", [("b1", 5353), ("b2", 5353)]),
    ("dsr6t", True, "fd10:100::2", 80, "tcp", "dsr", [("b1", 80), ("b2", 80)]),
    ("dsr6u", True, "fd10:100::2", 53, "udp", "dsr", [("b1", 53), ("b2", 53)]),
    ("empty4", False, "10.10.100.3", 80, "tcp", "nat", []),
    ("empty6", True, "fd10:100::3", 80, "udp", "dsr", []),
    ("noneigh4", False, "10.10.100.4", 80, "tcp", "dsr", [("b9", 80)]),
    ("noneigh6", True, "fd10:100::4", 53, "udp", "nat", [("b9", 53)]),
    ("noroute4", False, "10.10.100.5", 80, "udp", "nat", [("far", 80)]),
    ("noroute6", True, "fd10:100::5", 80, "tcp", "dsr", [("far", 80)]),
    # Two VIPs on one backend port: the same client port collides in the NAT table.
    ("col4a", False, "10.10.100.6", 80, "tcp", "nat", [("b1", 8080)]),
    ("col4b", False, "10.10.100.6", 81, "tcp", "nat", [("b1", 8080)]),
    ("col6a", True, "fd10:100::6", 53, "udp", "nat", [("b1", 5353)]),
    ("col6b", True, "fd10:100::6", 54, "udp", "nat", [("b1", 5353)]),
]
VIP = {v[0]: v for v in VIPS}
PROTO_NUM = {"tcp": 6, "udp": 17}


class Plane(Driver):
    """tests/lb/lb_packets.lua (or SCRIPT) in the namespace, one command per line."""

    def __init__(self, a, script=None):
        super().__init__(a.luabpf, script or a.script, a.netns)

    def run(self, ifindex, frame):
        verdict, _, moved, out = self.cmd("run", ifindex, bytes(frame).hex()).split(" ")
        deltas = {}
        if moved != "-":
            for m in moved.split(","):
                k, v = m.split(":")
                deltas[k] = int(v)
        return verdict, deltas, bytes.fromhex(out) if out != "-" else b""


def fmt(name, v):
    if isinstance(v, int) and ("chksum" in name or name in ("type", "len", "plen")):
        return f"0x{v:04x}"
    if isinstance(v, bytes):
        return v.hex() if len(v) <= 24 else v[:24].hex() + f"... ({len(v)} bytes)"
    return repr(v)


def field_diff(want, got):
    """What differs between two frames, layer by layer, field by field."""
    w, g = Ether(bytes(want)), Ether(got)
    out = []
    while not isinstance(w, NoPayload):
        if type(g) is not type(w):
            out.append(f"layer {w.__class__.__name__}: got {g.__class__.__name__}")
            break
        layer = w.__class__.__name__
        for f in w.fields_desc:
            a, b = w.getfieldval(f.name), g.getfieldval(f.name)
            if a != b:
                out.append(f"{layer}.{f.name}: got {fmt(f.name, b)}, want {fmt(f.name, a)}")
        w, g = w.payload, g.payload
    if not out and bytes(want) != got:
        out.append(f"bytes differ: got {got.hex()}, want {bytes(want).hex()}")
    return out


def checksum_problems(frame):
    """Recompute the IP and L4 checksums of frame with scapy; say which are wrong."""
    out = []
    p = Ether(frame)
    for layer in (IP, TCP, UDP):
        if layer not in p:
            continue
        have = p[layer].chksum
        if layer is UDP and IP in p and have == 0:
            continue  # IPv4 UDP without a checksum: checked by the cases that send one
        q = p.copy()
        del q[layer].chksum
        want = Ether(bytes(q))[layer].chksum
        if have != want:
            out.append(f"{layer.__name__} checksum 0x{have:04x} is wrong: "
                       f"scapy computes 0x{want:04x}")
    return out


def strip_csums(p, keep_udp0):
    """Let scapy compute every checksum, except an IPv4 UDP checksum of 0 (none)."""
    for layer in (IP, TCP, UDP):
        if layer in p and not (layer is UDP and keep_udp0):
            del p[layer].chksum
    return p


class Suite:
    def __init__(self, a):
        self.a = a
        self.plane = None
        self.fails = 0
        self.n = 0
        self.vip_stats = {}  # vip -> [packets, new_flows] the cases expect
        self.sport = 40000
        self.ifindex, self.lbmac, self.mac = iface(a.netns, a.iface, permanent=True)

    # ---- building blocks ------------------------------------------------
    def next_port(self):
        self.sport += 1
        return self.sport

    @staticmethod
    def payload(n, seed=0):
        return bytes((seed * 31 + i * 7 + 3) & 0xFF for i in range(n))

    def frame(self, v6, src, dst, proto, sport, dport, data=b"", smac=None, vlan=None, **kw):
        eth = Ether(src=smac or self.mac[CL6 if v6 else CL4], dst=self.lbmac)
        if vlan == "8021ad":
            eth = eth / Dot1AD(vlan=200, prio=1)
        elif vlan:
            eth = eth / Dot1Q(vlan=vlan, prio=3)
        if v6:
            l3 = IPv6(src=src, dst=dst, hlim=64, fl=0x12345, tc=0x20)
        else:
            l3 = IP(src=src, dst=dst, ttl=64, id=kw.get("ipid", 0x4242), flags="DF", tos=0x10)
        if proto == "tcp":
            l4 = TCP(sport=sport, dport=dport, flags=kw.get("flags", "S"), seq=0x01020304,
                     ack=kw.get("ack", 0), window=64240,
                     options=kw.get("options", [("MSS", 1460), ("NOP", None),
                                                ("WScale", 7)]))
        else:
            l4 = UDP(sport=sport, dport=dport)
            if kw.get("udp_csum0"):
                l4.chksum = 0
        return eth / l3 / l4 / Raw(data) if data else eth / l3 / l4

    @staticmethod
    def rewritten(p, smac, dmac, src=None, dst=None, sport=None, dport=None):
        """p with new MACs and (NAT) addresses and ports; checksums left to scapy."""
        w = p.copy()
        keep_udp0 = IP in p and UDP in p and p[UDP].chksum == 0
        w[Ether].src, w[Ether].dst = smac, dmac
        l3 = w[IPv6] if IPv6 in w else w[IP]
        l4 = w[TCP] if TCP in w else w[UDP]
        if src:
            l3.src, l3.dst = src, dst
            l4.sport, l4.dport = sport, dport
        return strip_csums(w, keep_udp0)

    def which(self, v, src, sport):
        _, v6, addr, port, proto, _, _ = VIP[v]
        name, hit = self.plane.cmd("which", src, sport, addr, port, proto).split(" ")
        return (None if name == "-" else name), hit == "hit"

    def count(self, vip, new):
        s = self.vip_stats.setdefault(vip, [0, 0])
        s[0] += 1
        s[1] += 1 if new else 0

    # ---- one case -------------------------------------------------------
    def case(self, name, frame, verdict, reason, want=None, unchanged=False):
        """Run frame; check verdict, the one counter that moved, and the output."""
        self.n += 1
        got_v, moved, out = self.plane.run(self.ifindex, frame)
        problems = []
        if got_v != verdict:
            problems.append(f"verdict {got_v}, want {verdict}")
        if moved != {reason: 1}:
            have = ", ".join(f"{k}+{d}" for k, d in sorted(moved.items())) or "none"
            problems.append(f"counters moved: {have}; want {reason}+1 only")
        if unchanged and out != bytes(frame):
            problems.append("the frame was modified: " + "; ".join(field_diff(frame, out)))
        if want is not None:
            problems += field_diff(want, out)
            problems += checksum_problems(out)
        if problems:
            self.fails += 1
            print(f"FAIL: {name}:\n    " + "\n    ".join(problems))
            print(f"    sent: {bytes(frame).hex()}\n    got:  {out.hex()}")
        else:
            print(f"ok: {name} -> {verdict} {reason}")
        return out

    def expect(self, cond, what):
        self.n += 1
        if cond:
            print(f"ok: {what}")
        else:
            self.fails += 1
            print(f"FAIL: {what}")

    # ---- the service ----------------------------------------------------
    def setup(self):
        self.plane.cmd("new", self.a.service)
        for name, v6, addr, port, proto, mode, backends in VIPS:
            snat = (LB6 if v6 else LB4) if mode == "nat" else "-"
            self.plane.cmd("vip", name, addr, port, proto, mode, snat)
            for bname, bport in backends:
                self.plane.cmd("backend", name, bname, B[bname][v6], bport)

    # ---- forwarding, both modes, and NAT replies -------------------------
    def forward(self, label, v, sport=None, data=None, flags="S", want_lport=None, **kw):
        """One client packet to VIP v, checked against scapy's rewrite; returns
        (frame sent, output, backend) for replies and follow-ups."""
        _, v6, addr, port, proto, mode, backends = VIP[v]
        cl = CL6 if v6 else CL4
        sport = sport or self.next_port()
        data = self.payload(37 + sport % 50, sport) if data is None else data
        be, hit = self.which(v, cl, sport)
        if be is None:
            raise Fatal(f"{label}: service has no backend for {v}")
        bport = dict(backends)[be]
        baddr = B[be][v6]
        f = self.frame(v6, cl, addr, proto, sport, port, data, flags=flags, **kw)
        if mode == "nat":
            lport = want_lport or sport
            want = self.rewritten(f, self.lbmac, self.mac[baddr], LB6 if v6 else LB4, baddr,
                                  lport, bport)
        else:
            want = self.rewritten(f, self.lbmac, self.mac[baddr])
        out = self.case(f"{label}: {proto.upper()}/IPv{6 if v6 else 4} {mode.upper()} "
                        f"{cl}:{sport} -> {addr}:{port} to {be}{' (flow table)' if hit else ''}",
                        f, "XDP_TX", "forwarded", want=want)
        self.count(v, not hit)
        return f, out, be

    def reply(self, label, v, sent, out, **kw):
        """The backend's answer to what it got (from out): back from the VIP to the client."""
        _, v6, addr, port, proto, _, _ = VIP[v]
        L3, L4 = (IPv6 if v6 else IP), (TCP if proto == "tcp" else UDP)
        got = Ether(out)
        baddr, lb, bport, lport = got[L3].dst, got[L3].src, got[L4].dport, got[L4].sport
        cl, cport = sent[L3].src, sent[L4].sport
        data = self.payload(61, lport)
        r = self.frame(v6, baddr, lb, proto, bport, lport, data, smac=self.mac[baddr],
                       flags="SA", ack=0x01020305, **kw)
        want = self.rewritten(r, self.lbmac, self.mac[cl], addr, cl, port, cport)
        self.case(f"{label}: reply {baddr}:{bport} -> {lb}:{lport} back as {addr}:{port} -> "
                  f"{cl}:{cport}", r, "XDP_TX", "reply", want=want)

    def forwarding(self):
        for v in ("nat4t", "nat4u", "dsr4t", "dsr4u", "nat6t", "nat6u", "dsr6t", "dsr6u"):
            mode = VIP[v][5]
            for i in range(3):  # three flows: both backends get some, most likely
                f, out, be = self.forward("new flow", v)
                if mode == "nat":
                    self.expect(Ether(out)[TCP if VIP[v][4] == "tcp" else UDP].sport
                                == f[TCP if VIP[v][4] == "tcp" else UDP].sport,
                                f"{v}: a new NAT flow keeps the client's port when it is free")
                    self.reply("NAT", v, f, out)
                # The flow's next packet: same backend, from the flow table.
                self.forward("same flow", v, sport=self.sport, flags="A", options=[])
                if mode == "nat":
                    self.reply("NAT again", v, f, out)

        # UDP over IPv4 without a checksum: the rewrite leaves it 0.
        for v in ("nat4u", "dsr4u"):
            f, out, _ = self.forward("UDP checksum 0 stays 0", v, udp_csum0=True)
            if v == "nat4u":
                self.reply("UDP checksum 0 stays 0", v, f, out, udp_csum0=True)

        # Checksums that fold to their edge values after the rewrite: the
        # incremental update must give what a full computation gives
        # (0x0000 for TCP and the IPv4 header, 0xffff for UDP).
        for v in ("nat4t", "nat6t", "nat4u", "nat6u", "dsr4t"):
            self.edge_checksum(v, "l4")
        self.edge_checksum("nat4t", "ip")
        self.edge_checksum("nat4u", "ip")

        # 802.1Q and 802.1ad tags stay on the frame (XDP_TX back into the VLAN).
        for v in ("nat4t", "dsr4u", "nat6u", "dsr6t"):
            self.forward("VLAN 100", v, vlan=100)
        self.forward("802.1ad tag", "nat4u", vlan="8021ad")
        # A payload-less segment and one with a large payload.
        self.forward("no payload", "nat6t", data=b"")
        self.forward("1400-byte payload", "nat4u", data=self.payload(1400, 9))

    def edge_checksum(self, v, which):
        _, v6, addr, port, proto, mode, backends = VIP[v]
        cl = CL6 if v6 else CL4
        sport = self.next_port()
        be, _ = self.which(v, cl, sport)
        baddr = B[be][v6]
        L4 = TCP if proto == "tcp" else UDP

        def build(knob):
            data = knob.to_bytes(2, "big") + self.payload(20, sport)
            kw = {"options": []}
            if which == "ip":
                kw["ipid"], data = knob, self.payload(22, sport)
            f = self.frame(v6, cl, addr, proto, sport, port, data, **kw)
            if mode == "nat":
                w = self.rewritten(f, self.lbmac, self.mac[baddr], LB6 if v6 else LB4, baddr,
                                   sport, dict(backends)[be])
            else:
                w = self.rewritten(f, self.lbmac, self.mac[baddr])
            return f, Ether(bytes(w))

        layer = IP if which == "ip" else L4
        _, w = build(0)
        # A 16-bit word equal to the checksum brings the one's complement sum to 0xffff.
        f, w = build(w[layer].chksum)
        edge = 0xFFFF if layer is UDP else 0
        if w[layer].chksum != edge:
            raise Fatal(f"edge checksum for {v}: scapy gives 0x{w[layer].chksum:04x}")
        self.case(f"{layer.__name__} checksum 0x{edge:04x} after the rewrite: {v} to {be}",
                  f, "XDP_TX", "forwarded", want=w)
        self.count(v, True)

    def nat_ports(self):
        """Two flows from one client port to one backend port: the second takes another
        NAT port, and each reply finds its own VIP."""
        for a, b in (("col4a", "col4b"), ("col6a", "col6b")):
            proto = VIP[a][4]
            L4 = TCP if proto == "tcp" else UDP
            sport = self.next_port()
            f1, o1, _ = self.forward("NAT port", a, sport=sport)
            self.expect(Ether(o1)[L4].sport == sport, f"{a}: first flow keeps client port {sport}")
            # The second's port is the data plane's choice: take it from the output.
            f = self.frame(VIP[b][1], f1[IPv6 if VIP[b][1] else IP].src, VIP[b][2], proto,
                           sport, VIP[b][3], self.payload(40, 1))
            v, moved, o2 = self.plane.run(self.ifindex, f)
            lport = Ether(o2)[L4].sport if o2 and L4 in Ether(o2) else None
            self.expect(v == "XDP_TX" and moved == {"forwarded": 1} and lport is not None
                        and lport != sport and 1024 <= lport <= 65535,
                        f"{b}: colliding flow gets another NAT port ({v}, {moved}, port {lport}, "
                        f"client's {sport})")
            self.count(b, True)
            f2, o2b, _ = self.forward("NAT port, retransmit", b, sport=sport, want_lport=lport)
            self.reply("NAT port", a, f1, o1)
            self.reply("NAT port", b, f2, o2b)
            # Its reply mapping evicted, the flow keeps its port (the client's
            # is taken by a): made again on the next packet, not a new flow.
            gone = self.plane.cmd("nat_forget", lport)
            self.expect(gone == "1", f"{b}: its reply mapping on port {lport} deleted ({gone})")
            f3, o3, _ = self.forward("NAT port, mapping made again", b, sport=sport,
                                     want_lport=lport, flags="A")
            self.reply("NAT port, mapping made again", b, f3, o3)

    # ---- drops and passes ------------------------------------------------
    def failures(self):
        for v, reason in (("empty4", "drop_no_backend"), ("empty6", "drop_no_backend"),
                          ("noneigh4", "drop_no_neigh"), ("noneigh6", "drop_no_neigh"),
                          ("noroute4", "drop_fib"), ("noroute6", "drop_fib")):
            _, v6, addr, port, proto, mode, backends = VIP[v]
            sport = self.next_port()
            f = self.frame(v6, CL6 if v6 else CL4, addr, proto, sport, port, b"x" * 20)
            what = {"drop_no_backend": "a VIP with no backends",
                    "drop_no_neigh": "the backend's neighbour is missing",
                    "drop_fib": "no route to the backend"}[reason]
            self.case(f"{what}: {proto.upper()}/IPv{6 if v6 else 4} {mode.upper()} {v}", f,
                      "XDP_DROP", reason)
            if backends:
                self.count(v, True)

        self.forwarding_off(count=True)

    def forwarding_off(self, count):
        """Forwarding off on the ingress interface: the FIB says so. COUNT: the
        dropped packet counts as its VIP's traffic."""
        for v6, v in ((False, "nat4t"), (True, "dsr6u")):
            key = f"net.ipv{6 if v6 else 4}.conf.{self.a.iface}.forwarding"
            self.sysctl(key, 0)
            try:
                _, _, addr, port, proto, _, _ = VIP[v]
                f = self.frame(v6, CL6 if v6 else CL4, addr, proto, self.next_port(), port,
                               b"y" * 9)
                self.case(f"forwarding off on {self.a.iface}: {v}", f, "XDP_DROP",
                          "drop_fwd_disabled")
                if count:
                    self.count(v, True)
            finally:
                self.sysctl(key, 1)

    def sysctl(self, key, val):
        subprocess.run(["ip", "netns", "exec", self.a.netns, "sysctl", "-qw", f"{key}={val}"],
                       check=True)

    def malformed(self):
        cm4, cm6 = self.mac[CL4], self.mac[CL6]
        e4 = Ether(src=cm4, dst=self.lbmac)
        e6 = Ether(src=cm6, dst=self.lbmac)
        V4, V6 = "10.10.100.1", "fd10:100::1"
        tcp4 = IP(src=CL4, dst=V4) / TCP(sport=33333, dport=80)
        P, D = "XDP_PASS", "XDP_DROP"
        table = [
            # name, frame, verdict, counter
            ("runt: 802.1Q tag cut short (16 bytes)",
             Ether(src=cm4, dst=self.lbmac, type=0x8100) / Raw(b"\x00\x64"), P, "pass_runt"),
            # (Frames under 14 bytes never reach the program: test_run refuses them.)
            ("Ethernet header only (14 bytes), IPv4 type: no IP header",
             Ether(src=cm4, dst=self.lbmac, type=0x0800), D, "drop_bad_ip"),
            ("IPv4 header cut short (12 of 20 bytes)",
             Ether(src=cm4, dst=self.lbmac, type=0x0800) / Raw(bytes(IP(src=CL4, dst=V4))[:12]),
             D, "drop_bad_ip"),
            ("IPv6 header cut short (30 of 40 bytes)",
             Ether(src=cm6, dst=self.lbmac, type=0x86DD) / Raw(bytes(IPv6(src=CL6, dst=V6))[:30]),
             D, "drop_bad_ip"),
            ("IPv4 IHL 4", e4 / IP(src=CL4, dst=V4, ihl=4) / TCP(dport=80), D, "drop_bad_ip"),
            ("IPv4 IHL 0", e4 / IP(src=CL4, dst=V4, ihl=0) / TCP(dport=80), D, "drop_bad_ip"),
            ("IPv4 version 6 in an IPv4 frame",
             e4 / IP(src=CL4, dst=V4, version=6) / TCP(dport=80), D, "drop_bad_ip"),
            ("IPv4 total length beyond the frame",
             e4 / IP(src=CL4, dst=V4, len=200) / TCP(dport=80), D, "drop_bad_ip"),
            ("IPv4 total length shorter than its header",
             e4 / IP(src=CL4, dst=V4, len=16) / TCP(dport=80), D, "drop_bad_ip"),
            ("IPv6 payload length beyond the frame",
             e6 / IPv6(src=CL6, dst=V6, plen=500) / TCP(dport=80), D, "drop_bad_ip"),
            ("IPv4 options (router alert) to a VIP",
             e4 / IP(src=CL4, dst=V4, options=[IPOption_Router_Alert()]) / TCP(dport=80),
             D, "drop_ip_options"),
            ("IPv4 options to a non-VIP address",
             e4 / IP(src=CL4, dst="10.10.0.50", options=[IPOption_Router_Alert()]) / TCP(),
             P, "pass_not_vip"),
            ("IPv4 options to the balancer's own (NAT) address",
             e4 / IP(src=CL4, dst=LB4, options=[IPOption_Router_Alert()]) / TCP(dport=22),
             P, "pass_not_vip"),
            ("IPv4 first fragment (MF) to a VIP",
             e4 / IP(src=CL4, dst=V4, flags="MF", id=7) / UDP(dport=53) / Raw(b"a" * 16),
             D, "drop_fragment"),
            ("IPv4 later fragment (offset 3) to a VIP",
             e4 / IP(src=CL4, dst=V4, frag=3, proto=17, id=7) / Raw(b"a" * 16), D,
             "drop_fragment"),
            ("IPv4 fragment to the balancer's own (NAT) address",
             e4 / IP(src=CL4, dst=LB4, flags="MF", id=8) / ICMP() / Raw(b"p" * 32), P,
             "pass_not_vip"),
            ("IPv4 fragment to a non-VIP address",
             e4 / IP(src=CL4, dst="10.10.0.50", frag=10, proto=17) / Raw(b"a" * 8), P,
             "pass_not_vip"),
            ("IPv6 fragment header to a VIP",
             e6 / IPv6(src=CL6, dst=V6) / IPv6ExtHdrFragment(m=1, id=9) / UDP(dport=53) /
             Raw(b"a" * 16), D, "drop_fragment"),
            ("IPv6 fragment to the balancer's own (NAT) address",
             e6 / IPv6(src=CL6, dst=LB6) / IPv6ExtHdrFragment(m=1, id=9) /
             ICMPv6EchoRequest() / Raw(b"p" * 32), P, "pass_not_vip"),
            ("IPv6 hop-by-hop options to a VIP",
             e6 / IPv6(src=CL6, dst=V6) / IPv6ExtHdrHopByHop() / TCP(dport=80), D,
             "drop_ip_options"),
            ("IPv6 routing header to a VIP",
             e6 / IPv6(src=CL6, dst=V6) / IPv6ExtHdrRouting() / TCP(dport=80), D,
             "drop_ip_options"),
            ("IPv6 destination options to a VIP",
             e6 / IPv6(src=CL6, dst=V6) / IPv6ExtHdrDestOpt() / UDP(dport=53), D,
             "drop_ip_options"),
            ("IPv6 hop-by-hop options to the balancer's own (NAT) address",
             e6 / IPv6(src=CL6, dst=LB6) / IPv6ExtHdrHopByHop() / TCP(dport=22), P,
             "pass_not_vip"),
            ("TCP header cut short (10 of 20 bytes) to a VIP, IPv4",
             e4 / IP(src=CL4, dst=V4, proto=6) / Raw(bytes(TCP(dport=80))[:10]), D,
             "drop_bad_l4"),
            ("TCP header cut short to a VIP, IPv4, frame padded to 60 bytes",
             e4 / IP(src=CL4, dst=V4, proto=6) / Raw(bytes(TCP(dport=80))[:10]) /
             Padding(b"\0" * 16), D, "drop_bad_l4"),
            ("UDP header cut short (4 of 8 bytes) to a VIP, IPv4",
             e4 / IP(src=CL4, dst=V4, proto=17) / Raw(bytes(UDP(dport=53))[:4]), D,
             "drop_bad_l4"),
            ("UDP header cut short to a VIP, IPv4, frame padded to 60 bytes",
             e4 / IP(src=CL4, dst=V4, proto=17) / Raw(bytes(UDP(dport=53))[:4]) /
             Padding(b"\0" * 22), D, "drop_bad_l4"),
            ("TCP header cut short (12 bytes) to a VIP, IPv6",
             e6 / IPv6(src=CL6, dst=V6, nh=6) / Raw(bytes(TCP(dport=80))[:12]), D,
             "drop_bad_l4"),
            ("UDP header cut short (4 bytes) to a VIP, IPv6",
             e6 / IPv6(src=CL6, dst=V6, nh=17) / Raw(bytes(UDP(dport=53))[:4]), D,
             "drop_bad_l4"),
            ("UDP header cut short to a VIP, IPv6, frame padded to 60 bytes",
             e6 / IPv6(src=CL6, dst=V6, nh=17) / Raw(bytes(UDP(dport=53))[:4]) /
             Padding(b"\0" * 6), D, "drop_bad_l4"),
            ("ICMP echo to a VIP", e4 / IP(src=CL4, dst=V4) / ICMP() / Raw(b"ping"), P,
             "pass_non_l4"),
            ("ICMPv6 echo to a VIP", e6 / IPv6(src=CL6, dst=V6) / ICMPv6EchoRequest(), P,
             "pass_non_l4"),
            ("ICMPv6 neighbour solicitation for the balancer",
             e6 / IPv6(src=CL6, dst=LB6, hlim=255) / ICMPv6ND_NS(tgt=LB6), P, "pass_non_l4"),
            ("GRE to a VIP", e4 / IP(src=CL4, dst=V4) / GRE() / IP(), P, "pass_non_l4"),
            ("SCTP to an IPv6 VIP", e6 / IPv6(src=CL6, dst=V6) / SCTP(dport=80), P,
             "pass_non_l4"),
            ("IPv6 no next header to a VIP", e6 / IPv6(src=CL6, dst=V6, nh=59), P,
             "pass_non_l4"),
            ("TCP to a VIP address on a port with no service", e4 / IP(src=CL4, dst=V4) /
             TCP(sport=33333, dport=443), P, "pass_other_port"),
            ("UDP to a TCP-only VIP port", e4 / IP(src=CL4, dst="10.10.100.2") /
             UDP(dport=80), P, "pass_other_port"),
            ("IPv6 TCP to a UDP-only VIP port", e6 / IPv6(src=CL6, dst=V6) / TCP(dport=53),
             P, "pass_other_port"),
            ("TCP to the balancer's own address, no NAT flow (ssh)",
             e4 / IP(src=CL4, dst=LB4) / TCP(sport=33333, dport=22), P, "pass_other_port"),
            ("ARP request for a VIP",
             Ether(src=cm4, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=CL4, pdst=V4, hwsrc=cm4), P,
             "pass_not_vip"),
            ("LLDP frame", Ether(src=cm4, dst="01:80:c2:00:00:0e", type=0x88CC) /
             Raw(b"\x02\x07\x04" + b"\0" * 30), P, "pass_not_vip"),
            ("IPv4 TCP to a non-VIP address", e4 / IP(src=CL4, dst="10.10.0.50") /
             TCP(dport=80), P, "pass_not_vip"),
            ("IPv6 UDP to a non-VIP address", e6 / IPv6(src=CL6, dst="fd10::50") /
             UDP(dport=53), P, "pass_not_vip"),
            ("VLAN-tagged TCP to a non-VIP address", e4 / Dot1Q(vlan=7) / IP(src=CL4,
             dst="10.10.0.50") / TCP(dport=80), P, "pass_not_vip"),
            # One tag is parsed: a double-tagged frame is not looked into.
            ("QinQ (802.1ad + 802.1Q) to a VIP: not parsed", e4 / Dot1AD(vlan=2) /
             Dot1Q(vlan=3) / tcp4, P, "pass_not_vip"),
        ]
        for name, frame, verdict, reason in table:
            self.case(name, frame, verdict, reason, unchanged=(verdict == P))

    # ---- draining and removal keep or move the flow ----------------------
    def drain_and_remove(self):
        v = "dsr4t"
        f, out, be = self.forward("before drain", v)
        sport = self.sport
        other = "b2" if be == "b1" else "b1"
        self.plane.cmd("weight", v, be, 0)
        self.forward(f"{be} draining, flow stays", v, sport=sport, flags="A", options=[])
        picks = {self.which(v, CL4, p)[0] for p in range(20000, 20040)}
        self.expect(picks == {other}, f"while {be} drains, new flows go to {other} only "
                    f"(got {sorted(picks)})")
        self.plane.cmd("remove", v, be)
        # Removed: the flow table still names it; the data plane must choose again.
        got_v, moved, o = self.plane.run(self.ifindex, self.frame(False, CL4, VIP[v][2], "tcp",
                                                                  sport, 80, b"z", flags="A"))
        dmac = Ether(o)[Ether].dst if o else None
        self.expect(got_v == "XDP_TX" and moved == {"forwarded": 1}
                    and dmac == self.mac[B[other][0]],
                    f"{be} removed: its flow moves to {other} ({got_v}, {moved}, dst MAC {dmac})")
        self.count(v, True)

    def stats(self):
        got = {}
        for item in self.plane.cmd("stats").split(" "):
            name, packets, new = item.split(":")
            got[name] = [int(packets), int(new)]
        for v in VIP:
            want = self.vip_stats.get(v, [0, 0])
            self.expect(got.get(v) == want, f"VIP {v} counters (packets, new flows): "
                        f"{got.get(v)}, want {want}")

    def need_neighbours(self):
        missing = [a for a in (CL4, CL6, *B["b1"], *B["b2"]) if a not in self.mac]
        if missing:
            raise Fatal(f"no permanent neighbour entries for {missing} in {self.a.netns}")

    def steps(self):
        """What main runs after setup, in order (a suite built on this one names its own)."""
        return [self.forwarding, self.nat_ports, self.failures, self.malformed, self.drain_and_remove, self.stats]

    def main(self):
        self.need_neighbours()
        self.plane = Plane(self.a)
        try:
            self.setup()
            for step in self.steps():
                step()
        finally:
            self.plane.close()
        print(f"{self.n - self.fails} of {self.n} checks passed")
        return 1 if self.fails else 0


if __name__ == "__main__":
    sys.exit(suite_main(Suite, __doc__))
