/* SPDX-License-Identifier: MIT */
/*
 * The tunnel decapsulator's maps (bpf/decap/decap.bpf.c), shared with
 * lua/luabpf/decap/. Addresses are 16 bytes for both families: IPv4 as
 * ::ffff:a.b.c.d.
 */
#ifndef DECAP_H
#define DECAP_H

#include "luabpf.h"

/* What happened to a packet: one per-CPU counter each (docs/lb.md). */
enum decap_reason {
	DECAP_IPIP = 0,             /* IPv4/IPv6 in IPv4/IPv6 to one of our addresses: stripped */
	DECAP_GUE = 1,              /* GUE (IP in UDP to gue_port) to one of our addresses: stripped */
	DECAP_PASS = 2,             /* not a tunnel packet: untouched */
	DECAP_PASS_OTHER_ADDR = 3,  /* a tunnel packet to an address not configured: untouched */
	DECAP_PASS_FRAGMENT = 4,    /* a fragment of a tunnel packet: left to the stack */
	DECAP_PASS_GUE_OTHER = 5,   /* GUE control message, or a payload that is not IP: untouched */
	DECAP_DROP_TRUNCATED = 6,   /* a header cut short, or a length past the packet */
	DECAP_DROP_BAD_HEADER = 7,  /* outer IPv4 checksum wrong, inner not the IP version announced */
	DECAP_DROP_ADJUST = 8,      /* bpf_skb_adjust_room refused the packet */
	DECAP_REASON_MAX = 9,
};

struct decap_counters {
	__u64 packets;
	__u64 bytes;
};

#endif
