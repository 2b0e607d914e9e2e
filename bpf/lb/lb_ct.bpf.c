// SPDX-License-Identifier: MIT
/*
 * The load balancer on the kernel's connection tracking (flow_table =
 * "conntrack"). A tc ingress program on the balancer's interface: a packet
 * to a VIP that conntrack knows goes on to the stack, which translates it
 * (the entry carries the NAT); one it does not know gets a backend by Maglev
 * and a new entry with DNAT to the backend and SNAT to the balancer's
 * address, inserted before the stack sees the packet. The stack then does
 * the rewriting, forwarding, replies, timeouts and `conntrack -L`.
 *
 * Needs nf_nat hooks in the namespace (an nftables nat chain: lua/luabpf/
 * lb/_conntrack.lua makes one) and forwarding on. Maps, reasons, stats and events
 * are bpf/lb/lb.bpf.c's, so lua/luabpf/lb.lua drives both data planes alike.
 * docs/lb.md ("Flow table: LRU or conntrack") has the verdict for each
 * conntrack error.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

#include "lb.h"
#include "lb_shared.h"
#include "parse.h"

#define AF_INET      2
#define AF_INET6     10
#define TC_ACT_OK    0
#define TC_ACT_SHOT  2
#define ENOENT_      2
#define ENOMEM_      12
#define BPF_F_CURRENT_NETNS_ (-1)

/* Conntrack kfuncs (net/netfilter/nf_conntrack_bpf.c, nf_nat_bpf.c). */
extern struct nf_conn *bpf_skb_ct_lookup(struct __sk_buff *skb, struct bpf_sock_tuple *tuple,
					 __u32 tuple__sz, struct bpf_ct_opts *opts,
					 __u32 opts__sz) __ksym;
extern struct nf_conn___init *bpf_skb_ct_alloc(struct __sk_buff *skb,
					       struct bpf_sock_tuple *tuple, __u32 tuple__sz,
					       struct bpf_ct_opts *opts, __u32 opts__sz) __ksym;
extern struct nf_conn *bpf_ct_insert_entry(struct nf_conn___init *nfct) __ksym;
extern int bpf_ct_set_nat_info(struct nf_conn___init *nfct, union nf_inet_addr *addr, int port,
			       enum nf_nat_manip_type manip) __ksym;
extern void bpf_ct_set_timeout(struct nf_conn___init *nfct, __u32 timeout) __ksym;
extern int bpf_ct_change_timeout(struct nf_conn *nfct, __u32 timeout) __ksym;
extern void bpf_ct_release(struct nf_conn *ct) __ksym;

/* Entries we make carry ct_mark | backend id: `conntrack -L -m MARK/0xffff0000`. */
__u32 ct_mark = 0x4c420000;
/* A new entry's life until its first packet reaches conntrack, which then
 * sets the protocol's own timeout. */
__u32 ct_new_timeout_ms = 5000;
/*
 * ct_sync (lb.new{ct_sync = true}): a new flow's entry is made by the
 * kernel, not by bpf_ct_alloc. Entries allocated here carry no event cache
 * extension (nf_conntrack_alloc adds none; only init_conntrack and ctnetlink
 * add it, and a confirmed entry can't gain one), so ctnetlink never reports
 * them and conntrackd never syncs them. With ct_sync the packet leaves with
 * skb->mark = ct_mark | backend id; the service's nftables chains
 * (lua/luabpf/lb/_conntrack.lua) copy it to the entry and DNAT/SNAT by it.
 */
__u32 ct_sync = 0;

#define CT_MARK_MASK 0xffff0000u

struct pkt {
	void *data;
	void *end; /* of the linear part: headers only, the payload may be paged */
	__u64 len;
	__u32 ip_len; /* the IP packet's length, header included */
	__u8 v6;
	__u8 syn; /* a TCP SYN without ACK: a new connection */
	struct lb_flow_key key;
};

#define LB_CTX struct __sk_buff
#define LB_ACT_PASS TC_ACT_OK
#define LB_ACT_DROP TC_ACT_SHOT
#include "lb_pkt.h"

static __always_inline __be32 v4_of(const ipv6_t *a)
{
	return ((const __u32 *)a->addr)[3];
}

static __always_inline bool addr_zero(const ipv6_t *a)
{
	const __u32 *w = (const __u32 *)a->addr;

	return !(w[0] | w[1] | w[2] | w[3]) || (!(w[0] | w[1] | w[3]) && w[2] == bpf_htonl(0xffff));
}

/* The packet's tuple as conntrack takes it; returns its size. */
static __always_inline __u32 ct_tuple(struct pkt *p, struct bpf_sock_tuple *t)
{
	if (!p->v6) {
		t->ipv4.saddr = v4_of(&p->key.src);
		t->ipv4.daddr = v4_of(&p->key.dst);
		t->ipv4.sport = p->key.sport;
		t->ipv4.dport = p->key.dport;
		return sizeof(t->ipv4);
	}
	__builtin_memcpy(t->ipv6.saddr, &p->key.src, 16);
	__builtin_memcpy(t->ipv6.daddr, &p->key.dst, 16);
	t->ipv6.sport = p->key.sport;
	t->ipv6.dport = p->key.dport;
	return sizeof(t->ipv6);
}

static __always_inline void ct_opts(struct pkt *p, struct bpf_ct_opts *o)
{
	__builtin_memset(o, 0, sizeof(*o));
	o->netns_id = BPF_F_CURRENT_NETNS_;
	o->l4proto = p->key.proto;
}

/* opts__sz as this kernel has it: 12 bytes up to 6.10, 16 with zones (CO-RE). */
#define CT_OPTS_SZ bpf_core_type_size(struct bpf_ct_opts)

static __always_inline bool ours(struct nf_conn *ct)
{
	return (ct->mark & CT_MARK_MASK) == ct_mark;
}

static __always_inline void nat_addr(union nf_inet_addr *a, struct pkt *p, const ipv6_t *x)
{
	__builtin_memset(a, 0, sizeof(*a));
	if (!p->v6)
		a->ip = v4_of(x);
	else
		__builtin_memcpy(a->ip6, x, 16);
}

/*
 * Will the stack forward to the backend? The FIB answers now, so that a
 * new flow that would be dropped later is counted as it is in XDP mode.
 * The neighbour is the stack's business (it queues while resolving).
 */
static __always_inline int fib_check(struct __sk_buff *skb, struct pkt *p, const ipv6_t *src,
				     const ipv6_t *target)
{
	struct bpf_fib_lookup fib = {};
	int rc;

	fib.ifindex = skb->ingress_ifindex;
	asm volatile("" ::: "memory"); /* two loads, not one from a chosen ctx offset */
	if (!fib.ifindex)
		fib.ifindex = skb->ifindex;
	fib.l4_protocol = p->key.proto;
	fib.tot_len = p->ip_len;
	if (!p->v6) {
		fib.family = AF_INET;
		fib.ipv4_src = v4_of(src);
		fib.ipv4_dst = v4_of(target);
	} else {
		fib.family = AF_INET6;
		__builtin_memcpy(fib.ipv6_src, src, 16);
		__builtin_memcpy(fib.ipv6_dst, target, 16);
	}
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_SKIP_NEIGH);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return 0;
	return rc == BPF_FIB_LKUP_RET_FWD_DISABLED ? LB_DROP_FWD_DISABLED : LB_DROP_FIB;
}

/*
 * A new connection: backend by Maglev, then a conntrack entry with DNAT to
 * it (and SNAT to the VIP's snat address), inserted for the stack to find.
 */
static __always_inline int new_flow(struct __sk_buff *skb, struct pkt *p, struct lb_vip *vip)
{
	__u32 slot = vip->id * 2 * ring_size + (vip->table & 1) * ring_size +
		     flow_hash(&p->key) % ring_size;
	struct bpf_sock_tuple t = {};
	struct nf_conn___init *nct;
	struct bpf_ct_opts o;
	struct lb_backend *be;
	union nf_inet_addr a;
	struct nf_conn *ct;
	__u32 tlen, be_id;
	__u32 *id;
	int err;

	id = bpf_map_lookup_elem(&maglev, &slot);
	if (!id || *id == LB_NO_BACKEND)
		return drop(p, LB_DROP_NO_BACKEND, vip->id);
	be_id = *id;
	be = bpf_map_lookup_elem(&backends, &be_id);
	if (!be)
		return drop(p, LB_DROP_NO_BACKEND, vip->id);
	err = fib_check(skb, p, vip->mode == LB_MODE_NAT ? &vip->snat : &p->key.src, &be->addr);
	if (err)
		return drop(p, err, vip->id);
	if (ct_sync) {
		skb->mark = ct_mark | (be_id & ~CT_MARK_MASK);
		report(p, LB_EV_NEW_FLOW, 0, vip->id, be_id);
		add(&vip_stats, vip->id, p->len, 1);
		add(&backend_stats, be_id, p->len, 1);
		return verdict(p, LB_FORWARDED, TC_ACT_OK);
	}

	tlen = ct_tuple(p, &t);
	ct_opts(p, &o);
	nct = bpf_skb_ct_alloc(skb, &t, tlen, &o, CT_OPTS_SZ);
	if (!nct)
		return drop(p, o.error == -ENOMEM_ ? LB_DROP_CT_FULL : LB_DROP_CT_ERROR, vip->id);
	((struct nf_conn *)nct)->mark = ct_mark | (be_id & ~CT_MARK_MASK);
	bpf_ct_set_timeout(nct, ct_new_timeout_ms);
	nat_addr(&a, p, &be->addr);
	err = bpf_ct_set_nat_info(nct, &a, bpf_ntohs(be->port ? be->port : p->key.dport),
				  NF_NAT_MANIP_DST);
	/* Port 0: the client's own when free, else one the kernel picks. */
	if (!err && vip->mode == LB_MODE_NAT && !addr_zero(&vip->snat)) {
		nat_addr(&a, p, &vip->snat);
		err = bpf_ct_set_nat_info(nct, &a, 0, NF_NAT_MANIP_SRC);
	}
	if (err) {
		/* An allocated entry is only ever released by inserting it: born expired. */
		bpf_ct_set_timeout(nct, 0);
		ct = bpf_ct_insert_entry(nct);
		if (ct)
			bpf_ct_release(ct);
		return drop(p, LB_DROP_CT_NAT, vip->id);
	}
	ct = bpf_ct_insert_entry(nct);
	if (!ct) {
		/*
		 * Another CPU inserted this tuple first (EEXIST): the stack finds
		 * that entry. None there: the NAT tuple clashed; the client retries.
		 */
		ct_opts(p, &o);
		ct = bpf_skb_ct_lookup(skb, &t, tlen, &o, CT_OPTS_SZ);
		if (!ct)
			return drop(p, LB_DROP_CT_INSERT, vip->id);
		bpf_ct_release(ct);
		return verdict(p, LB_CT_RACE, TC_ACT_OK);
	}
	bpf_ct_release(ct);
	report(p, LB_EV_NEW_FLOW, 0, vip->id, be_id);
	add(&vip_stats, vip->id, p->len, 1);
	add(&backend_stats, be_id, p->len, 1);
	return verdict(p, LB_FORWARDED, TC_ACT_OK);
}

/*
 * May this entry carry the packet? A SYN on a closed connection of ours
 * (TIME_WAIT, CLOSE) would make conntrack drop the entry and make a new one
 * without NAT: we expire it and choose afresh. An entry not made by us for
 * a VIP's tuple (made before we were attached) is replaced likewise.
 */
static __always_inline bool reuse(struct pkt *p, struct nf_conn *ct)
{
	__u8 st;

	if (!ours(ct))
		return false;
	if (!p->syn)
		return true;
	st = BPF_CORE_READ(ct, proto.tcp.state);
	return st != TCP_CONNTRACK_TIME_WAIT && st != TCP_CONNTRACK_CLOSE;
}

static __always_inline int to_vip(struct __sk_buff *skb, struct pkt *p, struct lb_vip *vip)
{
	struct bpf_sock_tuple t = {};
	struct bpf_ct_opts o;
	struct nf_conn *ct;
	__u32 tlen, be_id;

	tlen = ct_tuple(p, &t);
	ct_opts(p, &o);
	ct = bpf_skb_ct_lookup(skb, &t, tlen, &o, CT_OPTS_SZ);
	if (!ct) {
		if (o.error != -ENOENT_)
			return drop(p, LB_DROP_CT_ERROR, vip->id);
		return new_flow(skb, p, vip);
	}
	if (!reuse(p, ct)) {
		bpf_ct_change_timeout(ct, 0); /* expired: the next lookup unlinks it */
		bpf_ct_release(ct);
		ct_opts(p, &o);
		ct = bpf_skb_ct_lookup(skb, &t, tlen, &o, CT_OPTS_SZ);
		if (ct) {
			/* Still there (being freed elsewhere): let the stack decide. */
			bpf_ct_release(ct);
			return verdict(p, LB_PASS_CT_FOREIGN, TC_ACT_OK);
		}
		return new_flow(skb, p, vip);
	}
	be_id = ct->mark & ~CT_MARK_MASK;
	bpf_ct_release(ct);
	add(&vip_stats, vip->id, p->len, 0);
	add(&backend_stats, be_id, p->len, 0);
	return verdict(p, LB_FORWARDED, TC_ACT_OK);
}

/* A backend's answer to the balancer's address: ours if conntrack has it, else passed. */
static __always_inline int to_client(struct __sk_buff *skb, struct pkt *p)
{
	struct bpf_sock_tuple t = {};
	struct bpf_ct_opts o;
	struct nf_conn *ct;
	__u32 tlen;
	bool mine;

	tlen = ct_tuple(p, &t);
	ct_opts(p, &o);
	ct = bpf_skb_ct_lookup(skb, &t, tlen, &o, CT_OPTS_SZ);
	if (!ct)
		return verdict(p, LB_PASS_OTHER_PORT, TC_ACT_OK);
	mine = ours(ct);
	bpf_ct_release(ct);
	return verdict(p, mine ? LB_REPLY : LB_PASS_OTHER_PORT, TC_ACT_OK);
}

static __always_inline int l4(struct __sk_buff *skb, struct pkt *p, void *l4h, __u8 proto,
			      __u32 l4len, __u32 flags)
{
	__u32 r = l4_parse(p, l4h, proto, l4len, false);
	struct lb_vip *vip;

	if (r)
		return stop(p, r);
	vip = flags & VIP_ADDR ? vip_lookup(p) : NULL;
	if (vip)
		return to_vip(skb, p, vip);
	return flags & SNAT_ADDR ? to_client(skb, p) : verdict(p, LB_PASS_OTHER_PORT, TC_ACT_OK);
}

static __always_inline int ipv4(struct __sk_buff *skb, struct pkt *p, struct iphdr *ip)
{
	__u32 *flags, r;
	__u16 tot;

	if ((void *)(ip + 1) > p->end)
		return verdict(p, LB_DROP_BAD_IP, TC_ACT_SHOT);
	tot = bpf_ntohs(ip->tot_len);
	if (ip4_bad(ip, tot) || (void *)ip - p->data + tot > p->len)
		return verdict(p, LB_DROP_BAD_IP, TC_ACT_SHOT);
	v4_mapped(&p->key.dst, ip->daddr);
	flags = bpf_map_lookup_elem(&vip_addrs, &p->key.dst);
	if (!flags)
		return verdict(p, LB_PASS_NOT_VIP, TC_ACT_OK);
	v4_mapped(&p->key.src, ip->saddr);
	p->ip_len = tot;
	r = ip4_stop(ip, *flags);
	if (r)
		return stop(p, r);
	return l4(skb, p, ip + 1, ip->protocol, tot - sizeof(*ip), *flags);
}

static __always_inline int ipv6(struct __sk_buff *skb, struct pkt *p, struct ipv6hdr *ip6)
{
	__u32 *flags, r;

	if ((void *)(ip6 + 1) > p->end)
		return verdict(p, LB_DROP_BAD_IP, TC_ACT_SHOT);
	if (ip6->version != 6 ||
	    (void *)(ip6 + 1) - p->data + bpf_ntohs(ip6->payload_len) > p->len)
		return verdict(p, LB_DROP_BAD_IP, TC_ACT_SHOT);
	__builtin_memcpy(&p->key.dst, &ip6->daddr, 16);
	flags = bpf_map_lookup_elem(&vip_addrs, &p->key.dst);
	if (!flags)
		return verdict(p, LB_PASS_NOT_VIP, TC_ACT_OK);
	__builtin_memcpy(&p->key.src, &ip6->saddr, 16);
	p->v6 = 1;
	p->ip_len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
	r = ip6_stop(ip6, *flags);
	if (r)
		return stop(p, r);
	return l4(skb, p, ip6 + 1, ip6->nexthdr, bpf_ntohs(ip6->payload_len), *flags);
}

SEC("tc")
int tc_lb(struct __sk_buff *skb)
{
	struct pkt p = {};
	void *data;

	/* Headers in a paged skb: make the first 128 bytes linear. */
	p.len = skb->len;
	if (skb->data_end - skb->data < p.len)
		bpf_skb_pull_data(skb, p.len < 128 ? p.len : 128);
	/* Keeps clang from reusing ctx offsets it computed before the call. */
	asm volatile("" ::: "memory");
	data = (void *)(long)skb->data;
	p.data = data;
	p.end = (void *)(long)skb->data_end;
	/* The stack untags before tc sees a frame; a tag in the data is a second one. */
	return l3(skb, &p, data);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
