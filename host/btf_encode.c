// SPDX-License-Identifier: MIT
/*
 * The codec's general path, Lua value -> bytes: one encoder per kind
 * (integers, enums by name, addresses as text, structs by field name,
 * arrays as sequences, strings), each error naming the field and what it
 * expects.
 */
#include <arpa/inet.h>
#include <string.h>

#include "btf_codec.h"

/* ---- encode ----------------------------------------------------------- */

static void encode_enum(struct ctx *x, const struct tinfo *ti, int idx, uint8_t *buf);

/* members_have: false (stop) at the member named arg. */
static bool member_other(const struct codec_member *mb, void *arg)
{
	return strcmp(mb->name, arg) != 0;
}

struct list_arg {
	luaL_Buffer *b;
	int n;
};

/* members_list: the names, comma-separated. */
static bool member_list(const struct codec_member *mb, void *arg)
{
	struct list_arg *a = arg;

	luaL_addstring(a->b, a->n++ ? ", " : "");
	luaL_addstring(a->b, mb->name);
	return true;
}

struct encode_arg {
	struct ctx *x;
	int tidx;
	uint8_t *buf;
	int found; /* fields present in the table */
};

/* Encode the field of the table at a->tidx named as mb, if present. */
static bool encode_member(const struct codec_member *mb, void *arg)
{
	struct encode_arg *a = arg;
	struct ctx *x = a->x;
	lua_State *L = x->L;
	const struct tinfo *sub = &mb->ti;

	lua_getfield(L, a->tidx, mb->name);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return true;
	}
	a->found++;
	codec_push_field(x, mb->name, 0);
	if (mb->bits || mb->bit_off % 8) {
		uint32_t bits = mb->bits ? mb->bits : sub->size * 8;
		uint64_t v;

		if (sub->kind == K_ENUM && lua_type(L, -1) == LUA_TSTRING) {
			uint8_t tmp[8] = {0};

			encode_enum(x, sub, lua_gettop(L), tmp);
			v = codec_load_uint(tmp, sub->size);
		} else {
			v = codec_check_int(x, lua_gettop(L), sub, bits);
		}
		codec_store_bits(a->buf, mb->bit_off, bits, v);
	} else {
		codec_encode(x, sub, lua_gettop(L), a->buf + mb->bit_off / 8);
	}
	x->depth--;
	lua_pop(L, 1);
	return true;
}

/* idx holds neither a value of ti nor a string of its size: say what it
 * expects (table: a struct or union, which also takes a table). */
__attribute__((noreturn)) static void fail_type(struct ctx *x, const struct tinfo *ti, int idx,
						const char *s, size_t len, bool table)
{
	const char *got = luaL_typename(x->L, idx);
	char tn[128];

	codec_type_name(x->c->btf, ti->id, ti->size, tn, sizeof(tn));
	if (s && table)
		codec_fail_at(x, true,
			      "expects %s (a table, or a %u-byte string), got a %zu-byte string",
			      tn, ti->size, len);
	if (s)
		codec_fail_at(x, true, "expects %s (%u bytes), got a %zu-byte string", tn, ti->size,
			      len);
	if (table)
		codec_fail_at(x, true, "expects %s (a table), got %s", tn, got);
	codec_fail_at(x, true, "expects %s (a %u-byte string), got %s", tn, ti->size, got);
}

static void encode_struct(struct ctx *x, const struct tinfo *ti, int idx, uint8_t *buf)
{
	lua_State *L = x->L;
	struct encode_arg a = {x, idx, buf, 0};
	int total = 0;

	codec_members(x->c->btf, ti->t, 0, encode_member, &a);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		total++;
	}
	if (a.found == total)
		return;
	/* Name the first key that is not a field. */
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		luaL_Buffer b;

		lua_pop(L, 1);
		if (lua_type(L, -1) == LUA_TSTRING &&
		    !codec_members(x->c->btf, ti->t, 0, member_other, (void *)lua_tostring(L, -1)))
			continue;
		luaL_buffinit(L, &b);
		codec_members(x->c->btf, ti->t, 0, member_list, &(struct list_arg){&b, 0});
		luaL_pushresult(&b);
		if (lua_type(L, -2) == LUA_TSTRING)
			codec_fail_at(x, false, "unknown field '%s' (fields: %s)",
				      lua_tostring(L, -2), lua_tostring(L, -1));
		codec_fail_at(x, false, "expects a table of fields (%s), got a %s key",
			      lua_tostring(L, -1), luaL_typename(L, -2));
	}
}

static void encode_array(struct ctx *x, const struct tinfo *ti, int idx, uint8_t *buf)
{
	lua_State *L = x->L;
	const struct btf_array *a = btf_array(ti->t);
	size_t n = lua_objlen(L, idx);
	struct tinfo e;

	if (n > a->nelems)
		codec_fail_at(x, true, "expects at most %u elements, got %zu", a->nelems, n);
	codec_resolve_cached(x->c->btf, a->type, &e);
	for (size_t i = 0; i < n; i++) {
		lua_rawgeti(L, idx, (int)i + 1);
		codec_push_field(x, NULL, (uint32_t)i + 1);
		codec_encode(x, &e, lua_gettop(L), buf + i * e.size);
		x->depth--;
		lua_pop(L, 1);
	}
}

static void encode_enum(struct ctx *x, const struct tinfo *ti, int idx, uint8_t *buf)
{
	const struct btf *btf = x->c->btf;
	const char *s = lua_tostring(x->L, idx);
	const struct btf_type *t = ti->t;
	char tn[128];
	luaL_Buffer b;

	for (__u16 i = 0; i < btf_vlen(t); i++) {
		if (btf_is_enum(t) &&
		    !strcmp(btf__name_by_offset(btf, btf_enum(t)[i].name_off), s)) {
			codec_store_uint(buf, ti->size, (uint64_t)(int64_t)btf_enum(t)[i].val);
			return;
		}
		if (btf_is_enum64(t) &&
		    !strcmp(btf__name_by_offset(btf, btf_enum64(t)[i].name_off), s)) {
			codec_store_uint(buf, ti->size, btf_enum64_value(&btf_enum64(t)[i]));
			return;
		}
	}
	luaL_buffinit(x->L, &b);
	for (__u16 i = 0; i < btf_vlen(t) && i < 16; i++) {
		luaL_addstring(&b, i ? ", " : "");
		luaL_addstring(&b, btf__name_by_offset(btf, btf_is_enum(t)
								? btf_enum(t)[i].name_off
								: btf_enum64(t)[i].name_off));
	}
	if (btf_vlen(t) > 16)
		luaL_addstring(&b, ", ...");
	luaL_pushresult(&b);
	codec_type_name(btf, ti->id, ti->size, tn, sizeof(tn));
	codec_fail_at(x, false, "'%s' is not a value of %s (values: %s)", s, tn,
		      lua_tostring(x->L, -1));
}

void codec_encode(struct ctx *x, const struct tinfo *ti, int idx, uint8_t *buf)
{
	lua_State *L = x->L;
	int type = lua_type(L, idx);
	size_t len = 0;
	const char *s = type == LUA_TSTRING ? lua_tolstring(L, idx, &len) : NULL;

	switch (ti->kind) {
	case K_INT:
		if (type == LUA_TNUMBER && ti->size == 4 && !ti->sign) {
			/* The common key: no range work beyond this. */
			lua_Number n = lua_tonumber(L, idx);

			if (n >= 0 && n < 4294967296.0 && n == (lua_Number)(uint32_t)n) {
				uint32_t v = (uint32_t)n;

				memcpy(buf, &v, 4);
				return;
			}
		}
		if (s && len == ti->size)
			break;
		if (s && !x->depth) {
			char tn[128];

			codec_type_name(x->c->btf, x->c->type_id, x->c->size, tn, sizeof(tn));
			codec_fail_at(x, true, "expects %s (%u bytes), got a %zu-byte string", tn,
				      ti->size, len);
		}
		codec_store_uint(buf, ti->size, codec_check_int(x, idx, ti, ti->size * 8));
		return;
	case K_BOOL:
		if (s && len == ti->size)
			break;
		codec_store_uint(buf, ti->size, codec_check_int(x, idx, ti, ti->size * 8));
		return;
	case K_ENUM:
		if (s && len == ti->size)
			break;
		if (s) {
			encode_enum(x, ti, idx, buf);
			return;
		}
		codec_store_uint(buf, ti->size, codec_check_int(x, idx, ti, ti->size * 8));
		return;
	case K_FLOAT:
		if (s && len == ti->size)
			break;
		if (type != LUA_TNUMBER)
			codec_fail_at(x, true, "expects a number, got %s", luaL_typename(L, idx));
		codec_store_float(buf, ti->size, lua_tonumber(L, idx));
		return;
	case K_BE:
	case K_IPV4:
		if (s && ti->size == 4) {
			struct in_addr a;

			if (inet_pton(AF_INET, s, &a) == 1) {
				memcpy(buf, &a, 4);
				return;
			}
			if (len == ti->size)
				break;
			codec_fail_at(x, false, "'%s' is not an IPv4 address", s);
		}
		if (s && len == ti->size)
			break;
		if (s)
			codec_fail_at(x, true, "expects %s (a host-order number%s), got string",
				      ti->name, ti->size == 4 ? " or dotted-quad text" : "");
		codec_store_uint(buf, ti->size,
				 codec_bswap(codec_check_int(x, idx, ti, ti->size * 8), ti->size));
		return;
	case K_IPV6:
		if (s) {
			struct in6_addr a;
			struct in_addr a4;

			if (inet_pton(AF_INET6, s, &a) == 1) {
				memcpy(buf, &a, 16);
				return;
			}
			if (len == 16)
				break;
			if (inet_pton(AF_INET, s, &a4) == 1)
				codec_fail_at(
				    x, false,
				    "'%s' is not an IPv6 address (it is IPv4: use '::ffff:%s' "
				    "for an IPv4-mapped address)",
				    s, s);
			codec_fail_at(x, false, "'%s' is not an IPv6 address", s);
		}
		if (type == LUA_TTABLE && ti->t && (btf_is_struct(ti->t) || btf_is_union(ti->t))) {
			encode_struct(x, ti, idx, buf);
			return;
		}
		codec_fail_at(x, true, "expects an IPv6 address (text like 'fd00::1'), got %s",
			      luaL_typename(L, idx));
	case K_STRUCT:
	case K_UNION:
		if (type == LUA_TTABLE) {
			encode_struct(x, ti, idx, buf);
			return;
		}
		if (s && len == ti->size)
			break;
		fail_type(x, ti, idx, s, len, true);
	case K_ARRAY:
		if (type == LUA_TTABLE) {
			encode_array(x, ti, idx, buf);
			return;
		}
		if (s && len == ti->size)
			break;
		codec_fail_at(x, true, "expects a sequence of at most %u elements, got %s",
			      btf_array(ti->t)->nelems, luaL_typename(L, idx));
	case K_CHARS:
		if (!s)
			codec_fail_at(x, true, "expects a string (at most %u bytes), got %s",
				      ti->size, luaL_typename(L, idx));
		if (len > ti->size)
			codec_fail_at(x, true,
				      "expects a string of at most %u bytes, got %zu bytes",
				      ti->size, len);
		memcpy(buf, s, len);
		return;
	case K_RAW:
		if (s && len == ti->size)
			break;
		fail_type(x, ti, idx, s, len, false);
	}
	/* A string of exactly the type's size: raw bytes. */
	memcpy(buf, s, len);
}
