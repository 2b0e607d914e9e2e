/* SPDX-License-Identifier: MIT */
/* Shared between bpf/examples/tc_stats.bpf.c and scripts/examples/tc_stats.lua. */
#ifndef TC_STATS_H
#define TC_STATS_H

enum tc_stats_dir {
	TS_INGRESS = 0,
	TS_EGRESS = 1,
};

/* Layer 3 of a packet, as the proto_stats key's l3 field holds it. */
enum tc_stats_l3 {
	TS_IPV4 = 0,
	TS_IPV6 = 1,
	TS_ARP = 2,
	TS_L3_OTHER = 3,
};

/* proto_stats key: direction, layer 3, and the IP protocol number (0 when not IP). */
struct tc_proto_key {
	__u8 direction;
	__u8 l3;
	__u8 proto;
	__u8 pad;
};

/*
 * peer_stats key: the address at the other end (the source on ingress, the
 * destination on egress), IPv4 mapped into IPv6 (::ffff:a.b.c.d).
 */
struct tc_peer_key {
	ipv6_t addr;
	__u8 direction;
	__u8 pad[3];
};

struct tc_counter {
	__u64 packets;
	__u64 bytes;
};

#endif
