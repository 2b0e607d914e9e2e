// SPDX-License-Identifier: MIT
/*
 * XDP L4 load balancer. Per packet: parse, find the service (VIP, port,
 * protocol), keep the flow on its backend (LRU flow table) or pick one by
 * Maglev consistent hashing, rewrite (full NAT, or the MAC only for DSR),
 * and send it out with the next hop's MAC (a per-CPU cache of the kernel's FIB
 * answers, bpf/lb/lb.h: struct lb_nexthop). Replies to
 * NAT flows are rewritten back to the client. Everything else passes.
 * docs/lb.md has the verdict and counter for each kind of packet.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lb.h"
#include "lb_shared.h"
#include "parse.h"
#include "lb_rewrite.h"

#define AF_INET      2
#define AF_INET6     10
#define ETH_ALEN 6

/*
 * One LRU list shared by the CPUs: BPF_F_NO_COMMON_LRU was measured slower
 * per new flow (it rotates its lists on every insert; the common list
 * evicts in batches of 128), docs/lb.md.
 */
LUABPF_MAP_PINNED(flows, BPF_MAP_TYPE_LRU_HASH, struct lb_flow_key, struct lb_flow, 65536);
LUABPF_MAP_PINNED(nat, BPF_MAP_TYPE_LRU_HASH, struct lb_nat_key, struct lb_nat, 65536);

/*
 * Per address: its flags and its VIPs' records (lb.h, struct lb_addr_vips):
 * one hash lookup per packet where vip_addrs and then vips took two. The
 * control plane writes both (lb_ct.bpf.c reads vip_addrs and vips).
 */
LUABPF_MAP_PINNED(vip_ports, BPF_MAP_TYPE_HASH, ipv6_t, struct lb_addr_vips, 256);

/*
 * The fast path's VIPs by id, and which addresses are the service's and which
 * VIP an (address, port, protocol) hash names (lb.h, struct lb_vip_id and
 * struct lb_vip_hint): written by the control plane at each publish, not
 * pinned (a restart writes them again; until then every packet takes the
 * general path). A VIP whose id is past vip_ids
 * (max_vips over 256) always takes the general path.
 */
LUABPF_MAP(vip_ids, BPF_MAP_TYPE_ARRAY, __u32, struct lb_vip_id, 256);
LUABPF_MAP_FLAGS(vip_hint, BPF_MAP_TYPE_ARRAY, __u32, struct lb_vip_hint, 1, BPF_F_MMAPABLE);

/*
 * Per CPU: the packet's VIP record, copied there from whichever map it was
 * found in (vip_ports, vips or vip_ids), so the verifier walks to_vip()
 * once and not once per map; and the FIB lookup's parameters, off a stack
 * that has no room for them.
 */
struct lb_scratch {
	struct lb_vip vip;
	struct bpf_fib_lookup fib;
};
LUABPF_PERCPU_SLOT(scratch, struct lb_scratch);

/* Next hops (lb.h, struct lb_nexthop): one direct-mapped cache per CPU. */
LUABPF_MAP(nexthops, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct lb_nexthop, NEXTHOP_SLOTS);

/* How long a next hop learnt from the FIB is used before the FIB is asked again. */
__u32 nexthop_ttl_ms = 1000;
/* Bumped by the control plane when a neighbour or route changes: forget them all. */
__u32 nexthop_gen = 0;

extern void *bpf_cast_to_kern_ctx(void *) __ksym;

struct pkt {
	struct ethhdr *eth;
	void *end;
	struct iphdr *ip4;    /* one of ip4, ip6 */
	struct ipv6hdr *ip6;
	__sum16 *l4_csum;     /* NULL for UDP over IPv4 without a checksum */
	__be16 *ports;        /* [source, dest] */
	__u64 len;
	__u8 udp;
	__u8 syn; /* a TCP SYN without ACK: a new connection */
	__u64 now; /* bpf_ktime_get_coarse_ns(), once asked */
	__u8 encap; /* bytes of tunnel headers in front (mode ipip/gue, lb_encap.h) */
	__u8 looked; /* flows was looked up for key already: f is its answer */
	__u8 no_vip; /* vip_hint: no VIP at the address, port and protocol (fast_vip) */
	struct lb_flow *f;
	struct lb_flow_key key;
};

#define LB_CTX struct xdp_md
#define LB_ACT_PASS XDP_PASS
#define LB_ACT_DROP XDP_DROP
#include "lb_pkt.h"

static __always_inline bool addr_eq(const ipv6_t *a, const ipv6_t *b)
{
	const __u32 *x = (const __u32 *)a->addr, *y = (const __u32 *)b->addr;

	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

static __always_inline __be32 v4_of(const ipv6_t *a)
{
	return ((const __u32 *)a->addr)[3];
}

#include "lb_encap.h"

/* To (saddr, sport) -> (daddr, dport), checksums updated (lb_rewrite.h). */
static __always_inline void rewrite(struct pkt *p, const ipv6_t *saddr, __be16 sport,
				    const ipv6_t *daddr, __be16 dport)
{
	if (p->ip4)
		nat4(p->ip4, p->ports, p->l4_csum, p->udp, v4_of(saddr), sport, v4_of(daddr), dport);
	else if (p->ip6)
		nat6(p->ip6, p->ports, p->l4_csum, p->udp, saddr, sport, daddr, dport);
}

#include "lb_send.h"

#include "lb_nat.h"

static __always_inline int to_vip(struct xdp_md *ctx, struct pkt *p, struct lb_vip *vip)
{
	struct lb_flow *f = p->looked ? p->f : bpf_map_lookup_elem(&flows, &p->key);
	struct lb_backend *be = NULL;
	__u32 be_id = LB_NO_BACKEND, new_flow = 0;
	__be16 lport = 0, bport;

	if (f) {
		be_id = f->backend;
		be = bpf_map_lookup_elem(&backends, &be_id);
		if (be && be->state == LB_BE_REMOVED)
			be = NULL; /* its backend is gone: choose again */
		/*
		 * A new connection whose 5-tuple an old, finished one left in the
		 * LRU (a client that cycles through its ports) goes by the table, not
		 * to a backend that takes no new flows: drained, or down by health.
		 */
		else if (be && p->syn && be->state != LB_BE_ACTIVE)
			be = NULL;
		lport = f->nat_port;
	}
	if (!be) {
		__u32 slot = vip->id * 2 * ring_size + (vip->table & 1) * ring_size +
			     flow_hash(&p->key) % ring_size;
		__u32 *id = bpf_map_lookup_elem(&maglev, &slot);

		if (!id || *id == LB_NO_BACKEND)
			return drop(p, LB_DROP_NO_BACKEND, vip->id);
		be_id = *id;
		be = bpf_map_lookup_elem(&backends, &be_id);
		if (!be)
			return drop(p, LB_DROP_NO_BACKEND, vip->id);
		new_flow = 1;
	}
	bport = be->port ? be->port : p->key.dport;
	if (vip->mode == LB_MODE_NAT) {
		struct lb_nat_key nk = {};

		/*
		 * Keep the reply mapping alive (LRU) as long as the flow is: look
		 * it up about once a second (replies refresh it too), and make it
		 * again if it went: on the flow's port when that is still free,
		 * and not counted as a new flow (the flow is not new).
		 */
		if (!new_flow && (__u32)(now(p) >> 20) - f->nat_seen > NAT_KEEPALIVE) {
			nk.backend = be->addr;
			nk.local = vip->snat;
			nk.bport = bport;
			nk.lport = lport;
			nk.proto = p->key.proto;
			if (!bpf_map_lookup_elem(&nat, &nk)) {
				if (nat_claim(p, vip, be, be_id, bport, &lport) < 0)
					return drop(p, LB_DROP_NAT_PORTS, vip->id);
				f->nat_port = lport;
			}
			f->nat_seen = p->now >> 20;
		}
		if (new_flow) {
			lport = 0; /* a new flow starts from the client's port */
			if (nat_claim(p, vip, be, be_id, bport, &lport) < 0)
				return drop(p, LB_DROP_NAT_PORTS, vip->id);
		}
	}
	if (new_flow) {
		struct lb_flow nf = { .backend = be_id, .vip = vip->id, .nat_port = lport };

		if (vip->mode == LB_MODE_NAT)
			nf.nat_seen = now(p) >> 20;
		bpf_map_update_elem(&flows, &p->key, &nf, BPF_ANY);
		report(p, LB_EV_NEW_FLOW, 0, vip->id, be_id);
	}
	add(&vip_stats, vip->id, p->len, new_flow);
	add(&backend_stats, be_id, p->len, new_flow);
	if (vip->mode == LB_MODE_NAT)
		rewrite(p, &vip->snat, lport, &be->addr, bport);
	else if (vip->mode >= LB_MODE_IPIP && encap(ctx, p, vip, be))
		return drop(p, LB_DROP_ENCAP, vip->id);
	return send(ctx, p, &be->addr, LB_FORWARDED, vip->id);
}

/*
 * Which of av's VIPs is (port, proto): its index, or -1. A global function,
 * verified once: inline, each index the loop can stop at is a pointer of its
 * own into the map value, and the verifier walks the rest of the program once
 * for each (past its million instructions).
 */
__noinline int lb_find_vip(const struct lb_addr_vips *av, __be16 port, __u8 proto)
{
	if (!av)
		return -1;
	for (int i = 0; i < LB_ADDR_VIPS; i++) {
		if (i >= av->n)
			break;
		if (av->v[i].port == port && av->v[i].proto == proto)
			return i;
	}
	return -1;
}

/*
 * After the IP header: the L4 ports (lb_pkt.h), then the service or a NAT
 * reply. vip: the fast path's (vip_ids), or NULL: found here through av.
 * flags: the address's (av's; VIP_ADDR with the fast path's vip, SNAT_ADDR
 * where vip_hint says no VIP is there: a NAT reply, or not ours).
 */
static __always_inline int l4(struct xdp_md *ctx, struct pkt *p, void *l4h, __u8 proto, __u32 l4len,
			      struct lb_addr_vips *av, struct lb_vip *vip, __u32 flags)
{
	__u32 r = l4_parse(p, l4h, proto, l4len, true), zero = 0;
	struct lb_scratch *s;

	if (r)
		return stop(p, r);
	p->ports = l4h;
	p->udp = proto == IPPROTO_UDP;
	if (!p->udp)
		p->l4_csum = &((struct tcphdr *)l4h)->check;
	else if (!p->ip4 || ((struct udphdr *)l4h)->check)
		p->l4_csum = &((struct udphdr *)l4h)->check;
	if (!vip && av && (flags & VIP_ADDR)) {
		__u32 i = (__u32)lb_find_vip(av, p->key.dport, proto); /* -1: past the end */

		if (i < LB_ADDR_VIPS)
			vip = &av->v[i].vip;
		else if (av->n > LB_ADDR_VIPS)
			vip = vip_lookup(p);
	}
	if (vip) {
		s = bpf_map_lookup_elem(&scratch, &zero);
		if (!s)
			return drop(p, LB_DROP_NO_BACKEND, LB_NO_BACKEND);
		s->vip = *vip;
		return to_vip(ctx, p, &s->vip);
	}
	if (flags & SNAT_ADDR)
		return to_client(ctx, p);
	return verdict(p, LB_PASS_OTHER_PORT, XDP_PASS);
}

#include "lb_fast.h"

static __always_inline int ipv4(struct xdp_md *ctx, struct pkt *p, struct iphdr *ip)
{
	struct lb_addr_vips *av = NULL;
	struct lb_vip_hint *hint;
	struct lb_vip *vip = NULL;
	__u32 r, flags = VIP_ADDR;
	bool pass;
	__u16 tot;

	if ((void *)(ip + 1) > p->end)
		return verdict(p, LB_DROP_BAD_IP, XDP_DROP);
	tot = bpf_ntohs(ip->tot_len);
	if (ip4_bad(ip, tot) || (void *)ip + tot > p->end)
		return verdict(p, LB_DROP_BAD_IP, XDP_DROP);
	v4_mapped(&p->key.dst, ip->daddr);
	v4_mapped(&p->key.src, ip->saddr);
	p->ip4 = ip;
	hint = hint_addr(ip->daddr, &pass);
	if (pass)
		return verdict(p, LB_PASS_NOT_VIP, XDP_PASS);
	if (ip->ihl == 5 && !(ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)))
		vip = fast_vip(p, hint, ip->daddr, ip + 1, ip->protocol, tot - sizeof(*ip));
	if (p->no_vip) {
		/* A NAT reply or not ours: what nat says, without vip_ports. */
		flags = SNAT_ADDR;
	} else if (!vip) {
		av = bpf_map_lookup_elem(&vip_ports, &p->key.dst);
		if (!av)
			return verdict(p, LB_PASS_NOT_VIP, XDP_PASS);
		flags = av->flags;
		r = ip4_stop(ip, flags);
		if (r)
			return stop(p, r);
	}
	/* The rewrite updates the checksum incrementally: a bad one would stay bad. */
	if (!vip && !ip_csum_ok(ip))
		return drop(p, LB_DROP_IP_CHECKSUM, LB_NO_BACKEND);
	return l4(ctx, p, ip + 1, ip->protocol, tot - sizeof(*ip), av, vip, flags);
}

static __always_inline int ipv6(struct xdp_md *ctx, struct pkt *p, struct ipv6hdr *ip6)
{
	struct lb_addr_vips *av = NULL;
	struct lb_vip_hint *hint;
	struct lb_vip *vip;
	const __u32 *w;
	__u32 r, a32, flags = VIP_ADDR;
	bool pass;

	if ((void *)(ip6 + 1) > p->end)
		return verdict(p, LB_DROP_BAD_IP, XDP_DROP);
	if (ip6->version != 6 ||
	    (void *)(ip6 + 1) + bpf_ntohs(ip6->payload_len) > p->end)
		return verdict(p, LB_DROP_BAD_IP, XDP_DROP);
	__builtin_memcpy(&p->key.dst, &ip6->daddr, 16);
	w = (const __u32 *)&ip6->daddr;
	a32 = w[0] ^ w[1] ^ w[2] ^ w[3];
	hint = hint_addr(a32, &pass);
	if (pass)
		return verdict(p, LB_PASS_NOT_VIP, XDP_PASS);
	__builtin_memcpy(&p->key.src, &ip6->saddr, 16);
	p->ip6 = ip6;
	vip = fast_vip(p, hint, a32, ip6 + 1, ip6->nexthdr, bpf_ntohs(ip6->payload_len));
	if (p->no_vip) {
		flags = SNAT_ADDR; /* as for IPv4 */
	} else if (!vip) {
		av = bpf_map_lookup_elem(&vip_ports, &p->key.dst);
		if (!av)
			return verdict(p, LB_PASS_NOT_VIP, XDP_PASS);
		flags = av->flags;
		r = ip6_stop(ip6, flags);
		if (r)
			return stop(p, r);
	}
	return l4(ctx, p, ip6 + 1, ip6->nexthdr, bpf_ntohs(ip6->payload_len), av, vip, flags);
}

SEC("xdp")
int xdp_lb(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	struct pkt p = {};

	p.end = (void *)(long)ctx->data_end;
	p.len = p.end - data;
	p.eth = data;
	return l3(ctx, &p, data);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
