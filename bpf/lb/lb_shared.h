/* SPDX-License-Identifier: MIT */
/*
 * What both load balancer data planes share (bpf/lb/lb.bpf.c, the LRU flow
 * table; bpf/lb/lb_ct.bpf.c, conntrack): the maps lua/luabpf/lb.lua drives
 * (lb_maps.h's and the backends, Maglev table and events), the sampling knobs
 * and the flow hash, which lb.lua computes too (M.flow_hash).
 * Include after vmlinux.h, bpf_helpers.h and lb.h.
 */
#ifndef LB_SHARED_H
#define LB_SHARED_H

#include "lb_maps.h"

const volatile __u32 ring_size = 65537; /* Maglev table size per VIP, prime */

__u32 flow_sample = 0; /* report 1 in N new flows on the events ring (0: none) */
__u32 drop_sample = 1; /* report 1 in N drops (0: none) */

/* Named in a global so its BTF is kept: Lua decodes events by this type. */
const struct lb_event *lb_event_type __attribute__((unused));

LUABPF_MAP_PINNED(backends, BPF_MAP_TYPE_ARRAY, __u32, struct lb_backend, 4096);
/* Two halves per VIP: Lua writes the idle one through mmap, then flips lb_vip.table. */
LUABPF_MAP_PINNED_FLAGS(maglev, BPF_MAP_TYPE_ARRAY, __u32, __u32, 64 * 2 * 65537, BPF_F_MMAPABLE);
LUABPF_RINGBUF_PINNED(events, 256 * 1024);

/*
 * The flow hash: murmur3's mixing over the flow key's ten words, seed "LUAB",
 * no per-node seed. Every node of a scale-out fleet must hash alike, so this
 * is fixed and documented (docs/scale-out.md, "The flow hash"); the Lua copy
 * is flow_hash in lua/luabpf/lb/_stats.lua (lb.flow_hash).
 */
static __always_inline __u32 rotl(__u32 x, int r)
{
	return (x << r) | (x >> (32 - r));
}

static __always_inline __u32 flow_hash(const struct lb_flow_key *k)
{
	const __u32 *w = (const __u32 *)k;
	__u32 h = 0x4c554142; /* "LUAB" */

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*k) / 4); i++) {
		__u32 x = w[i] * 0xcc9e2d51;

		x = rotl(x, 15) * 0x1b873593;
		h = rotl(h ^ x, 13) * 5 + 0xe6546b64;
	}
	h ^= sizeof(*k);
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/* A new flow or a drop on the events ring, sampled as flow_sample/drop_sample say. */
static __always_inline void lb_report(const struct lb_flow_key *k, __u8 type, __u8 reason,
				      __u32 vip, __u32 backend)
{
	__u32 rate = type == LB_EV_NEW_FLOW ? flow_sample : drop_sample;
	struct lb_event *e;

	if (!rate || (rate > 1 && bpf_get_prandom_u32() % rate))
		return;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return;
	e->type = type;
	e->reason = reason;
	e->proto = k->proto;
	e->pad = 0;
	e->vip = vip;
	e->backend = backend;
	e->sport = k->sport;
	e->dport = k->dport;
	e->src = k->src;
	e->dst = k->dst;
	bpf_ringbuf_submit(e, 0);
}

#endif
