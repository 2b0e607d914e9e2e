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
#define DEFAULT_BATCH 256
#define DEFAULT_SLICE_US 1000

struct perfbuf {
	struct lbpf_evbuf b; /* first: what ring buffers keep the same way */
	struct lbpf_perf_chunk *c;
	struct perf_buffer *pb;
	uv_poll_t poll;
	uv_idle_t kick; /* a drain on the loop's next turn: see kick() */
	int handles;    /* libuv handles not closed yet */
	int drain_ref, lost_ref, ctype_ref, anchor_ref;
	int batch;
	uint64_t slice_ns;
	uint64_t lost, batches, errors;
	char lost_what[BPF_OBJ_NAME_LEN + 40];
};

static inline __u64 load_acquire(const __u64 *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static struct lbpf_evbuf *all;

static struct lbpf_evbuf_ud *check_ud(lua_State *L, int idx)
{
	return luaL_checkudata(L, idx, MT_PERFBUF);
}

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

static void release(struct perfbuf *p)
{
	lua_State *L = lbpf_vm();

	if (!lbpf_evbuf__release(&p->b))
		return;
	if (L) {
		luaL_unref(L, LUA_REGISTRYINDEX, p->drain_ref);
		luaL_unref(L, LUA_REGISTRYINDEX, p->lost_ref);
		luaL_unref(L, LUA_REGISTRYINDEX, p->ctype_ref);
		luaL_unref(L, LUA_REGISTRYINDEX, p->anchor_ref);
	}
	p->c->stop = 1;
	lbpf_decode__free(&p->b.decode);
	uv_poll_stop(&p->poll);
	uv_idle_stop(&p->kick);
	uv_close((uv_handle_t *)&p->poll, on_closed);
	uv_close((uv_handle_t *)&p->kick, on_closed);
	/*
	 * Now, not in on_closed: libuv has dropped the epoll fd already, and the
	 * map's CPU slots must be cleared before a new perfbuf on the same map
	 * fills them, or our late cleanup would delete its entries.
	 */
	perf_buffer__free(p->pb);
	p->pb = NULL;
}

static void pb_close(struct perfbuf *p)
{
	p->c->stop = 1;
	if (lbpf_evbuf__close(&p->b))
		release(p);
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

/*
 * Up to budget samples to the handler, in batches of batch: no batch starts
 * after deadline (uv_hrtime), or after the first when deadline is 0. An
 * error in the handler is logged, its sample counts as consumed, and the
 * rest goes on.
 */
static uint64_t drain(struct perfbuf *p, lua_State *L, uint64_t budget, uint64_t batch,
		      uint64_t deadline)
{
	struct lbpf_perf_chunk *c = p->c;
	uint64_t start = c->events, n;

	c->n = c->i = c->taken = 0;
	p->b.draining = true;
	while (!c->stop) {
		uint64_t done = c->events - start;
		int rc;

		if (done >= budget)
			break;
		lua_rawgeti(L, LUA_REGISTRYINDEX, p->drain_ref);
		lua_pushnumber(L, (lua_Number)(budget - done));
		lua_pushnumber(L, (lua_Number)batch);
		lua_pushnumber(L, (lua_Number)deadline);
		rc = lbpf_pcall(L, 3, 0, p->b.what);
		lbpf_perf__settle(c);
		if (rc)
			p->errors++;
		if (c->lost_pending)
			report_lost(p, L);
		else if (rc == 0)
			break;
	}
	lbpf_perf__settle(c);
	p->b.draining = false;
	n = c->events - start;
	if (n)
		p->batches += 1 + (n - 1) / batch;
	if (p->b.closing)
		release(p);
	return n;
}

static void kick(struct perfbuf *p);

/*
 * A wake: batches until every buffer is empty or the slice is used up. What
 * is left waits for the loop's next turn (kick), not for the next sample: a
 * perf buffer's readiness is used up by the first poll that sees it.
 */
static void wake(struct perfbuf *p)
{
	uint64_t batch = (uint64_t)p->batch;
	struct lbpf_perf_chunk *c = p->c;

	if (p->slice_ns)
		drain(p, lbpf_vm(), UINT64_MAX, batch, uv_hrtime() + p->slice_ns);
	else
		drain(p, lbpf_vm(), batch, batch, 0);
	if (c->stop)
		return;
	for (int b = 0; b < c->nbufs; b++) {
		if (load_acquire(&c->hdr[b]->data_head) != c->hdr[b]->data_tail) {
			kick(p);
			return;
		}
	}
}

static void on_readable(uv_poll_t *h, int status, int events)
{
	struct perfbuf *p = h->data;

	(void)events;
	if (status < 0) {
		lbpf_log(LBPF_WARN, "perfbuf '%s': poll failed: %s", p->b.name, uv_strerror(status));
		return;
	}
	wake(p);
}

static void on_kick(uv_idle_t *h)
{
	struct perfbuf *p = h->data;

	uv_idle_stop(h);
	if (!p->b.paused && !p->b.closing)
		wake(p);
}

/*
 * Samples that came while we were not polled (before start, while paused)
 * sent their wakeup to nobody and would wait for the next sample: drain once
 * by hand after every (re)start, and after a wake that left some.
 */
static void kick(struct perfbuf *p)
{
	uv_idle_start(&p->kick, on_kick);
}

/* decode(): table mode's general decoder for the sample the drain loop holds. */
static int l_decode_current(lua_State *L)
{
	struct perfbuf *p = lua_touserdata(L, lua_upvalueindex(1));
	uint32_t k = p->c->i ? p->c->i - 1 : 0;

	lbpf_evbuf__check_len(L, &p->b.decode, p->c->len[k], "perfbuf", p->b.name);
	lbpf_evbuf__decode_table(L, &p->b.decode, p->c->ptr[k], p->b.what);
	return 1;
}

static const char *const mode_names[] = { "raw", "table", "cdata" };

/* luabpf.perfbuf(map, handler [, {decode=, pages=64, lost=function(cpu, n), batch=, slice_us=}]) */
static int l_perfbuf(lua_State *L)
{
	static const char *const known[] = { "decode", "pages", "lost", "batch", "slice_us", NULL };
	struct lbpf_map_view v;
	struct lbpf_decode dec;
	struct lbpf_evbuf_ud *u;
	struct perfbuf *p;
	const char *spec;
	lua_Integer pages, batch, slice;
	char what[sizeof(p->b.what)];
	int err;

	lbpf_evbuf__check_args(L, "perfbuf", BPF_MAP_TYPE_PERF_EVENT_ARRAY, known, &v, what,
			       sizeof(what));
	spec = lbpf_opt_string(L, 3, "decode", "raw");
	pages = lbpf_opt_integer(L, 3, "pages", DEFAULT_PAGES);
	if (pages < 1 || pages > (1 << 20) || (pages & (pages - 1)))
		return luaL_error(L, "perfbuf '%s': option 'pages' must be a power of 2, got %d",
				  v.name, (int)pages);
	batch = lbpf_opt_integer(L, 3, "batch", DEFAULT_BATCH);
	if (batch < 1 || batch > (1 << 24))
		return luaL_error(L, "perfbuf '%s': option 'batch' must be 1..16777216, got %d",
				  v.name, (int)batch);
	slice = lbpf_opt_integer(L, 3, "slice_us", DEFAULT_SLICE_US);
	if (slice < 0 || slice > 1000000)
		return luaL_error(L, "perfbuf '%s': option 'slice_us' must be 0..1000000 "
				  "(microseconds a wake may drain; 0: one batch), got %d",
				  v.name, (int)slice);
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
	lbpf_evbuf__init(&p->b, &dec, v.name, what);
	p->drain_ref = p->lost_ref = p->ctype_ref = p->anchor_ref = LUA_NOREF;
	p->batch = (int)batch;
	p->slice_ns = (uint64_t)slice * 1000;
	snprintf(p->lost_what, sizeof(p->lost_what), "perfbuf '%s' lost callback", v.name);

	p->pb = perf_buffer__new(v.fd, (size_t)pages, on_sample, NULL, p, NULL);
	err = p->pb ? lbpf_perf__map(p->c, p->pb) : errno;
	if (err) {
		perf_buffer__free(p->pb);
		lbpf_decode__free(&p->b.decode);
		free(p->c->scratch);
		free(p->c);
		free(p);
		return lbpf_failf(L, err, "perfbuf '%s': can't open the per-CPU buffers", v.name);
	}
	err = uv_poll_init(lbpf_loop(), &p->poll, perf_buffer__epoll_fd(p->pb));
	if (err) {
		perf_buffer__free(p->pb);
		lbpf_decode__free(&p->b.decode);
		free(p->c->scratch);
		free(p->c);
		free(p);
		return lbpf_failf(L, -err, "perfbuf '%s': can't poll", v.name);
	}
	p->poll.data = p;
	uv_idle_init(lbpf_loop(), &p->kick);
	p->kick.data = p;
	p->handles = 2;

	u = lua_newuserdata(L, sizeof(*u)); // [map, handler, opts, ud]
	lbpf_evbuf__add(&p->b, &all, u);
	luaL_getmetatable(L, MT_PERFBUF);
	lua_setmetatable(L, -2);
	if (!lua_isnil(L, 3)) {
		lua_getfield(L, 3, "lost");
		p->lost_ref = lua_isnil(L, -1) ? (lua_pop(L, 1), LUA_NOREF)
					       : luaL_ref(L, LUA_REGISTRYINDEX);
	}
	/* The drain loop: luabpf._ringbuf.perf(chunk, mode, decl, size, handler, decode,
	 * name, type_name, tree) */
	lbpf_evbuf__push_module_fn(L, "perf");
	lua_pushlightuserdata(L, p->c);
	lua_pushstring(L, mode_names[p->b.decode.mode]);
	lua_pushstring(L, p->b.decode.decl ? p->b.decode.decl : "");
	lua_pushinteger(L, p->b.decode.size);
	lua_pushvalue(L, 2);
	lua_pushlightuserdata(L, p);
	lua_pushcclosure(L, l_decode_current, 1);
	lua_pushstring(L, p->b.name);
	lua_pushstring(L, p->b.decode.type_name);
	if (p->b.decode.mode == LBPF_DECODE_TABLE)
		lbpf_ring__push_tree(L, &p->b.decode);
	else
		lua_pushnil(L);
	if (lua_pcall(L, 9, 2, 0)) {
		pb_close(p);
		return lua_error(L);
	}
	p->ctype_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	p->drain_ref = luaL_ref(L, LUA_REGISTRYINDEX); // [map, handler, opts, ud]
	/* Like a luv handle, an open buffer lives until close() or shutdown. */
	lua_pushvalue(L, 4);
	p->anchor_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	err = uv_poll_start(&p->poll, UV_READABLE, on_readable);
	if (err) {
		pb_close(p);
		return lbpf_failf(L, -err, "perfbuf '%s': can't poll", v.name);
	}
	kick(p);
	return 1;
}

static int l_pause(lua_State *L)
{
	struct perfbuf *p = check_pb(L, 1);

	p->b.paused = true;
	p->c->stop = 1;
	uv_poll_stop(&p->poll);
	uv_idle_stop(&p->kick);
	return 0;
}

static int l_resume(lua_State *L)
{
	struct perfbuf *p = check_pb(L, 1);
	int err;

	if (!p->b.paused)
		return 0;
	err = uv_poll_start(&p->poll, UV_READABLE, on_readable);
	if (err)
		return lbpf_failf(L, -err, "perfbuf '%s': can't poll", p->b.name);
	p->b.paused = false;
	p->c->stop = 0;
	kick(p);
	lua_pushboolean(L, 1);
	return 1;
}

/* pb:consume(): read every per-CPU buffer now; returns how many events. */
static int l_consume(lua_State *L)
{
	struct perfbuf *p = check_pb(L, 1);
	bool paused = p->b.paused;
	uint64_t n;

	if (p->b.draining)
		return luaL_error(L, "perfbuf '%s': consume() called from its own handler",
				  p->b.name);
	/* Explicit consume works on a paused buffer too. */
	p->c->stop = 0;
	n = drain(p, L, UINT64_MAX, UINT64_MAX, 0);
	if (!p->b.closing && paused && p->b.paused)
		p->c->stop = 1;
	lua_pushnumber(L, (lua_Number)n);
	return 1;
}

static int l_lost(lua_State *L)
{
	lua_pushnumber(L, (lua_Number)check_pb(L, 1)->lost);
	return 1;
}

static int l_stats(lua_State *L)
{
	struct perfbuf *p = check_pb(L, 1);

	lbpf_evbuf__push_stats(L, p->c->events, p->batches, p->errors, p->b.paused);
	lua_pushnumber(L, (lua_Number)p->lost);
	lua_setfield(L, -2, "lost");
	return 1;
}

static int l_name(lua_State *L)
{
	lua_pushstring(L, check_pb(L, 1)->b.name);
	return 1;
}

static int l_close(lua_State *L)
{
	struct lbpf_evbuf_ud *u = check_ud(L, 1);

	if (u->b)
		pb_close((struct perfbuf *)u->b);
	return 0;
}

static int l_tostring(lua_State *L)
{
	struct perfbuf *p = (struct perfbuf *)check_ud(L, 1)->b;
	char spec[160];

	if (!p)
		lua_pushliteral(L, "luabpf.perfbuf (closed)");
	else
		lua_pushfstring(L, "luabpf.perfbuf '%s' (%s, %f events, %f lost%s)", p->b.name,
				lbpf_evbuf__decode_spec(&p->b.decode, spec, sizeof(spec)),
				(lua_Number)p->c->events, (lua_Number)p->lost,
				p->b.paused ? ", paused" : "");
	return 1;
}

static const luaL_Reg methods[] = {
	{ "pause", l_pause },
	{ "resume", l_resume },
	{ "consume", l_consume },
	{ "lost", l_lost },
	{ "stats", l_stats },
	{ "name", l_name },
	{ "close", l_close },
	{ "__gc", l_close },
	{ "__tostring", l_tostring },
	{ NULL, NULL },
};

static const luaL_Reg module_fns[] = {
	{ "perfbuf", l_perfbuf },
	{ NULL, NULL },
};

/// Close every perf buffer (a shutdown step, added by module.c).
void lbpf_perfbuf__close_all(void)
{
	while (all)
		pb_close((struct perfbuf *)all);
}

/// Register luabpf.perfbuf and its metatable.
void lbpf_perfbuf__register(lua_State *L)
{
	lbpf_new_class(L, MT_PERFBUF, methods);
	luaL_register(L, NULL, module_fns);
}
