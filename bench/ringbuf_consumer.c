// SPDX-License-Identifier: MIT
/*
 * The C baseline of bench/ringbuf_bench.lua, loaded into the same luabpf
 * process with ffi.load so it drains the very same ring: libbpf's
 * ring_buffer__consume() with a callback that reads one field (pid, at
 * offset 8 of tests/bpf/ringbuf.bpf.c's struct event), as the Lua handlers do.
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
