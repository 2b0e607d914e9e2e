// SPDX-License-Identifier: MIT
/*
 * luabpf.perfbuf: a BPF_MAP_TYPE_PERF_EVENT_ARRAY read with libbpf's
 * perf_buffer on the host's loop (uv_poll_t on perf_buffer__epoll_fd).
 * The older, per-CPU transport: one lua_call per event, lost events
 * counted by the kernel and reported through libbpf's lost callback. A wake
 * reads what the per-CPU buffers hold, which bounds it to pages * page size
 * per CPU.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf_common.h"
#include "luabpf.h"

#define DEFAULT_PAGES 64

struct perfbuf {
	struct lbpf_evbuf b; /* first: what ring buffers keep the same way */
	struct perf_buffer *pb;
	uv_poll_t poll;
	uv_idle_t kick; /* one drain after start/resume: see kick() */
	int handles;    /* libuv handles not closed yet */
	int handler_ref, lost_ref, caster_ref, anchor_ref;
	uint64_t events, lost, batches, errors;
	char lost_what[BPF_OBJ_NAME_LEN + 40];
};

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
	free(p);
}

static void release(struct perfbuf *p)
{
	lua_State *L = lbpf_vm();

	if (!lbpf_evbuf__release(&p->b))
		return;
	if (L) {
		luaL_unref(L, LUA_REGISTRYINDEX, p->handler_ref);
		luaL_unref(L, LUA_REGISTRYINDEX, p->lost_ref);
		luaL_unref(L, LUA_REGISTRYINDEX, p->caster_ref);
		luaL_unref(L, LUA_REGISTRYINDEX, p->anchor_ref);
	}
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
	if (lbpf_evbuf__close(&p->b))
		release(p);
}

/* [data, size, cpu] -> handler(event, size, cpu), decoding inside the pcall. */
static int dispatch(lua_State *L)
{
	struct perfbuf *p = lua_touserdata(L, lua_upvalueindex(1));
	void *data = lua_touserdata(L, 1);
	uint32_t size = (uint32_t)lua_tointeger(L, 2);

	lua_rawgeti(L, LUA_REGISTRYINDEX, p->handler_ref);
	switch (p->b.decode.mode) {
	case LBPF_DECODE_RAW:
		lua_pushlstring(L, data, size);
		break;
	case LBPF_DECODE_TABLE:
	case LBPF_DECODE_CDATA:
		lbpf_evbuf__check_len(L, &p->b.decode, size, "perfbuf", p->b.name);
		if (p->b.decode.mode == LBPF_DECODE_TABLE) {
			lbpf_evbuf__decode_table(L, &p->b.decode, data, p->b.what);
		} else {
			lua_rawgeti(L, LUA_REGISTRYINDEX, p->caster_ref);
			lua_pushlightuserdata(L, data);
			lua_call(L, 1, 1);
		}
		break;
	}
	lua_pushvalue(L, 2);
	lua_pushvalue(L, 3);
	lua_call(L, 3, 0);
	return 0;
}

static void on_sample(void *ctx, int cpu, void *data, __u32 size)
{
	struct perfbuf *p = ctx;
	lua_State *L = lbpf_vm();

	if (p->b.closing || p->b.paused)
		return; /* closed or paused by an earlier event of this wake */
	p->events++;
	lua_pushlightuserdata(L, p);
	lua_pushcclosure(L, dispatch, 1);
	lua_pushlightuserdata(L, data);
	lua_pushinteger(L, size);
	lua_pushinteger(L, cpu);
	if (lbpf_pcall(L, 3, 0, p->b.what) < 0)
		p->errors++;
}

static void on_lost(void *ctx, int cpu, __u64 cnt)
{
	struct perfbuf *p = ctx;
	lua_State *L = lbpf_vm();

	p->lost += cnt;
	if (p->lost_ref == LUA_NOREF || p->b.closing)
		return;
	lua_rawgeti(L, LUA_REGISTRYINDEX, p->lost_ref);
	lua_pushinteger(L, cpu);
	lua_pushnumber(L, (lua_Number)cnt);
	lbpf_pcall(L, 2, 0, p->lost_what);
}

/*
 * Read every per-CPU buffer, not only those perf_buffer__poll() would find:
 * a perf event's poll reports data once per wakeup, and the outer epoll
 * (libuv's) has already used that report up when it polled libbpf's epoll fd,
 * so libbpf's own epoll_wait would then see nothing. Reading a buffer with
 * nothing in it is one load of its head.
 */
static int drain(struct perfbuf *p)
{
	uint64_t start = p->events;
	int n;

	p->b.draining = true;
	n = perf_buffer__consume(p->pb);
	p->b.draining = false;
	if (p->events != start)
		p->batches++;
	if (p->b.closing)
		release(p);
	return n < 0 ? n : 0;
}

static void on_readable(uv_poll_t *h, int status, int events)
{
	struct perfbuf *p = h->data;
	int err;

	(void)events;
	if (status < 0) {
		lbpf_log(LBPF_WARN, "perfbuf '%s': poll failed: %s", p->b.name, uv_strerror(status));
		return;
	}
	err = drain(p);
	if (err && err != -EINTR)
		lbpf_log(LBPF_WARN, "perfbuf '%s': %s", p->b.name, strerror(-err));
}

static void on_kick(uv_idle_t *h)
{
	struct perfbuf *p = h->data;

	uv_idle_stop(h);
	if (!p->b.paused && !p->b.closing)
		drain(p);
}

/*
 * Samples that came while we were not polled (before start, while paused)
 * sent their wakeup to nobody and would wait for the next sample: drain once
 * by hand after every (re)start.
 */
static void kick(struct perfbuf *p)
{
	uv_idle_start(&p->kick, on_kick);
}

/* luabpf.perfbuf(map, handler [, {decode=, pages=64, lost=function(cpu, n)}]) */
static int l_perfbuf(lua_State *L)
{
	static const char *const known[] = { "decode", "pages", "lost", NULL };
	struct lbpf_map_view v;
	struct lbpf_decode dec;
	struct lbpf_evbuf_ud *u;
	struct perfbuf *p;
	const char *spec;
	lua_Integer pages;
	char what[sizeof(p->b.what)];
	int err;

	lbpf_evbuf__check_args(L, "perfbuf", BPF_MAP_TYPE_PERF_EVENT_ARRAY, known, &v, what,
			       sizeof(what));
	spec = lbpf_opt_string(L, 3, "decode", "raw");
	pages = lbpf_opt_integer(L, 3, "pages", DEFAULT_PAGES);
	if (pages < 1 || pages > (1 << 20) || (pages & (pages - 1)))
		return luaL_error(L, "perfbuf '%s': option 'pages' must be a power of 2, got %d",
				  v.name, (int)pages);
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
	if (!p) {
		lbpf_decode__free(&dec);
		return lbpf_fail(L, ENOMEM);
	}
	lbpf_evbuf__init(&p->b, &dec, v.name, what);
	p->handler_ref = p->lost_ref = p->caster_ref = p->anchor_ref = LUA_NOREF;
	snprintf(p->lost_what, sizeof(p->lost_what), "perfbuf '%s' lost callback", v.name);

	p->pb = perf_buffer__new(v.fd, (size_t)pages, on_sample, on_lost, p, NULL);
	if (!p->pb) {
		err = errno;
		lbpf_decode__free(&p->b.decode);
		free(p);
		return lbpf_failf(L, err, "perfbuf '%s': can't open the per-CPU buffers", v.name);
	}
	err = uv_poll_init(lbpf_loop(), &p->poll, perf_buffer__epoll_fd(p->pb));
	if (err) {
		perf_buffer__free(p->pb);
		lbpf_decode__free(&p->b.decode);
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
	lua_pushvalue(L, 2);
	p->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	if (!lua_isnil(L, 3)) {
		lua_getfield(L, 3, "lost");
		p->lost_ref = lua_isnil(L, -1) ? (lua_pop(L, 1), LUA_NOREF)
					       : luaL_ref(L, LUA_REGISTRYINDEX);
	}
	if (p->b.decode.mode == LBPF_DECODE_CDATA) {
		lbpf_evbuf__push_module_fn(L, "caster");
		lua_pushstring(L, p->b.decode.decl);
		lua_pushinteger(L, p->b.decode.size);
		lua_pushfstring(L, "perfbuf '%s'", p->b.name);
		if (lua_pcall(L, 3, 1, 0)) {
			pb_close(p);
			return lua_error(L);
		}
		p->caster_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	}
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
	uv_poll_stop(&p->poll);
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
	kick(p);
	lua_pushboolean(L, 1);
	return 1;
}

/* pb:consume(): read every per-CPU buffer now; returns how many events. */
static int l_consume(lua_State *L)
{
	struct perfbuf *p = check_pb(L, 1);
	uint64_t start = p->events;
	bool paused = p->b.paused;
	int err;

	if (p->b.draining)
		return luaL_error(L, "perfbuf '%s': consume() called from its own handler",
				  p->b.name);
	p->b.paused = false;
	p->b.draining = true;
	err = perf_buffer__consume(p->pb);
	p->b.draining = false;
	if (!p->b.closing)
		p->b.paused = paused;
	if (p->events != start)
		p->batches++;
	lua_pushnumber(L, (lua_Number)(p->events - start));
	if (p->b.closing)
		release(p);
	if (err < 0)
		return lbpf_fail(L, -err);
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

	lbpf_evbuf__push_stats(L, p->events, p->batches, p->errors, p->b.paused);
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
				(lua_Number)p->events, (lua_Number)p->lost,
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
