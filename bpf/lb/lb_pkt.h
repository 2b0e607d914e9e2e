/* SPDX-License-Identifier: MIT */
/*
 * What the two full data planes (bpf/lb/lb.bpf.c in XDP, bpf/lb/lb_ct.bpf.c
 * in tc) do alike with a packet before its service: the verdicts and their
 * counters, and the checks on its IP and L4 headers, which give the same
 * reason in both (docs/lb.md has the table).
 *
 * Include after lb_shared.h, parse.h, the program's struct pkt (with end,
 * len, syn and key), its context type LB_CTX and its actions LB_ACT_PASS and
 * LB_ACT_DROP; the program defines ipv4() and ipv6() (declared here).
 */
#ifndef LB_PKT_H
#define LB_PKT_H

#define IPPROTO_ICMPV6_ 58

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
	return verdict(p, reason, LB_ACT_DROP);
}

/* A packet that stops before its service: passed as it is, or dropped and reported. */
static __always_inline int stop(struct pkt *p, __u32 reason)
{
	if (reason == LB_PASS_NOT_VIP || reason == LB_PASS_NON_L4)
		return verdict(p, reason, LB_ACT_PASS);
	return drop(p, reason, LB_NO_BACKEND);
}

/* An IPv4 header that can't be read as one: the frame's bytes are checked by the caller. */
static __always_inline bool ip4_bad(const struct iphdr *ip, __u16 tot)
{
	return ip->ihl < 5 || ip->version != 4 || tot < ip->ihl * 4;
}

/*
 * Fragments and IP options are dropped only on their way to a VIP. An address
 * that is only a NAT source is usually the balancer's own (snat defaults to the
 * interface's): its fragmented or optioned traffic is the host's, and passes.
 */
static __always_inline __u32 not_for_vip(__u32 flags, __u32 reason)
{
	return flags & VIP_ADDR ? reason : LB_PASS_NOT_VIP;
}

/* Why an IPv4 packet to one of our addresses (its flags) stops here; 0: on to L4. */
static __always_inline __u32 ip4_stop(const struct iphdr *ip, __u32 flags)
{
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return not_for_vip(flags, LB_DROP_FRAGMENT);
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return LB_PASS_NON_L4;
	if (ip->ihl != 5)
		return not_for_vip(flags, LB_DROP_IP_OPTIONS);
	return 0;
}

/* The same for IPv6, by its next header; 0: TCP or UDP. */
static __always_inline __u32 ip6_stop(const struct ipv6hdr *ip6, __u32 flags)
{
	__u8 nh = ip6->nexthdr;

	if (nh == IPPROTO_TCP || nh == IPPROTO_UDP)
		return 0;
	if (nh == NEXTHDR_FRAGMENT)
		return not_for_vip(flags, LB_DROP_FRAGMENT);
	/* ICMPv6 (ND must reach the host) and "no next header" */
	if (nh == IPPROTO_ICMPV6_ || nh == 59)
		return LB_PASS_NON_L4;
	/* Hop-by-hop, routing, destination options: we don't walk them. */
	if (nh == 0 || nh == 43 || nh == 60)
		return not_for_vip(flags, LB_DROP_IP_OPTIONS);
	return LB_PASS_NON_L4;
}

/* The service p's packet is for, in vips (by address, port and protocol), or NULL. */
static __always_inline struct lb_vip *vip_lookup(struct pkt *p)
{
	struct lb_vip_key vk = {};

	vk.addr = p->key.dst;
	vk.port = p->key.dport;
	vk.proto = p->key.proto;
	return bpf_map_lookup_elem(&vips, &vk);
}

/*
 * The TCP or UDP header at l4h: its ports into p->key, a SYN without ACK
 * into p->syn; 0, or why it stops. l4len is what the IP header says follows
 * it: a short segment in a frame padded to Ethernet's 60 bytes must not have
 * the padding read as its header. strict (XDP, which rewrites and forwards
 * the packet itself) also checks the TCP data offset and the UDP length; in
 * tc the stack does.
 */
static __always_inline __u32 l4_parse(struct pkt *p, void *l4h, __u8 proto, __u32 l4len,
				      const bool strict)
{
	__be16 *ports = l4h;

	if (proto == IPPROTO_TCP) {
		struct tcphdr *th = l4h;

		if ((void *)(th + 1) > p->end || l4len < sizeof(*th))
			return LB_DROP_BAD_L4;
		if (strict && (th->doff < 5 || th->doff * 4 > l4len))
			return LB_DROP_TCP_OFFSET;
		p->syn = th->syn && !th->ack;
	} else if (proto == IPPROTO_UDP) {
		struct udphdr *uh = l4h;

		if ((void *)(uh + 1) > p->end || l4len < sizeof(*uh))
			return LB_DROP_BAD_L4;
		if (strict && bpf_ntohs(uh->len) != l4len)
			return LB_DROP_UDP_LENGTH;
	} else {
		return LB_PASS_NON_L4;
	}
	p->key.proto = proto;
	p->key.sport = ports[0];
	p->key.dport = ports[1];
	return 0;
}

static __always_inline int ipv4(LB_CTX *ctx, struct pkt *p, struct iphdr *ip);
static __always_inline int ipv6(LB_CTX *ctx, struct pkt *p, struct ipv6hdr *ip6);

/* From the Ethernet header and at most one VLAN tag to the program's ipv4() or ipv6(). */
static __always_inline int l3(LB_CTX *ctx, struct pkt *p, void *data)
{
	__be16 proto;
	void *l3h = eth_l3(data, p->end, &proto);

	if (!l3h)
		return verdict(p, LB_PASS_RUNT, LB_ACT_PASS);
	if (proto == bpf_htons(ETH_P_IP))
		return ipv4(ctx, p, l3h);
	if (proto == bpf_htons(ETH_P_IPV6))
		return ipv6(ctx, p, l3h);
	return verdict(p, LB_PASS_NOT_VIP, LB_ACT_PASS);
}

#endif
