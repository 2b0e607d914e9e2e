/* SPDX-License-Identifier: MIT */
/*
 * sk_lookup dispatcher: what bpf/sk_dispatch/sk_dispatch.bpf.c and
 * lua/luabpf/sk_dispatch.lua share. A binding steers (protocol, address
 * prefix, port) to a label; a label's sockets sit in a sockmap, one slot per
 * (label, family, protocol). Longest prefix wins, then a specific port over
 * "every port" (port 0); ranges are expanded to one trie entry per port by
 * the Lua side, which also decides overlaps (narrowest range wins).
 */
#ifndef SK_DISPATCH_H
#define SK_DISPATCH_H

#include "luabpf.h"

#define SKD_MAX_LABELS	 1024 /* sockmap slots: 4 per label */
#define SKD_MAX_BINDINGS 4096
#define SKD_MAX_ENTRIES	 65536 /* trie entries: one per (binding, port) */

/* Bits of a key after prefixlen: protocol, pad, port, then the address. */
#define SKD_KEY_BITS	 (8 + 8 + 16 + 128)
#define SKD_KEY_ADDR_BIT (8 + 8 + 16)

enum skd_flags {
	SKD_F_FALLTHROUGH = 1, /* socket gone: let the kernel's own lookup go on */
};

/* LPM trie key; IPv4 is stored as ::ffff:a.b.c.d. */
struct skd_key {
	__u32 prefixlen;
	__u8 protocol; /* IPPROTO_TCP, IPPROTO_UDP */
	__u8 pad;
	__u16 port; /* host order; 0: every port */
	ipv6_t addr;
};

/* What a trie entry points at. */
struct skd_entry {
	__u32 binding; /* index into binding_stats and bindings */
	__u32 label;
	__u32 prefixlen; /* address bits matched, 0..128 (IPv4: 96 + /len) */
	__u32 flags;	 /* enum skd_flags */
};

/* A binding as the user gave it (user space only: list, later runs). */
struct skd_binding {
	__u32 label;
	__u32 flags;
	__u8 protocol;
	__u8 prefixlen; /* as written: 0..32 for IPv4, 0..128 for IPv6 */
	__u16 port_lo;	/* 0..0: every port */
	__u16 port_hi;
	__u16 pad;
	ipv6_t addr;
	__u64 created; /* Unix time */
};

struct skd_label {
	char name[64];
};

/* Where a sockmap slot's socket came from (user space only). */
struct skd_dest {
	__u64 cookie; /* SO_COOKIE: tells a socket from its successor */
	__u32 pid;    /* 0: registered by the dispatcher's own process */
	__s32 fd;     /* in that process */
	__u8 family;
	__u8 protocol;
	__u16 port;
	ipv6_t addr;
	char comm[16];
	__u64 registered; /* Unix time */
};

struct skd_stats {
	__u64 lookups; /* the binding matched */
	__u64 hits;    /* handed to its socket */
	__u64 misses;  /* no socket (gone, or never registered) */
	__u64 errors;  /* a socket that can't take it (family, protocol) */
};

/* Sockmap slot of (label, family, protocol). */
static inline __u32 skd_slot(__u32 label, int v6, int udp)
{
	return label * 4 + (v6 ? 2 : 0) + (udp ? 1 : 0);
}

#endif
