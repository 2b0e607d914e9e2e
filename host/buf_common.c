// SPDX-License-Identifier: MIT
/* What ring and perf buffers share: see buf_common.h. */
#include <stdio.h>

#include "buf_common.h"

#define MODULE "luabpf._ringbuf"

/* The other kind of buffer, to point a user who passed its map to it. */
static const char *ctor_for(enum bpf_map_type t)
{
	switch (t) {
	case BPF_MAP_TYPE_RINGBUF:
		return "ringbuf";
	case BPF_MAP_TYPE_PERF_EVENT_ARRAY:
		return "perfbuf";
	default:
		return NULL;
	}
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

const char *lbpf_evbuf__decode_spec(const struct lbpf_decode *d, char *out, size_t n)
{
	if (d->mode == LBPF_DECODE_RAW)
		return "raw";
	snprintf(out, n, "%s%s", d->mode == LBPF_DECODE_CDATA ? "cdata:" : "", d->type_name);
	return out;
}

void lbpf_evbuf__push_stats(lua_State *L, uint64_t events, uint64_t batches, uint64_t errors,
			    bool paused)
{
	lua_createtable(L, 0, 6);
	lua_pushnumber(L, (lua_Number)events);
	lua_setfield(L, -2, "events");
	lua_pushnumber(L, (lua_Number)batches);
	lua_setfield(L, -2, "batches");
	lua_pushnumber(L, (lua_Number)errors);
	lua_setfield(L, -2, "errors");
	lua_pushboolean(L, paused);
	lua_setfield(L, -2, "paused");
}

void lbpf_evbuf__push_module_fn(lua_State *L, const char *fn)
{
	lua_getglobal(L, "require");
	lua_pushliteral(L, MODULE);
	lua_call(L, 1, 1);
	lua_getfield(L, -1, fn);
	lua_remove(L, -2);
}

void lbpf_evbuf__init(struct lbpf_evbuf *b, const struct lbpf_decode *d, const char *name,
		      const char *what)
{
	b->decode = *d;
	snprintf(b->name, sizeof(b->name), "%s", name);
	snprintf(b->what, sizeof(b->what), "%s", what);
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
