// SPDX-License-Identifier: MIT
/* Reading a BPF ring buffer's records into a chunk: see ring_chunk.h. */
#include "ring_chunk.h"

static inline unsigned long load_acquire(const unsigned long *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void store_release(unsigned long *p, unsigned long v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static void commit(struct lbpf_ring *r, unsigned long pos)
{
	if (r->committed != pos) {
		/* The handler is done with the record before the producer may reuse it. */
		store_release(r->consumer_pos, pos);
		r->committed = pos;
	}
}

/// Count the records handed out since the last call and give their space
/// back to the kernel (FFI, and after every batch).
void lbpf_ring__settle(struct lbpf_ring *r)
{
	if (r->i > r->taken) {
		r->events += r->i - r->taken;
		r->taken = r->i;
		commit(r, r->end[r->i - 1]);
	}
}

/// Settle, then collect up to min(want, LBPF_CHUNK) records into ptr[] and
/// len[]: returns how many (n), 0 when the ring is empty, the next record is
/// still being written, or the buffer is paused or closed. A record stays
/// valid until the next fill or settle past it. Called through ffi.C.
uint32_t lbpf_ring__fill(struct lbpf_ring *r, uint32_t want)
{
	unsigned long pos;
	uint32_t n = 0;

	lbpf_ring__settle(r);
	r->n = r->i = r->taken = 0;
	if (r->stop)
		return 0;
	if (want > LBPF_CHUNK)
		want = LBPF_CHUNK;
	pos = r->pos;
	while (n < want) {
		const uint32_t *hdr;
		uint32_t len;

		if (pos >= r->prod) {
			r->prod = load_acquire(r->producer_pos);
			if (pos >= r->prod)
				break;
		}
		hdr = (const uint32_t *)(r->data + (pos & r->mask));
		len = __atomic_load_n(hdr, __ATOMIC_ACQUIRE);
		if (len & BPF_RINGBUF_BUSY_BIT)
			break;
		/* The header's length, plus the header, rounded up to 8 bytes. */
		pos += (((len & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT)) +
			 BPF_RINGBUF_HDR_SZ) + 7) & ~7ul;
		if (len & BPF_RINGBUF_DISCARD_BIT) {
			if (!n) { /* nothing held before it: give it back now */
				r->pos = pos;
				commit(r, pos);
			}
			continue;
		}
		r->ptr[n] = (const uint8_t *)hdr + BPF_RINGBUF_HDR_SZ;
		r->len[n] = len;
		r->end[n] = pos;
		n++;
		/* Hold back at most a quarter of a small ring from the producer. */
		if (pos - r->pos > (r->mask + 1) / 4)
			break;
	}
	if (n)
		r->pos = r->end[n - 1];
	r->n = n;
	return n;
}
