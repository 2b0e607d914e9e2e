// SPDX-License-Identifier: MIT
/* What ring and perf buffers share: see buf_common.h. */
#include <stdio.h>

#include "buf_common.h"
#include "ring_decode.h"

#define DEFAULT_BATCH 256
#define DEFAULT_SLICE_US 1000

#define MODULE "luabpf._ringbuf"

/* The other kind of buffer, to point a user who passed its map to it. */
static const char *ctor_for(enum bpf_map_type t)
{
	if (t == BPF_MAP_TYPE_RINGBUF)
		return "ringbuf";
	return t == BPF_MAP_TYPE_PERF_EVENT_ARRAY ? "perfbuf" : NULL;
}

void lbpf_evbuf__check_args(lua_State *L, const char *kind, enum bpf_map_type want,
			    const char *const known[], struct lbpf_map_view *v, char *what,
			    size_t n)
{
	char fn[32], hint[32] = "";

	lbpf_map__view(L, 1, v);
	if (v->type != want) {
		if (ctor_for(v->type))
			snprintf(hint, sizeof(hint), " (use luabpf.%s)", ctor_for(v->type));
		luaL_error(L, "map '%s' is a %s, not a %s%s", v->name,
			   libbpf_bpf_map_type_str(v->type) ?: "map of unknown type",
			   libbpf_bpf_map_type_str(want), hint);
	}
	luaL_checktype(L, 2, LUA_TFUNCTION);
	snprintf(fn, sizeof(fn), "luabpf.%s", kind);
	lbpf_check_options(L, 3, fn, known);
	snprintf(what, n, "%s '%s' handler", kind, v->name);
}

void lbpf_evbuf__check_len(lua_State *L, const struct lbpf_decode *d, uint32_t len,
			   const char *kind, const char *name)
{
	if (len < d->size)
		luaL_error(L, "%s '%s': a %u-byte event is smaller than %s (%u bytes)", kind, name,
			   len, d->type_name, d->size);
}

void lbpf_evbuf__decode_table(lua_State *L, const struct lbpf_decode *d, const void *data,
			      const char *what)
{
	struct lbpf_codec c = {.btf = d->btf, .type_id = d->type_id, .size = d->size, .what = what};

	lbpf_codec__decode(L, &c, data);
}

void lbpf_evbuf__push_module_fn(lua_State *L, const char *fn)
{
	lua_getglobal(L, "require");
	lua_pushliteral(L, MODULE);
	lua_call(L, 1, 1);
	lua_getfield(L, -1, fn);
	lua_remove(L, -2);
}

void lbpf_evbuf__init(struct lbpf_evbuf *b, const struct lbpf_evbuf_ops *ops,
		      const struct lbpf_decode *d, const char *name, const char *what, int batch,
		      uint64_t slice_ns)
{
	b->ops = ops;
	b->decode = *d;
	b->batch = batch;
	b->slice_ns = slice_ns;
	b->drain_ref = b->ctype_ref = b->anchor_ref = LUA_NOREF;
	snprintf(b->name, sizeof(b->name), "%s", name);
	snprintf(b->what, sizeof(b->what), "%s", what);
}

void lbpf_evbuf__check_pace(lua_State *L, const char *kind, const char *name, int *batch,
			    uint64_t *slice_ns)
{
	lua_Integer n = lbpf_opt_integer(L, 3, "batch", DEFAULT_BATCH), slice;

	if (n < 1 || n > (1 << 24))
		luaL_error(L, "%s '%s': option 'batch' must be 1..16777216, got %d", kind, name,
			   (int)n);
	slice = lbpf_opt_integer(L, 3, "slice_us", DEFAULT_SLICE_US);
	if (slice < 0 || slice > 1000000)
		luaL_error(L, "%s '%s': option 'slice_us' must be 0..1000000 "
			      "(microseconds a wake may drain; 0: one batch), got %d",
			   kind, name, (int)slice);
	*batch = (int)n;
	*slice_ns = (uint64_t)slice * 1000;
}

/* decode(): table mode's general decoder for the event the drain loop holds. */
static int l_decode_current(lua_State *L)
{
	struct lbpf_evbuf *b = lua_touserdata(L, lua_upvalueindex(1));
	uint32_t k = *b->cur ? *b->cur - 1 : 0;

	lbpf_evbuf__check_len(L, &b->decode, b->len[k], b->ops->kind, b->name);
	lbpf_evbuf__decode_table(L, &b->decode, b->ptr[k], b->what);
	return 1;
}

static const char *const mode_names[] = { "raw", "table", "cdata" };

/*
 * Build the drain loop: luabpf._ringbuf.FN(chunk, mode, decl, size, handler,
 * decode, name, type_name, tree), with the handler at 2 and the userdata at 4.
 * 0 and b's drain, ctype and anchor references taken; else lua_pcall's code
 * with the error on the stack.
 */
static int start_loop(lua_State *L, struct lbpf_evbuf *b, const char *fn, void *chunk)
{
	int rc;

	lbpf_evbuf__push_module_fn(L, fn);
	lua_pushlightuserdata(L, chunk);
	lua_pushstring(L, mode_names[b->decode.mode]);
	lua_pushstring(L, b->decode.decl ? b->decode.decl : "");
	lua_pushinteger(L, b->decode.size);
	lua_pushvalue(L, 2);
	lua_pushlightuserdata(L, b);
	lua_pushcclosure(L, l_decode_current, 1);
	lua_pushstring(L, b->name);
	lua_pushstring(L, b->decode.type_name);
	if (b->decode.mode == LBPF_DECODE_TABLE)
		lbpf_ring__push_tree(L, &b->decode);
	else
		lua_pushnil(L);
	rc = lua_pcall(L, 9, 2, 0);
	if (rc)
		return rc;
	b->ctype_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* LUA_REFNIL unless cdata */
	b->drain_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	/* Like a luv handle, an open buffer lives until close() or shutdown. */
	lua_pushvalue(L, 4);
	b->anchor_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	return 0;
}

int lbpf_evbuf__start(lua_State *L, struct lbpf_evbuf *b, const char *fn, void *chunk,
		      bool named)
{
	int err;

	if (start_loop(L, b, fn, chunk)) {
		if (named)
			lua_pushfstring(L, "%s '%s': %s", b->ops->kind, b->name, lua_tostring(L, -1));
		lbpf_evbuf__close_now(b);
		return lua_error(L);
	}
	err = uv_poll_start(&b->poll, UV_READABLE, lbpf_evbuf__on_readable);
	if (err) {
		err = lbpf_failf(L, -err, "%s '%s': can't poll", b->ops->kind, b->name);
		lbpf_evbuf__close_now(b);
		return err;
	}
	return 0;
}

void lbpf_evbuf__unref(struct lbpf_evbuf *b)
{
	lua_State *L = lbpf_vm();

	if (!L)
		return;
	luaL_unref(L, LUA_REGISTRYINDEX, b->drain_ref);
	luaL_unref(L, LUA_REGISTRYINDEX, b->ctype_ref);
	luaL_unref(L, LUA_REGISTRYINDEX, b->anchor_ref);
}

uint64_t lbpf_evbuf__drain(struct lbpf_evbuf *b, lua_State *L, uint64_t budget, uint64_t batch,
			   uint64_t deadline)
{
	uint64_t start = *b->events, n;

	b->ops->begin(b);
	b->draining = true;
	while (!*b->stop) {
		uint64_t done = *b->events - start;
		int rc;

		if (done >= budget)
			break;
		lua_rawgeti(L, LUA_REGISTRYINDEX, b->drain_ref);
		lua_pushnumber(L, (lua_Number)(budget - done));
		lua_pushnumber(L, (lua_Number)batch);
		lua_pushnumber(L, (lua_Number)deadline);
		lua_pushnumber(L, (lua_Number)b->slice_ns);
		rc = lbpf_pcall(L, 4, 0, b->what);
		b->ops->settle(b);
		if (rc)
			b->errors++;
		if (b->ops->again && b->ops->again(b, L))
			continue;
		if (rc == 0)
			break;
	}
	b->ops->settle(b);
	b->draining = false;
	n = *b->events - start;
	if (n)
		b->batches += 1 + (n - 1) / batch;
	if (b->closing)
		b->ops->release(b);
	return n;
}

void lbpf_evbuf__wake(struct lbpf_evbuf *b)
{
	uint64_t batch = (uint64_t)b->batch;

	if (b->slice_ns)
		lbpf_evbuf__drain(b, lbpf_vm(), UINT64_MAX, batch, uv_hrtime() + b->slice_ns);
	else
		lbpf_evbuf__drain(b, lbpf_vm(), batch, batch, 0);
	if (b->ops->woke)
		b->ops->woke(b);
}

void lbpf_evbuf__on_readable(uv_poll_t *h, int status, int events)
{
	struct lbpf_evbuf *b = h->data;

	(void)events;
	if (status < 0) {
		lbpf_log(LBPF_WARN, "%s '%s': poll failed: %s", b->ops->kind, b->name,
			 uv_strerror(status));
		return;
	}
	lbpf_evbuf__wake(b);
}

void lbpf_evbuf__close_now(struct lbpf_evbuf *b)
{
	*b->stop = 1;
	/* Closed from its own handler: the drain loop still holds the chunk. */
	if (lbpf_evbuf__close(b))
		b->ops->release(b);
}

void lbpf_evbuf__close_all(struct lbpf_evbuf **list)
{
	while (*list)
		lbpf_evbuf__close_now(*list);
}

/* The methods both kinds have are bound to their kind's ops (upvalue 1). */
static const struct lbpf_evbuf_ops *bound_ops(lua_State *L)
{
	return lua_touserdata(L, lua_upvalueindex(1));
}

static struct lbpf_evbuf *check_bound(lua_State *L)
{
	const struct lbpf_evbuf_ops *ops = bound_ops(L);

	return lbpf_evbuf__check(L, 1, ops->mt, ops->kind);
}

/* The buffer of the userdata at 1; NULL once closed. */
static struct lbpf_evbuf *peek_bound(lua_State *L)
{
	return ((struct lbpf_evbuf_ud *)luaL_checkudata(L, 1, bound_ops(L)->mt))->b;
}

static int l_pause(lua_State *L)
{
	struct lbpf_evbuf *b = check_bound(L);

	b->paused = true;
	*b->stop = 1;
	uv_poll_stop(&b->poll);
	if (b->ops->paused)
		b->ops->paused(b);
	return 0;
}

static int l_resume(lua_State *L)
{
	struct lbpf_evbuf *b = check_bound(L);
	int err;

	if (!b->paused)
		return 0;
	err = uv_poll_start(&b->poll, UV_READABLE, lbpf_evbuf__on_readable);
	if (err)
		return lbpf_failf(L, -err, "%s '%s': can't poll", b->ops->kind, b->name);
	b->paused = false;
	*b->stop = 0;
	if (b->ops->resumed)
		b->ops->resumed(b);
	lua_pushboolean(L, 1);
	return 1;
}

/* consume([max]) (max only where the kind takes it): drain now, on the
 * caller's stack; returns how many. */
static int l_consume(lua_State *L)
{
	struct lbpf_evbuf *b = check_bound(L);
	bool takes_max = b->ops->consume_takes_max;
	lua_Number max = takes_max ? luaL_optnumber(L, 2, 9007199254740992.0) : 0;
	uint64_t budget = UINT64_MAX;
	bool paused = b->paused;
	uint64_t n;

	if (b->draining)
		return luaL_error(L, "%s '%s': consume() called from its own handler", b->ops->kind,
				  b->name);
	if (takes_max) {
		if (max < 1) {
			lua_pushinteger(L, 0);
			return 1;
		}
		budget = (uint64_t)max;
	}
	/* Explicit consume works on a paused buffer too. */
	*b->stop = 0;
	n = lbpf_evbuf__drain(b, L, budget, budget, 0);
	if (!b->closing && paused && b->paused)
		*b->stop = 1;
	lua_pushnumber(L, (lua_Number)n);
	return 1;
}

static int l_stats(lua_State *L)
{
	struct lbpf_evbuf *b = check_bound(L);

	lua_createtable(L, 0, 6);
	lua_pushnumber(L, (lua_Number)*b->events);
	lua_setfield(L, -2, "events");
	lua_pushnumber(L, (lua_Number)b->batches);
	lua_setfield(L, -2, "batches");
	lua_pushnumber(L, (lua_Number)b->errors);
	lua_setfield(L, -2, "errors");
	lua_pushboolean(L, b->paused);
	lua_setfield(L, -2, "paused");
	if (b->ops->stats)
		b->ops->stats(b, L);
	return 1;
}

static int l_name(lua_State *L)
{
	lua_pushstring(L, check_bound(L)->name);
	return 1;
}

static int l_close(lua_State *L)
{
	struct lbpf_evbuf *b = peek_bound(L);

	if (b)
		lbpf_evbuf__close_now(b);
	return 0;
}

/* "raw", "struct event" or "cdata:struct event", as the decode option said. */
static const char *decode_spec(const struct lbpf_decode *d, char *out, size_t n)
{
	if (d->mode == LBPF_DECODE_RAW)
		return "raw";
	snprintf(out, n, "%s%s", d->mode == LBPF_DECODE_CDATA ? "cdata:" : "", d->type_name);
	return out;
}

/* "luabpf.perfbuf 'events' (raw, 3 events, 0 lost, paused)" */
static int l_tostring(lua_State *L)
{
	struct lbpf_evbuf *b = peek_bound(L);
	char spec[160];

	if (!b)
		return lua_pushfstring(L, "luabpf.%s (closed)", bound_ops(L)->kind), 1;
	if (b->ops->describe)
		b->ops->describe(b, L);
	else
		lua_pushliteral(L, "");
	lua_pushfstring(L, "luabpf.%s '%s' (%s, %f events%s%s)", b->ops->kind, b->name,
			decode_spec(&b->decode, spec, sizeof(spec)), (lua_Number)*b->events,
			lua_tostring(L, -1), b->paused ? ", paused" : "");
	return 1;
}

void lbpf_evbuf__register(lua_State *L, const struct lbpf_evbuf_ops *ops, const luaL_Reg *own,
			  lua_CFunction ctor)
{
	static const luaL_Reg shared[] = {
		{ "pause", l_pause },
		{ "resume", l_resume },
		{ "consume", l_consume },
		{ "stats", l_stats },
		{ "name", l_name },
		{ "close", l_close },
		{ "__gc", l_close },
		{ "__tostring", l_tostring },
		{ NULL, NULL },
	};

	lbpf_new_class(L, ops->mt, own, NULL);
	luaL_getmetatable(L, ops->mt);
	for (const luaL_Reg *r = shared; r->name; r++) {
		lua_pushlightuserdata(L, (void *)ops);
		lua_pushcclosure(L, r->func, 1);
		lua_setfield(L, -2, r->name);
	}
	lua_pop(L, 1);
	lua_pushcfunction(L, ctor);
	lua_setfield(L, -2, ops->kind);
}

struct lbpf_evbuf_ud *lbpf_evbuf__new_ud(lua_State *L, const struct lbpf_evbuf_ops *ops)
{
	struct lbpf_evbuf_ud *u = lua_newuserdata(L, sizeof(*u));

	u->b = NULL;
	luaL_getmetatable(L, ops->mt);
	lua_setmetatable(L, -2);
	return u;
}

void lbpf_evbuf__add(struct lbpf_evbuf *b, struct lbpf_evbuf **list, struct lbpf_evbuf_ud *u)
{
	b->next = *list;
	if (*list)
		(*list)->pprev = &b->next;
	b->pprev = list;
	*list = b;
	u->b = b;
	b->ud = u;
}

struct lbpf_evbuf *lbpf_evbuf__check(lua_State *L, int idx, const char *mt, const char *kind)
{
	struct lbpf_evbuf_ud *u = luaL_checkudata(L, idx, mt);

	if (!u->b)
		luaL_error(L, "closed %s", kind);
	return u->b;
}

bool lbpf_evbuf__close(struct lbpf_evbuf *b)
{
	if (b->ud) {
		b->ud->b = NULL;
		b->ud = NULL;
	}
	b->closing = true;
	return !b->draining;
}

bool lbpf_evbuf__release(struct lbpf_evbuf *b)
{
	if (b->released)
		return false;
	b->released = true;
	if (b->next)
		b->next->pprev = b->pprev;
	*b->pprev = b->next;
	return true;
}
