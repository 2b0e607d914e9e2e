// SPDX-License-Identifier: MIT
/*
 * luabpf.ringbuf: a BPF ring buffer drained on the host's loop.
 *
 * We map the ring ourselves (as libbpf does) and poll the map's fd with a
 * uv_poll_t. The loop that hands records to the handler is Lua, compiled by
 * the JIT, in lua/luabpf/_ringbuf.lua, the way lua-resty-core calls C: it
 * reads each record's header from the mapped ring itself and calls C
 * (lbpf_ring__settle, ring_read.c) through the FFI only to give space back,
 * so per event there is neither a Lua C API call nor an FFI call. C calls
 * that loop once per wake (again after a handler error); it delivers
 * batches of at most `batch` events and starts no new
 * batch once `slice_us` has passed since the wake (none after the first
 * when it is 0), then the loop runs its timers and other I/O. The poll being
 * level-triggered, the loop comes back to us if records remain.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "buf_common.h"
#include "luabpf.h"
#include "ring_chunk.h"
#include "ring_decode.h"

struct ringbuf {
	struct lbpf_evbuf b; /* first: what perf buffers keep the same way */
	struct lbpf_ring ring;
	int fd;                        /* our dup of the map's fd */
	void *cons_page, *prod_pages;
	size_t page_size, prod_size;
	int lost_fd;
	bool lost_percpu;
	uint32_t lost_value_size;
};

static struct lbpf_evbuf *all;

static inline unsigned long load_acquire(const unsigned long *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static struct ringbuf *check_rb(lua_State *L, int idx)
{
	return (struct ringbuf *)lbpf_evbuf__check(L, idx, MT_RINGBUF, "ringbuf");
}

static void on_closed(uv_handle_t *h)
{
	struct ringbuf *rb = h->data;

	free(rb);
}

/* What a ring holds besides its poll handle and fd: the mappings, the
 * lost_map's fd and the decoder. */
static void unmap(struct ringbuf *rb)
{
	lbpf_decode__free(&rb->b.decode);
	if (rb->prod_pages)
		munmap(rb->prod_pages, rb->prod_size);
	if (rb->cons_page)
		munmap(rb->cons_page, rb->page_size);
	if (rb->lost_fd >= 0)
		close(rb->lost_fd);
}

/* Unmap and close: the handle itself goes when libuv is done with it. */
static void release(struct lbpf_evbuf *b)
{
	struct ringbuf *rb = (struct ringbuf *)b;

	if (!lbpf_evbuf__release(b))
		return;
	lbpf_evbuf__unref(b);
	uv_poll_stop(&b->poll);
	unmap(rb);
	/* libuv still holds the fd in its epoll set until the handle is closed. */
	if (!uv_is_closing((uv_handle_t *)&b->poll))
		uv_close((uv_handle_t *)&b->poll, on_closed);
	close(rb->fd);
}

/* A drain starts: pick up where any other consumer of this ring (another
 * buffer on the same map, libbpf, a previous process) left it. */
static void begin(struct lbpf_evbuf *b)
{
	struct lbpf_ring *r = &((struct ringbuf *)b)->ring;

	r->pos = r->committed = load_acquire(r->consumer_pos);
	r->i = 0;
}

static void settle(struct lbpf_evbuf *b)
{
	lbpf_ring__settle(&((struct ringbuf *)b)->ring);
}

/* The lost_map: a (per-CPU) array whose key 0 the producer bumps. Raises on misuse. */
static void check_lost_map(lua_State *L, int opts, const char *name, struct lbpf_map_view *v)
{
	if (lua_isnil(L, opts)) {
		v->fd = -1;
		return;
	}
	lua_getfield(L, opts, "lost_map");
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		v->fd = -1;
		return;
	}
	lbpf_map__view(L, -1, v);
	if ((v->type != BPF_MAP_TYPE_PERCPU_ARRAY && v->type != BPF_MAP_TYPE_ARRAY) ||
	    (v->value_size != 4 && v->value_size != 8))
		luaL_error(L, "ringbuf '%s': lost_map '%s' must be a percpu_array (or array) of "
			      "__u32/__u64 counters, got a %s with %u-byte values",
			   name, v->name, libbpf_bpf_map_type_str(v->type) ?: "?", v->value_size);
	lua_pop(L, 1);
}

/* Sum key 0 over every CPU. Returns 0, or an errno. */
static int read_lost(struct ringbuf *rb, uint64_t *out)
{
	int ncpu = rb->lost_percpu ? libbpf_num_possible_cpus() : 1;
	size_t stride = rb->lost_percpu ? (rb->lost_value_size + 7) & ~7u : rb->lost_value_size;
	uint8_t *buf;
	uint32_t key = 0;
	uint64_t sum = 0;

	if (ncpu < 0)
		return -ncpu;
	buf = calloc((size_t)ncpu, stride < 8 ? 8 : stride);
	if (!buf)
		return ENOMEM;
	if (bpf_map_lookup_elem(rb->lost_fd, &key, buf)) {
		int err = errno;

		free(buf);
		return err;
	}
	for (int i = 0; i < ncpu; i++) {
		const uint8_t *p = buf + (size_t)i * stride;

		if (rb->lost_value_size == 8)
			sum += *(const uint64_t *)p;
		else
			sum += *(const uint32_t *)p;
	}
	free(buf);
	*out = sum;
	return 0;
}

/* stats(): what is waiting in the ring, and the lost_map's sum. */
static void stats(struct lbpf_evbuf *b, lua_State *L)
{
	struct ringbuf *rb = (struct ringbuf *)b;
	uint64_t lost;

	/* Bytes the producer has written that we have not consumed yet. */
	lua_pushnumber(L, (lua_Number)(lbpf_ring__produced(&rb->ring) - rb->ring.committed));
	lua_setfield(L, -2, "pending_bytes");
	if (rb->lost_fd >= 0 && read_lost(rb, &lost) == 0) {
		lua_pushnumber(L, (lua_Number)lost);
		lua_setfield(L, -2, "lost");
	}
}

/* The poll being level-triggered, what a wake leaves brings the loop back. */
static const struct lbpf_evbuf_ops ops = {
	.kind = "ringbuf",
	.mt = MT_RINGBUF,
	.begin = begin,
	.settle = settle,
	.release = release,
	.stats = stats,
	.consume_takes_max = true,
};

static int map_ring(struct ringbuf *rb, const struct lbpf_map_view *v)
{
	rb->page_size = (size_t)sysconf(_SC_PAGESIZE);
	rb->cons_page = mmap(NULL, rb->page_size, PROT_READ | PROT_WRITE, MAP_SHARED, rb->fd, 0);
	if (rb->cons_page == MAP_FAILED) {
		rb->cons_page = NULL;
		return errno;
	}
	/* The data area is mapped twice in a row: a record that wraps reads straight. */
	rb->prod_size = rb->page_size + 2 * (size_t)v->max_entries;
	rb->prod_pages = mmap(NULL, rb->prod_size, PROT_READ, MAP_SHARED, rb->fd,
			      (off_t)rb->page_size);
	if (rb->prod_pages == MAP_FAILED) {
		rb->prod_pages = NULL;
		return errno;
	}
	rb->ring.consumer_pos = rb->cons_page;
	rb->ring.producer_pos = rb->prod_pages;
	rb->ring.data = (const uint8_t *)rb->prod_pages + rb->page_size;
	rb->ring.mask = v->max_entries - 1;
	rb->ring.pos = rb->ring.committed = load_acquire(rb->ring.consumer_pos);
	return 0;
}

/* luabpf.ringbuf(map, handler [, {decode=, batch=, slice_us=, lost_map=}]) */
static int l_ringbuf(lua_State *L)
{
	static const char *const known[] = { "decode", "batch", "slice_us", "lost_map", NULL };
	struct lbpf_map_view v, lost;
	struct lbpf_decode dec;
	struct lbpf_evbuf_ud *u;
	struct ringbuf *rb;
	const char *spec;
	char what[sizeof(rb->b.what)];
	uint64_t slice_ns;
	int batch, err;

	lbpf_evbuf__check_args(L, "ringbuf", BPF_MAP_TYPE_RINGBUF, known, &v, what, sizeof(what));
	spec = lbpf_opt_string(L, 3, "decode", "raw");
	lbpf_evbuf__check_pace(L, "ringbuf", v.name, &batch, &slice_ns);
	lua_settop(L, 3);
	check_lost_map(L, 3, v.name, &lost);
	/* The last thing that may raise: it allocates, and we free on later failures. */
	lbpf_decode__parse(L, &dec, spec, &v, what);

	rb = calloc(1, sizeof(*rb));
	if (!rb) {
		lbpf_decode__free(&dec);
		return lbpf_fail(L, ENOMEM);
	}
	lbpf_evbuf__init(&rb->b, &ops, &dec, v.name, what, batch, slice_ns);
	/* decode() reads the record in ring.ptr[0]: its count is always 1. */
	rb->ring.one = 1;
	lbpf_evbuf__tie(&rb->b, &rb->ring.stop, &rb->ring.one, rb->ring.ptr, rb->ring.len,
			&rb->ring.events);
	rb->fd = rb->lost_fd = -1;
	if (lost.fd >= 0) {
		rb->lost_percpu = lost.type == BPF_MAP_TYPE_PERCPU_ARRAY;
		rb->lost_value_size = lost.value_size;
		rb->lost_fd = fcntl(lost.fd, F_DUPFD_CLOEXEC, 0);
		if (rb->lost_fd < 0) {
			err = errno;
			goto fail;
		}
	}
	u = lbpf_evbuf__new_ud(L, &ops); // [map, handler, opts, ud]

	rb->fd = fcntl(v.fd, F_DUPFD_CLOEXEC, 0);
	if (rb->fd < 0) {
		err = errno;
		goto fail;
	}
	err = map_ring(rb, &v);
	if (err)
		goto fail;
	err = uv_poll_init(lbpf_loop(), &rb->b.poll, rb->fd);
	if (err) {
		err = -err;
		goto fail;
	}
	rb->b.poll.data = rb;
	/* From here release() frees rb. */
	lbpf_evbuf__add(&rb->b, &all, u);

	/* The drain loop: luabpf._ringbuf.ring(ring, ...) */
	err = lbpf_evbuf__start(L, &rb->b, "ring", &rb->ring, true);
	return err ? err : 1;

fail:
	unmap(rb);
	if (rb->fd >= 0)
		close(rb->fd);
	free(rb);
	return lbpf_failf(L, err, "ringbuf '%s': can't map the ring", v.name);
}

static int l_lost(lua_State *L)
{
	struct ringbuf *rb = check_rb(L, 1);
	uint64_t n;
	int err;

	if (rb->lost_fd < 0) {
		lua_pushnil(L);
		return 1;
	}
	err = read_lost(rb, &n);
	if (err)
		return lbpf_failf(L, err, "ringbuf '%s': can't read its lost_map", rb->b.name);
	lua_pushnumber(L, (lua_Number)n);
	return 1;
}

/* rb:ctype(): the FFI pointer type events have in cdata mode (nil otherwise). */
static int l_ctype(lua_State *L)
{
	lua_rawgeti(L, LUA_REGISTRYINDEX, check_rb(L, 1)->b.ctype_ref);
	return 1;
}

/* rb:_tree(), rb:_decode(bytes): the table decoders' inputs and the general
 * decoder on any bytes, for test_ringbuf_decode.lua to compare the two. */
static int l_tree(lua_State *L)
{
	lbpf_ring__push_tree(L, &check_rb(L, 1)->b.decode);
	return 1;
}

static int l_decode_bytes(lua_State *L)
{
	struct ringbuf *rb = check_rb(L, 1);
	size_t len;
	const char *s = luaL_checklstring(L, 2, &len);

	if (rb->b.decode.mode != LBPF_DECODE_TABLE)
		return luaL_error(L, "ringbuf '%s': not in table mode", rb->b.name);
	lbpf_evbuf__check_len(L, &rb->b.decode, (uint32_t)len, "ringbuf", rb->b.name);
	lbpf_evbuf__decode_table(L, &rb->b.decode, s, rb->b.what);
	return 1;
}

/* Its own; buf_common.c adds those both kinds have. */
static const luaL_Reg methods[] = {
	{ "lost", l_lost },
	{ "ctype", l_ctype },
	{ "_tree", l_tree },
	{ "_decode", l_decode_bytes },
	{ NULL, NULL },
};

void lbpf_ringbuf__close_all(void)
{
	lbpf_evbuf__close_all(&all);
}

void lbpf_ringbuf__register(lua_State *L)
{
	lbpf_evbuf__register(L, &ops, methods, l_ringbuf);
}
