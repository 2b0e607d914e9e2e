/* SPDX-License-Identifier: MIT */
/*
 * Full NAT's state in bpf/lb/lb.bpf.c: a new flow's claim of a source port
 * toward its backend (a reply mapping in nat, LRU), and a backend's reply
 * turned back to its client by that mapping.
 *
 * Included by lb.bpf.c after send() and rewrite().
 */
#ifndef LB_NAT_H
#define LB_NAT_H

#define NAT_PORT_TRIES 8
/* How often a NAT flow's packets look its nat entry up, to keep it in the LRU. */
#define NAT_KEEPALIVE 1000 /* ~1 s in flow.nat_seen units (2^20 ns) */

/*
 * Claim a NAT source port toward the backend, starting from *lport (the
 * flow's own when its mapping is made again, so the backend never sees the
 * port change mid-connection) or, for a new flow, the client's.
 */
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
	nk.lport = *lport ? *lport : p->key.sport;
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

/* A backend's answer to a NAT flow: back to the client, from the VIP. None: passed. */
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
		return verdict(p, LB_PASS_OTHER_PORT, XDP_PASS);
	r = *n;
	rewrite(p, &r.vip, r.vport, &r.client, r.cport);
	return send(ctx, p, &r.client, LB_REPLY, r.vip_id);
}

#endif
