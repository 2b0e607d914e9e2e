# SPDX-License-Identifier: MIT
"""Packet tests of the conntrack-mode load balancer (bpf/lb/lb_ct.bpf.c).

tests/lb/lb_packets.py's suite, driven through tests/lb/lb_ct_packets.lua
(the tc program under test_run, in the test's namespace): the same
malformed-input table with tc verdicts (DROP is TC_ACT_SHOT, PASS TC_ACT_OK,
every frame unchanged, the same counter), and the conntrack side: a new flow
makes an entry (checked with the conntrack tool: DNAT to the backend Maglev
chose, SNAT to the balancer), its next packet and the backend's reply find
it, and the failures a new flow can meet (no backend, no route, forwarding
off). The program rewrites nothing: the stack translates.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lb_packets  # noqa: E402
from lb_packets import B, CL4, CL6, LB4, LB6, VIP, VIPS, Fatal  # noqa: E402

TC = {"XDP_PASS": "TC_ACT_OK", "XDP_DROP": "TC_ACT_SHOT", "XDP_TX": "TC_ACT_OK"}


class CtSuite(lb_packets.Suite):
    skipped = []

    def case(self, name, frame, verdict, reason, want=None, unchanged=False):
        # tc never rewrites: every frame leaves as it came.
        try:
            return super().case(name, frame, TC.get(verdict, verdict), reason, want=None,
                                unchanged=True)
        except Fatal as e:
            # test_run builds an skb only from a frame with a whole Ethernet and
            # L3 header (EINVAL otherwise); on a wire such a frame reaches tc.
            if "EINVAL" not in str(e):
                raise
            self.skipped.append(name)
            print(f"skip: {name}: test_run refuses this frame as an skb")
            return b""

    def setup(self):
        self.plane.cmd("new", self.a.service)
        for name, v6, addr, port, proto, _mode, backends in VIPS:
            # DSR is LRU-only: every VIP is NAT here.
            self.plane.cmd("vip", name, addr, port, proto, "nat", LB6 if v6 else LB4)
            for bname, bport in backends:
                self.plane.cmd("backend", name, bname, B[bname][v6], bport)

    def ct_get(self, v6, proto, src, dst, sport, dport):
        r = subprocess.run(["ip", "netns", "exec", self.a.netns, "conntrack", "-G",
                            "-p", proto, "-s", src, "-d", dst,
                            "--sport", str(sport), "--dport", str(dport)],
                           capture_output=True, text=True)
        return r.stdout.strip()

    def flows(self):
        for v in ("nat4t", "nat4u", "nat6t", "nat6u", "dsr4t", "dsr6u"):
            _, v6, addr, port, proto, _, backends = VIP[v]
            cl, lb = (CL6, LB6) if v6 else (CL4, LB4)
            for _ in range(2):
                sport = self.next_port()
                be, hit = self.which(v, cl, sport)
                self.expect(be is not None and not hit, f"{v}: Maglev has a backend for a new flow")
                bport, baddr = dict(backends)[be], B[be][v6]
                f = self.frame(v6, cl, addr, proto, sport, port, self.payload(30, sport))
                self.case(f"new flow {v} {cl}:{sport} -> {addr}:{port}", f, "XDP_TX", "forwarded")
                self.count(v, True)
                e = self.ct_get(v6, proto, cl, addr, sport, port)
                want = f"src={baddr} dst={lb} sport={bport} dport={sport}"
                self.expect(want in e and "mark=" in e and "mark=0 " not in e,
                            f"{v}: the entry DNATs to {be} {baddr}:{bport} and SNATs to {lb}:{sport}"
                            f" (got: {e or 'no entry'})")
                be2, hit2 = self.which(v, cl, sport)
                self.expect(be2 == be and hit2, f"{v}: which() finds the entry ({be2}, {hit2})")
                f = self.frame(v6, cl, addr, proto, sport, port, b"again", flags="A", options=[])
                self.case(f"same flow {v}: the entry, not a new one", f, "XDP_TX", "forwarded")
                self.count(v, False)
                r = self.frame(v6, baddr, lb, proto, bport, sport, b"answer", smac=self.mac[baddr],
                               flags="SA")
                self.case(f"reply {v} {baddr}:{bport} -> {lb}:{sport}", r, "XDP_TX", "reply")

    def failures(self):
        for v, reason in (("empty4", "drop_no_backend"), ("empty6", "drop_no_backend"),
                          ("noroute4", "drop_fib"), ("noroute6", "drop_fib")):
            _, v6, addr, port, proto, _, backends = VIP[v]
            f = self.frame(v6, CL6 if v6 else CL4, addr, proto, self.next_port(), port, b"x" * 20)
            # Dropped before an entry is made: not counted as the VIP's traffic.
            self.case(f"{reason}: {v}", f, "XDP_DROP", reason)
        # No neighbour yet: the stack resolves it (and queues); not a drop here.
        for v in ("noneigh4", "noneigh6"):
            _, v6, addr, port, proto, _, _ = VIP[v]
            f = self.frame(v6, CL6 if v6 else CL4, addr, proto, self.next_port(), port, b"n" * 9)
            self.case(f"backend's neighbour unknown: {v} is forwarded", f, "XDP_TX", "forwarded")
            self.count(v, True)
        # Dropped before an entry is made: not counted.
        self.forwarding_off(count=False)

    def refused_few(self):
        self.expect(len(self.skipped) <= 4, f"test_run refused at most 4 malformed frames "
                    f"(refused {len(self.skipped)})")

    def steps(self):
        return [self.flows, self.failures, self.malformed, self.refused_few, self.stats]


if __name__ == "__main__":
    sys.exit(lb_packets.suite_main(CtSuite, __doc__))
