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
#include "csum.h"
#include "lb_shared.h"
#include "parse.h"

#define AF_INET      2
#define AF_INET6     10
#define IPPROTO_ICMPV6_ 58
#define NAT_PORT_TRIES 8
#define ETH_ALEN 6

#define VIP_ADDR  1 /* vip_addrs flags: a service address */
#define SNAT_ADDR 2 /* the balancer's own source address for NAT */

/*
 * One LRU list shared by the CPUs: BPF_F_NO_COMMON_LRU was measured slower
 * per new flow (it rotates its lists on every insert; the common list
 * evicts in batches of 128), docs/lb.md.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct lb_flow_key);
	__type(value, struct lb_flow);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct lb_nat_key);
	__type(value, struct lb_nat);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nat SEC(".maps");

/*
 * Per address: its flags and its VIPs' records (lb.h, struct lb_addr_vips):
 * one hash lookup per packet where vip_addrs and then vips took two. The
 * control plane writes both (lb_ct.bpf.c reads vip_addrs and vips).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, ipv6_t);
	__type(value, struct lb_addr_vips);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} vip_ports SEC(".maps");

/* Next hops (lb.h, struct lb_nexthop): one direct-mapped cache per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NEXTHOP_SLOTS);
	__type(key, __u32);
	__type(value, struct lb_nexthop);
} nexthops SEC(".maps");

/* How long a next hop learnt from the FIB is used before the FIB is asked again. */
__u32 nexthop_ttl_ms = 1000;
/* Bumped by the control plane when a neighbour or route changes: forget them all. */
__u32 nexthop_gen = 0;
/* How often a NAT flow's packets look its nat entry up, to keep it in the LRU. */
#define NAT_KEEPALIVE 1000 /* ~1 s in flow.nat_seen units (2^20 ns) */

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
	struct lb_flow_key key;
};

static __always_inline int verdict(struct pkt *p, __u32 reason, int action)
{
	add(&reasons, reason, p->len, 0);
	return action;
}

static __always_inline void report(struct pkt *p, __u8 type, __u8 reason, __u32 vip,
				   __u32 backend)
{
	lb_report(&p->key, type, reason, vip, backend);
}

static __always_inline int drop(struct pkt *p, __u32 reason, __u32 vip)
{
	report(p, LB_EV_DROP, reason, vip, LB_NO_BACKEND);
	return verdict(p, reason, XDP_DROP);
}

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

/*
 * csum.h's csum_update without the helper: the same RFC 1624 sum over n
 * words inline (n is a constant here, the loop unrolls), instead of one
 * bpf_csum_diff call per checksum, two per NAT packet.
 */
static __always_inline void csum_replace(__sum16 *csum, const __be32 *from, const __be32 *to,
					 int n, bool udp)
{
	__u64 sum = ~((__u32)*csum) & 0xffff;
	__u16 c;

#pragma unroll
	for (int i = 0; i < n; i++)
		sum += (__u32)~from[i] + (__u64)to[i];
	sum = (sum & 0xffffffff) + (sum >> 32); /* csum_fold takes 32 bits' worth */
	c = ~csum_fold(sum);
	if (udp && c == 0)
		c = 0xffff; /* 0 means "no checksum" for UDP */
	*csum = c;
}

/*
 * The 32-bit word two ports make in the header, built with memcpy: writing
 * them through a __be16 pointer into a __be32 array is an aliasing violation
 * that clang exploits once the sum reads the array inline (it summed a stale
 * word: bench/lb_pkt.sh caught a wrong TCP checksum).
 */
static __always_inline __be32 ports_word(__be16 a, __be16 b)
{
	__be32 w;

	__builtin_memcpy(&w, &a, 2);
	__builtin_memcpy((__u8 *)&w + 2, &b, 2);
	return w;
}

/*
 * Rewrite the addresses and ports to (saddr, sport) -> (daddr, dport) and fix
 * the IP (v4) and L4 checksums incrementally.
 */
static __always_inline void rewrite(struct pkt *p, const ipv6_t *saddr, __be16 sport,
				    const ipv6_t *daddr, __be16 dport)
{
	if (p->ip4) {
		__be32 from[3] = { p->ip4->saddr, p->ip4->daddr, 0 };
		__be32 to[3] = { v4_of(saddr), v4_of(daddr), 0 };

		csum_replace(&p->ip4->check, from, to, 2, false);
		from[2] = ports_word(p->ports[0], p->ports[1]);
		to[2] = ports_word(sport, dport);
		if (p->l4_csum)
			csum_replace(p->l4_csum, from, to, sizeof(from) / 4, p->udp);
		p->ip4->saddr = to[0];
		p->ip4->daddr = to[1];
	} else if (p->ip6) {
		__be32 from[9], to[9];

		__builtin_memcpy(from, &p->ip6->saddr, 16);
		__builtin_memcpy(from + 4, &p->ip6->daddr, 16);
		__builtin_memcpy(to, saddr, 16);
		__builtin_memcpy(to + 4, daddr, 16);
		from[8] = ports_word(p->ports[0], p->ports[1]);
		to[8] = ports_word(sport, dport);
		if (p->l4_csum)
			csum_replace(p->l4_csum, from, to, sizeof(from) / 4, p->udp);
		__builtin_memcpy(&p->ip6->saddr, saddr, 16);
		__builtin_memcpy(&p->ip6->daddr, daddr, 16);
	}
	p->ports[0] = sport;
	p->ports[1] = dport;
}

/*
 * What bpf_fib_lookup checks before anything else: forwarding on the ingress
 * interface (its own sysctl, not "all"). Read from the device, a few loads.
 */
static __always_inline bool fwd_enabled(struct xdp_md *ctx, struct pkt *p)
{
	struct xdp_buff *xdp = bpf_cast_to_kern_ctx(ctx);
	struct net_device *dev = xdp->rxq->dev;

	if (p->ip4) {
		struct in_device *in = dev->ip_ptr;

		return in && in->cnf.data[IPV4_DEVCONF_FORWARDING - 1];
	}
	struct inet6_dev *in6 = dev->ip6_ptr;

	return in6 && in6->cnf.forwarding;
}

/* Where addr's next hop is cached: a multiplicative hash of its words. */
static __always_inline __u32 nexthop_slot(const ipv6_t *addr)
{
	const __u32 *w = (const __u32 *)addr->addr;

	return ((w[0] ^ w[1] ^ w[2] ^ w[3]) * 0x9E3779B1u) >> 20; /* 4096 slots */
}

static __always_inline __u64 now(struct pkt *p)
{
	if (!p->now)
		p->now = bpf_ktime_get_coarse_ns();
	return p->now;
}

/*
 * Send toward target: the next hop's MACs from the nexthops cache, or from
 * the kernel's FIB (which refills it). A reply to a client whose MAC the
 * kernel does not know yet goes to the stack, already rewritten: the kernel
 * resolves the client and forwards it. A backend's missing neighbour drops
 * (the control plane primes backends).
 */
static __always_inline int send(struct xdp_md *ctx, struct pkt *p, const ipv6_t *target,
				__u32 reason, __u32 vip)
{
	struct bpf_fib_lookup fib = {};
	struct lb_nexthop *nh;
	__u32 ifindex, slot, gen;
	__u16 tot;
	int rc;

	if (p->ip4)
		tot = bpf_ntohs(p->ip4->tot_len);
	else if (p->ip6)
		tot = bpf_ntohs(p->ip6->payload_len) + sizeof(struct ipv6hdr);
	else
		return drop(p, LB_DROP_FIB, vip);
	slot = nexthop_slot(target);
	nh = bpf_map_lookup_elem(&nexthops, &slot);
	if (nh && addr_eq(&nh->addr, target) && nh->gen == nexthop_gen && tot <= nh->mtu &&
	    nh->expires > now(p) && fwd_enabled(ctx, p)) {
		__builtin_memcpy(p->eth->h_dest, nh->dmac, ETH_ALEN);
		__builtin_memcpy(p->eth->h_source, nh->smac, ETH_ALEN);
		ifindex = nh->ifindex;
		goto out;
	}
	fib.ifindex = ctx->ingress_ifindex;
	fib.l4_protocol = p->key.proto;
	fib.tot_len = tot;
	if (p->ip4) {
		fib.family = AF_INET;
		fib.tos = p->ip4->tos;
		fib.ipv4_src = p->ip4->saddr;
		fib.ipv4_dst = v4_of(target);
	} else if (p->ip6) {
		fib.family = AF_INET6;
		__builtin_memcpy(fib.ipv6_src, &p->ip6->saddr, 16);
		__builtin_memcpy(fib.ipv6_dst, target, 16);
	}
	gen = nexthop_gen; /* before the lookup: a bump during it is not lost */
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		if (reason == LB_REPLY)
			return verdict(p, LB_PASS_NO_NEIGH, XDP_PASS);
		return drop(p, LB_DROP_NO_NEIGH, vip);
	}
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED && p->encap)
		return encap_too_big(ctx, p, fib.mtu_result);
	if (rc == BPF_FIB_LKUP_RET_FWD_DISABLED)
		return drop(p, LB_DROP_FWD_DISABLED, vip);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return drop(p, LB_DROP_FIB, vip);
	__builtin_memcpy(p->eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(p->eth->h_source, fib.smac, ETH_ALEN);
	ifindex = fib.ifindex;
	if (nh) {
		nh->addr = *target;
		__builtin_memcpy(nh->dmac, fib.dmac, ETH_ALEN);
		__builtin_memcpy(nh->smac, fib.smac, ETH_ALEN);
		nh->ifindex = fib.ifindex;
		nh->mtu = fib.mtu_result;
		nh->gen = gen;
		nh->expires = now(p) + (__u64)nexthop_ttl_ms * 1000000;
	}
out:
	add(&reasons, reason, p->len, 0);
	/* A tagged frame stays in its VLAN: back out where it came from. */
	if (ifindex == ctx->ingress_ifindex ||
	    p->eth->h_proto != bpf_htons(p->ip4 ? ETH_P_IP : ETH_P_IPV6))
		return XDP_TX;
	return bpf_redirect(ifindex, 0);
}

/* Claim a NAT source port toward the backend: the client's own if free. */
static __always_inline int nat_claim(struct pkt *p, const struct lb_vip *vip,
				     const struct lb_backend *be, __u32 be_id, __be16 bport,
				     __be16 *lport)
{
	struct lb_nat_key nk = {};
	struct lb_nat nv = {};
	__u32 h = flow_hash(&p->key);

	nk.backend = be->addr;
	nk.local = vip->snat;
	nk.bport = bport;
	nk.proto = p->key.proto;
	nv.client = p->key.src;
	nv.vip = p->key.dst;
	nv.cport = p->key.sport;
	nv.vport = p->key.dport;
	nv.vip_id = vip->id;
	nv.backend = be_id;
	nk.lport = p->key.sport;
	/*
	 * Look before inserting: an LRU insert takes a free entry (evicting one
	 * when the table is full) before it finds the key taken, so a port in
	 * use cost as much as a claim. The insert stays NOEXIST: a port taken
	 * between the two is a taken port.
	 */
	for (int i = 0; i < NAT_PORT_TRIES; i++) {
		struct lb_nat *old = bpf_map_lookup_elem(&nat, &nk);

		if (!old && bpf_map_update_elem(&nat, &nk, &nv, BPF_NOEXIST) == 0) {
			*lport = nk.lport;
			return 0;
		}
		if (old && old->cport == nv.cport && old->vport == nv.vport &&
		    addr_eq(&old->client, &nv.client) && addr_eq(&old->vip, &nv.vip)) {
			*lport = nk.lport; /* ours already: a retransmitted first packet */
			return 0;
		}
		h = h * 1103515245 + 12345;
		nk.lport = bpf_htons(1024 + (h >> 8) % 64512);
	}
	return -1;
}

static __always_inline int to_vip(struct xdp_md *ctx, struct pkt *p, struct lb_vip *vip)
{
	struct lb_flow *f = bpf_map_lookup_elem(&flows, &p->key);
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
		 * again if it went.
		 */
		if (!new_flow && (__u32)(now(p) >> 20) - f->nat_seen > NAT_KEEPALIVE) {
			nk.backend = be->addr;
			nk.local = vip->snat;
			nk.bport = bport;
			nk.lport = lport;
			nk.proto = p->key.proto;
			if (!bpf_map_lookup_elem(&nat, &nk))
				new_flow = 1;
			else
				f->nat_seen = p->now >> 20;
		}
		if (new_flow && nat_claim(p, vip, be, be_id, bport, &lport) < 0)
			return drop(p, LB_DROP_NAT_PORTS, vip->id);
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

/* A backend's answer to a NAT flow: back to the client, from the VIP. */
static __always_inline int to_client(struct xdp_md *ctx, struct pkt *p)
{
	struct lb_nat_key nk = {};
	struct lb_nat *n;
	struct lb_nat r;

	nk.backend = p->key.src;
	nk.local = p->key.dst;
	nk.bport = p->key.sport;
	nk.lport = p->key.dport;
	nk.proto = p->key.proto;
	n = bpf_map_lookup_elem(&nat, &nk);
	if (!n)
		return -1;
	r = *n;
	rewrite(p, &r.vip, r.vport, &r.client, r.cport);
	return send(ctx, p, &r.client, LB_REPLY, r.vip_id);
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
 * After the IP header: the L4 ports, then the service or a NAT reply. l4len is
 * what the IP header says follows it: a short segment in a frame padded to
 * Ethernet's 60 bytes must not have the padding read as its header.
 */
static __always_inline int l4(struct xdp_md *ctx, struct pkt *p, void *l4h, __u8 proto, __u32 l4len,
			      struct lb_addr_vips *av)
{
	__u32 flags = av->flags;
	struct lb_vip *vip = NULL;
	int rc;

	if (proto == IPPROTO_TCP) {
		struct tcphdr *th = l4h;

		if ((void *)(th + 1) > p->end || l4len < sizeof(*th))
			return drop(p, LB_DROP_BAD_L4, LB_NO_BACKEND);
		if (th->doff < 5 || th->doff * 4 > l4len)
			return drop(p, LB_DROP_TCP_OFFSET, LB_NO_BACKEND);
		p->l4_csum = &th->check;
		p->syn = th->syn && !th->ack;
	} else if (proto == IPPROTO_UDP) {
		struct udphdr *uh = l4h;

		if ((void *)(uh + 1) > p->end || l4len < sizeof(*uh))
			return drop(p, LB_DROP_BAD_L4, LB_NO_BACKEND);
		if (bpf_ntohs(uh->len) != l4len)
			return drop(p, LB_DROP_UDP_LENGTH, LB_NO_BACKEND);
		p->udp = 1;
		p->l4_csum = (p->ip4 && !uh->check) ? NULL : &uh->check;
	} else {
		return verdict(p, LB_PASS_NON_L4, XDP_PASS);
	}
	p->ports = l4h;
	p->key.proto = proto;
	p->key.sport = p->ports[0];
	p->key.dport = p->ports[1];
	if (flags & VIP_ADDR) {
		__u32 i = (__u32)lb_find_vip(av, p->key.dport, proto); /* -1: past the end */

		if (i < LB_ADDR_VIPS)
			vip = &av->v[i].vip;
		else if (av->n > LB_ADDR_VIPS) {
			struct lb_vip_key vk = {};

			vk.addr = p->key.dst;
			vk.port = p->key.dport;
			vk.proto = proto;
			vip = bpf_map_lookup_elem(&vips, &vk);
		}
		if (vip)
			return to_vip(ctx, p, vip);
	}
	if (flags & SNAT_ADDR) {
		rc = to_client(ctx, p);
		if (rc >= 0)
			return rc;
	}
	return verdict(p, LB_PASS_OTHER_PORT, XDP_PASS);
}

/*
 * Fragments and IP options are dropped only on their way to a VIP. An address
 * that is only a NAT source is usually the balancer's own (snat defaults to the
 * interface's): its fragmented or optioned traffic is the host's, and passes.
 */
static __always_inline int not_for_vip(struct pkt *p, __u32 flags, __u32 reason)
{
	if (flags & VIP_ADDR)
		return drop(p, reason, LB_NO_BACKEND);
	return verdict(p, LB_PASS_NOT_VIP, XDP_PASS);
}

/* A 20-byte IPv4 header's checksum: its ten words sum to 0xffff when right. */
static __always_inline bool ip_csum_ok(const struct iphdr *ip)
{
	const __u32 *w = (const __u32 *)ip;
	__u64 sum = (__u64)w[0] + w[1] + w[2] + w[3] + w[4];

	return csum_fold(sum) == 0xffff;
}

static __always_inline int ipv4(struct xdp_md *ctx, struct pkt *p, struct iphdr *ip)
{
	struct lb_addr_vips *av;
	__u16 tot;

	if ((void *)(ip + 1) > p->end)
		return verdict(p, LB_DROP_BAD_IP, XDP_DROP);
	tot = bpf_ntohs(ip->tot_len);
	if (ip->ihl < 5 || ip->version != 4 || tot < ip->ihl * 4 || (void *)ip + tot > p->end)
		return verdict(p, LB_DROP_BAD_IP, XDP_DROP);
	v4_mapped(&p->key.dst, ip->daddr);
	av = bpf_map_lookup_elem(&vip_ports, &p->key.dst);
	if (!av)
		return verdict(p, LB_PASS_NOT_VIP, XDP_PASS);
	v4_mapped(&p->key.src, ip->saddr);
	p->ip4 = ip;
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return not_for_vip(p, av->flags, LB_DROP_FRAGMENT);
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return verdict(p, LB_PASS_NON_L4, XDP_PASS);
	if (ip->ihl != 5)
		return not_for_vip(p, av->flags, LB_DROP_IP_OPTIONS);
	/* The rewrite updates the checksum incrementally: a bad one would stay bad. */
	if (!ip_csum_ok(ip))
		return drop(p, LB_DROP_IP_CHECKSUM, LB_NO_BACKEND);
	return l4(ctx, p, ip + 1, ip->protocol, tot - sizeof(*ip), av);
}

static __always_inline int ipv6(struct xdp_md *ctx, struct pkt *p, struct ipv6hdr *ip6)
{
	struct lb_addr_vips *av;

	if ((void *)(ip6 + 1) > p->end)
		return verdict(p, LB_DROP_BAD_IP, XDP_DROP);
	if (ip6->version != 6 ||
	    (void *)(ip6 + 1) + bpf_ntohs(ip6->payload_len) > p->end)
		return verdict(p, LB_DROP_BAD_IP, XDP_DROP);
	__builtin_memcpy(&p->key.dst, &ip6->daddr, 16);
	av = bpf_map_lookup_elem(&vip_ports, &p->key.dst);
	if (!av)
		return verdict(p, LB_PASS_NOT_VIP, XDP_PASS);
	__builtin_memcpy(&p->key.src, &ip6->saddr, 16);
	p->ip6 = ip6;
	if (ip6->nexthdr == IPPROTO_TCP || ip6->nexthdr == IPPROTO_UDP)
		return l4(ctx, p, ip6 + 1, ip6->nexthdr, bpf_ntohs(ip6->payload_len), av);
	if (ip6->nexthdr == NEXTHDR_FRAGMENT)
		return not_for_vip(p, av->flags, LB_DROP_FRAGMENT);
	if (ip6->nexthdr == IPPROTO_ICMPV6_ || ip6->nexthdr == 59 /* no next header */)
		return verdict(p, LB_PASS_NON_L4, XDP_PASS); /* ND must reach the host */
	/* Hop-by-hop, routing, destination options: we don't walk them. */
	if (ip6->nexthdr == 0 || ip6->nexthdr == 43 || ip6->nexthdr == 60)
		return not_for_vip(p, av->flags, LB_DROP_IP_OPTIONS);
	return verdict(p, LB_PASS_NON_L4, XDP_PASS);
}

SEC("xdp")
int xdp_lb(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	struct pkt p = {};
	__be16 proto;
	void *l3;

	p.end = (void *)(long)ctx->data_end;
	p.len = p.end - data;
	p.eth = data;
	l3 = eth_l3(data, p.end, &proto);
	if (!l3)
		return verdict(&p, LB_PASS_RUNT, XDP_PASS);
	if (proto == bpf_htons(ETH_P_IP))
		return ipv4(ctx, &p, l3);
	if (proto == bpf_htons(ETH_P_IPV6))
		return ipv6(ctx, &p, l3);
	return verdict(&p, LB_PASS_NOT_VIP, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
