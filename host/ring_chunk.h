/* SPDX-License-Identifier: MIT */
/*
 * What ring buffers (l_ringbuf.c) and perf buffers (l_perfbuf.c) hand to
 * the drain loop of lua/luabpf/_ringbuf.lua: a chunk of up to LBPF_CHUNK
 * records, collected by lbpf_ring__fill() (ring_read.c) or lbpf_perf__fill()
 * (perf_read.c), which the loop calls through ffi.C.
 */
#ifndef LUABPF_RING_CHUNK_H
#define LUABPF_RING_CHUNK_H

#include <linux/perf_event.h>

#include "luabpf.h"

#define LBPF_CHUNK 64
#define LBPF_PERF_MAX_CPUS 1024

/*
 * What the FFI sees: the head of this struct, up to len[], is declared again
 * in lua/luabpf/_ringbuf.lua; keep the two in step. The Lua loop reads
 * ptr[i] and len[i] for i < n, and writes i (records handed out, the one in
 * the handler included) before each call of the handler.
 */
struct lbpf_ring {
	uint32_t n;    /* records collected by the last fill */
	uint32_t i;    /* of those, handed to the handler */
	uint32_t stop; /* paused or closed: fill() collects nothing */
	uint32_t cpu;  /* perf buffers' field (host/l_perfbuf.c); 0 here */
	const void *ptr[LBPF_CHUNK];
	uint32_t len[LBPF_CHUNK];
	/* C only from here */
	uint32_t taken;                /* of the i handed out, counted and committed */
	unsigned long end[LBPF_CHUNK]; /* consumer position past each record */
	uint64_t events;
	unsigned long pos;       /* consumer position past the last record collected */
	unsigned long committed; /* what the kernel has been told */
	unsigned long prod;      /* producer position last seen */
	unsigned long mask;
	unsigned long *consumer_pos;
	const unsigned long *producer_pos;
	const uint8_t *data;
};

/*
 * The head, up to len[], is the drain loop's view, the same as struct
 * lbpf_ring's above (declared in lua/luabpf/_ringbuf.lua): keep all three in
 * step. cpu is the CPU whose buffer the chunk came from.
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

/// Count the records handed out since the last call and give their space
/// back to the kernel (FFI, and after every batch).
void lbpf_ring__settle(struct lbpf_ring *r);
/// Settle, then collect up to min(want, LBPF_CHUNK) records (FFI).
uint32_t lbpf_ring__fill(struct lbpf_ring *r, uint32_t want);
/// The same for perf buffers: settle, collect samples of one CPU (FFI).
void lbpf_perf__settle(struct lbpf_perf_chunk *c);
uint32_t lbpf_perf__fill(struct lbpf_perf_chunk *c, uint32_t want);
/// Find each per-CPU buffer of pb and its CPU; 0 or an errno.
int lbpf_perf__map(struct lbpf_perf_chunk *c, struct perf_buffer *pb);

#endif /* LUABPF_RING_CHUNK_H */
