/* SPDX-License-Identifier: MIT */
/*
 * DSR across routed networks (docs/lb.md, "ipip and gue"): the client's packet,
 * unchanged, inside a tunnel header toward the backend, which strips it
 * (bpf/decap/decap.bpf.c) and answers the client directly.
 *
 *   ipip: IPv4 in IPv4 (protocol 4), IPv6 in IPv6 and IPv4 in IPv6 (next header
 *         4 or 41), no options.
 *   gue:  outer IP + UDP to lb_vip.encap_port, then the inner IP packet (GUE
 *         "variant 1", direct IP over UDP); the UDP source port is from the
 *         flow hash, so routers' ECMP spreads flows and keeps each on one path.
 *
 * The outer source is lb_vip.snat (the balancer's address in the backends'
 * family), the destination the backend. Outer IPv4 has DF set and a full
 * header checksum; the outer UDP checksum is computed from the inner packet's
 * own L4 checksum (a valid TCP/UDP checksum makes the inner packet sum to the
 * complement of its pseudo header) without reading its payload; only an IPv4
 * UDP datagram without a checksum gets outer UDP checksum 0 (RFC 6935 for
 * IPv6). A frame too big for the path once encapsulated gets an ICMP
 * "fragmentation needed" / ICMPv6 "packet too big" back to the client from
 * send() (bpf_fib_lookup's FRAG_NEEDED), with the path's MTU less the tunnel's
 * overhead: encap_too_big().
 *
 * Included by bpf/lb/lb.bpf.c after struct pkt, verdict() and v4_of().
 */
#ifndef LB_ENCAP_H
#define LB_ENCAP_H

#define ENCAP_TTL	   64
#define ICMP_QUOTE	   64 /* bytes of the client's packet an ICMP error carries */
#define IPPROTO_ICMP_	   1
#define ICMP_DEST_UNREACH_ 3
#define ICMP_FRAG_NEEDED_  4
#define ICMPV6_PKT_TOOBIG_ 2

static __always_inline bool encap_is_v4(const ipv6_t *a)
{
	const __u32 *w = (const __u32 *)a->addr;

	return w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0x0000ffff);
}

/* The L2 header's length: Ethernet, and one VLAN tag if there is one (parse.h). */
static __always_inline __u32 encap_l2len(const struct ethhdr *eth)
{
	return eth->h_proto == bpf_htons(ETH_P_8021Q) || eth->h_proto == bpf_htons(ETH_P_8021AD)
		   ? 18
		   : 14;
}

/* The one's complement sum (unfolded) of 16 bytes read as words. */
static __always_inline __u64 sum16b(const void *a)
{
	const __u32 *w = a;

	return (__u64)w[0] + w[1] + w[2] + w[3];
}

/*
 * The one's complement sum of the whole inner packet, from its headers only:
 * its L4 checksum is right, so the L4 segment sums to ~pseudo header, and an
 * IPv4 header with a right checksum sums to 0 (0xffff). -1 when the inner
 * packet has no L4 checksum (UDP over IPv4 with checksum 0).
 */
static __always_inline __s64 inner_sum(struct pkt *p, __u32 inner_len)
{
	__u64 ph;

	if (!p->l4_csum)
		return -1;
	if (p->ip4) {
		__u32 l4len = inner_len - sizeof(struct iphdr);

		ph = (__u64)p->ip4->saddr + p->ip4->daddr +
		     bpf_htonl(((__u32)p->ip4->protocol << 16) | l4len);
		return (__u16)~csum_fold(ph);
	}
	if (p->ip6) {
		__u32 l4len = inner_len - sizeof(struct ipv6hdr);
		const __u32 *h = (const __u32 *)p->ip6;

		ph = sum16b(&p->ip6->saddr) + sum16b(&p->ip6->daddr) + bpf_htonl(l4len) +
		     bpf_htonl(p->ip6->nexthdr);
		/* The IPv6 header has no checksum of its own: add its words. */
		return (__u64)(__u16)~csum_fold(ph) + h[0] + h[1] + sum16b(&p->ip6->saddr) +
		       sum16b(&p->ip6->daddr);
	}
	return -1;
}

/*
 * Put the tunnel headers in front of the client's packet (at the start of the
 * L3 header; the L2 header moves forward, its EtherType becomes the outer
 * family's) and point p at the outer header for send(). 0, or -1 when there
 * is no room (the packet is left as it was).
 */
static __always_inline int encap(struct xdp_md *ctx, struct pkt *p, const struct lb_vip *vip,
				 const struct lb_backend *be)
{
	bool out6 = !encap_is_v4(&be->addr), gue = vip->mode == LB_MODE_GUE;
	__u32 ovh = (out6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr)) +
		    (gue ? sizeof(struct udphdr) : 0);
	__u8 l2hdr[18], inner_proto, tos;
	__u32 l2, inner_len, h, sport;
	__s64 isum = -1;
	void *data, *end, *o;

	l2 = encap_l2len(p->eth);
	if (p->ip4) {
		inner_len = bpf_ntohs(p->ip4->tot_len);
		inner_proto = IPPROTO_IPIP;
		tos = p->ip4->tos;
	} else if (p->ip6) {
		inner_len = bpf_ntohs(p->ip6->payload_len) + sizeof(struct ipv6hdr);
		inner_proto = IPPROTO_IPV6;
		tos = (p->ip6->priority << 4) | (p->ip6->flow_lbl[0] >> 4);
	} else {
		return -1;
	}
	if ((void *)p->eth + sizeof(l2hdr) > p->end)
		return -1;
	__builtin_memcpy(l2hdr, p->eth, sizeof(l2hdr));
	h = flow_hash(&p->key);
	if (gue)
		isum = inner_sum(p, inner_len);
	if (bpf_xdp_adjust_head(ctx, -(int)ovh))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + sizeof(l2hdr) > end)
		return -1;
	__builtin_memcpy(data, l2hdr, sizeof(l2hdr));
	o = data + (l2 == 18 ? 18 : 14);
	if (o + sizeof(struct ipv6hdr) + sizeof(struct udphdr) > end)
		return -1;
	*(__be16 *)(o - 2) = bpf_htons(out6 ? ETH_P_IPV6 : ETH_P_IP);
	p->eth = data;
	p->end = end;
	p->len = end - data;
	p->encap = ovh;
	/* The packet pointers into the old frame (ports, checksum) are gone. */
	p->ports = NULL;
	p->l4_csum = NULL;
	if (out6) {
		struct ipv6hdr *ip6 = o;
		__u32 w0 = (6u << 28) | ((__u32)tos << 20) | (h & 0xfffff);

		*(__be32 *)ip6 = bpf_htonl(w0);
		ip6->payload_len = bpf_htons(ovh - sizeof(*ip6) + inner_len);
		ip6->nexthdr = gue ? IPPROTO_UDP : inner_proto;
		ip6->hop_limit = ENCAP_TTL;
		__builtin_memcpy(&ip6->saddr, &vip->snat, 16);
		__builtin_memcpy(&ip6->daddr, &be->addr, 16);
		p->ip4 = NULL;
		p->ip6 = ip6;
	} else {
		struct iphdr *ip = o;
		const __u32 *w = o;

		ip->version = 4;
		ip->ihl = 5;
		ip->tos = tos;
		ip->tot_len = bpf_htons(ovh + inner_len);
		ip->id = 0;
		ip->frag_off = bpf_htons(IP_DF);
		ip->ttl = ENCAP_TTL;
		ip->protocol = gue ? IPPROTO_UDP : inner_proto;
		ip->check = 0;
		ip->saddr = v4_of(&vip->snat);
		ip->daddr = v4_of(&be->addr);
		ip->check = ~csum_fold((__u64)w[0] + w[1] + w[2] + w[3] + w[4]);
		p->ip4 = ip;
		p->ip6 = NULL;
	}
	if (gue) {
		struct udphdr *uh = o + ovh - sizeof(struct udphdr);
		__u16 ulen = sizeof(*uh) + inner_len;
		__u64 s;

		sport = 0x8000 | (h >> 17); /* 32768-65535: an ephemeral-looking port */
		uh->source = bpf_htons(sport);
		uh->dest = vip->encap_port;
		uh->len = bpf_htons(ulen);
		uh->check = 0;
		if (isum >= 0) {
			const __u32 *u = (const __u32 *)uh;

			s = (__u64)isum + u[0] + u[1] + bpf_htonl(((__u32)IPPROTO_UDP << 16)) +
			    bpf_htonl(ulen);
			if (out6)
				s += sum16b(&p->ip6->saddr) + sum16b(&p->ip6->daddr);
			else
				s += (__u64)p->ip4->saddr + p->ip4->daddr;
			uh->check = ~csum_fold(s);
			if (!uh->check)
				uh->check = 0xffff;
		}
	}
	return 0;
}

/*
 * The encapsulated frame is too big for the path (mtu): turn it into an ICMP
 * error to the client, from the VIP, quoting the first ICMP_QUOTE bytes of the
 * client's packet, and send it back out the way it came (the client's MACs are
 * still in the L2 header: send() writes the next hop's only on success).
 */
static __always_inline int encap_too_big(struct xdp_md *ctx, struct pkt *p, __u32 mtu)
{
	bool in4 = encap_is_v4(&p->key.src);
	__u32 hdr = (in4 ? sizeof(struct iphdr) : sizeof(struct ipv6hdr)) + 8;
	__u32 l2 = encap_l2len(p->eth);
	__u8 l2hdr[18], mac[ETH_ALEN];
	void *data, *end, *o;
	int delta;

	if ((void *)p->eth + sizeof(l2hdr) > p->end)
		return drop(p, LB_DROP_ENCAP, LB_NO_BACKEND);
	__builtin_memcpy(l2hdr, p->eth, sizeof(l2hdr));
	mtu = mtu > p->encap ? mtu - p->encap : 0;
	/* Header room: the client's packet starts l2 + encap bytes in; ours l2 + hdr. */
	delta = (int)p->encap - (int)hdr;
	if (bpf_xdp_adjust_head(ctx, delta))
		return drop(p, LB_DROP_ENCAP, LB_NO_BACKEND);
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	delta = (int)(l2 + hdr + ICMP_QUOTE) - (int)(end - data);
	if (delta > 0 || bpf_xdp_adjust_tail(ctx, delta))
		return drop(p, LB_DROP_ENCAP, LB_NO_BACKEND);
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + sizeof(l2hdr) > end)
		return drop(p, LB_DROP_ENCAP, LB_NO_BACKEND);
	__builtin_memcpy(data, l2hdr, sizeof(l2hdr));
	/* Back to the client: its MAC (the frame's source) becomes the destination. */
	__builtin_memcpy(mac, l2hdr, ETH_ALEN);
	__builtin_memcpy(data, l2hdr + ETH_ALEN, ETH_ALEN);
	__builtin_memcpy(data + ETH_ALEN, mac, ETH_ALEN);
	o = data + (l2 == 18 ? 18 : 14);
	p->len = end - data;
	*(__be16 *)(o - 2) = bpf_htons(in4 ? ETH_P_IP : ETH_P_IPV6);
	if (in4) {
		struct iphdr *ip = o;
		struct iphdr *q = o + sizeof(*ip) + 8; /* the quoted client's header */
		__u8 *icmp = o + sizeof(*ip);
		const __u32 *w = o;
		__s64 s;

		if ((void *)q + ICMP_QUOTE > end)
			return drop(p, LB_DROP_ENCAP, LB_NO_BACKEND);
		ip->version = 4;
		ip->ihl = 5;
		ip->tos = 0;
		ip->tot_len = bpf_htons(hdr + ICMP_QUOTE);
		ip->id = 0;
		ip->frag_off = 0;
		ip->ttl = ENCAP_TTL;
		ip->protocol = IPPROTO_ICMP_;
		ip->check = 0;
		ip->saddr = q->daddr; /* from the VIP */
		ip->daddr = q->saddr;
		ip->check = ~csum_fold((__u64)w[0] + w[1] + w[2] + w[3] + w[4]);
		icmp[0] = ICMP_DEST_UNREACH_;
		icmp[1] = ICMP_FRAG_NEEDED_;
		*(__u16 *)(icmp + 2) = 0;
		*(__u16 *)(icmp + 4) = 0;
		*(__be16 *)(icmp + 6) = bpf_htons(mtu > 0xffff ? 0xffff : mtu);
		s = bpf_csum_diff(NULL, 0, (__be32 *)icmp, 8 + ICMP_QUOTE, 0);
		if (s < 0)
			return drop(p, LB_DROP_ENCAP, LB_NO_BACKEND);
		*(__u16 *)(icmp + 2) = ~csum_fold(s);
	} else {
		struct ipv6hdr *ip6 = o;
		struct ipv6hdr *q = o + sizeof(*ip6) + 8;
		__u8 *icmp = o + sizeof(*ip6);
		__s64 s;
		__u64 ph;

		if ((void *)q + ICMP_QUOTE > end)
			return drop(p, LB_DROP_ENCAP, LB_NO_BACKEND);
		*(__be32 *)ip6 = bpf_htonl(6u << 28);
		ip6->payload_len = bpf_htons(8 + ICMP_QUOTE);
		ip6->nexthdr = IPPROTO_ICMPV6_;
		ip6->hop_limit = ENCAP_TTL;
		ip6->saddr = q->daddr;
		ip6->daddr = q->saddr;
		icmp[0] = ICMPV6_PKT_TOOBIG_;
		icmp[1] = 0;
		*(__u16 *)(icmp + 2) = 0;
		*(__be32 *)(icmp + 4) = bpf_htonl(mtu);
		s = bpf_csum_diff(NULL, 0, (__be32 *)icmp, 8 + ICMP_QUOTE, 0);
		if (s < 0)
			return drop(p, LB_DROP_ENCAP, LB_NO_BACKEND);
		ph = (__u64)s + sum16b(&ip6->saddr) + sum16b(&ip6->daddr) +
		     bpf_htonl(8 + ICMP_QUOTE) + bpf_htonl(IPPROTO_ICMPV6_);
		*(__u16 *)(icmp + 2) = ~csum_fold(ph);
	}
	return verdict(p, LB_ICMP_TOO_BIG, XDP_TX);
}

#endif
