/* SPDX-License-Identifier: MIT */
/*
 * Packet parsing the shipped programs share. Include after vmlinux.h,
 * <bpf/bpf_helpers.h> and <bpf/bpf_endian.h>.
 */
#ifndef LUABPF_PARSE_H
#define LUABPF_PARSE_H

#include "luabpf.h"

/* vmlinux.h has the kernel's types but not its #defines. */
#define ETH_P_IP	 0x0800
#define ETH_P_IPV6	 0x86DD
#define ETH_P_ARP	 0x0806
#define ETH_P_8021Q	 0x8100
#define ETH_P_8021AD	 0x88A8
#define IP_DF		 0x4000
#define IP_MF		 0x2000
#define IP_OFFSET	 0x1FFF
#define NEXTHDR_FRAGMENT 44

/*
 * The L3 header after the Ethernet header and at most one VLAN tag (802.1Q
 * or 802.1ad), with its EtherType in *proto; NULL when the frame ends first.
 */
static __always_inline void *eth_l3(void *data, void *end, __be16 *proto)
{
	struct ethhdr *eth = data;
	void *l3;

	if ((void *)(eth + 1) > end)
		return NULL;
	*proto = eth->h_proto;
	l3 = eth + 1;
	if (*proto == bpf_htons(ETH_P_8021Q) || *proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_hdr *vh = l3;

		if ((void *)(vh + 1) > end)
			return NULL;
		*proto = vh->h_vlan_encapsulated_proto;
		l3 = vh + 1;
	}
	return l3;
}

/* An IPv4 address as the IPv4-mapped IPv6 address ::ffff:a.b.c.d. */
static __always_inline void v4_mapped(ipv6_t *a, __be32 v4)
{
	__u32 *w = (__u32 *)a->addr;

	w[0] = 0;
	w[1] = 0;
	w[2] = bpf_htonl(0x0000ffff);
	w[3] = v4;
}

#endif
