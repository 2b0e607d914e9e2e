/* SPDX-License-Identifier: MIT */
/*
 * The lost-event convention of luabpf's ring buffers (docs/api-ringbuf.md):
 * beside the ring, a per-CPU array of one __u64 that counts the events a full
 * ring refused, which rb:lost() reads (lost_map = obj:map("events_lost")).
 * Include after vmlinux.h and <bpf/bpf_helpers.h>.
 */
#ifndef LUABPF_RINGBUF_LOST_H
#define LUABPF_RINGBUF_LOST_H

#include "maps.h"

/* The ring `events` of SIZE bytes and its lost counter `events_lost`, the
 * names the Lua side looks for: LUABPF_EVENTS_RING(256 * 1024); */
#define LUABPF_EVENTS_RING(size)      \
	LUABPF_RINGBUF(events, size); \
	LUABPF_PERCPU_SLOT(events_lost, __u64)

/* bpf_ringbuf_reserve, counting a refusal in lost; NULL then, as it returns. */
static __always_inline void *ringbuf_reserve_or_count(void *ring, void *lost, __u64 size)
{
	void *e = bpf_ringbuf_reserve(ring, size, 0);

	if (!e) {
		__u32 key = 0;
		__u64 *n = bpf_map_lookup_elem(lost, &key);

		if (n)
			*n += 1; /* per-CPU: no atomic needed */
	}
	return e;
}

#endif
