/* SPDX-License-Identifier: MIT */
/* Shared between bpf/examples/xdp_count.bpf.c and scripts/examples/xdp_count.lua. */
#ifndef XDP_COUNT_H
#define XDP_COUNT_H

/* Index into the counters map. Layer 3 first, then layer 4. */
enum xdp_count_proto {
	XC_IPV4 = 0,
	XC_IPV6 = 1,
	XC_ARP = 2,
	XC_L3_OTHER = 3,
	XC_TCP = 4,
	XC_UDP = 5,
	XC_ICMP = 6, /* ICMP and ICMPv6 */
	XC_L4_OTHER = 7,
	XC_MAX = 8,
};

struct xdp_count_value {
	__u64 packets;
	__u64 bytes;
};

#endif
