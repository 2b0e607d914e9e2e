// SPDX-License-Identifier: MIT
/*
 * Reading the per-CPU buffers libbpf's perf_buffer maps into a chunk: see
 * ring_chunk.h. Records as the kernel writes them (struct perf_event_header,
 * then PERF_RECORD_SAMPLE's size and bytes, or PERF_RECORD_LOST's count),
 * data_head read with acquire, data_tail written with release, as libbpf's
 * perf_event_read_simple() does.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ring_chunk.h"

static inline __u64 load_acquire(const __u64 *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void store_release(__u64 *p, __u64 v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/// Count the samples handed out since the last call and give their space
/// back to the kernel (FFI, and after every batch).
void lbpf_perf__settle(struct lbpf_perf_chunk *c)
{
	if (c->i > c->taken) {
		c->events += c->i - c->taken;
		c->taken = c->i;
		store_release(&c->hdr[c->buf]->data_tail, c->end[c->i - 1]);
	}
}

/* Collect from buffer b; false if it holds nothing (or only skipped records). */
static bool fill_from(struct lbpf_perf_chunk *c, int b, uint32_t want)
{
	struct perf_event_mmap_page *h = c->hdr[b];
	uint8_t *base = (uint8_t *)h + c->page_size;
	uint64_t head = load_acquire(&h->data_head), tail = h->data_tail, start = tail;
	uint32_t n = 0;

	c->buf = b;
	c->cpu = (uint32_t)c->cpus[b];
	while (tail != head && n < want) {
		struct perf_event_header *e = (void *)(base + (tail & (c->data_size - 1)));
		size_t off = tail & (c->data_size - 1);

		if (off + e->size > c->data_size) {
			/* Wraps: only alone in its chunk, from the scratch copy. */
			size_t first = c->data_size - off;

			if (n)
				break;
			memcpy(c->scratch, e, first);
			memcpy(c->scratch + first, base, e->size - first);
			e = (void *)c->scratch;
		}
		if (e->type == PERF_RECORD_LOST) {
			if (n)
				break; /* hand out what came before it first */
			c->lost_pending = ((const uint64_t *)(e + 1))[1];
			c->lost_cpu = c->cpus[b];
			tail += e->size;
			store_release(&h->data_tail, tail);
			break;
		}
		tail += e->size;
		if (e->type == PERF_RECORD_SAMPLE) {
			const uint32_t *size = (const uint32_t *)(e + 1);

			c->ptr[n] = size + 1;
			c->len[n] = *size;
			c->end[n] = tail;
			n++;
			/* A wrapped copy goes alone; and hold back at most a quarter
			 * of the buffer from the producer. */
			if (e == (void *)c->scratch || tail - start > c->data_size / 4)
				break;
		} else if (!n) {
			store_release(&h->data_tail, tail); /* a record we don't read */
		}
	}
	c->n = n;
	return n || c->lost_pending;
}

/// Settle, then collect up to min(want, 64) samples of one CPU's buffer:
/// returns how many, 0 when every buffer is empty, a lost record is next
/// (C reports it), or the buffer is paused or closed. Called through ffi.C.
uint32_t lbpf_perf__fill(struct lbpf_perf_chunk *c, uint32_t want)
{
	lbpf_perf__settle(c);
	c->n = c->i = c->taken = 0;
	if (c->stop || c->lost_pending)
		return 0;
	if (want > LBPF_CHUNK)
		want = LBPF_CHUNK;
	for (int k = 0; k < c->nbufs; k++) {
		int b = (c->next + k) % c->nbufs;

		if (fill_from(c, b, want)) {
			/* Empty buffers are passed over next time; this one is read on. */
			c->next = b;
			return c->n;
		}
	}
	return 0;
}

/* The CPU of each buffer: libbpf opens one per online CPU, in order. */
int lbpf_perf__map(struct lbpf_perf_chunk *c, struct perf_buffer *pb)
{
	FILE *f = fopen("/sys/devices/system/cpu/online", "re");
	int possible = libbpf_num_possible_cpus(), n = 0, a, b;
	char sep;

	if (!f)
		return errno;
	while (n < LBPF_PERF_MAX_CPUS && fscanf(f, "%d", &a) == 1) {
		b = a;
		if (fscanf(f, "%c", &sep) == 1 && sep == '-' && fscanf(f, "%d", &b) == 1)
			(void)(fscanf(f, "%c", &sep) == 1);
		for (int cpu = a; cpu <= b && cpu < possible && n < LBPF_PERF_MAX_CPUS; cpu++)
			c->cpus[n++] = cpu;
	}
	fclose(f);
	if ((size_t)n != perf_buffer__buffer_cnt(pb))
		return EINVAL;
	c->nbufs = n;
	for (int i = 0; i < n; i++) {
		void *buf;
		size_t size;
		int err = perf_buffer__buffer(pb, i, &buf, &size);

		if (err)
			return -err;
		c->hdr[i] = buf;
		c->data_size = size;
	}
	c->page_size = (size_t)sysconf(_SC_PAGESIZE);
	c->scratch = malloc(1 << 16);
	return c->scratch ? 0 : ENOMEM;
}
