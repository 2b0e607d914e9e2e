// SPDX-License-Identifier: MIT
/*
 * The C baselines of bench/ringbuf_bench.lua, loaded into the same luabpf
 * process with ffi.load so they drain the very same ring: libbpf's
 * ring_buffer__consume() with a callback that reads one field (pid, at
 * offset 8 of tests/bpf/ringbuf.bpf.c's struct event), as the Lua handlers do;
 * and libbpf's perf_buffer__consume() with the same callback for perf buffers.
 */
#include <stdint.h>
#include <string.h>

#include <bpf/libbpf.h>

struct bench_rb {
	struct ring_buffer *rb;
	uint64_t sum;
};

static int on_event(void *ctx, void *data, size_t size)
{
	struct bench_rb *b = ctx;
	uint32_t pid;

	(void)size;
	memcpy(&pid, (const char *)data + 8, sizeof(pid));
	b->sum += pid;
	return 0;
}

/// A libbpf ring_buffer on map_fd whose callback sums pid into b->sum.
int bench_rb_open(struct bench_rb *b, int map_fd)
{
	b->sum = 0;
	b->rb = ring_buffer__new(map_fd, on_event, b, NULL);
	return b->rb ? 0 : -1;
}

/// Drain everything: returns the number of events, or a negative error.
int bench_rb_consume(struct bench_rb *b)
{
	return ring_buffer__consume(b->rb);
}

void bench_rb_close(struct bench_rb *b)
{
	ring_buffer__free(b->rb);
	b->rb = NULL;
}

/* The perf buffer baseline: libbpf's perf_buffer__consume, same field read. */
struct bench_pb {
	struct perf_buffer *pb;
	uint64_t sum, n;
};

static void on_sample(void *ctx, int cpu, void *data, __u32 size)
{
	struct bench_pb *b = ctx;
	uint32_t pid;

	(void)cpu, (void)size;
	memcpy(&pid, (const char *)data + 8, sizeof(pid));
	b->sum += pid;
	b->n++;
}

/// A libbpf perf_buffer of pages per CPU on map_fd whose callback sums pid.
int bench_pb_open(struct bench_pb *b, int map_fd, int pages)
{
	b->sum = b->n = 0;
	b->pb = perf_buffer__new(map_fd, (size_t)pages, on_sample, NULL, b, NULL);
	return b->pb ? 0 : -1;
}

/// Read every CPU's buffer: returns the number of samples, or a negative error.
int bench_pb_consume(struct bench_pb *b)
{
	uint64_t n0 = b->n;
	int err = perf_buffer__consume(b->pb);

	return err < 0 ? err : (int)(b->n - n0);
}

void bench_pb_close(struct bench_pb *b)
{
	perf_buffer__free(b->pb);
	b->pb = NULL;
}
