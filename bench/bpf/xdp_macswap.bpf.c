// SPDX-License-Identifier: MIT
/*
 * The least an XDP forwarder does: swap the Ethernet addresses and send the
 * frame back out (XDP_TX). bench/lb_pkt.lua sets the load balancer's cost
 * per packet beside this one and beside XDP_PASS.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define ETH_ALEN 6

SEC("xdp")
int xdp_macswap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	unsigned char tmp[ETH_ALEN];

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	__builtin_memcpy(tmp, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, tmp, ETH_ALEN);
	return XDP_TX;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
