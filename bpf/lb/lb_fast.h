/* SPDX-License-Identifier: MIT */
/*
 * The fast path of bpf/lb/lb.bpf.c (lb.h, struct lb_vip_id and struct
 * lb_vip_hint): the VIP of a packet found by the vip_hint page and vip_ids,
 * without a hash lookup of vip_ports, and the packets not for the balancer
 * at all passed on one bit.
 *
 * Included by lb.bpf.c after struct pkt, its maps and l4_parse() (lb_pkt.h).
 */
#ifndef LB_FAST_H
#define LB_FAST_H

/* A 20-byte IPv4 header's checksum: its ten words sum to 0xffff when right. */
static __always_inline bool ip_csum_ok(const struct iphdr *ip)
{
	const __u32 *w = (const __u32 *)ip;
	__u64 sum = (__u64)w[0] + w[1] + w[2] + w[3] + w[4];

	return csum_fold(sum) == 0xffff;
}

/*
 * The fast path (lb.h, struct lb_vip_id and struct lb_vip_hint): a TCP or
 * UDP packet (IPv4: no options or fragment, a right header checksum; IPv6: no
 * extension header) whose (address, port, protocol) vip_hint marks, a32 the
 * address's 32 bits (hint_addr): the record of the VIP vip_hint names (or,
 * where it names several, its flow's VIP), when vip_ids still has that VIP
 * at the packet's address, port and protocol; found without vip_ports, for
 * a new flow as for an established one. Otherwise NULL. Either way p->f is
 * the flow (or NULL) when flows was looked up, so to_vip() does not look
 * again; p->no_vip is set when vip_hint names no VIP there at all (the
 * packet can only be a NAT reply: vip_ports is not needed either).
 */
static __always_inline struct lb_vip *fast_vip(struct pkt *p, struct lb_vip_hint *hint, __u32 a32,
					      void *l4h, __u8 proto, __u32 l4len)
{
	struct lb_vip_id *vi;
	__u32 id;
	__u8 h;

	if (!hint || l4_parse(p, l4h, proto, l4len, true))
		return NULL;
	h = hint->id[LB_VIP_HINT_SLOT(a32, p->key.dport, p->key.proto) % LB_VIP_HINT_SLOTS];
	p->no_vip = !h;
	if (!h || (p->ip4 && !ip_csum_ok(p->ip4)))
		return NULL;
	p->f = bpf_map_lookup_elem(&flows, &p->key);
	p->looked = 1;
	if (h <= LB_VIP_HINT_IDS)
		id = h - 1;
	else if (p->f)
		id = p->f->vip;
	else
		return NULL;
	vi = bpf_map_lookup_elem(&vip_ids, &id);
	if (!vi || vi->key.proto != p->key.proto || vi->key.port != p->key.dport ||
	    !addr_eq(&vi->key.addr, &p->key.dst))
		return NULL;
	return &vi->vip;
}

/*
 * vip_hint once it is ready, else NULL (every packet takes the general
 * path). *pass is set when a32 (an IPv4 address, or an IPv6 one's four words
 * XORed) is not an address of the service's, its bit clear: the packet is not
 * for the balancer.
 */
static __always_inline struct lb_vip_hint *hint_addr(__u32 a32, bool *pass)
{
	__u32 zero = 0, a = LB_VIP_HINT_ADDR(a32) % LB_VIP_HINT_ADDRS;
	struct lb_vip_hint *hint = bpf_map_lookup_elem(&vip_hint, &zero);

	*pass = false;
	if (!hint || !hint->ready)
		return NULL;
	*pass = !(hint->addr[a / 32] & (1u << (a % 32)));
	return hint;
}

#endif
