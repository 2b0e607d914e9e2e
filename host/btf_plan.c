// SPDX-License-Identifier: MIT
/*
 * The codec's fast path. Most maps hold an integer or a flat struct of integers. For those the type
 * is compiled once, when the map is opened, into a plan: field offsets and
 * sizes, and the field names as Lua strings kept in the registry. Encoding
 * then walks the Lua table once with lua_next and finds each key by the
 * address of its interned string; decoding pushes the kept names instead of
 * interning them again. Neither raises: anything the plan does not cover
 * (a wrong type, a value out of range, an unknown field, a metatable) makes
 * it give up, and the general codec above redoes the work and reports
 * exactly what it always did.
 */
#include <stdlib.h>
#include <string.h>

#include "btf_codec.h"
#define PLAN_MAX_FIELDS 32

struct plan_field {
	const char *name; /* the interned Lua string's bytes */
	uint32_t off, size;
	enum kind kind;
	bool sign;
};

struct lbpf_codec_plan {
	int names_ref; /* registry: the field names in order, so they stay interned */
	bool is_struct;
	uint32_t n;
	struct plan_field f[]; /* one for a scalar */
};

static bool plan_scalar(const struct tinfo *ti)
{
	switch (ti->kind) {
	case K_INT:
	case K_ENUM:
	case K_BOOL:
	case K_BE:
		return ti->size == 1 || ti->size == 2 || ti->size == 4 || ti->size == 8;
	case K_FLOAT:
		return ti->size == 4 || ti->size == 8;
	default:
		return false;
	}
}

/// Compile c's type into a fast path when it is an integer or a flat struct of scalars.
void lbpf_codec__prepare(lua_State *L, struct lbpf_codec *c)
{
	struct lbpf_codec_plan *p;
	struct tinfo ti;
	const struct btf_member *m;
	uint32_t n;

	c->plan = NULL;
	codec_info(c, &ti);
	if (plan_scalar(&ti)) {
		p = calloc(1, sizeof(*p) + sizeof(p->f[0]));
		if (!p)
			return;
		p->names_ref = LUA_NOREF;
		p->n = 1;
		p->f[0] = (struct plan_field){NULL, 0, ti.size, ti.kind, ti.sign};
		c->plan = p;
		return;
	}
	if (ti.kind != K_STRUCT || !ti.t || !btf_vlen(ti.t) || btf_vlen(ti.t) > PLAN_MAX_FIELDS)
		return;
	n = btf_vlen(ti.t);
	p = calloc(1, sizeof(*p) + n * sizeof(p->f[0]));
	if (!p)
		return;
	p->is_struct = true;
	p->n = n;
	m = btf_members(ti.t);
	for (uint32_t i = 0; i < n; i++, m++) {
		uint32_t bit_off = btf_member_bit_offset(ti.t, i);
		struct tinfo sub;

		codec_resolve(c->btf, m->type, &sub);
		if (!*btf__name_by_offset(c->btf, m->name_off) ||
		    btf_member_bitfield_size(ti.t, i) || bit_off % 8 || !plan_scalar(&sub) ||
		    bit_off / 8 + sub.size > c->size) {
			free(p);
			return;
		}
		p->f[i] = (struct plan_field){NULL, bit_off / 8, sub.size, sub.kind, sub.sign};
	}
	lua_createtable(L, (int)n, 0);
	m = btf_members(ti.t);
	for (uint32_t i = 0; i < n; i++, m++) {
		lua_pushstring(L, btf__name_by_offset(c->btf, m->name_off));
		p->f[i].name = lua_tostring(L, -1);
		lua_rawseti(L, -2, (int)i + 1);
	}
	p->names_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	c->plan = p;
}

/// Free what lbpf_codec__prepare made (if anything).
void lbpf_codec__release(lua_State *L, struct lbpf_codec *c)
{
	if (!c->plan)
		return;
	luaL_unref(L, LUA_REGISTRYINDEX, c->plan->names_ref);
	free(c->plan);
	c->plan = NULL;
}

/* The number at idx into buf as field f; false if the general codec must look. */
static bool plan_store(lua_State *L, const struct plan_field *f, int idx, uint8_t *buf)
{
	lua_Number n;
	uint64_t v;

	if (f->kind == K_BOOL && lua_type(L, idx) == LUA_TBOOLEAN) {
		codec_store_uint(buf, f->size, (uint64_t)lua_toboolean(L, idx));
		return true;
	}
	if (lua_type(L, idx) != LUA_TNUMBER)
		return false;
	n = lua_tonumber(L, idx);
	switch (f->kind) {
	case K_FLOAT:
		codec_store_float(buf, f->size, n);
		return true;
	case K_BOOL:
		if (n != 0 && n != 1)
			return false;
		v = n == 1;
		break;
	default:
		if (f->sign) {
			lua_Number lim = codec_pow2(f->size * 8 - 1);
			int64_t s;

			if (!(n >= -lim && n < lim))
				return false;
			s = (int64_t)n;
			if ((lua_Number)s != n)
				return false;
			v = (uint64_t)s;
		} else {
			if (!(n >= 0 && n < codec_pow2(f->size * 8)))
				return false;
			v = (uint64_t)n;
			if ((lua_Number)v != n)
				return false;
		}
		if (f->kind == K_BE)
			v = codec_bswap(v, f->size);
	}
	codec_store_uint(buf, f->size, v);
	return true;
}

bool codec_plan_encode(lua_State *L, const struct lbpf_codec_plan *p, uint32_t size, int idx,
		       uint8_t *buf)
{
	if (!p->is_struct)
		return plan_store(L, &p->f[0], idx, buf);
	if (lua_type(L, idx) != LUA_TTABLE)
		return false;
	if (lua_getmetatable(L, idx)) {
		lua_pop(L, 1); /* fields may come from __index: the general codec asks for them */
		return false;
	}
	memset(buf, 0, size);
	lua_pushnil(L);
	while (lua_next(L, idx)) { /* [key, value] */
		const struct plan_field *f = NULL;
		const char *k;

		if (lua_type(L, -2) != LUA_TSTRING)
			goto give_up;
		k = lua_tostring(L, -2);
		for (uint32_t i = 0; i < p->n; i++) {
			if (p->f[i].name == k) {
				f = &p->f[i];
				break;
			}
		}
		if (!f || !plan_store(L, f, -1, buf + f->off))
			goto give_up;
		lua_pop(L, 1);
	}
	return true;
give_up:
	lua_pop(L, 2);
	return false;
}

void codec_plan_decode(lua_State *L, const struct lbpf_codec_plan *p, const uint8_t *buf)
{
	int t;

	if (!p->is_struct) {
		codec_push_scalar(L, p->f[0].kind, p->f[0].size, p->f[0].sign, buf);
		return;
	}
	lua_createtable(L, 0, (int)p->n);
	t = lua_gettop(L);
	lua_rawgeti(L, LUA_REGISTRYINDEX, p->names_ref); /* [t, names] */
	for (uint32_t i = 0; i < p->n; i++) {
		lua_rawgeti(L, t + 1, (int)i + 1);
		codec_push_scalar(L, p->f[i].kind, p->f[i].size, p->f[i].sign, buf + p->f[i].off);
		lua_rawset(L, t);
	}
	lua_pop(L, 1);
}

static const char *plan_kind_name(enum kind k)
{
	switch (k) {
	case K_INT:
		return "int";
	case K_ENUM:
		return "enum";
	case K_BOOL:
		return "bool";
	case K_FLOAT:
		return "float";
	case K_BE:
		return "be";
	default:
		return "other";
	}
}

/* For the FFI fast path (l_map_ffi.c): the same plan, as a Lua table. */
void codec_plan_push(lua_State *L, const struct lbpf_codec_plan *p)
{
	if (!p) {
		lua_pushnil(L);
		return;
	}
	lua_createtable(L, 0, 2);
	lua_pushboolean(L, p->is_struct);
	lua_setfield(L, -2, "struct");
	lua_createtable(L, (int)p->n, 0);
	for (uint32_t i = 0; i < p->n; i++) {
		lua_createtable(L, 0, 5);
		if (p->f[i].name) {
			lua_pushstring(L, p->f[i].name);
			lua_setfield(L, -2, "name");
		}
		lua_pushinteger(L, p->f[i].off);
		lua_setfield(L, -2, "off");
		lua_pushinteger(L, p->f[i].size);
		lua_setfield(L, -2, "size");
		lua_pushstring(L, plan_kind_name(p->f[i].kind));
		lua_setfield(L, -2, "kind");
		lua_pushboolean(L, p->f[i].sign);
		lua_setfield(L, -2, "sign");
		lua_rawseti(L, -2, (int)i + 1);
	}
	lua_setfield(L, -2, "fields");
}
