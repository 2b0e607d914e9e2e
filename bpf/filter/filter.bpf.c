// SPDX-License-Identifier: MIT
/*
 * XDP DDoS filter. Per packet, in this order: allow entries (source prefix,
 * destination port, protocol: a match passes at once, allow wins), bans,
 * deny entries, the default policy, SYN cookies for protected ports, and a
 * per-source token bucket (packets/s and bytes/s). What passes goes on to
 * the next program (a tail call through `next`, e.g. the load balancer) or
 * to the stack. Lua (lua/luabpf/filter.lua) writes the maps and reads the
 * sampled packets off `events`. docs/filter.md has a counter per outcome.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "csum.h"
#include "filter.h"
#include "maps.h"
#include "parse.h"
#include "ringbuf_lost.h"

#define NSEC_PER_SEC	 1000000000ULL
#define TCPOPT_MSS	 2
#define SYNACK_TTL	 64
#define ETH_ALEN	 6
#define V4_PLEN		 96 /* the ::ffff:0:0/96 prefix of mapped IPv4 */

/* LPM tries must be BPF_F_NO_PREALLOC; the u32 values are rule ids. */
LUABPF_MAP_FLAGS(allow_src, BPF_MAP_TYPE_LPM_TRIE, struct filter_lpm_key, __u32, 4096,
		 BPF_F_NO_PREALLOC);
LUABPF_MAP_FLAGS(deny_src, BPF_MAP_TYPE_LPM_TRIE, struct filter_lpm_key, __u32, 4096,
		 BPF_F_NO_PREALLOC);
LUABPF_MAP(allow_port, BPF_MAP_TYPE_HASH, struct filter_port_key, __u32, 4096);
LUABPF_MAP(deny_port, BPF_MAP_TYPE_HASH, struct filter_port_key, __u32, 4096);
LUABPF_MAP(protos, BPF_MAP_TYPE_ARRAY, __u32, struct filter_proto, 256);
LUABPF_MAP_FLAGS(bans, BPF_MAP_TYPE_LPM_TRIE, struct filter_lpm_key, struct filter_ban, 65536,
		 BPF_F_NO_PREALLOC);

/* LRU: a flood from random sources evicts idle buckets, never fills up. */
LUABPF_MAP(buckets, BPF_MAP_TYPE_LRU_HASH, ipv6_t, struct filter_bucket, 65536);

/* Keyed by the TCP port (__be16). */
LUABPF_MAP(syn_ports, BPF_MAP_TYPE_HASH, __be16, struct filter_syn, 256);
LUABPF_MAP(filter_cfg, BPF_MAP_TYPE_ARRAY, __u32, struct filter_config, 1);
LUABPF_MAP(reasons, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct filter_counters, FR_MAX);
LUABPF_MAP(rule_stats, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct filter_counters, 8192);

LUABPF_EVENTS_RING(256 * 1024);

/* What passes goes on here (filter:chain(prog)); empty: to the stack. */
LUABPF_PROG_ARRAY(next, 1);

/* Named in a global so its BTF is kept: Lua decodes events by this type. */
const struct filter_event *filter_event_type __attribute__((unused));

struct pkt {
	void *data;
	void *end;
	struct iphdr *ip4; /* one of ip4, ip6 */
	struct ipv6hdr *ip6;
	struct tcphdr *th; /* TCP, first fragment, whole header in the frame */
	__u64 len;
	__u32 l3off; /* offset of the IP header from data */
	__u32 l4off; /* offset of the L4 header from data */
	__u32 l4len; /* the L4 segment's length, as the IP header says */
	bool frag;   /* a fragment (IPv4 MF or offset, any IPv6 fragment header) */
	__u8 proto;
	__be16 sport;
	__be16 dport;
	ipv6_t src;
	ipv6_t dst;
};

static __always_inline void count(void *map, __u32 idx, __u64 len)
{
	struct filter_counters *c = bpf_map_lookup_elem(map, &idx);

	if (c) {
		c->packets++;
		c->bytes += len;
	}
}

static __always_inline void report(struct pkt *p, const struct filter_config *cfg, __u32 reason,
				   __u32 rule)
{
	struct filter_event *e;

	if (!cfg->sample || (cfg->sample > 1 && bpf_get_prandom_u32() % cfg->sample))
		return;
	e = ringbuf_reserve_or_count(&events, &events_lost, sizeof(*e));
	if (!e)
		return;
	e->reason = reason;
	e->proto = p->proto;
	e->len = p->len > 0xffff ? 0xffff : p->len;
	e->sport = p->sport;
	e->dport = p->dport;
	e->rule = rule;
	e->src = p->src;
	e->dst = p->dst;
	bpf_ringbuf_submit(e, 0);
}

static __always_inline int verdict(struct xdp_md *ctx, struct pkt *p,
				   const struct filter_config *cfg, __u32 reason, __u32 rule,
				   int action)
{
	count(&reasons, reason, p->len);
	if (rule != FILTER_NO_RULE)
		count(&rule_stats, rule, p->len);
	report(p, cfg, reason, rule);
	if (action == XDP_PASS)
		bpf_tail_call(ctx, &next, 0); /* returns only if there is none */
	return action;
}

static __always_inline __u32 mask_bits(__u32 plen, __u32 base)
{
	if (plen <= base)
		return 0;
	if (plen >= base + 32)
		return 0xffffffff;
	return bpf_htonl(~0U << (32 - (plen - base)));
}

/* The source as its bucket's key: masked to the configured prefix. */
static __always_inline void bucket_key(ipv6_t *k, const struct pkt *p,
				       const struct filter_config *cfg)
{
	const __u32 *s = (const __u32 *)p->src.addr;
	__u32 *w = (__u32 *)k->addr;
	__u32 plen = p->ip4 ? V4_PLEN + (cfg->prefix4 > 32 ? 32 : cfg->prefix4)
			    : (cfg->prefix6 > 128 ? 128 : cfg->prefix6);

	w[0] = s[0] & mask_bits(plen, 0);
	w[1] = s[1] & mask_bits(plen, 32);
	w[2] = s[2] & mask_bits(plen, 64);
	w[3] = s[3] & mask_bits(plen, 96);
}

/*
 * GCRA, the token bucket as a time: a packet fits if the bucket, once it
 * took this packet, would be no more than burst ahead of now. Plain
 * read-modify-write: two CPUs on one source at the same instant may let a
 * packet more through; exact on one CPU.
 */
static __always_inline __u32 rate_limit(struct pkt *p, const struct filter_config *cfg)
{
	struct filter_bucket *b, nb = {};
	__u64 now, tp, tb, cost_b = 0;
	ipv6_t key;

	if (!cfg->pkt_ns && !cfg->byte_rate)
		return FR_PASS;
	bucket_key(&key, p, cfg);
	now = bpf_ktime_get_ns();
	b = bpf_map_lookup_elem(&buckets, &key);
	if (!b) {
		nb.tat_pkt = now;
		nb.tat_byte = now;
		bpf_map_update_elem(&buckets, &key, &nb, BPF_ANY);
		b = bpf_map_lookup_elem(&buckets, &key);
		if (!b)
			return FR_PASS;
	}
	tp = b->tat_pkt > now ? b->tat_pkt : now;
	tb = b->tat_byte > now ? b->tat_byte : now;
	if (cfg->pkt_ns && tp + cfg->pkt_ns > now + cfg->pkt_burst_ns)
		return FR_RATE_PPS;
	if (cfg->byte_rate) {
		cost_b = p->len * NSEC_PER_SEC / cfg->byte_rate;
		if (tb + cost_b > now + cfg->byte_burst_ns)
			return FR_RATE_BPS;
	}
	b->tat_pkt = tp + cfg->pkt_ns;
	b->tat_byte = tb + cost_b;
	return FR_PASS;
}

/* Swap two lvalues of one type: a reply's addresses. */
#define SWAP(a, b)                     \
	do {                           \
		typeof(a) _t = (a);    \
		(a) = (b);             \
		(b) = _t;              \
	} while (0)

/*
 * Turn a SYN into the SYN-ACK a listener under a SYN flood would send: the
 * cookie as our sequence number, the MSS it encodes as the only option (so,
 * as with the kernel's own cookies without timestamps: no window scaling or
 * SACK on these connections). The answer is built whole: Ethernet (and the
 * VLAN tag) as received, a bare IP header (IPv4 options are not echoed, as
 * xdp-synproxy does; the cookie does not depend on them), a 24-byte TCP
 * header from the SYN's own (at l4off), nothing after it. Returns XDP_TX,
 * or -1 to let the SYN pass.
 */
static __always_inline int syn_ack(struct xdp_md *ctx, struct pkt *p, struct bpf_sock *sk)
{
	struct {
		struct tcphdr th;
		__u8 opts[40];
	} hdr = {};
	__u32 thlen = p->th->doff * 4, l3off, iplen, cookie, seq;
	__u16 mss;
	__s64 r;
	__u8 mac[ETH_ALEN];
	struct ethhdr *eth;
	struct tcphdr *th;
	__u64 sum;

	if (thlen < sizeof(struct tcphdr) || thlen > sizeof(hdr) || thlen > p->l4len)
		return -1;
	if (bpf_xdp_load_bytes(ctx, p->l4off, &hdr, thlen) < 0)
		return -1;
	/* The listener's own cookie function, so the kernel accepts the ACK. */
	if (p->ip4)
		r = bpf_tcp_gen_syncookie(sk, p->ip4, sizeof(struct iphdr), &hdr.th, thlen);
	else if (p->ip6)
		r = bpf_tcp_gen_syncookie(sk, p->ip6, sizeof(struct ipv6hdr), &hdr.th, thlen);
	else
		return -1;
	if (r < 0)
		return -1;
	cookie = (__u32)r;
	mss = (__u16)(r >> 32);
	seq = bpf_ntohl(hdr.th.seq);

	l3off = p->l3off;
	iplen = p->ip4 ? sizeof(struct iphdr) : sizeof(struct ipv6hdr);
	if (bpf_xdp_adjust_tail(ctx, (int)(l3off + iplen + sizeof(struct tcphdr) + 4) - (int)p->len))
		return -1;
	p->data = (void *)(long)ctx->data;
	p->end = (void *)(long)ctx->data_end;
	eth = p->data;
	if ((void *)(eth + 1) > p->end)
		return XDP_DROP;
	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);
	if (l3off > 18)
		return XDP_DROP;

	if (p->ip4) {
		struct iphdr *ip = p->data + l3off;

		th = (void *)(ip + 1);
		if ((void *)th + sizeof(*th) + 4 > p->end)
			return XDP_DROP;
		SWAP(ip->saddr, ip->daddr);
		ip->version = 4;
		ip->ihl = 5;
		ip->tos = 0;
		ip->tot_len = bpf_htons(sizeof(*ip) + sizeof(*th) + 4);
		ip->id = 0;
		ip->frag_off = bpf_htons(IP_DF);
		ip->ttl = SYNACK_TTL;
		ip->check = 0;
		ip->check = ~csum_fold(bpf_csum_diff(0, 0, (void *)ip, sizeof(*ip), 0));
		/* Pseudo-header: addresses, protocol, TCP length. */
		sum = bpf_csum_diff(0, 0, &ip->saddr, 8, 0);
		sum += bpf_htons(IPPROTO_TCP) + bpf_htons(sizeof(*th) + 4);
	} else {
		struct ipv6hdr *ip6 = p->data + l3off;

		th = (void *)(ip6 + 1);
		if ((void *)th + sizeof(*th) + 4 > p->end)
			return XDP_DROP;
		SWAP(ip6->saddr, ip6->daddr);
		*(__be32 *)ip6 = bpf_htonl(0x60000000);
		ip6->payload_len = bpf_htons(sizeof(*th) + 4);
		ip6->nexthdr = IPPROTO_TCP;
		ip6->hop_limit = SYNACK_TTL;
		sum = bpf_csum_diff(0, 0, (void *)&ip6->saddr, 32, 0);
		sum += bpf_htonl(sizeof(*th) + 4) + bpf_htonl(IPPROTO_TCP);
	}
	/* Every field written: th may lie over the SYN's IP options. */
	th->source = hdr.th.dest;
	th->dest = hdr.th.source;
	th->seq = bpf_htonl(cookie);
	th->ack_seq = bpf_htonl(seq + 1);
	((__u8 *)th)[12] = (sizeof(*th) + 4) / 4 << 4; /* doff, no reserved bits */
	((__u8 *)th)[13] = 0x12;		       /* SYN | ACK */
	th->window = bpf_htons(65535);
	th->check = 0;
	th->urg_ptr = 0;
	{
		__u8 *o = (__u8 *)(th + 1);

		o[0] = TCPOPT_MSS;
		o[1] = 4;
		o[2] = mss >> 8;
		o[3] = mss & 0xff;
	}
	sum = bpf_csum_diff(0, 0, (void *)th, sizeof(*th) + 4, sum);
	th->check = ~csum_fold(sum);
	return XDP_TX;
}

/*
 * A protected port: SYNs get cookies once the port sees more than
 * syn_threshold SYNs a second (0: always); an ACK that finds only the
 * listener must carry a valid cookie. Returns a reason, or -1: go on.
 */
static __always_inline int syn_guard(struct xdp_md *ctx, struct pkt *p,
				     const struct filter_config *cfg, struct filter_syn *s,
				     int *action)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	__u32 tlen, flags = ((__u8 *)p->th)[13];
	__u64 now = bpf_ktime_get_ns();
	bool syn = (flags & 0x3f) == 0x02; /* SYN alone */
	bool ack = (flags & 0x16) == 0x10; /* ACK, without SYN or RST */
	bool on;
	int rc;

	if (!syn && !ack)
		return -1;
	/*
	 * A fragment is the kernel's to reassemble (its own cookies answer:
	 * tcp_syncookies=2 while protected); a SYN-ACK from a piece of a SYN
	 * would be a guess. xdp-synproxy drops them (IPv4) or passes them (IPv6).
	 */
	if (p->frag)
		return -1;
	if (now - s->window >= NSEC_PER_SEC) {
		s->prev = now - s->window < 2 * NSEC_PER_SEC ? s->syns : 0;
		s->syns = 0;
		s->window = now;
	}
	if (syn)
		__sync_fetch_and_add(&s->syns, 1);
	on = !cfg->syn_threshold || s->syns > cfg->syn_threshold || s->prev > cfg->syn_threshold;

	if (p->ip4) {
		t.ipv4.saddr = p->ip4->saddr;
		t.ipv4.daddr = p->ip4->daddr;
		t.ipv4.sport = p->sport;
		t.ipv4.dport = p->dport;
		tlen = sizeof(t.ipv4);
	} else if (p->ip6) {
		__builtin_memcpy(t.ipv6.saddr, &p->ip6->saddr, 16);
		__builtin_memcpy(t.ipv6.daddr, &p->ip6->daddr, 16);
		t.ipv6.sport = p->sport;
		t.ipv6.dport = p->dport;
		tlen = sizeof(t.ipv6);
	} else {
		return -1;
	}
	if (syn && !on)
		return -1;
	sk = bpf_skc_lookup_tcp(ctx, &t, tlen, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return -1; /* no listener here: the stack answers */
	if (sk->state != BPF_TCP_LISTEN) {
		bpf_sk_release(sk); /* a connection (or handshake) the kernel knows */
		return -1;
	}
	if (syn) {
		rc = syn_ack(ctx, p, sk);
		bpf_sk_release(sk);
		if (rc < 0)
			return -1;
		*action = rc;
		return rc == XDP_TX ? FR_SYN_COOKIE : FR_MALFORMED;
	}
	bpf_sk_release(sk);
	if (p->ip4)
		rc = bpf_tcp_raw_check_syncookie_ipv4(p->ip4, p->th);
	else if (p->ip6)
		rc = bpf_tcp_raw_check_syncookie_ipv6(p->ip6, p->th);
	else
		return -1;
	if (rc == 0) {
		*action = XDP_PASS;
		return FR_SYN_COOKIE_OK;
	}
	if (!on)
		return -1; /* not under attack: the kernel answers stray ACKs (RST) */
	*action = XDP_DROP;
	return FR_SYN_COOKIE_BAD;
}

/* Parse; fills p. Returns a reason when the packet is decided already, else -1. */
static __always_inline int parse(struct pkt *p)
{
	__be16 proto;
	void *l3 = eth_l3(p->data, p->end, &proto), *l4;
	__u32 l4len;
	bool first = true;

	if (!l3)
		return FR_PASS_NON_IP;
	p->l3off = l3 - p->data;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		__u16 tot;

		if ((void *)(ip + 1) > p->end)
			return FR_MALFORMED;
		tot = bpf_ntohs(ip->tot_len);
		if (ip->ihl < 5 || ip->version != 4 || tot < ip->ihl * 4 || l3 + tot > p->end)
			return FR_MALFORMED;
		p->ip4 = ip;
		p->proto = ip->protocol;
		v4_mapped(&p->src, ip->saddr);
		v4_mapped(&p->dst, ip->daddr);
		first = !(ip->frag_off & bpf_htons(IP_OFFSET));
		p->frag = ip->frag_off & bpf_htons(IP_MF | IP_OFFSET);
		l4 = l3 + ip->ihl * 4;
		l4len = tot - ip->ihl * 4;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;

		if ((void *)(ip6 + 1) > p->end)
			return FR_MALFORMED;
		l4len = bpf_ntohs(ip6->payload_len);
		if (ip6->version != 6 || (void *)(ip6 + 1) + l4len > p->end)
			return FR_MALFORMED;
		p->ip6 = ip6;
		p->proto = ip6->nexthdr;
		__builtin_memcpy(&p->src, &ip6->saddr, 16);
		__builtin_memcpy(&p->dst, &ip6->daddr, 16);
		l4 = ip6 + 1;
		if (p->proto == NEXTHDR_FRAGMENT) {
			struct frag_hdr *fh = l4;

			if ((void *)(fh + 1) > p->end || l4len < sizeof(*fh))
				return FR_MALFORMED;
			p->proto = fh->nexthdr;
			first = !(fh->frag_off & bpf_htons(0xfff8));
			p->frag = true;
			l4 = fh + 1;
			l4len -= sizeof(*fh);
		}
	} else {
		return FR_PASS_NON_IP;
	}
	/* Later fragments carry no ports: lists by port can't see them. */
	if (!first || (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP))
		return -1;
	if (l4 + 4 > p->end || l4len < 4)
		return FR_MALFORMED;
	p->sport = ((__be16 *)l4)[0];
	p->dport = ((__be16 *)l4)[1];
	p->l4off = l4 - p->data;
	p->l4len = l4len;
	if (p->proto == IPPROTO_TCP && l4 + sizeof(struct tcphdr) <= p->end &&
	    l4len >= sizeof(struct tcphdr))
		p->th = l4;
	return -1;
}

SEC("xdp")
int xdp_filter(struct xdp_md *ctx)
{
	struct filter_lpm_key lk = {};
	struct filter_port_key pk = {};
	struct filter_config *cfg;
	struct filter_proto *pr;
	struct filter_ban *ban;
	struct filter_syn *syn;
	struct pkt p = {};
	__u32 zero = 0, proto, *id;
	int rc, action = XDP_PASS;

	cfg = bpf_map_lookup_elem(&filter_cfg, &zero);
	if (!cfg)
		return XDP_PASS;
	p.data = (void *)(long)ctx->data;
	p.end = (void *)(long)ctx->data_end;
	p.len = p.end - p.data;
	rc = parse(&p);
	if (rc == FR_PASS_NON_IP)
		return verdict(ctx, &p, cfg, rc, FILTER_NO_RULE, XDP_PASS);
	if (rc >= 0)
		return verdict(ctx, &p, cfg, rc, FILTER_NO_RULE, XDP_DROP);

	/* Allow wins: any allow entry passes the packet with no further check. */
	lk.prefixlen = 128;
	lk.addr = p.src;
	id = bpf_map_lookup_elem(&allow_src, &lk);
	if (id)
		return verdict(ctx, &p, cfg, FR_ALLOW, *id, XDP_PASS);
	pk.proto = p.proto;
	pk.port = p.dport;
	if (p.dport) {
		id = bpf_map_lookup_elem(&allow_port, &pk);
		if (id)
			return verdict(ctx, &p, cfg, FR_ALLOW, *id, XDP_PASS);
	}
	proto = p.proto;
	pr = bpf_map_lookup_elem(&protos, &proto);
	if (pr && pr->action == FA_ALLOW)
		return verdict(ctx, &p, cfg, FR_ALLOW, pr->id, XDP_PASS);

	ban = bpf_map_lookup_elem(&bans, &lk);
	if (ban && (!ban->expires_ns || ban->expires_ns > bpf_ktime_get_ns()))
		return verdict(ctx, &p, cfg, FR_BANNED, ban->id, XDP_DROP);
	id = bpf_map_lookup_elem(&deny_src, &lk);
	if (id)
		return verdict(ctx, &p, cfg, FR_DENY_SRC, *id, XDP_DROP);
	if (p.dport) {
		id = bpf_map_lookup_elem(&deny_port, &pk);
		if (id)
			return verdict(ctx, &p, cfg, FR_DENY_PORT, *id, XDP_DROP);
	}
	if (pr && pr->action == FA_DENY)
		return verdict(ctx, &p, cfg, FR_DENY_PROTO, pr->id, XDP_DROP);
	if (cfg->default_drop)
		return verdict(ctx, &p, cfg, FR_DEFAULT_DROP, FILTER_NO_RULE, XDP_DROP);

	rc = rate_limit(&p, cfg);
	if (rc != FR_PASS)
		return verdict(ctx, &p, cfg, rc, FILTER_NO_RULE, XDP_DROP);

	if (p.th && (syn = bpf_map_lookup_elem(&syn_ports, &p.dport))) {
		__u32 rule = syn->id;

		rc = syn_guard(ctx, &p, cfg, syn, &action);
		if (rc >= 0) {
			/* A SYN-ACK is ours, not the client's: count the SYN's size. */
			return verdict(ctx, &p, cfg, rc, rule, action);
		}
	}
	return verdict(ctx, &p, cfg, FR_PASS, FILTER_NO_RULE, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
