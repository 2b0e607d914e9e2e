// SPDX-License-Identifier: MIT
/*
 * A BPF ring buffer's consumer side, for the drain loop that walks the ring
 * in Lua (lua/luabpf/_ringbuf.lua): see ring_chunk.h. The loop reads the
 * records' headers itself; C only tells it where the producer is and gives
 * consumed space back.
 */
#include "ring_chunk.h"

/// The producer's position, read with acquire: the records before it are
/// written (their headers say whether they are still busy). Called through ffi.C.
uint64_t lbpf_ring__produced(const struct lbpf_ring *r)
{
	return __atomic_load_n(r->producer_pos, __ATOMIC_ACQUIRE);
}

/// Count the records handed out since the last call and give the space up
/// to r->pos back to the kernel (FFI, and after every batch).
void lbpf_ring__settle(struct lbpf_ring *r)
{
	r->events += r->i;
	r->i = 0;
	if (r->committed != r->pos) {
		/* The handler is done with the record before the producer may reuse it. */
		__atomic_store_n(r->consumer_pos, (unsigned long)r->pos, __ATOMIC_RELEASE);
		r->committed = r->pos;
	}
}
