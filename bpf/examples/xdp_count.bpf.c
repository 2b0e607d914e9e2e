// SPDX-License-Identifier: MIT
/*
 * Counts packets and bytes per protocol on an interface and passes every
 * packet on: the seed's packet counter, per protocol instead of one total.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "maps.h"
#include "parse.h"
#include "xdp_count.h"

#define IPPROTO_ICMPV6 58 /* not an enum member in vmlinux.h */

/* Per-CPU: no atomics on the hot path; Lua sums the CPUs when it reads. */
LUABPF_MAP(counters, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct xdp_count_value, XC_MAX);

static __always_inline void count(__u32 idx, __u64 len)
{
	struct xdp_count_value *v = bpf_map_lookup_elem(&counters, &idx);

	if (v) {
		v->packets++;
		v->bytes += len;
	}
}

static __always_inline __u32 l4_index(__u8 proto)
{
	switch (proto) {
	case IPPROTO_TCP:
		return XC_TCP;
	case IPPROTO_UDP:
		return XC_UDP;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		return XC_ICMP;
	default:
		return XC_L4_OTHER;
	}
}

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u64 len = end - data;
	__be16 proto;
	void *l3 = eth_l3(data, end, &proto); /* past at most one VLAN tag */

	if (!l3) {
		count(XC_L3_OTHER, len);
	} else if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;

		count(XC_IPV4, len);
		count((void *)(ip + 1) <= end ? l4_index(ip->protocol) : XC_L4_OTHER, len);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;

		count(XC_IPV6, len);
		/* Extension headers are counted as "other": the next header is all we read. */
		count((void *)(ip6 + 1) <= end ? l4_index(ip6->nexthdr) : XC_L4_OTHER, len);
	} else {
		count(proto == bpf_htons(ETH_P_ARP) ? XC_ARP : XC_L3_OTHER, len);
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
