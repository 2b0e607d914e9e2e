/* SPDX-License-Identifier: MIT */
/*
 * The maps all three load balancer programs open by name, the conntrack XDP
 * fast path (bpf/lb/lb_ct_xdp.bpf.c) too: the services and the counters.
 * Loaded with the same pin directory, each program finds the others' maps.
 * lb_shared.h adds what only the two full data planes use. Include after
 * vmlinux.h, bpf_helpers.h and lb.h.
 */
#ifndef LB_MAPS_H
#define LB_MAPS_H

#include "maps.h"

#define VIP_ADDR  1 /* vip_addrs flags: a service address */
#define SNAT_ADDR 2 /* the balancer's own source address for NAT */

LUABPF_MAP_PINNED(vips, BPF_MAP_TYPE_HASH, struct lb_vip_key, struct lb_vip, 64);
LUABPF_MAP_PINNED(vip_addrs, BPF_MAP_TYPE_HASH, ipv6_t, __u32 /* VIP_ADDR | SNAT_ADDR */, 256);
LUABPF_MAP_PINNED(vip_stats, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct lb_counters, 64);
LUABPF_MAP_PINNED(backend_stats, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct lb_counters, 4096);
LUABPF_MAP_PINNED(reasons, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct lb_counters, LB_REASON_MAX);

static __always_inline void add(void *map, __u32 idx, __u64 len, __u64 new_flow)
{
	struct lb_counters *c = bpf_map_lookup_elem(map, &idx);

	if (c) {
		c->packets++;
		c->bytes += len;
		c->new_flows += new_flow;
	}
}

#endif
