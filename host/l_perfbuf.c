// SPDX-License-Identifier: MIT
/*
 * luabpf.perfbuf: a BPF_MAP_TYPE_PERF_EVENT_ARRAY on the host's loop.
 * libbpf's perf_buffer opens and maps one perf buffer per CPU; we poll its
 * epoll fd with a uv_poll_t and read the buffers ourselves, the way
 * l_ringbuf.c reads a ring: lbpf_perf__fill() (called through ffi.C by the
 * JIT-compiled drain loop of lua/luabpf/_ringbuf.lua) collects up to 64
 * samples of one CPU into arrays, so there is no Lua C API call per event.
 * A wake runs batches (at most `batch` events each) until every buffer is
 * empty or `slice_us` has passed. Lost records stop a chunk; C then calls the
 * lost callback, as libbpf's did, and goes on.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf_common.h"
#include "luabpf.h"
#include "ring_chunk.h"
#include "ring_decode.h"

#define DEFAULT_PAGES 64

struct perfbuf {
	struct lbpf_evbuf b; /* first: what ring buffers keep the same way */
	struct lbpf_perf_chunk *c;
	struct perf_buffer *pb;
	uv_idle_t kick; /* a drain on the loop's next turn: see kick() */
	int handles;    /* libuv handles not closed yet */
	int lost_ref;
	uint64_t lost;
	char lost_what[BPF_OBJ_NAME_LEN + 40];
};

static inline __u64 load_acquire(const __u64 *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static struct lbpf_evbuf *all;

static struct perfbuf *check_pb(lua_State *L, int idx)
{
	return (struct perfbuf *)lbpf_evbuf__check(L, idx, MT_PERFBUF, "perfbuf");
}

static void on_closed(uv_handle_t *h)
{
	struct perfbuf *p = h->data;

	if (--p->handles > 0)
		return;
	if (p->c)
		free(p->c->scratch);
	free(p->c);
	free(p);
}

static void release(struct lbpf_evbuf *b)
{
	struct perfbuf *p = (struct perfbuf *)b;
	lua_State *L = lbpf_vm();

	if (!lbpf_evbuf__release(b))
		return;
	lbpf_evbuf__unref(b);
	if (L)
		luaL_unref(L, LUA_REGISTRYINDEX, p->lost_ref);
	p->c->stop = 1;
	lbpf_decode__free(&b->decode);
	uv_poll_stop(&b->poll);
	uv_idle_stop(&p->kick);
	uv_close((uv_handle_t *)&b->poll, on_closed);
	uv_close((uv_handle_t *)&p->kick, on_closed);
	/*
	 * Now, not in on_closed: libuv has dropped the epoll fd already, and the
	 * map's CPU slots must be cleared before a new perfbuf on the same map
	 * fills them, or our late cleanup would delete its entries.
	 */
	perf_buffer__free(p->pb);
	p->pb = NULL;
}

/* Never called: we read the buffers ourselves (lbpf_perf__fill). */
static void on_sample(void *ctx, int cpu, void *data, __u32 size)
{
	(void)ctx, (void)cpu, (void)data, (void)size;
}

/* A lost record fill() stopped at: count it, then the lost callback. */
static void report_lost(struct perfbuf *p, lua_State *L)
{
	uint64_t cnt = p->c->lost_pending;

	p->c->lost_pending = 0;
	p->lost += cnt;
	if (p->lost_ref == LUA_NOREF || p->b.closing)
		return;
	lua_rawgeti(L, LUA_REGISTRYINDEX, p->lost_ref);
	lua_pushinteger(L, p->c->lost_cpu);
	lua_pushnumber(L, (lua_Number)cnt);
	lbpf_pcall(L, 2, 0, p->lost_what);
}

static void begin(struct lbpf_evbuf *b)
{
	struct lbpf_perf_chunk *c = ((struct perfbuf *)b)->c;

	c->n = c->i = c->taken = 0;
}

static void settle(struct lbpf_evbuf *b)
{
	lbpf_perf__settle(((struct perfbuf *)b)->c);
}

/* Lost records stopped the chunk: report them, and the drain goes on. */
static bool again(struct lbpf_evbuf *b, lua_State *L)
{
	struct perfbuf *p = (struct perfbuf *)b;

	if (!p->c->lost_pending)
		return false;
	report_lost(p, L);
	return true;
}

/*
 * Samples that came while we were not polled (before start, while paused)
 * sent their wakeup to nobody and would wait for the next sample: drain once
 * by hand after every (re)start, and after a wake that left some.
 */
static void kick(struct lbpf_evbuf *b);

/*
 * After a wake's batches: what is left waits for the loop's next turn (kick),
 * not for the next sample: a perf buffer's readiness is used up by the first
 * poll that sees it.
 */
static void woke(struct lbpf_evbuf *b)
{
	struct lbpf_perf_chunk *c = ((struct perfbuf *)b)->c;

	if (c->stop)
		return;
	for (int i = 0; i < c->nbufs; i++) {
		if (load_acquire(&c->hdr[i]->data_head) != c->hdr[i]->data_tail) {
			kick(b);
			return;
		}
	}
}

static void on_kick(uv_idle_t *h)
{
	struct perfbuf *p = h->data;

	uv_idle_stop(h);
	if (!p->b.paused && !p->b.closing)
		lbpf_evbuf__wake(&p->b);
}

static void kick(struct lbpf_evbuf *b)
{
	uv_idle_start(&((struct perfbuf *)b)->kick, on_kick);
}

static void paused(struct lbpf_evbuf *b)
{
	uv_idle_stop(&((struct perfbuf *)b)->kick);
}

static void stats(struct lbpf_evbuf *b, lua_State *L)
{
	lua_pushnumber(L, (lua_Number)((struct perfbuf *)b)->lost);
	lua_setfield(L, -2, "lost");
}

static void describe(struct lbpf_evbuf *b, lua_State *L)
{
	lua_pushfstring(L, ", %f lost", (lua_Number)((struct perfbuf *)b)->lost);
}

static const struct lbpf_evbuf_ops ops = {
	.kind = "perfbuf",
	.mt = MT_PERFBUF,
	.begin = begin,
	.settle = settle,
	.again = again,
	.woke = woke,
	.paused = paused,
	.resumed = kick,
	.release = release,
	.stats = stats,
	.describe = describe,
};

/* Undo a start that failed before the handles: nothing is left behind. */
static int fail_open(lua_State *L, struct perfbuf *p, int err, const char *what)
{
	char name[sizeof(p->b.name)];

	snprintf(name, sizeof(name), "%s", p->b.name);
	perf_buffer__free(p->pb);
	lbpf_decode__free(&p->b.decode);
	free(p->c->scratch);
	free(p->c);
	free(p);
	return lbpf_failf(L, err, "perfbuf '%s': %s", name, what);
}

/* luabpf.perfbuf(map, handler [, {decode=, pages=64, lost=function(cpu, n), batch=, slice_us=}]) */
static int l_perfbuf(lua_State *L)
{
	static const char *const known[] = { "decode", "pages", "lost", "batch", "slice_us", NULL };
	struct lbpf_map_view v;
	struct lbpf_decode dec;
	struct lbpf_evbuf_ud *u;
	struct perfbuf *p;
	const char *spec;
	lua_Integer pages;
	uint64_t slice_ns;
	char what[sizeof(p->b.what)];
	int batch, err;

	lbpf_evbuf__check_args(L, "perfbuf", BPF_MAP_TYPE_PERF_EVENT_ARRAY, known, &v, what,
			       sizeof(what));
	spec = lbpf_opt_string(L, 3, "decode", "raw");
	pages = lbpf_opt_integer(L, 3, "pages", DEFAULT_PAGES);
	if (pages < 1 || pages > (1 << 20) || (pages & (pages - 1)))
		return luaL_error(L, "perfbuf '%s': option 'pages' must be a power of 2, got %d",
				  v.name, (int)pages);
	lbpf_evbuf__check_pace(L, "perfbuf", v.name, &batch, &slice_ns);
	if (!lua_isnoneornil(L, 3)) {
		lua_getfield(L, 3, "lost");
		if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
			return luaL_error(L,
					  "perfbuf '%s': option 'lost' expects a function, got %s",
					  v.name, luaL_typename(L, -1));
		lua_pop(L, 1);
	}
	lua_settop(L, 3);
	lbpf_decode__parse(L, &dec, spec, &v, what);

	p = calloc(1, sizeof(*p));
	if (p)
		p->c = calloc(1, sizeof(*p->c));
	if (!p || !p->c) {
		free(p);
		lbpf_decode__free(&dec);
		return lbpf_fail(L, ENOMEM);
	}
	lbpf_evbuf__init(&p->b, &ops, &dec, v.name, what, batch, slice_ns);
	lbpf_evbuf__tie(&p->b, &p->c->stop, &p->c->i, p->c->ptr, p->c->len, &p->c->events);
	p->lost_ref = LUA_NOREF;
	snprintf(p->lost_what, sizeof(p->lost_what), "perfbuf '%s' lost callback", v.name);

	p->pb = perf_buffer__new(v.fd, (size_t)pages, on_sample, NULL, p, NULL);
	err = p->pb ? lbpf_perf__map(p->c, p->pb) : errno;
	if (err)
		return fail_open(L, p, err, "can't open the per-CPU buffers");
	err = uv_poll_init(lbpf_loop(), &p->b.poll, perf_buffer__epoll_fd(p->pb));
	if (err)
		return fail_open(L, p, -err, "can't poll");
	p->b.poll.data = p;
	uv_idle_init(lbpf_loop(), &p->kick);
	p->kick.data = p;
	p->handles = 2;

	u = lbpf_evbuf__new_ud(L, &ops); // [map, handler, opts, ud]
	lbpf_evbuf__add(&p->b, &all, u);
	if (!lua_isnil(L, 3)) {
		lua_getfield(L, 3, "lost");
		p->lost_ref = lua_isnil(L, -1) ? (lua_pop(L, 1), LUA_NOREF)
					       : luaL_ref(L, LUA_REGISTRYINDEX);
	}
	/* The drain loop: luabpf._ringbuf.perf(chunk, ...) */
	err = lbpf_evbuf__start(L, &p->b, "perf", p->c, false);
	if (err)
		return err;
	kick(&p->b);
	return 1;
}

static int l_lost(lua_State *L)
{
	lua_pushnumber(L, (lua_Number)check_pb(L, 1)->lost);
	return 1;
}

/* Its own; buf_common.c adds those both kinds have. */
static const luaL_Reg methods[] = {
	{ "lost", l_lost },
	{ NULL, NULL },
};

/// Close every perf buffer (a shutdown step, added by module.c).
void lbpf_perfbuf__close_all(void)
{
	lbpf_evbuf__close_all(&all);
}

/// Register luabpf.perfbuf and its metatable.
void lbpf_perfbuf__register(lua_State *L)
{
	lbpf_evbuf__register(L, &ops, methods, l_perfbuf);
}
