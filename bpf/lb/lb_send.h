/* SPDX-License-Identifier: MIT */
/*
 * The way out of bpf/lb/lb.bpf.c: the next hop's MACs from the per-CPU
 * nexthops cache (lb.h, struct lb_nexthop) or from the kernel's FIB, which
 * refills it, and the verdict (XDP_TX, or a redirect to another interface).
 *
 * Included by lb.bpf.c after struct pkt, its maps and globals, addr_eq(),
 * v4_of() and lb_encap.h.
 */
#ifndef LB_SEND_H
#define LB_SEND_H

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
	struct bpf_fib_lookup *fib;
	struct lb_scratch *s;
	struct lb_nexthop *nh;
	__u32 ifindex, slot, gen, zero = 0;
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
	s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return drop(p, LB_DROP_FIB, vip);
	fib = &s->fib;
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->ifindex = ctx->ingress_ifindex;
	fib->l4_protocol = p->key.proto;
	fib->tot_len = tot;
	if (p->ip4) {
		fib->family = AF_INET;
		fib->tos = p->ip4->tos;
		fib->ipv4_src = p->ip4->saddr;
		fib->ipv4_dst = v4_of(target);
	} else if (p->ip6) {
		fib->family = AF_INET6;
		__builtin_memcpy(fib->ipv6_src, &p->ip6->saddr, 16);
		__builtin_memcpy(fib->ipv6_dst, target, 16);
	}
	gen = nexthop_gen; /* before the lookup: a bump during it is not lost */
	rc = bpf_fib_lookup(ctx, fib, sizeof(*fib), 0);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		if (reason == LB_REPLY)
			return verdict(p, LB_PASS_NO_NEIGH, XDP_PASS);
		return drop(p, LB_DROP_NO_NEIGH, vip);
	}
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED && p->encap)
		return encap_too_big(ctx, p, fib->mtu_result);
	if (rc == BPF_FIB_LKUP_RET_FWD_DISABLED)
		return drop(p, LB_DROP_FWD_DISABLED, vip);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return drop(p, LB_DROP_FIB, vip);
	__builtin_memcpy(p->eth->h_dest, fib->dmac, ETH_ALEN);
	__builtin_memcpy(p->eth->h_source, fib->smac, ETH_ALEN);
	ifindex = fib->ifindex;
	if (nh) {
		nh->addr = *target;
		__builtin_memcpy(nh->dmac, fib->dmac, ETH_ALEN);
		__builtin_memcpy(nh->smac, fib->smac, ETH_ALEN);
		nh->ifindex = fib->ifindex;
		nh->mtu = fib->mtu_result;
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

#endif
