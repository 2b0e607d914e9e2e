// SPDX-License-Identifier: MIT
/*
 * The backend's side of the balancer's tunnel modes (docs/lb.md, "ipip and
 * gue"): tc ingress strips the outer headers of IPIP (IPv4/IPv6 in IPv4/IPv6)
 * and GUE (IP in UDP to gue_port; variant 1, direct IP, and variant 0 with
 * its 4-byte header and options) sent to one of the addresses in decap_addrs,
 * and hands the client's packet on to the stack as if it had come in bare.
 * Needs no ipip/fou module. Everything else passes untouched (TC_ACT_UNSPEC).
 * Counters per reason: decap.h.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "decap.h"
#include "csum.h"
#include "maps.h"
#include "parse.h"

#define TC_ACT_UNSPEC (-1)
#define TC_ACT_SHOT   2
#define IPPROTO_IPIP_ 4
#define IPPROTO_IPV6_ 41
#define IPPROTO_UDP_  17
/* Enough of the packet in the linear area for every header we read. */
#define HDR_ROOM (14 + 40 + 8 + 4 + 128 + 40)

/* The outer UDP destination port of GUE (the balancer's gue_port). */
const volatile __u16 gue_port = 6080;

/* Outer destinations whose tunnels are ours: address -> 1. */
LUABPF_MAP(decap_addrs, BPF_MAP_TYPE_HASH, ipv6_t, __u32, 256);

LUABPF_MAP(decap_stats, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct decap_counters, DECAP_REASON_MAX);

static __always_inline int count_len(__u32 reason, __u32 len, int action)
{
	struct decap_counters *c = bpf_map_lookup_elem(&decap_stats, &reason);

	if (c) {
		c->packets++;
		c->bytes += len;
	}
	return action;
}

static __always_inline int count(struct __sk_buff *skb, __u32 reason, int action)
{
	return count_len(reason, skb->len, action);
}

/* What follows the outer header: how many bytes to strip and the inner family. */
struct tun {
	__u32 strip; /* bytes after the Ethernet header: outer IP (+ UDP + GUE header) */
	__u32 avail; /* bytes the outer header says follow the strip */
	__u8 inner;  /* 4 or 6 */
	__u8 reason; /* DECAP_IPIP or DECAP_GUE */
};

/* IPIP, IPv6 in IP and UDP (GUE): the protocols a tunnel of ours comes in. */
static __always_inline bool tunnel_proto(__u8 proto)
{
	return proto == IPPROTO_IPIP_ || proto == IPPROTO_IPV6_ || proto == IPPROTO_UDP_;
}

/*
 * After an outer header of hlen bytes whose payload is plen bytes long, with
 * protocol proto: a tunnel of ours? 0: yes (t filled); else the verdict.
 */
static __always_inline int tunnel(struct __sk_buff *skb, void *l4, void *end, __u8 proto,
				  __u32 hlen, __u32 plen, struct tun *t)
{
	if (proto == IPPROTO_IPIP_ || proto == IPPROTO_IPV6_) {
		t->strip = hlen;
		t->avail = plen;
		t->inner = proto == IPPROTO_IPIP_ ? 4 : 6;
		t->reason = DECAP_IPIP;
		return 0;
	}
	if (proto == IPPROTO_UDP_) {
		struct udphdr *uh = l4;
		__u8 *g = (void *)(uh + 1);
		__u32 glen = 0;

		if ((void *)(uh + 1) > end)
			return count(skb, DECAP_PASS, TC_ACT_UNSPEC); /* the stack's to judge */
		if (uh->dest != bpf_htons(gue_port))
			return count(skb, DECAP_PASS, TC_ACT_UNSPEC);
		if (bpf_ntohs(uh->len) != plen || plen < sizeof(*uh) + 1 || (void *)(g + 1) > end)
			return count(skb, DECAP_DROP_TRUNCATED, TC_ACT_SHOT);
		if ((g[0] >> 6) == 1) {
			/* Variant 1: the IP header itself, its version in the top nibble. */
			t->inner = g[0] >> 4;
			if (t->inner != 4 && t->inner != 6)
				return count(skb, DECAP_PASS_GUE_OTHER, TC_ACT_UNSPEC);
		} else if ((g[0] >> 6) == 0 && !(g[0] & 0x20)) {
			/* Variant 0 data: 4 bytes, then hlen words of options. */
			if ((void *)(g + 4) > end)
				return count(skb, DECAP_DROP_TRUNCATED, TC_ACT_SHOT);
			if (g[1] != IPPROTO_IPIP_ && g[1] != IPPROTO_IPV6_)
				return count(skb, DECAP_PASS_GUE_OTHER, TC_ACT_UNSPEC);
			t->inner = g[1] == IPPROTO_IPIP_ ? 4 : 6;
			glen = 4 + (g[0] & 0x1f) * 4;
		} else {
			return count(skb, DECAP_PASS_GUE_OTHER, TC_ACT_UNSPEC); /* control */
		}
		if (plen < sizeof(*uh) + glen)
			return count(skb, DECAP_DROP_TRUNCATED, TC_ACT_SHOT);
		t->strip = hlen + sizeof(*uh) + glen;
		t->avail = plen - sizeof(*uh) - glen;
		t->reason = DECAP_GUE;
		return 0;
	}
	return count(skb, DECAP_PASS, TC_ACT_UNSPEC);
}

SEC("tc")
int tc_decap(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct tun t = {};
	ipv6_t dst;
	__u64 flags;
	__u32 l3len, len;
	int rc;

	if ((void *)(eth + 1) > end)
		return count(skb, DECAP_PASS, TC_ACT_UNSPEC);
	if (eth->h_proto != bpf_htons(ETH_P_IP) && eth->h_proto != bpf_htons(ETH_P_IPV6))
		return count(skb, DECAP_PASS, TC_ACT_UNSPEC);
	if (data + HDR_ROOM > end) {
		bpf_skb_pull_data(skb, skb->len < HDR_ROOM ? skb->len : HDR_ROOM);
		data = (void *)(long)skb->data;
		end = (void *)(long)skb->data_end;
		eth = data;
		if ((void *)(eth + 1) > end)
			return count(skb, DECAP_PASS, TC_ACT_UNSPEC);
	}
	l3len = skb->len - sizeof(*eth);
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		const __u32 *w = (const __u32 *)ip;
		__u16 tot;

		if ((void *)(ip + 1) > end)
			return count(skb, DECAP_PASS, TC_ACT_UNSPEC);
		if (!tunnel_proto(ip->protocol))
			return count(skb, DECAP_PASS, TC_ACT_UNSPEC);
		if (ip->ihl != 5 || ip->version != 4)
			return count(skb, DECAP_PASS, TC_ACT_UNSPEC);
		v4_mapped(&dst, ip->daddr);
		if (!bpf_map_lookup_elem(&decap_addrs, &dst))
			return count(skb, DECAP_PASS_OTHER_ADDR, TC_ACT_UNSPEC);
		if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
			return count(skb, DECAP_PASS_FRAGMENT, TC_ACT_UNSPEC);
		tot = bpf_ntohs(ip->tot_len);
		if (tot < sizeof(*ip) || tot > l3len)
			return count(skb, DECAP_DROP_TRUNCATED, TC_ACT_SHOT);
		if (csum_fold((__u64)w[0] + w[1] + w[2] + w[3] + w[4]) != 0xffff)
			return count(skb, DECAP_DROP_BAD_HEADER, TC_ACT_SHOT);
		rc = tunnel(skb, ip + 1, end, ip->protocol, sizeof(*ip), tot - sizeof(*ip), &t);
	} else {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		__u32 plen;

		if ((void *)(ip6 + 1) > end)
			return count(skb, DECAP_PASS, TC_ACT_UNSPEC);
		if (!tunnel_proto(ip6->nexthdr))
			return count(skb, DECAP_PASS, TC_ACT_UNSPEC);
		__builtin_memcpy(&dst, &ip6->daddr, sizeof(dst));
		if (!bpf_map_lookup_elem(&decap_addrs, &dst))
			return count(skb, DECAP_PASS_OTHER_ADDR, TC_ACT_UNSPEC);
		plen = bpf_ntohs(ip6->payload_len);
		if (plen + sizeof(*ip6) > l3len)
			return count(skb, DECAP_DROP_TRUNCATED, TC_ACT_SHOT);
		rc = tunnel(skb, ip6 + 1, end, ip6->nexthdr, sizeof(*ip6), plen, &t);
	}
	if (rc)
		return rc;

	/* The inner header: the version announced, whole, its length within. */
	if (t.strip > 128)
		return count(skb, DECAP_DROP_TRUNCATED, TC_ACT_SHOT);
	{
		__u8 *in = (void *)(eth + 1) + t.strip;

		if ((void *)(in + 1) > end)
			return count(skb, DECAP_DROP_TRUNCATED, TC_ACT_SHOT);
		if ((in[0] >> 4) != t.inner)
			return count(skb, DECAP_DROP_BAD_HEADER, TC_ACT_SHOT);
		if (t.inner == 4) {
			struct iphdr *ip = (void *)in;

			if ((void *)(ip + 1) > end || t.avail < sizeof(*ip))
				return count(skb, DECAP_DROP_TRUNCATED, TC_ACT_SHOT);
			if (ip->ihl < 5 || bpf_ntohs(ip->tot_len) > t.avail)
				return count(skb, DECAP_DROP_TRUNCATED, TC_ACT_SHOT);
		} else {
			struct ipv6hdr *ip6 = (void *)in;

			if ((void *)(ip6 + 1) > end || t.avail < sizeof(*ip6))
				return count(skb, DECAP_DROP_TRUNCATED, TC_ACT_SHOT);
			if (bpf_ntohs(ip6->payload_len) + sizeof(*ip6) > t.avail)
				return count(skb, DECAP_DROP_TRUNCATED, TC_ACT_SHOT);
		}
	}
	len = skb->len; /* counted as it came in */
	flags = t.inner == 4 ? BPF_F_ADJ_ROOM_DECAP_L3_IPV4 : BPF_F_ADJ_ROOM_DECAP_L3_IPV6;
	if (bpf_skb_adjust_room(skb, -(__s32)t.strip, BPF_ADJ_ROOM_MAC, flags))
		return count_len(DECAP_DROP_ADJUST, len, TC_ACT_SHOT);
	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	eth = data;
	if ((void *)(eth + 1) > end)
		return TC_ACT_SHOT;
	eth->h_proto = bpf_htons(t.inner == 4 ? ETH_P_IP : ETH_P_IPV6);
	return count_len(t.reason, len, TC_ACT_UNSPEC);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
