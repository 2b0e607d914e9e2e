// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Producer for the ring and perf buffer tests and benchmark. Run with
 * BPF_PROG_TEST_RUN (prog:test_run) on a packet whose first 4 bytes are the
 * number of events to emit (little endian) and whose 5th byte says where:
 * 0 the ring buffer `events`, 1 the perf buffer `perf_events`. A 6th byte
 * k > 0 has every record whose sequence number is k - 1 modulo k discarded
 * after it is reserved (ring only). Every attempt takes the next sequence
 * number; a failed reserve is counted in `events_lost`, so produced ==
 * delivered + lost (+ discarded).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "maps.h"
#include "ringbuf_lost.h"

struct event {
	__u64 seq;
	__u32 pid;
	__u16 port;
	__u8 flag;
	char comm[16];
	/* natural alignment leaves a hole here: cdata mode must skip it */
	__u64 ts;
	struct {
		__u32 a;
		__u32 b;
	} pair;
	__u32 tag[2];
};

/* The ring `events` and its lost counter `events_lost` (ringbuf_lost.h's convention). */
LUABPF_EVENTS_RING(1 << 22);
LUABPF_PERF_EVENT_ARRAY(perf_events);

/* Not a ringbuf: for the error message test. */
LUABPF_MAP(not_a_ring, BPF_MAP_TYPE_HASH, __u32, __u32, 1);

__u64 produced;

/* Types only used inside functions don't reach BTF: this puts it there. */
struct event *unused_event __attribute__((unused));

/* Layouts the BTF -> FFI emitter must get right (test_ringbuf_ctype.lua). */
enum colour { RED = 1, BLUE = 2 };
typedef __u16 port_t;

struct odd {
	__u8 kind;
	__u32 flags : 3, level : 5; /* bitfields: not in cdata, padding instead */
	port_t port;
	union {
		__u32 v4;
		__u8 v6[16];
	} addr;
	enum colour colour;
	struct {
		__u8 x;
		__u64 y;
	} __attribute__((packed)) tight;
	__u64 *ptr;
	__s16 grid[2][3];
	_Bool ok;
	char name[5];
} __attribute__((aligned(8)));

struct odd *unused_odd __attribute__((unused));

struct loop_ctx {
	struct xdp_md *xdp;
	int perf;
	__u32 discard; /* ring only: every discard-th record is reserved, filled and discarded */
};

static void fill(struct event *e, __u64 seq)
{
	e->seq = seq;
	e->pid = (__u32)seq * 7;
	e->port = (__u16)seq;
	e->flag = seq & 1;
	__builtin_memcpy(e->comm, "luabpf-test", 12);
	e->ts = seq * 1000;
	e->pair.a = (__u32)seq + 1;
	e->pair.b = (__u32)seq + 2;
	e->tag[0] = 0xdead;
	e->tag[1] = 0xbeef;
}

static long emit_one(__u32 i, struct loop_ctx *c)
{
	__u64 seq = __sync_fetch_and_add(&produced, 1);
	struct event *e;

	if (c->perf) {
		struct event ev = {};

		fill(&ev, seq);
		if (bpf_perf_event_output(c->xdp, &perf_events, BPF_F_CURRENT_CPU, &ev, sizeof(ev)))
			goto lost;
		return 0;
	}
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		goto lost;
	fill(e, seq);
	if (c->discard && seq % c->discard == c->discard - 1)
		bpf_ringbuf_discard(e, 0);
	else
		bpf_ringbuf_submit(e, 0);
	return 0;
lost:;
	__u32 key = 0;
	__u64 *n = bpf_map_lookup_elem(&events_lost, &key);

	if (n)
		*n += 1;
	return 0;
}

SEC("xdp")
int emit(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct loop_ctx c = { .xdp = ctx };
	__u32 count;

	if (data + 6 > end)
		return XDP_ABORTED;
	count = *(__u32 *)data;
	c.perf = *(__u8 *)(data + 4);
	c.discard = *(__u8 *)(data + 5);
	bpf_loop(count, emit_one, &c, 0);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
