/* SPDX-License-Identifier: MIT */
/*
 * What the drain loop of lua/luabpf/_ringbuf.lua reads, through ffi.C: a
 * ring buffer itself (l_ringbuf.c; ring_read.c counts and commits), or a
 * chunk of a perf buffer's records (l_perfbuf.c; perf_read.c collects it).
 */
#ifndef LUABPF_RING_CHUNK_H
#define LUABPF_RING_CHUNK_H

#include <linux/perf_event.h>

#include "luabpf.h"

#define LBPF_CHUNK 64
#define LBPF_PERF_MAX_CPUS 1024

/*
 * A ring buffer as the drain loop walks it (lua/luabpf/_ringbuf.lua, ring()):
 * the loop reads each record's header from the mapped ring itself, hands the
 * record on, and notes its progress here; lbpf_ring__settle() counts what was
 * handed out and gives the space back to the kernel. The head, up to data,
 * is declared again in _ringbuf.lua: keep the two in step.
 */
struct lbpf_ring {
	uint32_t i;    /* records handed out since the last settle, the one in the handler included */
	uint32_t stop; /* paused or closed: the loop hands out nothing more */
	uint32_t one;  /* always 1: decode()'s count (buf_common.c) of the record in ptr[0] */
	uint32_t len[1];    /* general table mode: the record in the handler, its length */
	const void *ptr[1]; /* ... and where it is */
	uint64_t pos;  /* consumer position past the last record handed out or skipped */
	uint64_t mask; /* the data area's size - 1 */
	const uint8_t *data; /* mapped twice in a row: a record that wraps reads straight */
	/* C only from here */
	uint64_t events;
	uint64_t committed; /* what the kernel has been told */
	unsigned long *consumer_pos;
	const unsigned long *producer_pos;
};

/*
 * What perf buffers (l_perfbuf.c) hand the drain loop: a chunk of up to
 * LBPF_CHUNK records, collected by lbpf_perf__fill(). The head, up to len[],
 * is the loop's view, declared again in lua/luabpf/_ringbuf.lua (struct
 * lbpf_chunk): keep the two in step. The loop reads ptr[i] and len[i] for
 * i < n, and writes i (records handed out, the one in the handler included)
 * before each call of the handler. cpu is the CPU whose buffer it came from.
 */
struct lbpf_perf_chunk {
	uint32_t n, i, stop, cpu;
	const void *ptr[LBPF_CHUNK];
	uint32_t len[LBPF_CHUNK];
	/* C only from here */
	uint32_t taken;
	uint64_t end[LBPF_CHUNK]; /* data_tail past each record */
	uint64_t events, lost_pending;
	int lost_cpu;
	int buf;   /* the buffer the chunk came from */
	int nbufs; /* per-CPU buffers */
	int next;  /* the buffer fill() looks at first */
	size_t page_size, data_size;
	struct perf_event_mmap_page *hdr[LBPF_PERF_MAX_CPUS];
	int cpus[LBPF_PERF_MAX_CPUS];
	uint8_t *scratch; /* a record that wraps, copied straight */
};

/// Count the records handed out since the last call and give the space up
/// to r->pos back to the kernel (FFI, and after every batch).
void lbpf_ring__settle(struct lbpf_ring *r);
/// The producer's position, read with acquire (FFI).
uint64_t lbpf_ring__produced(const struct lbpf_ring *r);
/// The same for perf buffers: settle, collect samples of one CPU (FFI).
void lbpf_perf__settle(struct lbpf_perf_chunk *c);
uint32_t lbpf_perf__fill(struct lbpf_perf_chunk *c, uint32_t want);
/// Find each per-CPU buffer of pb and its CPU; 0 or an errno.
int lbpf_perf__map(struct lbpf_perf_chunk *c, struct perf_buffer *pb);

#endif /* LUABPF_RING_CHUNK_H */
