/* SPDX-License-Identifier: MIT */
/*
 * The XDP load balancer's maps, shared by bpf/lb/lb.bpf.c and lua/luabpf/lb.lua.
 * Addresses are 16 bytes for both families: IPv4 as ::ffff:a.b.c.d.
 */
#ifndef LB_H
#define LB_H

#include "luabpf.h"

#define LB_NO_BACKEND 0xffffffffu

enum lb_mode {
	LB_MODE_NAT = 0, /* full NAT: destination to the backend, source to snat */
	LB_MODE_DSR = 1, /* direct server return on L2: only the MAC changes */
	LB_MODE_IPIP = 2, /* DSR in a tunnel: IPv4/IPv6 in IP (bpf/lb/lb_encap.h) */
	LB_MODE_GUE = 3,  /* DSR in a tunnel: IP in UDP (GUE), outer port lb_vip.encap_port */
};

enum lb_backend_state {
	LB_BE_ACTIVE = 0,   /* in the Maglev table */
	LB_BE_DRAINING = 1, /* weight 0: no new flows, existing ones go on */
	LB_BE_REMOVED = 2,  /* its flows move to another backend */
};

/* Why a packet went where it did: one per-CPU counter each (docs/lb.md). */
enum lb_reason {
	LB_FORWARDED = 0,         /* to a backend: XDP_TX, or redirect to its interface */
	LB_REPLY = 1,             /* NAT reply rewritten back to the client */
	LB_PASS_NOT_VIP = 2,      /* not for a VIP or NAT address: XDP_PASS untouched; also
				   * fragments and options to a NAT-only address */
	LB_PASS_OTHER_PORT = 3,   /* a VIP or NAT address, but no service on that port/protocol
				   * and no NAT flow (e.g. ssh to the balancer itself) */
	LB_PASS_NON_L4 = 4,       /* ICMP, ICMPv6 and other non-TCP/UDP to a VIP address */
	LB_PASS_RUNT = 5,         /* shorter than its Ethernet/VLAN header */
	LB_DROP_BAD_IP = 6,       /* truncated IP header, IHL < 5, length beyond the frame */
	LB_DROP_IP_OPTIONS = 7,   /* IPv4 options or IPv6 extension headers to a VIP */
	LB_DROP_FRAGMENT = 8,     /* IP fragment to a VIP */
	LB_DROP_BAD_L4 = 9,       /* TCP/UDP header cut short (by the frame or the IP length) */
	LB_DROP_NO_BACKEND = 10,  /* the service has no usable backend */
	LB_DROP_NO_NEIGH = 11,    /* the next hop's MAC is not in the neighbour table yet */
	LB_DROP_FIB = 12,         /* no route to the backend or client */
	LB_DROP_FWD_DISABLED = 13, /* forwarding is off on the interface (sysctl) */
	LB_DROP_NAT_PORTS = 14,   /* no free source port toward the backend (full NAT) */
	/* flow_table = "conntrack" (bpf/lb/lb_ct.bpf.c) only: */
	LB_DROP_CT_ERROR = 15,    /* a conntrack kfunc failed: EINVAL, EPROTO, or unexpected */
	LB_DROP_CT_FULL = 16,     /* no new entry: conntrack table full or no memory (ENOMEM) */
	LB_DROP_CT_NAT = 17,      /* bpf_ct_set_nat_info failed: no NAT for the new entry */
	LB_DROP_CT_INSERT = 18,   /* the entry's NAT tuple clashed on insert: the client retries */
	LB_CT_RACE = 19,          /* another CPU inserted this flow first (EEXIST): passed on */
	LB_PASS_CT_FOREIGN = 20,  /* an entry not ours that would not expire: left to the stack */
	/* flow_table = "conntrack", ct_fastpath = true (bpf/lb/lb_ct_xdp.bpf.c): */
	LB_CT_FAST = 21,          /* established, to a backend: translated in XDP, XDP_TX/redirect */
	LB_CT_FAST_REPLY = 22,    /* established, a backend's reply: translated back in XDP */
	/* bpf/lb/lb.bpf.c again: */
	LB_PASS_NO_NEIGH = 23,    /* a NAT reply to a client whose MAC is unknown: rewritten and
				   * passed to the kernel, which resolves the client and forwards it */
	LB_DROP_TCP_OFFSET = 24,  /* TCP data offset under 20 bytes or past the segment */
	LB_DROP_UDP_LENGTH = 25,  /* UDP length other than what the IP header leaves for it */
	LB_DROP_IP_CHECKSUM = 26, /* IPv4 header checksum wrong */
	/* mode ipip/gue (bpf/lb/lb_encap.h): */
	LB_ICMP_TOO_BIG = 27,     /* too big once encapsulated: ICMP frag needed / ICMPv6 packet
				   * too big with the path's MTU sent back to the client */
	LB_DROP_ENCAP = 28,       /* no room to encapsulate (bpf_xdp_adjust_head failed) */
	LB_REASON_MAX = 29,
};

struct lb_vip_key {
	ipv6_t addr;
	__be16 port;
	__u8 proto; /* IPPROTO_TCP, IPPROTO_UDP */
	__u8 pad;
};

struct lb_vip {
	__u32 id;    /* index into vip_stats and the Maglev table */
	__u8 mode;   /* enum lb_mode */
	__u8 table;  /* which half of the vip's Maglev slots is live (0/1) */
	__be16 encap_port; /* GUE: the outer UDP destination port */
	ipv6_t snat; /* NAT: the balancer's address toward backends; ipip/gue: the outer
		      * source address, in the backends' family */
};

/*
 * vip_ports (bpf/lb/lb.bpf.c): per address, its flags (VIP_ADDR, SNAT_ADDR)
 * and the records of up to LB_ADDR_VIPS of its VIPs, so a packet to a VIP
 * costs one hash lookup, not vip_addrs' and then vips'. An address with more
 * VIPs (n > LB_ADDR_VIPS) finds the others in vips.
 */
#define LB_ADDR_VIPS 8

struct lb_addr_vip {
	__be16 port;
	__u8 proto;
	__u8 pad;
	struct lb_vip vip;
};

struct lb_addr_vips {
	__u32 flags;
	__u32 n; /* its VIPs, all of them: the first LB_ADDR_VIPS are in v */
	struct lb_addr_vip v[LB_ADDR_VIPS];
};

/*
 * The fast path (bpf/lb/lb.bpf.c): a packet to a VIP is forwarded with one
 * hash lookup (flows), its VIP's record read by id from vip_ids (the id
 * vip_hint names, or its flow's), where the control plane keeps each
 * published VIP's key beside its record. The key must be the packet's
 * (address, port, protocol): a VIP removed, or its id given to another
 * VIP, no longer matches its old flows, which then take the general path.
 * The control plane changes a record in place only where one byte moves
 * (the table flip; proto 0, which no packet matches, while the rest
 * changes), so a packet never reads half of two records.
 */
struct lb_vip_id {
	struct lb_vip_key key;
	struct lb_vip vip;
};

/*
 * vip_hint, one page (an mmapable array's value starts on one): which
 * addresses are in vip_ports, and which VIP an (address, port, protocol) may
 * be. An address counts as 32 bits: an IPv4 one's as the packet holds them,
 * an IPv6 one's four words XORed. addr: a bit per hash of those
 * (LB_VIP_HINT_ADDR), set for every VIP or NAT source address; once ready is
 * set, a packet to an address whose bit is clear is not for the balancer and
 * passes without a vip_ports lookup. id: a byte per hash of the address, the
 * port (as the packet holds it) and the protocol (LB_VIP_HINT_SLOT): 0, no
 * VIP hashes here, the packet takes the general path without a flow lookup;
 * 1..LB_VIP_HINT_IDS: one VIP does, its id + 1, whose record (vip_ids) a new
 * flow uses too, not vip_ports; LB_VIP_HINT_MANY: several do, or one whose id
 * is larger, and a packet uses its flow's VIP id. vip_ids' key decides which
 * VIP: a stale id only sends a packet to the general path. The control plane
 * sets an address's bit right after its vip_ports record is written and
 * clears it after the record is deleted.
 */
#define LB_VIP_HINT_SLOTS 2048
#define LB_VIP_HINT_ADDRS 8192
#define LB_VIP_HINT_IDS 254
#define LB_VIP_HINT_MANY 255
#define LB_VIP_HINT_SLOT(a4, port, proto) \
	((((__u32)(a4) ^ ((__u32)(port) << 16 | (proto))) * 0x9E3779B1u) >> 21)
#define LB_VIP_HINT_ADDR(a4) (((__u32)(a4) * 0x9E3779B1u) >> 19)

struct lb_vip_hint {
	__u8 id[LB_VIP_HINT_SLOTS];
	__u32 addr[LB_VIP_HINT_ADDRS / 32];
	__u32 ready;
};

struct lb_backend {
	ipv6_t addr;
	__be16 port; /* NAT: port on the backend; 0 keeps the VIP's port */
	__u8 state;  /* enum lb_backend_state */
	__u8 pad;
	__u32 vip;   /* the VIP it serves: lets a restarted service find its ids */
};

struct lb_flow_key {
	ipv6_t src;
	ipv6_t dst;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct lb_flow {
	__u32 backend;
	__u32 vip;
	__be16 nat_port; /* NAT: our source port toward the backend */
	__u16 pad;
	__u32 nat_seen;  /* NAT: when its nat entry was last looked up (ktime >> 20, ~1 ms) */
};

/* NAT replies: backend -> balancer, found by the balancer's side of the tuple. */
struct lb_nat_key {
	ipv6_t backend;
	ipv6_t local;
	__be16 bport;
	__be16 lport;
	__u8 proto;
	__u8 pad[3];
};

struct lb_nat {
	ipv6_t client;
	ipv6_t vip;
	__be16 cport;
	__be16 vport;
	__u32 vip_id;
	__u32 backend;
};

/*
 * nexthops: how to reach an address (a backend, or a NAT client) without a
 * FIB lookup per packet: a direct-mapped cache per CPU, slot NEXTHOP_SLOT(addr),
 * which the data plane fills from a successful bpf_fib_lookup and trusts
 * until expires (now + nexthop_ttl_ms) or until the global nexthop_gen
 * moves. A control plane that watches the kernel's neighbour table and
 * routes (netlink) bumps nexthop_gen on every change, and every CPU asks the
 * FIB again on its next packet to each address. Packets longer than mtu, and
 * forwarding turned off on the ingress interface, go to the FIB as before.
 */
#define NEXTHOP_SLOTS 4096

struct lb_nexthop {
	ipv6_t addr;     /* whose next hop this is (a slot is shared by many) */
	__u8 dmac[6];    /* the next hop's MAC */
	__u8 smac[6];    /* the egress interface's MAC */
	__u32 ifindex;   /* the egress interface */
	__u16 mtu;       /* the route's MTU: longer packets ask the FIB */
	__u16 pad;
	__u32 gen;       /* nexthop_gen when it was learnt */
	__u64 expires;   /* ns, bpf_ktime_get_coarse_ns() clock */
};

struct lb_counters {
	__u64 packets;
	__u64 bytes;
	__u64 new_flows;
};

enum lb_event_type {
	LB_EV_NEW_FLOW = 1,
	LB_EV_DROP = 2,
};

struct lb_event {
	__u8 type;   /* enum lb_event_type */
	__u8 reason; /* enum lb_reason, for drops */
	__u8 proto;
	__u8 pad;
	__u32 vip;
	__u32 backend;
	__be16 sport;
	__be16 dport;
	ipv6_t src;
	ipv6_t dst;
};

#endif
