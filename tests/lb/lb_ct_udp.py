# SPDX-License-Identifier: MIT
# UDP for the conntrack-mode LB tests (tests/lb/test_lb_ct.sh).
#   lb_ct_udp.py serve NAME PORT             answer each datagram with NAME
#   lb_ct_udp.py ask HOST PORT NPORTS TIMES  from NPORTS source ports, TIMES
#                                            datagrams each: one JSON object
#                                            {"flows": [[backend, ...] per port], "lost": n}
import json
import socket
import sys


def serve(name, port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    while True:
        data, peer = s.recvfrom(2048)
        s.sendto(name.encode(), peer)


def ask(host, port, nports, times):
    flows, lost = [], 0
    for _ in range(nports):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(2)
        got = []
        for i in range(times):
            s.sendto(b"q%d" % i, (host, port))
            try:
                got.append(s.recv(2048).decode())
            except socket.timeout:
                lost += 1
        flows.append(got)
        s.close()
    return {"flows": flows, "lost": lost}


if sys.argv[1] == "serve":
    serve(sys.argv[2], int(sys.argv[3]))
else:
    print(json.dumps(ask(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))))
