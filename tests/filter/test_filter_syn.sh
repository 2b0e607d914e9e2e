# SPDX-License-Identifier: MIT
# SYN cookies from XDP through test_run (tests/filter/filter_syn.lua), in a
# namespace of its own: the filter sets tcp_syncookies=2 there while ports
# are protected, and the listeners it finds are that namespace's. The
# SYN-ACKs made from SYNs of every header layout (IPv4 options, VLAN tag,
# padding) are parsed by scapy here: each must be a whole, exact answer.
source "$LUABPF_SOURCE_DIR/tests/lib.sh"

t_netns N
ip netns exec "$N" sysctl -qw net.ipv4.tcp_syncookies=1
out=$("$LUABPF" --netns "$N" run "$LUABPF_SOURCE_DIR/tests/filter/filter_syn.lua" 2>&1) || {
  echo "$out" >&2
  t_fail "filter_syn.lua failed"
}
t_contains "$out" "ok" "SYN cookie checks"
t_contains "$out" "set net.ipv4.tcp_syncookies=2 (was 1)" "says it set the sysctl"

# Each "SYNACK NAME SENT ANSWER": the answer must be the SYN's exact reply.
pairs=$(grep '^SYNACK ' <<<"$out" || true)
t_eq "$(wc -l <<<"$pairs")" 6 "SYN-ACKs to check with scapy"
checked=$($PY - "$pairs" 2>&1 <<'PY'
import sys
from scapy.all import IP, TCP, Dot1Q, Ether

bad = 0
for line in sys.argv[1].splitlines():
    _, name, sent, got = line.split()
    s, a = Ether(bytes.fromhex(sent)), Ether(bytes.fromhex(got))
    raw = bytes.fromhex(got)
    p = []
    if IP not in a or TCP not in a:
        p.append("not Ether/IP/TCP: " + a.summary())
    else:
        ip, th, sip, sth = a[IP], a[TCP], s[IP], s[TCP]
        l3 = 18 if Dot1Q in s else 14
        if (Dot1Q in a) != (Dot1Q in s) or (Dot1Q in a and a[Dot1Q].vlan != s[Dot1Q].vlan):
            p.append("VLAN tag not kept")
        if (a.src, a.dst) != (s.dst, s.src):
            p.append(f"MACs {a.src} > {a.dst}, want {s.dst} > {s.src}")
        if (ip.src, ip.dst) != (sip.dst, sip.src):
            p.append(f"addresses {ip.src} > {ip.dst}, want {sip.dst} > {sip.src}")
        if (th.sport, th.dport) != (sth.dport, sth.sport):
            p.append(f"ports {th.sport} > {th.dport}, want {sth.dport} > {sth.sport}")
        if ip.ihl != 5 or ip.len != 20 + th.dataofs * 4 or len(raw) != l3 + ip.len:
            p.append(f"lengths: IHL {ip.ihl}, IP {ip.len}, TCP header {th.dataofs * 4}, "
                     f"frame {len(raw)} (IP starts at {l3}): trailing or missing bytes")
        if th.flags != "SA" or th.ack != (sth.seq + 1) % 2**32 or th.dataofs != 6:
            p.append(f"flags {th.flags}, ack {th.ack} (want SA, {sth.seq + 1}), doff {th.dataofs}")
        if th.options[:1] != [("MSS", th.options[0][1])] or not 536 <= th.options[0][1] <= 1460:
            p.append(f"options {th.options}: want one MSS")
        want = Ether(raw)
        del want[IP].chksum
        del want[TCP].chksum
        want = Ether(bytes(want))
        if (want[IP].chksum, want[TCP].chksum) != (ip.chksum, th.chksum):
            p.append(f"checksums IP 0x{ip.chksum:04x} TCP 0x{th.chksum:04x}, scapy computes "
                     f"0x{want[IP].chksum:04x} 0x{want[TCP].chksum:04x}")
    if p:
        bad += 1
        print(f"FAIL {name}: " + "; ".join(p) + f"\n    sent {sent}\n    got  {got}")
    else:
        print(f"ok {name}: {ip.src}:{th.sport} > {ip.dst}:{th.dport} {len(raw)} bytes")
print(f"bad={bad}")
PY
) || true
echo "$checked"
t_contains "$checked" "bad=0" "every SYN-ACK is well formed (scapy)"
t_done
