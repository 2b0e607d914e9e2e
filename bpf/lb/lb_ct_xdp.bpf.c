// SPDX-License-Identifier: MIT
/*
 * The conntrack flow table's XDP fast path (lb.new{flow_table = "conntrack",
 * ct_fastpath = true}): packets of established connections that are ours
 * (the entry's mark) are translated here from the entry's tuples and sent
 * with XDP_TX/redirect, skipping the stack; everything else (new flows, SYN,
 * FIN, RST, entries not yet established or closing, no route or neighbour)
 * is XDP_PASS to bpf/lb/lb_ct.bpf.c's tc program and the kernel, as without it.
 *
 * Loaded beside lb_ct.bpf.o with the same pin directory: its maps are that
 * object's, shared by name. Conntrack does not see the packets sent from
 * here, so (docs/lb.md, "Flow table: LRU or conntrack"):
 * - the entry's timeout is refreshed here (bpf_ct_change_timeout), with the
 *   namespace's established/stream timeouts that Lua puts in the globals;
 * - its TCP window is not tracked: the FIN/RST that go through the stack
 *   need net.netfilter.nf_conntrack_tcp_be_liberal=1 (set by lb/_conntrack.lua);
 * - its packet/byte counters (nf_conntrack_acct) miss the fast packets.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

#include "lb.h"
#include "lb_maps.h" /* the tc object's (bpf/lb/lb_ct.bpf.c), reused by name from the pin directory */
#include "parse.h"
#include "lb_rewrite.h"

#define ETH_ALEN_  6
#define AF_INET    2
#define AF_INET6   10
#define BPF_F_CURRENT_NETNS_ (-1)

#define CT_MARK_MASK 0xffff0000u

extern struct nf_conn *bpf_xdp_ct_lookup(struct xdp_md *ctx, struct bpf_sock_tuple *tuple,
					 __u32 tuple__sz, struct bpf_ct_opts *opts,
					 __u32 opts__sz) __ksym;
extern int bpf_ct_change_timeout(struct nf_conn *nfct, __u32 timeout) __ksym;
extern void bpf_ct_release(struct nf_conn *ct) __ksym;

__u32 ct_mark = 0x4c420000;
/* What conntrack would set on each packet it saw (ms), from the namespace's
 * nf_conntrack_tcp_timeout_established, nf_conntrack_udp_timeout_stream (an
 * assured UDP flow) and nf_conntrack_udp_timeout (a replied one not yet
 * assured, which stays so: conntrack assures a flow it sees 2 s after its
 * start); 0: do not refresh. */
__u32 tcp_timeout_ms = 432000000;
__u32 udp_stream_timeout_ms = 120000;
__u32 udp_timeout_ms = 30000;

/* The translated packet's addresses and ports. */
struct nat {
	__be32 saddr[4];
	__be32 daddr[4];
	__be16 sport;
	__be16 dport;
};

/*
 * A packet in direction dir leaves as the inverse of the other direction's
 * tuple: to its source, from its destination. Constant offsets only.
 */
static __always_inline void nat_of(struct nf_conn *ct, __u8 dir, struct nat *n)
{
	struct nf_conntrack_tuple *t;

	if (dir == IP_CT_DIR_ORIGINAL)
		t = &ct->tuplehash[IP_CT_DIR_REPLY].tuple;
	else
		t = &ct->tuplehash[IP_CT_DIR_ORIGINAL].tuple;
	__builtin_memcpy(n->saddr, &t->dst.u3, 16);
	__builtin_memcpy(n->daddr, &t->src.u3, 16);
	n->sport = t->dst.u.all;
	n->dport = t->src.u.all;
}

/*
 * One function per family (v6 is a constant in each copy): the verifier
 * follows the header pointer of that family only.
 */
static __always_inline int fast(struct xdp_md *ctx, const bool v6)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct bpf_sock_tuple tup = {};
	struct bpf_fib_lookup fib = {};
	struct ethhdr *eth = data;
	struct iphdr *ip4 = (void *)(eth + 1);
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	struct lb_vip_key vk = {};
	struct bpf_ct_opts o = {};
	__u32 tlen, be_id, status, vip_id = LB_NO_BACKEND, *flags;
	__u64 len = end - data;
	__sum16 *l4_csum;
	struct nf_conn *ct;
	__be16 *ports;
	struct nat n;
	__u8 proto, dir;
	void *l4h;
	int rc;

	if (!v6) {
		if ((void *)(ip4 + 1) > end || ip4->ihl != 5 || ip4->version != 4 ||
		    (ip4->frag_off & bpf_htons(IP_MF | IP_OFFSET)) || ip4->ttl <= 1)
			return XDP_PASS;
		proto = ip4->protocol;
		l4h = ip4 + 1;
		((__u32 *)vk.addr.addr)[2] = bpf_htonl(0x0000ffff);
		((__u32 *)vk.addr.addr)[3] = ip4->daddr;
		tup.ipv4.saddr = ip4->saddr;
		tup.ipv4.daddr = ip4->daddr;
		tlen = sizeof(tup.ipv4);
	} else {
		if ((void *)(ip6 + 1) > end || ip6->version != 6 || ip6->hop_limit <= 1)
			return XDP_PASS;
		proto = ip6->nexthdr;
		l4h = ip6 + 1;
		__builtin_memcpy(&vk.addr, &ip6->daddr, 16);
		__builtin_memcpy(tup.ipv6.saddr, &ip6->saddr, 16);
		__builtin_memcpy(tup.ipv6.daddr, &ip6->daddr, 16);
		tlen = sizeof(tup.ipv6);
	}
	flags = bpf_map_lookup_elem(&vip_addrs, &vk.addr);
	if (!flags)
		return XDP_PASS;
	if (proto == IPPROTO_TCP) {
		struct tcphdr *th = l4h;

		if ((void *)(th + 1) > end)
			return XDP_PASS;
		/* Opening and closing go through conntrack, which must see them. */
		if (th->syn || th->fin || th->rst)
			return XDP_PASS;
		l4_csum = &th->check;
	} else if (proto == IPPROTO_UDP) {
		struct udphdr *uh = l4h;

		if ((void *)(uh + 1) > end)
			return XDP_PASS;
		l4_csum = (!v6 && !uh->check) ? NULL : &uh->check;
	} else {
		return XDP_PASS;
	}
	ports = l4h;
	if (!v6) {
		tup.ipv4.sport = ports[0];
		tup.ipv4.dport = ports[1];
	} else {
		tup.ipv6.sport = ports[0];
		tup.ipv6.dport = ports[1];
	}
	if (*flags & VIP_ADDR) {
		struct lb_vip *vip;

		vk.port = ports[1];
		vk.proto = proto;
		vip = bpf_map_lookup_elem(&vips, &vk);
		if (vip)
			vip_id = vip->id;
	}
	if (vip_id == LB_NO_BACKEND && !(*flags & SNAT_ADDR))
		return XDP_PASS;

	o.netns_id = BPF_F_CURRENT_NETNS_;
	o.l4proto = proto;
	ct = bpf_xdp_ct_lookup(ctx, &tup, tlen, &o, bpf_core_type_size(struct bpf_ct_opts));
	if (!ct)
		return XDP_PASS;
	dir = o.dir;
	status = ct->status;
	/* Ours, NAT bound, alive; to a VIP service forward, from a backend back. */
	if ((ct->mark & CT_MARK_MASK) != ct_mark || !(status & IPS_DST_NAT_DONE) ||
	    (status & IPS_DYING) || (dir == IP_CT_DIR_ORIGINAL) != (vip_id != LB_NO_BACKEND))
		goto slow;
	if (proto == IPPROTO_TCP ? ct->proto.tcp.state != TCP_CONNTRACK_ESTABLISHED
				 : !(status & IPS_SEEN_REPLY))
		goto slow;
	nat_of(ct, dir, &n);

	fib.ifindex = ctx->ingress_ifindex;
	fib.l4_protocol = proto;
	if (!v6) {
		fib.family = AF_INET;
		fib.tos = ip4->tos;
		fib.tot_len = bpf_ntohs(ip4->tot_len);
		fib.ipv4_src = n.saddr[0];
		fib.ipv4_dst = n.daddr[0];
	} else {
		fib.family = AF_INET6;
		fib.tot_len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
		__builtin_memcpy(fib.ipv6_src, n.saddr, 16);
		__builtin_memcpy(fib.ipv6_dst, n.daddr, 16);
	}
	/* No route or neighbour yet: the stack resolves it and forwards this one. */
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		goto slow;

	/* What conntrack's nf_ct_refresh would do had it seen the packet. */
	rc = proto == IPPROTO_TCP  ? tcp_timeout_ms
	     : status & IPS_ASSURED ? udp_stream_timeout_ms
				    : udp_timeout_ms;
	if (rc)
		bpf_ct_change_timeout(ct, rc);
	be_id = ct->mark & ~CT_MARK_MASK;
	bpf_ct_release(ct);

	if (!v6) {
		__u32 check;

		nat4(ip4, ports, l4_csum, proto == IPPROTO_UDP, n.saddr[0], n.sport, n.daddr[0], n.dport);
		/* A router's hop, as the stack's forwarding does (ip_decrease_ttl). */
		check = (__u32)ip4->check + bpf_htons(0x0100);
		ip4->check = (__sum16)(check + (check >= 0xffff));
		ip4->ttl--;
	} else {
		nat6(ip6, ports, l4_csum, proto == IPPROTO_UDP, n.saddr, n.sport, n.daddr, n.dport);
		ip6->hop_limit--;
	}
	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN_);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN_);

	if (vip_id != LB_NO_BACKEND) {
		add(&reasons, LB_CT_FAST, len, 0);
		add(&vip_stats, vip_id, len, 0);
		add(&backend_stats, be_id, len, 0);
	} else {
		add(&reasons, LB_CT_FAST_REPLY, len, 0);
	}
	if (fib.ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect(fib.ifindex, 0);
slow:
	bpf_ct_release(ct);
	return XDP_PASS;
}

SEC("xdp")
int xdp_ct_fast(struct xdp_md *ctx)
{
	struct ethhdr *eth = (void *)(long)ctx->data;

	if ((void *)(eth + 1) > (void *)(long)ctx->data_end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		return fast(ctx, false);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return fast(ctx, true);
	return XDP_PASS; /* ARP, VLAN-tagged frames (the tc program handles those) */
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
