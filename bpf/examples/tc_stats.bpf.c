// SPDX-License-Identifier: MIT
/*
 * Traffic on an interface seen from tc, ingress and egress: packets and bytes
 * per layer 3 and IP protocol, and per peer address. Every packet goes on
 * unchanged (TC_ACT_UNSPEC: the next program or the default path decides).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "luabpf.h"
#include "maps.h"
#include "tc_stats.h"
#include "parse.h"

#define TC_ACT_UNSPEC (-1)

/* A handful of (direction, l3, proto) triples: a small hash, per CPU. */
LUABPF_MAP(proto_stats, BPF_MAP_TYPE_PERCPU_HASH, struct tc_proto_key, struct tc_counter, 256);

/*
 * Peers are unbounded: an LRU keeps the busiest ones (set its size with
 * max_entries at load). Per-CPU LRU lists would evict per CPU, so it is a
 * common LRU with per-CPU values.
 */
LUABPF_MAP(peer_stats, BPF_MAP_TYPE_LRU_PERCPU_HASH, struct tc_peer_key, struct tc_counter, 4096);

/* Add a packet of len bytes to key's counter in map (proto_stats or peer_stats). */
static __always_inline void bump(void *map, void *key, __u64 len)
{
	struct tc_counter *v = bpf_map_lookup_elem(map, key);

	if (!v) {
		struct tc_counter zero = {};

		bpf_map_update_elem(map, key, &zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(map, key);
		if (!v)
			return;
	}
	v->packets++;
	v->bytes += len;
}

static __always_inline int count(struct __sk_buff *skb, __u8 dir)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct tc_proto_key pk = { .direction = dir, .l3 = TS_L3_OTHER };
	struct tc_peer_key peer = { .direction = dir };
	/* skb->len: the whole frame from the MAC header, as tcpdump's length. */
	__u64 len = skb->len;
	bool have_peer = false;
	__be16 proto;
	void *l3 = eth_l3(data, end, &proto);

	if (!l3)
		goto out;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;

		pk.l3 = TS_IPV4;
		if ((void *)(ip + 1) > end)
			goto out;
		pk.proto = ip->protocol;
		peer.addr.addr[10] = 0xff;
		peer.addr.addr[11] = 0xff;
		__builtin_memcpy(&peer.addr.addr[12], dir == TS_INGRESS ? &ip->saddr : &ip->daddr, 4);
		have_peer = true;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;

		pk.l3 = TS_IPV6;
		if ((void *)(ip6 + 1) > end)
			goto out;
		/* The next header only: extension headers show as their own number. */
		pk.proto = ip6->nexthdr;
		__builtin_memcpy(&peer.addr, dir == TS_INGRESS ? &ip6->saddr : &ip6->daddr, 16);
		have_peer = true;
	} else if (proto == bpf_htons(ETH_P_ARP)) {
		pk.l3 = TS_ARP;
	}
out:
	bump(&proto_stats, &pk, len);
	if (have_peer)
		bump(&peer_stats, &peer, len);
	return TC_ACT_UNSPEC;
}

SEC("tc")
int tc_stats_ingress(struct __sk_buff *skb)
{
	return count(skb, TS_INGRESS);
}

SEC("tc")
int tc_stats_egress(struct __sk_buff *skb)
{
	return count(skb, TS_EGRESS);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
