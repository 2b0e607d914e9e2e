# SPDX-License-Identifier: MIT
"""Packet fuzzer for the data planes test_run can drive, checked by scapy.

Each program runs in one luabpf process (tests/lb/lb_packets_driver.lua's
protocol, "batch" command), fed frames in batches: mutations of valid
Ethernet/VLAN/IPv4/IPv6/TCP/UDP frames built by scapy (bit flips, bytes,
truncation, trailing bytes, header fields poked) and random bytes, from a
fixed seed. Every output frame is parsed by scapy and checked against its
input (tests/fuzz/README.md lists the checks); the reason counters must sum
to the frames run, class by class with the verdicts.

Programs: lb (bpf/lb/lb.bpf.c, NAT, DSR, ipip and gue VIPs), ct (lb_ct.bpf.c, tc),
ctxdp (lb_ct_xdp.bpf.c, the fast path), filter (bpf/filter/filter.bpf.c).
Exit status 0 when every check passed.
"""
import argparse
import os
import random
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lb"))
from lb_packets import B, CL4, CL6, LB4, LB6, Fatal  # noqa: E402
from lib_pkt import Driver, iface  # noqa: E402
from lb_packets import VIPS as LB_VIPS  # noqa: E402
from scapy.all import (ARP, ICMP, IP, TCP, UDP, Dot1Q, Ether, ICMPv6EchoRequest,  # noqa: E402
                       IPOption_Router_Alert, IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, Raw)
from scapy.layers.inet6 import in6_chksum  # noqa: E402
from scapy.utils import checksum  # noqa: E402

# The packet test's plain NAT and DSR VIPs (its first eight: TCP and UDP, v4 and v6).
VIPS = LB_VIPS[:8]
# Tunnel VIPs, the lb program's only (docs/lb.md, ipip and gue): addresses of their own.
ENCAP_VIPS = [("ipip4t", False, "10.10.100.7", 80, "tcp", "ipip", [("b1", 80), ("b2", 80)]),
              ("gue6u", True, "fd10:100::7", 53, "udp", "gue", [("b1", 53), ("b2", 53)])]
GUE_PORT = 6080
PROTO = {"tcp": 6, "udp": 17}
LB_TX = {"forwarded", "reply", "ct_fast", "ct_fast_reply", "icmp_too_big"}
FILTER_DROPS = {"deny_src", "deny_port", "deny_proto", "banned", "rate_pps", "rate_bps",
                "default_drop", "malformed", "syn_cookie_bad"}
VERDICTS = {"lb": {"XDP_TX", "XDP_PASS", "XDP_DROP"}, "ct": {"TC_ACT_OK", "TC_ACT_SHOT"},
            "ctxdp": {"XDP_TX", "XDP_PASS"}, "filter": {"XDP_TX", "XDP_PASS", "XDP_DROP"}}


class Plane(Driver):
    """One luabpf process running a driver script, in the namespace."""

    def __init__(self, a, script):
        super().__init__(a.luabpf, script, a.netns)

    def batch(self, prog, ifindex, frames):
        line = f"batch {prog} {ifindex} {len(frames)}"
        self.p.stdin.write(line + "\n" + "".join(f.hex() + "\n" for f in frames))
        self.p.stdin.flush()
        got = []

        def keep(out):  # a frame's answer: its verdict (or ERR:) and the frame
            if out.split(" ", 1)[0] in ALL_VERDICTS or out.startswith("ERR:"):
                got.append(out)
                return True
            return False
        self.answer(line, keep)
        if len(got) != len(frames):
            raise Fatal(f"batch: {len(got)} answers for {len(frames)} frames")
        out = []
        for g in got:
            v, h = g.split(" ")
            out.append((v, bytes.fromhex(h) if h != "-" else b""))
        return out

    def reasons(self):
        return {k: int(v) for k, v in (w.split(":") for w in self.cmd("reasons").split())}


ALL_VERDICTS = set().union(*VERDICTS.values()) | {"?", "XDP_ABORTED", "XDP_REDIRECT",
                                                  "TC_ACT_REDIRECT", "TC_ACT_UNSPEC"}


def l3_of(b):
    """(offset of the IP header, EtherType) for one optional 802.1Q/ad tag."""
    if len(b) >= 18 and b[12:14] in (b"\x81\x00", b"\x88\xa8"):
        return 18, b[16:18]
    return 14, b[12:14]


def segment(b):
    """What the IP header says: (v6, l3, l4, proto, the L4 segment) or None when
    the frame is not a whole, unfragmented IPv4/IPv6 packet without extensions."""
    l3, et = l3_of(b)
    if et == b"\x08\x00" and len(b) >= l3 + 20 and b[l3] >> 4 == 4:
        ihl = (b[l3] & 15) * 4
        tot = struct.unpack_from("!H", b, l3 + 2)[0]
        if ihl < 20 or tot < ihl or l3 + tot > len(b):
            return None
        return False, l3, l3 + ihl, b[l3 + 9], b[l3 + ihl:l3 + tot]
    if et == b"\x86\xdd" and len(b) >= l3 + 40 and b[l3] >> 4 == 6:
        plen = struct.unpack_from("!H", b, l3 + 4)[0]
        if l3 + 40 + plen > len(b):
            return None
        return True, l3, l3 + 40, b[l3 + 6], b[l3 + 40:l3 + 40 + plen]
    return None


def l4_csum_ok(b, s):
    v6, l3, l4, proto, seg = s
    if proto not in (6, 17) or len(seg) < (20 if proto == 6 else 8):
        return None
    if not v6 and proto == 17 and seg[6:8] == b"\0\0":
        return None  # IPv4 UDP without a checksum
    if v6:
        return in6_chksum(proto, IPv6(bytes(b[l3:l3 + 40])), bytes(seg)) == 0
    ph = b[l3 + 12:l3 + 20] + struct.pack("!BBH", 0, proto, len(seg))
    return checksum(bytes(ph + seg)) == 0


def ip_csum_ok(b, s):
    return s[0] or checksum(bytes(b[s[1]:s[2]])) == 0


def structural(s):
    """Fault 8's list: what no backend should get. '' when the segment is sound."""
    v6, l3, l4, proto, seg = s
    if proto == 6 and len(seg) >= 20:
        doff = (seg[12] >> 4) * 4
        if doff < 20 or doff > len(seg):
            return f"TCP data offset {doff} in a {len(seg)}-byte segment"
    if proto == 17 and len(seg) >= 8:
        ulen = struct.unpack_from("!H", seg, 4)[0]
        if ulen != len(seg):
            return f"UDP length {ulen}, IP says {len(seg)}"
    return ""


def unsendable(b, s, did, moved):
    """Why frame B, whose IP header says S (segment(B), or None: not whole),
    must not have been DID ("sent on", "tunnelled"; MOVED in fault 8's message:
    "forwarded", "tunnelled"): (kind, message), or None when it may have."""
    if s is None or s[3] not in (6, 17):
        return "not-l4", f"{did} a frame that is not a whole, unfragmented TCP/UDP packet"
    v6, l3, l4 = s[0], s[1], s[2]
    if not v6 and l4 - l3 != 20:
        return "ip-options", f"IPv4 options {did} (docs: drop_ip_options)"
    if not v6 and b[l3 + 6] & 0x3f or not v6 and b[l3 + 7]:
        return "fragment", f"an IPv4 fragment {did} (docs: drop_fragment)"
    why = structural(s)
    if why:
        return "fault8", f"fault 8 (issue 17, lb.bpf.c must drop it): {moved} with {why}"
    return None


class Fuzz:
    def __init__(self, a):
        self.a = a
        self.ifindex, self.lbmac, self.mac = iface(a.netns, a.iface)
        self.fails = 0
        self.shown = {}
        self.flows = {}  # NAT: (proto, backend addr, backend port, NAT port) -> client side

    def fail(self, prog, kind, msg, inb, outb):
        self.fails += 1
        kind = kind if kind == "fault8" else f"{prog}/{kind}"
        n = self.shown.get(kind, 0)
        self.shown[kind] = n + 1
        if n < 5:
            print(f"FAIL [{prog}] {kind}: {msg}\n    sent {bytes(inb).hex()}\n    got  {outb.hex()}")

    # ---- frames -------------------------------------------------------------
    def templates(self, prog, rng):
        lm, cm4, cm6 = self.lbmac, self.mac[CL4], self.mac[CL6]
        out = []
        vips = VIPS + (ENCAP_VIPS if prog == "lb" else []) if prog != "filter" else [("f", False, LB4, 80, "tcp", "", []),
                                              ("f", True, LB6, 80, "tcp", "", []),
                                              ("f", False, LB4, 53, "udp", "", [])]
        for _, v6, addr, port, proto, _, _ in vips:
            for i in range(12):
                e = Ether(src=cm6 if v6 else cm4, dst=lm)
                if i % 4 == 3:
                    e = e / Dot1Q(vlan=5)
                src = CL6 if v6 else CL4
                l3 = IPv6(src=src, dst=addr) if v6 else IP(src=src, dst=addr, flags="DF")
                if i == 5 and not v6:
                    l3.options = [IPOption_Router_Alert()]
                sport = 30000 + rng.randrange(30000)
                if proto == "tcp":
                    l4 = TCP(sport=sport, dport=port, flags=rng.choice(["S", "A", "PA", "S", "FA", "R"]),
                             seq=rng.randrange(2**32), options=rng.choice([[], [("MSS", 1400)],
                                                                          [("MSS", 1460), ("NOP", None), ("WScale", 7)]]))
                else:
                    l4 = UDP(sport=sport, dport=port)
                data = Raw(bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 17, 100]))))
                out.append(bytes(e / l3 / l4 / data) if len(data) else bytes(e / l3 / l4))
        e4, e6 = Ether(src=cm4, dst=lm), Ether(src=cm6, dst=lm)
        out += [bytes(e4 / IP(src=CL4, dst="10.10.100.1") / ICMP()),
                bytes(e6 / IPv6(src=CL6, dst="fd10:100::1") / ICMPv6EchoRequest()),
                bytes(e4 / IP(src=CL4, dst="10.10.100.1", flags="MF") / UDP(dport=53) / Raw(b"x" * 20)),
                bytes(e6 / IPv6(src=CL6, dst="fd10:100::1") / IPv6ExtHdrFragment() / TCP(dport=80)),
                bytes(e6 / IPv6(src=CL6, dst="fd10:100::2") / IPv6ExtHdrHopByHop() / UDP(dport=53)),
                bytes(e6 / IPv6(src=CL6, dst=LB6) / IPv6ExtHdrFragment() / TCP(dport=80, flags="S")),
                bytes(Ether(src=cm4, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=CL4, pdst=LB4)),
                bytes(e4 / IP(src="192.0.2.7", dst=LB4) / TCP(dport=80, flags="S")),
                bytes(e4 / IP(src=CL4, dst=LB4) / TCP(dport=23)),
                bytes(e4 / IP(src=CL4, dst=LB4) / TCP(dport=22)),
                bytes(e4 / IP(src=CL4, dst=LB4, proto=47) / Raw(b"\0" * 8))]
        return out

    @staticmethod
    def mutate(rng, t):
        b = bytearray(t)
        op = rng.randrange(10)
        l3, et = l3_of(b)
        l4 = l3 + ((b[l3] & 15) * 4 if et == b"\x08\x00" and len(b) > l3 else 40)
        if op == 0:
            return bytes(b)  # valid
        if op == 1:
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(min(len(b), 90))] ^= 1 << rng.randrange(8)
        elif op == 2:
            b[rng.randrange(min(len(b), 90))] = rng.randrange(256)
        elif op == 3:
            del b[rng.randint(14, len(b)):]
        elif op == 4:
            b += bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
        else:  # a header field, where fuzzing finds bugs
            if et == b"\x08\x00":
                pos, vals = rng.choice([(l3, [0x44, 0x46, 0x4f, 0x45, 0x65, rng.randrange(256)]),
                                        (l3 + 2, None), (l3 + 3, None), (l3 + 6, [0x20, 0x00, 0x40, 0x01]),
                                        (l3 + 9, [6, 17, 1, 47, rng.randrange(256)]), (l3 + 10, None),
                                        (l4 + 12, [0x00, 0x40, 0x50, 0x60, 0xf0]), (l4 + 13, None),
                                        (l4 + 4, None), (l4 + 5, None), (l4 + 16, None), (l4 + 6, None)])
            else:
                pos, vals = rng.choice([(l3 + 4, None), (l3 + 5, None), (l3 + 6, [6, 17, 44, 0, 43, 60, 58]),
                                        (l4 + 12, [0x00, 0x40, 0x50, 0xf0]), (l4 + 13, None),
                                        (l4 + 4, None), (l4 + 5, None), (l4 + 16, None)])
            if pos < len(b):
                b[pos] = rng.choice(vals) if vals else rng.randrange(256)
        return bytes(b)

    def frames(self, prog, rng, tmpl, n):
        out = []
        for _ in range(n):
            r = rng.random()
            if r < 0.08:  # random bytes; half behind a plausible Ethernet header
                body = bytes(rng.randrange(256) for _ in range(rng.randint(0, 120)))
                if r < 0.04:
                    body = bytes.fromhex(self.lbmac.replace(":", "")) + b"\2\0\0\0\0\1" + \
                        rng.choice([b"\x08\x00", b"\x86\xdd", b"\x81\x00"]) + body
                out.append(body if len(body) >= 14 else body + bytes(14 - len(body)))
            else:
                out.append(self.mutate(rng, rng.choice(tmpl)))
        return out

    # ---- checks -------------------------------------------------------------
    def check_rewrite(self, prog, inb, outb, st, passed=False):
        """An XDP_TX from the balancer: a forward to a backend or a NAT reply."""
        enc = self.encap_vip(prog, inb)
        if enc:
            return self.check_encap(inb, outb, st, enc)
        s, so = segment(inb), segment(outb)
        if len(outb) != len(inb):
            return "length", f"frame length {len(outb)}, sent {len(inb)}"
        # The output must be whole too (its length is the input's).
        bad = unsendable(inb, s if so is not None else None, "sent on", "forwarded")
        if bad:
            return bad
        v6, l3, l4, proto, seg = s
        o = Ether(outb)
        L3, L4 = (IPv6 if v6 else IP), (TCP if proto == 6 else UDP)
        if L3 not in o or L4 not in o:
            return "parse", f"scapy sees {o.summary()}"
        i = Ether(inb)
        dst, dport = i[L3].dst, i[L4].dport
        vip = next((v for v in VIPS if v[2] == dst and v[3] == dport and PROTO[v[4]] == proto), None)
        a = 12 if not v6 else 8  # the addresses' offset in the IP header
        ports = {l4, l4 + 1, l4 + 2, l4 + 3}
        csums = ({l3 + 10, l3 + 11} if not v6 else set()) | \
            ({l4 + 16, l4 + 17} if proto == 6 else {l4 + 6, l4 + 7})
        may = set(range(12)) | set(range(l3 + a, l3 + a + (8 if not v6 else 32))) | ports | csums
        if vip and vip[5] == "dsr" and prog == "lb":
            may = set(range(12))
            macs = {self.mac[B[b][v6]] for b, _ in vip[6]}
            if o.dst not in macs:
                return "dest", f"DSR to MAC {o.dst}, not one of {vip[0]}'s backends {sorted(macs)}"
        elif vip:
            bk = {B[b][v6]: p for b, p in vip[6]}
            if o[L3].src != (LB6 if v6 else LB4) or bk.get(o[L3].dst) != o[L4].dport:
                return "dest", f"NAT to {o[L3].src} > {o[L3].dst}:{o[L4].dport}, not one of {vip[0]}'s"
            self.flows[(proto, o[L3].dst, o[L4].dport, o[L4].sport)] = (i[L3].src, i[L4].sport, dst, dport)
        elif dst in (LB4, LB6):
            f = self.flows.get((proto, i[L3].src, i[L4].sport, dport))
            if f and (o[L3].dst, o[L4].dport, o[L3].src, o[L4].sport) != f:
                return "dest", f"reply {o[L3].src}:{o[L4].sport} > {o[L3].dst}:{o[L4].dport}, flow {f}"
            if not any(o[L3].src == v[2] and o[L4].sport == v[3] for v in VIPS if v[5] == "nat"):
                return "dest", f"reply from {o[L3].src}:{o[L4].sport}, not a NAT VIP"
        else:
            return "dest", f"sent on a frame for {dst}:{dport}, neither a VIP nor the NAT address"
        if passed:
            if self.mac.get(o[L3].dst) is not None:
                return "dest", f"passed up as unresolved, but {o[L3].dst} has a neighbour"
        elif vip is None or vip[5] == "nat" or prog != "lb":
            if self.mac.get(o[L3].dst) != o.dst:
                return "dest", f"MAC {o.dst} is not {o[L3].dst}'s ({self.mac.get(o[L3].dst)})"
        if not passed and o.src != self.lbmac:  # passed up: MACs as received
            return "src-mac", f"source MAC {o.src}, not the balancer's {self.lbmac}"
        st["checks"] += 4
        diff = [k for k in range(len(inb)) if k not in may and inb[k] != outb[k]]
        if diff:
            return "changed", f"bytes {diff[:8]} changed, which this mode must keep"
        if not v6 and ip_csum_ok(inb, s) and not ip_csum_ok(outb, so):
            return "csum", "IPv4 header checksum wrong (it was right)"
        if not v6 and not ip_csum_ok(inb, s):
            st["bad_ip_csum_tx"] += 1
            if prog == "lb":  # the XDP balancer verifies it (drop_ip_checksum)
                return "ip-csum", "forwarded with a bad IPv4 header checksum (docs: drop_ip_checksum)"
        ok_in = l4_csum_ok(inb, s)
        if ok_in and not l4_csum_ok(outb, so):
            return "csum", f"{L4.__name__} checksum wrong (it was right)"
        if not v6 and proto == 17 and seg[6:8] == b"\0\0" and outb[l4 + 6:l4 + 8] != b"\0\0":
            return "csum", "IPv4 UDP checksum 0 (none) was changed"
        st["checks"] += 3
        return None

    @staticmethod
    def encap_vip(prog, inb):
        """The tunnel VIP a frame is addressed to (by address), or None."""
        if prog != "lb":
            return None
        i = Ether(inb)
        dst = i[IPv6].dst if IPv6 in i else i[IP].dst if IP in i else None
        return next((v for v in ENCAP_VIPS if v[2] == dst), None)

    def check_encap(self, inb, outb, st, vip):
        """A frame to a tunnel VIP sent on: the input after its L2 header, byte for
        byte, behind an outer header from the balancer to one of the VIP's backends."""
        s = segment(inb)
        bad = unsendable(inb, s, "tunnelled", "tunnelled")
        if bad:
            return bad
        v6, l3, l4, proto, seg = s
        if not v6 and not ip_csum_ok(inb, s):
            return "ip-csum", "tunnelled with a bad IPv4 header checksum (docs: drop_ip_checksum)"
        name, _, _, port, vproto, mode, bks = vip
        if proto != PROTO[vproto] or struct.unpack_from("!H", inb, l4 + 2)[0] != port:
            return "dest", f"tunnelled to a port or protocol {name} has no service on"
        gue = mode == "gue"
        ovh = (40 if v6 else 20) + (8 if gue else 0)
        inner = (l4 - l3) + len(seg)
        if len(outb) != len(inb) + ovh:
            return "length", f"frame length {len(outb)}, sent {len(inb)} + {ovh} of tunnel"
        if outb[l3 + ovh:] != inb[l3:]:
            return "changed", "the client's packet (and what followed it) is not carried unchanged"
        if outb[12:l3] != inb[12:l3]:
            return "changed", "the VLAN tag or EtherType changed"
        o = (IPv6 if v6 else IP)(bytes(outb[l3:l3 + ovh]))
        backends = {B[b][v6] for b, _ in bks}
        if o.src != (LB6 if v6 else LB4) or o.dst not in backends:
            return "dest", f"tunnel {o.src} > {o.dst}, not the balancer to one of {name}'s backends"
        if self.mac.get(o.dst) != Ether(outb).dst or Ether(outb).src != self.lbmac:
            return "dest", f"MACs {Ether(outb).src} > {Ether(outb).dst} for a tunnel to {o.dst}"
        nxt = 17 if gue else (41 if v6 else 4)
        if v6 and (o.plen != ovh - 40 + inner or o.nh != nxt or o.hlim != 64):
            return "outer", f"outer IPv6 plen {o.plen} nh {o.nh} hlim {o.hlim}"
        if not v6 and (o.len != ovh + inner or o.proto != nxt or o.ttl != 64 or o.flags != 2
                       or checksum(bytes(outb[l3:l3 + 20])) != 0):
            return "outer", f"outer IPv4 len {o.len} proto {o.proto} ttl {o.ttl} flags {o.flags} or its checksum"
        if gue:
            u = outb[l3 + ovh - 8:]
            sport, dport, ulen, csum = struct.unpack_from("!HHHH", u)
            if dport != GUE_PORT or sport < 32768 or ulen != 8 + inner:
                return "outer", f"GUE UDP {sport} > {dport} length {ulen}"
            body = bytes(u[:ulen])
            ok = (in6_chksum(17, IPv6(bytes(outb[l3:l3 + 40])), body) == 0 if v6 else
                  checksum(bytes(outb[l3 + 12:l3 + 20]) + struct.pack("!BBH", 0, 17, ulen) + body) == 0)
            inner_ok = l4_csum_ok(inb, s)
            if inner_ok and not ok:
                return "csum", "outer UDP checksum wrong (the inner packet's was right)"
            if inner_ok is None and csum != 0:
                return "csum", "outer UDP checksum set for an inner IPv4 UDP datagram without one"
        st["checks"] += 8
        st["tunnelled"] += 1
        return None

    def check_synack(self, inb, outb, st):
        s = segment(inb)
        if s is None or s[3] != 6:
            return "synack", "answered a frame that is not a whole TCP packet"
        o, i = Ether(outb), Ether(inb)
        v6 = s[0]
        L3 = IPv6 if v6 else IP
        if L3 not in o or TCP not in o or TCP not in i:
            return "synack", f"scapy sees {o.summary()}"
        ip, th, sth = o[L3], o[TCP], i[TCP]
        l3 = s[1]
        want_len = l3 + (40 if v6 else 20) + 24
        p = []
        if (o.src, o.dst) != (i.dst, i.src):
            p.append("MACs not swapped")
        if (ip.src, ip.dst) != (i[L3].dst, i[L3].src):
            p.append(f"addresses {ip.src} > {ip.dst}")
        if (th.sport, th.dport) != (sth.dport, sth.sport):
            p.append(f"ports {th.sport} > {th.dport}, want {sth.dport} > {sth.sport}")
        if len(outb) != want_len or th.dataofs != 6 or (not v6 and (ip.ihl != 5 or ip.len != 44)) \
                or (v6 and ip.plen != 24):
            p.append(f"lengths: frame {len(outb)} (want {want_len}), doff {th.dataofs}")
        if th.flags != "SA" or th.ack != (sth.seq + 1) % 2**32:
            p.append(f"flags {th.flags} ack {th.ack}")
        so = segment(outb)
        if so is None or not ip_csum_ok(outb, so) or not l4_csum_ok(outb, so):
            p.append("checksums wrong")
        st["checks"] += 6
        return ("synack", "; ".join(p)) if p else None

    # ---- one program --------------------------------------------------------
    def run(self, prog, n, seed, plane, setup_seeds):
        rng = random.Random(seed)
        tmpl = self.templates(prog, rng)
        st = {"checks": 0, "bad_ip_csum_tx": 0, "refused": 0, "tunnelled": 0}
        verdicts, t0 = {}, time.monotonic()
        before = plane.reasons()
        which = "xprog" if prog == "ctxdp" else "prog"
        done = 0
        while done < n:
            batch = self.frames(prog, rng, tmpl, min(500, n - done))
            done += len(batch)
            for inb, (v, outb) in zip(batch, plane.batch(which, self.ifindex, batch)):
                if v.startswith("ERR:"):
                    st["refused"] += 1  # test_run refuses it (EINVAL: not a whole skb)
                    continue
                verdicts[v] = verdicts.get(v, 0) + 1
                st["checks"] += 1
                if v not in VERDICTS[prog]:
                    self.fail(prog, "verdict", f"verdict {v}, not one of {sorted(VERDICTS[prog])}", inb, outb)
                    continue
                Ether(outb)  # every output parses
                st["checks"] += 1
                if v in ("XDP_TX",):
                    bad = self.check_synack(inb, outb, st) if prog == "filter" else \
                        self.check_rewrite(prog, inb, outb, st)
                    if bad:
                        self.fail(prog, bad[0], bad[1], inb, outb)
                    elif prog == "lb" and len(tmpl) < 400:
                        self.learn_reply(inb, outb, tmpl)
                elif prog == "lb" and v == "XDP_PASS" and outb != inb:
                    # pass_no_neigh: a NAT reply to a client the kernel has not
                    # resolved goes up rewritten, MACs untouched, for the stack
                    # to resolve and forward (docs/lb.md). Checked as a reply.
                    bad = ("modified", "XDP_PASS with the MACs changed") if outb[:12] != inb[:12] else \
                        self.check_rewrite(prog, inb, outb, st, passed=True)
                    if not bad:
                        s_in = segment(inb)
                        if s_in is None or Ether(inb)[IPv6 if s_in[0] else IP].dst not in (LB4, LB6):
                            bad = ("modified", "XDP_PASS rewritten, but not a reply to the NAT address")
                    if bad:
                        self.fail(prog, bad[0], bad[1], inb, outb)
                elif v in ("XDP_PASS", "TC_ACT_OK", "TC_ACT_SHOT") and outb != inb:
                    # (What XDP drops never leaves: it may have been rewritten first.)
                    self.fail(prog, "modified", f"{v} but the frame was modified", inb, outb)
        moved = {k: c - before.get(k, 0) for k, c in plane.reasons().items() if c != before.get(k, 0)}
        self.counters(prog, done - st["refused"], verdicts, moved, st)
        dt = time.monotonic() - t0
        print(f"[{prog}] seed {seed}: {done} frames in {dt:.1f} s ({done / dt:.0f}/s), "
              f"{st['refused']} refused by test_run; verdicts "
              + ", ".join(f"{k} {c}" for k, c in sorted(verdicts.items())))
        print(f"[{prog}] reasons: " + ", ".join(f"{k} {c}" for k, c in sorted(moved.items())))
        print(f"[{prog}] {st['checks']} checks; forwarded with a bad IPv4 header checksum: "
              f"{st['bad_ip_csum_tx']} (lb: a failure, drop_ip_checksum)"
              + (f"; tunnelled (ipip/gue, checked): {st['tunnelled']}" if prog == "lb" else ""))
        return done

    def counters(self, prog, ran, verdicts, moved, st):
        tx = verdicts.get("XDP_TX", 0)
        drop = verdicts.get("XDP_DROP", 0) + verdicts.get("TC_ACT_SHOT", 0)
        if prog == "filter":
            ctx = moved.get("syn_cookie", 0)
            cdrop = sum(c for k, c in moved.items() if k in FILTER_DROPS)
        else:
            ctx = sum(c for k, c in moved.items() if k in LB_TX)
            cdrop = sum(c for k, c in moved.items() if k.startswith("drop_"))
        want = {"DROP": (cdrop, drop)}
        if prog != "ct":  # tc sends nothing itself: forwarded and reply are TC_ACT_OK
            want["TX"] = (ctx, tx)
        if prog != "ctxdp":  # the fast path counts only what it sends
            want["all"] = (sum(moved.values()), ran)
        for what, (got, exp) in want.items():
            st["checks"] += 1
            if got != exp:
                self.fails += 1
                print(f"FAIL [{prog}] counters: {what} reasons moved {got}, verdicts say {exp}")

    def learn_reply(self, inb, outb, tmpl):
        """A backend's answer to a NAT forward: a template for replies."""
        if self.encap_vip("lb", inb):
            return  # a tunnel: the backend answers the client, not us
        s = segment(outb)
        if not s or outb[s[1] + (12 if not s[0] else 8):][:4] not in (bytes([10, 10, 0, 2]), b"\xfd\x10\0\0"):
            return
        v6, l3, l4, proto, _ = s
        o = Ether(outb)
        L3, L4 = (IPv6 if v6 else IP), (TCP if proto == 6 else UDP)
        r = Ether(src=o.dst, dst=self.lbmac) / L3(src=o[L3].dst, dst=o[L3].src) / \
            L4(sport=o[L4].dport, dport=o[L4].sport) / Raw(b"answer")
        if L4 is TCP:
            r[TCP].flags = "SA"
        tmpl.append(bytes(r))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--luabpf", required=True)
    ap.add_argument("--netns", required=True)
    ap.add_argument("--iface", required=True)
    ap.add_argument("--service", required=True)
    ap.add_argument("--packets", type=int, default=20000, help="frames per program and seed")
    ap.add_argument("--seeds", default="1", help="comma-separated seeds")
    ap.add_argument("--programs", default="lb,ct,ctxdp,filter")
    a = ap.parse_args()
    f = Fuzz(a)
    progs = a.programs.split(",")
    total = 0
    try:
        for seed in (int(s) for s in a.seeds.split(",")):
            if "lb" in progs:
                p = Plane(a, os.path.join(HERE, "..", "lb", "lb_encap_packets.lua"))
                try:
                    p.cmd("new", f"{a.service}l{seed}")
                    for name, v6, addr, port, proto, mode, bks in VIPS + ENCAP_VIPS:
                        if mode in ("ipip", "gue"):
                            p.cmd("vipx", name, addr, port, proto, mode, LB6 if v6 else LB4, "-")
                        else:
                            p.cmd("vip", name, addr, port, proto, mode, (LB6 if v6 else LB4) if mode == "nat" else "-")
                        for b, bp in bks:
                            p.cmd("backend", name, b, B[b][v6], bp)
                    total += f.run("lb", a.packets, seed, p, None)
                finally:
                    p.close()
            if "ct" in progs or "ctxdp" in progs:
                p = Plane(a, os.path.join(HERE, "fuzz_ct.lua"))
                try:
                    p.cmd("new", f"{a.service}c{seed}")
                    for name, v6, addr, port, proto, _, bks in VIPS:
                        p.cmd("vip", name, addr, port, proto, "nat", LB6 if v6 else LB4)
                        for b, bp in bks:
                            p.cmd("backend", name, b, B[b][v6], bp)
                    for prog in ("ct", "ctxdp"):
                        if prog in progs:
                            total += f.run(prog, a.packets, seed + 100, p, None)
                finally:
                    p.close()
            if "filter" in progs:
                p = Plane(a, os.path.join(HERE, "fuzz_filter.lua"))
                try:
                    p.cmd("new", f"{a.service}f{seed}")
                    p.cmd("rules")
                    p.cmd("listen", 80)
                    total += f.run("filter", a.packets, seed + 200, p, None)
                finally:
                    p.close()
    except Fatal as e:
        print(f"FAIL: {e}")
        return 1
    for kind, n in sorted(f.shown.items()):
        print(f"failures of kind {kind}: {n}" + (" (at most 5 of each shown)" if n > 5 else ""))
    if f.shown.get("fault8"):
        print(f"FAIL: fault 8 (issue 17): the balancer forwarded {f.shown['fault8']} structurally "
              "malformed frames; lb.bpf.c must drop them, with a counter each")
    print(f"fuzz: {total} frames, {f.fails} failures")
    return 1 if f.fails else 0


if __name__ == "__main__":
    sys.exit(main())
