// SPDX-License-Identifier: MIT
/*
 * Counts packets and bytes per protocol on an interface and passes every
 * packet on: the seed's packet counter, per protocol instead of one total.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "xdp_count.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_ARP 0x0806
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define IPPROTO_ICMPV6 58 /* not an enum member in vmlinux.h */

/* Per-CPU: no atomics on the hot path; Lua sums the CPUs when it reads. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XC_MAX);
	__type(key, __u32);
	__type(value, struct xdp_count_value);
} counters SEC(".maps");

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
	struct ethhdr *eth = data;
	__u16 proto;
	void *l3;

	if ((void *)(eth + 1) > end) {
		count(XC_L3_OTHER, len);
		return XDP_PASS;
	}
	proto = eth->h_proto;
	l3 = eth + 1;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_hdr *vh = l3;

		if ((void *)(vh + 1) > end) {
			count(XC_L3_OTHER, len);
			return XDP_PASS;
		}
		proto = vh->h_vlan_encapsulated_proto;
		l3 = vh + 1;
	}

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;

		count(XC_IPV4, len);
		if ((void *)(ip + 1) <= end)
			count(l4_index(ip->protocol), len);
		else
			count(XC_L4_OTHER, len);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;

		count(XC_IPV6, len);
		/* Extension headers are counted as "other": the next header is all we read. */
		if ((void *)(ip6 + 1) <= end)
			count(l4_index(ip6->nexthdr), len);
		else
			count(XC_L4_OTHER, len);
	} else if (proto == bpf_htons(ETH_P_ARP)) {
		count(XC_ARP, len);
	} else {
		count(XC_L3_OTHER, len);
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
