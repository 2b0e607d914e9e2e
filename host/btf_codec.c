// SPDX-License-Identifier: MIT
/*
 * The BTF codec: bytes laid out as a BTF type <-> Lua values. Every map
 * operation from Lua goes through here, so the common shapes (an integer,
 * a struct of integers) take short paths and nothing is allocated in C.
 * Field paths for error messages are kept as a small stack of names and
 * only turned into text when something is wrong. This file: how a type
 * looks from Lua, error paths, the entry points and bpf.ip4/ntoa/htons...;
 * btf_codec.h says where the rest is.
 */
#include <arpa/inet.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "btf_codec.h"

/* ---- types ------------------------------------------------------------ */

static bool is_char_int(const struct btf *btf, const struct btf_type *t)
{
	const char *n;

	if (!btf_is_int(t) || t->size != 1)
		return false;
	n = btf__name_by_offset(btf, t->name_off);
	return !strcmp(n, "char") || !strcmp(n, "unsigned char") || !strcmp(n, "signed char");
}

void codec_resolve(const struct btf *btf, uint32_t id, struct tinfo *ti)
{
	const struct btf_type *t;
	int special = -1; /* the kind forced by a typedef name */

	ti->name = NULL;
	for (;;) {
		t = btf__type_by_id(btf, id);
		if (!t) {
			ti->kind = K_RAW;
			ti->t = NULL;
			ti->id = 0;
			ti->size = 0;
			return;
		}
		if (btf_is_typedef(t)) {
			const char *n = btf__name_by_offset(btf, t->name_off);

			if (!ti->name)
				ti->name = n;
			if (special < 0 && n[0] == '_' && n[1] == '_' && n[2] == 'b' &&
			    n[3] == 'e' &&
			    (!strcmp(n, "__be16") || !strcmp(n, "__be32") || !strcmp(n, "__be64")))
				special = K_BE;
			else if (special < 0 && n[0] == 'i' && !strcmp(n, "ipv4_t"))
				special = K_IPV4;
			else if (special < 0 && n[0] == 'i' && !strcmp(n, "ipv6_t"))
				special = K_IPV6;
			id = t->type;
			continue;
		}
		if (btf_is_mod(t)) {
			id = t->type;
			continue;
		}
		break;
	}
	ti->id = id;
	ti->t = t;
	ti->sign = false;
	if (!ti->name)
		ti->name = btf__name_by_offset(btf, t->name_off);
	switch (btf_kind(t)) {
	case BTF_KIND_INT: {
		__u32 enc = btf_int_encoding(t);

		ti->size = t->size;
		ti->sign = enc & BTF_INT_SIGNED;
		if (enc & BTF_INT_BOOL)
			ti->kind = K_BOOL;
		else
			ti->kind = t->size <= 8 ? K_INT : K_RAW;
		break;
	}
	case BTF_KIND_ENUM:
	case BTF_KIND_ENUM64:
		ti->size = t->size;
		ti->sign = btf_kflag(t);
		ti->kind = K_ENUM;
		break;
	case BTF_KIND_PTR:
		ti->size = sizeof(void *);
		ti->kind = K_INT;
		break;
	case BTF_KIND_FLOAT:
		ti->size = t->size;
		ti->kind = t->size == 4 || t->size == 8 ? K_FLOAT : K_RAW;
		break;
	case BTF_KIND_STRUCT:
	case BTF_KIND_UNION:
		ti->size = t->size;
		ti->kind = btf_is_struct(t) ? K_STRUCT : K_UNION;
		if (!strcmp(btf__name_by_offset(btf, t->name_off), "in6_addr") && t->size == 16)
			ti->kind = K_IPV6;
		break;
	case BTF_KIND_ARRAY: {
		const struct btf_array *a = btf_array(t);
		const struct btf_type *e = btf__type_by_id(btf, a->type);
		long sz = btf__resolve_size(btf, id);

		/* Only char as written: __u8 mac[6] stays a sequence of bytes. */
		while (e && btf_is_mod(e))
			e = btf__type_by_id(btf, e->type);
		ti->size = sz < 0 ? 0 : (uint32_t)sz;
		ti->kind = e && is_char_int(btf, e) ? K_CHARS : K_ARRAY;
		break;
	}
	default: {
		long sz = btf__resolve_size(btf, id);

		ti->size = sz < 0 ? 0 : (uint32_t)sz;
		ti->kind = K_RAW;
	}
	}
	if (special == K_BE && (ti->kind == K_INT || ti->kind == K_ENUM) && ti->size >= 2) {
		ti->kind = K_BE;
		ti->sign = false;
	} else if (special == K_IPV4 && ti->size == 4) {
		ti->kind = K_IPV4;
	} else if (special == K_IPV6 && ti->size == 16) {
		ti->kind = K_IPV6;
	}
}

/*
 * codec_resolve() on every field of every map operation shows in profiles, so
 * remember it per (btf, type id). An entry also records the BTF's string
 * section and type count: a freed BTF whose address is reused by another
 * won't match unless it is the same data.
 */
#define CACHE_SIZE 512

struct cache_ent {
	const struct btf *btf;
	const char *strs;
	uint32_t id, cnt;
	struct tinfo ti;
};

static struct cache_ent cache[CACHE_SIZE];

void codec_resolve_cached(const struct btf *btf, uint32_t id, struct tinfo *ti)
{
	struct cache_ent *e =
	    &cache[(id * 2654435761u ^ (uint32_t)((uintptr_t)btf >> 4)) & (CACHE_SIZE - 1)];
	const char *strs = btf__name_by_offset(btf, 0);
	uint32_t cnt = btf__type_cnt(btf);

	if (e->btf == btf && e->id == id && e->strs == strs && e->cnt == cnt) {
		*ti = e->ti;
		return;
	}
	codec_resolve(btf, id, ti);
	e->btf = btf;
	e->id = id;
	e->strs = strs;
	e->cnt = cnt;
	e->ti = *ti;
}

bool codec_members(const struct btf *btf, const struct btf_type *t, uint32_t bit_base,
		   codec_member_fn fn, void *arg)
{
	const struct btf_member *m = btf_members(t);

	for (__u16 i = 0; i < btf_vlen(t); i++, m++) {
		struct codec_member mb = {
		    .name = btf__name_by_offset(btf, m->name_off),
		    .bit_off = bit_base + btf_member_bit_offset(t, i),
		    .bits = btf_member_bitfield_size(t, i),
		};

		codec_resolve_cached(btf, m->type, &mb.ti);
		if (*mb.name) {
			if (!fn(&mb, arg))
				return false;
		} else if ((mb.ti.kind == K_STRUCT || mb.ti.kind == K_UNION) &&
			   !codec_members(btf, mb.ti.t, mb.bit_off, fn, arg)) {
			return false;
		}
	}
	return true;
}

static void top_info(const struct lbpf_codec *c, struct tinfo *ti)
{
	if (c->btf && c->type_id) {
		codec_resolve_cached(c->btf, c->type_id, ti);
		return;
	}
	ti->id = 0;
	ti->t = NULL;
	ti->size = c->size;
	ti->sign = false;
	ti->kind = (c->size == 1 || c->size == 2 || c->size == 4 || c->size == 8) ? K_INT : K_RAW;
	ti->name = NULL;
}

void codec_info(const struct lbpf_codec *c, struct tinfo *ti)
{
	top_info(c, ti);
	if (ti->size != c->size) {
		/* BTF that disagrees with the size: fall back to the no-BTF rules. */
		struct lbpf_codec raw = *c;

		raw.type_id = 0;
		top_info(&raw, ti);
	}
}

void codec_type_name(const struct btf *btf, uint32_t id, uint32_t size, char *out, size_t n)
{
	const struct btf_type *t = btf ? btf__type_by_id(btf, id) : NULL;
	const char *name;

	if (!t || !id) {
		if (size == 1 || size == 2 || size == 4 || size == 8)
			snprintf(out, n, "__u%u", size * 8);
		else
			snprintf(out, n, "%u raw bytes", size);
		return;
	}
	while (btf_is_mod(t)) {
		id = t->type;
		t = btf__type_by_id(btf, id);
	}
	name = btf__name_by_offset(btf, t->name_off);
	switch (btf_kind(t)) {
	case BTF_KIND_STRUCT:
		snprintf(out, n, "struct %s", *name ? name : "(anonymous)");
		break;
	case BTF_KIND_UNION:
		snprintf(out, n, "union %s", *name ? name : "(anonymous)");
		break;
	case BTF_KIND_ENUM:
	case BTF_KIND_ENUM64:
		snprintf(out, n, "enum %s", *name ? name : "(anonymous)");
		break;
	case BTF_KIND_PTR:
		snprintf(out, n, "pointer");
		break;
	case BTF_KIND_ARRAY: {
		char elem[96];

		codec_type_name(btf, btf_array(t)->type, 0, elem, sizeof(elem));
		snprintf(out, n, "%s[%u]", elem, btf_array(t)->nelems);
		break;
	}
	default:
		snprintf(out, n, "%s", *name ? name : "?");
	}
}

/// A C-like name of the codec's type for messages ("struct flow", "__u32").
const char *lbpf_codec__type_name(const struct lbpf_codec *c, char *out, size_t n)
{
	codec_type_name(c->btf, c->type_id, c->size, out, n);
	return out;
}

/* ---- errors ----------------------------------------------------------- */

static void path_text(const struct ctx *x, char *out, size_t n)
{
	size_t len = 0;

	out[0] = '\0';
	for (int i = 0; i < x->depth && len < n; i++) {
		if (x->names[i])
			len += (size_t)snprintf(out + len, n - len, "%s%s", len ? "." : "",
						x->names[i]);
		else
			len += (size_t)snprintf(out + len, n - len, "[%u]", x->index[i]);
	}
}

/*
 * "map 'x' value field 'a.b' expects ..." or "map 'x' key: expects ..." for
 * an expectation; "map 'x' key field 'a': ..." for anything else.
 */
void codec_fail_at(struct ctx *x, bool expects, const char *fmt, ...)
{
	char path[256], msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	path_text(x, path, sizeof(path));
	if (path[0])
		luaL_error(x->L, "%s field '%s'%s%s", x->c->what, path, expects ? " " : ": ", msg);
	luaL_error(x->L, "%s: %s", x->c->what, msg);
	abort(); /* luaL_error does not return */
}

const char *codec_value_desc(lua_State *L, int idx, char *buf, size_t n)
{
	if (lua_type(L, idx) == LUA_TNUMBER) {
		snprintf(buf, n, "%.17g", lua_tonumber(L, idx));
		return buf;
	}
	return luaL_typename(L, idx);
}

void codec_push_field(struct ctx *x, const char *name, uint32_t index)
{
	if (x->depth >= MAX_DEPTH)
		codec_fail_at(x, false, "types nest deeper than %d levels", MAX_DEPTH);
	x->names[x->depth] = name;
	x->index[x->depth] = index;
	x->depth++;
}

/* ---- entry points ----------------------------------------------------- */

/// Encode the Lua value at idx into buf (zeroed first); raises naming c->what and the field.
void lbpf_codec__encode(lua_State *L, const struct lbpf_codec *c, int idx, void *buf)
{
	struct ctx x;
	struct tinfo ti;

	idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
	if (c->plan && codec_plan_encode(L, c->plan, c->size, idx, buf))
		return;
	memset(buf, 0, c->size);
	codec_info(c, &ti);
	x.L = L;
	x.c = c;
	x.depth = 0;
	codec_encode(&x, &ti, idx, buf);
}

/// Push the Lua value of buf as the codec's type.
void lbpf_codec__decode(lua_State *L, const struct lbpf_codec *c, const void *buf)
{
	struct tinfo ti;

	if (c->plan) {
		codec_plan_decode(L, c->plan, buf);
		return;
	}
	codec_info(c, &ti);
	codec_decode(L, c->btf, &ti, buf);
}

/* ---- module helpers --------------------------------------------------- */

static int l_ip4(lua_State *L)
{
	const char *s = luaL_checkstring(L, 1);
	struct in_addr a;

	if (inet_pton(AF_INET, s, &a) != 1)
		return luaL_error(L, "bpf.ip4: '%s' is not an IPv4 address", s);
	lua_pushnumber(L, ntohl(a.s_addr));
	return 1;
}

static int l_ntoa(lua_State *L)
{
	char s[INET6_ADDRSTRLEN];

	if (lua_type(L, 1) == LUA_TNUMBER) {
		lua_Number n = lua_tonumber(L, 1);
		struct in_addr a;

		if (n < 0 || n > 4294967295.0 || n != floor(n))
			return luaL_error(L,
					  "bpf.ntoa: %f is not an IPv4 address (a host-order "
					  "32-bit number)",
					  n);
		a.s_addr = htonl((uint32_t)n);
		inet_ntop(AF_INET, &a, s, sizeof(s));
	} else if (lua_type(L, 1) == LUA_TSTRING) {
		size_t len;
		const char *b = lua_tolstring(L, 1, &len);

		if (len != 4 && len != 16)
			return luaL_error(
			    L, "bpf.ntoa expects a 4- or 16-byte string, got %d bytes", (int)len);
		inet_ntop(len == 4 ? AF_INET : AF_INET6, b, s, sizeof(s));
	} else {
		return luaL_error(L, "bpf.ntoa expects a number or a 4- or 16-byte string, got %s",
				  luaL_typename(L, 1));
	}
	lua_pushstring(L, s);
	return 1;
}

static uint64_t check_uint(lua_State *L, int idx, const char *fn, unsigned bits)
{
	lua_Number n = luaL_checknumber(L, idx);

	if (n < 0 || n >= ldexp(1.0, (int)bits) || n != floor(n))
		luaL_error(L, "bpf.%s expects an integer in 0..%f, got %f", fn,
			   ldexp(1.0, (int)bits) - 1, n);
	return (uint64_t)n;
}

static int l_htons(lua_State *L)
{
	lua_pushnumber(L, htons((uint16_t)check_uint(L, 1, "htons", 16)));
	return 1;
}

static int l_ntohs(lua_State *L)
{
	lua_pushnumber(L, ntohs((uint16_t)check_uint(L, 1, "ntohs", 16)));
	return 1;
}

static int l_htonl(lua_State *L)
{
	lua_pushnumber(L, htonl((uint32_t)check_uint(L, 1, "htonl", 32)));
	return 1;
}

static int l_ntohl(lua_State *L)
{
	lua_pushnumber(L, ntohl((uint32_t)check_uint(L, 1, "ntohl", 32)));
	return 1;
}

/// Add bpf.ip4, ntoa, htons/ntohs/htonl/ntohl, sum and u64 to the module table at -1.
void lbpf_codec__register(lua_State *L)
{
	static const luaL_Reg fns[] = {
	    {"ip4", l_ip4},	{"ntoa", l_ntoa},   {"htons", l_htons}, {"ntohs", l_ntohs},
	    {"htonl", l_htonl}, {"ntohl", l_ntohl}, {NULL, NULL},
	};

	luaL_register(L, NULL, fns);
	codec_push_helpers(L);
	lua_getfield(L, -1, "sum");
	lua_setfield(L, -3, "sum");
	lua_getfield(L, -1, "u64");
	lua_setfield(L, -3, "u64");
	lua_pop(L, 1);
}
