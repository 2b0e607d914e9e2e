/* SPDX-License-Identifier: MIT */
/*
 * The XDP DDoS filter's maps, shared by bpf/filter/filter.bpf.c and
 * lua/luabpf/filter.lua. Addresses are 16 bytes for both families: IPv4 as
 * ::ffff:a.b.c.d, so one LPM trie holds both (an IPv4 /24 is a /120).
 */
#ifndef FILTER_H
#define FILTER_H

#include "luabpf.h"

/* What happened to a packet: one per-CPU counter each (docs/filter.md). */
enum filter_reason {
	FR_PASS = 0,		/* no rule matched: passed (or on to the next program) */
	FR_PASS_NON_IP = 1,	/* ARP and anything else that is not IPv4/IPv6 */
	FR_ALLOW = 2,		/* an allow entry matched: passed, nothing else checked */
	FR_DENY_SRC = 3,	/* source in a denied prefix */
	FR_DENY_PORT = 4,	/* to a denied port */
	FR_DENY_PROTO = 5,	/* a denied protocol */
	FR_BANNED = 6,		/* source banned (by Lua, for a time) */
	FR_RATE_PPS = 7,	/* source over its packets/s */
	FR_RATE_BPS = 8,	/* source over its bytes/s */
	FR_DEFAULT_DROP = 9,	/* default = "drop" and no allow entry matched */
	FR_MALFORMED = 10,	/* IP header cut short or inconsistent */
	FR_SYN_COOKIE = 11,	/* SYN to a protected port: answered with a cookie (XDP_TX) */
	FR_SYN_COOKIE_OK = 12,	/* ACK carrying a valid cookie: passed to the listener */
	FR_SYN_COOKIE_BAD = 13, /* ACK to a protected port's listener, bad cookie: dropped */
	FR_MAX = 14,
};

/* LPM key for allow_src, deny_src and bans. */
struct filter_lpm_key {
	__u32 prefixlen; /* over the 128-bit mapped address */
	ipv6_t addr;
};

struct filter_port_key {
	__u8 proto; /* IPPROTO_TCP, IPPROTO_UDP */
	__u8 pad;
	__be16 port; /* destination port */
};

enum filter_action {
	FA_NONE = 0,
	FA_ALLOW = 1,
	FA_DENY = 2,
};

struct filter_proto {
	__u8 action; /* enum filter_action */
	__u8 pad[3];
	__u32 id; /* rule id: index into rule_stats */
};

struct filter_ban {
	__u64 expires_ns; /* bpf_ktime_get_ns() deadline; 0: until removed */
	__u32 id;	  /* index into rule_stats */
	__u32 pad;
};

/* Token buckets as GCRA: the time the bucket is next empty, per source. */
struct filter_bucket {
	__u64 tat_pkt;	/* theoretical arrival time, packets */
	__u64 tat_byte; /* the same, bytes */
};

/* SYN-flood defence per protected port: SYNs per second, for the threshold. */
struct filter_syn {
	__u64 window; /* start of the current second (ns) */
	__u64 syns;   /* SYNs seen in it */
	__u64 prev;   /* SYNs seen in the second before */
	__u32 id;     /* index into rule_stats */
	__u32 pad;
};

struct filter_config {
	__u64 pkt_ns;	     /* ns per packet (1e9 / pps); 0: no packet limit */
	__u64 pkt_burst_ns;  /* burst in packets, times pkt_ns */
	__u64 byte_rate;     /* bytes per second; 0: no byte limit */
	__u64 byte_burst_ns; /* burst in bytes, as time at byte_rate */
	__u32 prefix4;	     /* rate-limit sources per IPv4 /prefix4 ... */
	__u32 prefix6;	     /* ... and per IPv6 /prefix6 */
	__u32 sample;	     /* report 1 in N packets on the events ring; 0: none */
	__u32 syn_threshold; /* SYNs/s to a protected port before cookies start; 0: always */
	__u8 default_drop;   /* drop what no allow entry matched */
	__u8 pad[7];
};

struct filter_counters {
	__u64 packets;
	__u64 bytes;
};

/* A sampled packet, with what happened to it. */
struct filter_event {
	__u8 reason; /* enum filter_reason */
	__u8 proto;
	__u16 len; /* frame length */
	__be16 sport;
	__be16 dport;
	__u32 rule; /* the matching rule's id, or FILTER_NO_RULE */
	ipv6_t src;
	ipv6_t dst;
};

#define FILTER_NO_RULE 0xffffffffu

#endif
