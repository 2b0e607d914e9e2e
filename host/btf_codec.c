// SPDX-License-Identifier: MIT
/*
 * The BTF codec: bytes laid out as a BTF type <-> Lua values. Every map
 * operation from Lua goes through here, so the common shapes (an integer,
 * a struct of integers) take short paths and nothing is allocated in C.
 * Field paths for error messages are kept as a small stack of names and
 * only turned into text when something is wrong.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luabpf.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the codec's bitfield handling assumes a little-endian host"
#endif

#define MAX_DEPTH 32

/* How a type looks from Lua, after typedefs and qualifiers. */
enum kind {
	K_INT,	  /* number (cdata beyond 2^53) */
	K_BOOL,	  /* boolean */
	K_ENUM,	  /* number, or an enumerator's name on encode */
	K_FLOAT,  /* number */
	K_BE,	  /* __be16/32/64: host-order number */
	K_IPV4,	  /* ipv4_t: "10.0.0.1" */
	K_IPV6,	  /* ipv6_t, struct in6_addr: "fd00::1" */
	K_STRUCT, /* table by field name */
	K_UNION,
	K_ARRAY, /* sequence */
	K_CHARS, /* char[N]: string */
	K_RAW,	 /* string of exactly size bytes */
};

struct tinfo {
	enum kind kind;
	bool sign;
	uint32_t id; /* resolved (qualifiers and typedefs followed) */
	uint32_t size;
	const struct btf_type *t;
	const char *name; /* the outermost name, for messages */
};

struct ctx {
	lua_State *L;
	const struct lbpf_codec *c;
	int depth;
	const char *names[MAX_DEPTH]; /* field name, or NULL for an index */
	uint32_t index[MAX_DEPTH];
};

/* ---- 64-bit values through LuaJIT's FFI ------------------------------ */

static int box_ref = LUA_NOREF, unbox_ref = LUA_NOREF, helpers_ref = LUA_NOREF;

static const char helpers_src[] =
    "local ffi = require('ffi')\n"
    "local u64, i64 = ffi.typeof('uint64_t'), ffi.typeof('int64_t')\n"
    "local u64p, i64p = ffi.typeof('uint64_t *'), ffi.typeof('int64_t *')\n"
    "local cast, istype = ffi.cast, ffi.istype\n"
    "local H = {}\n"
    "function H.box(p, signed)\n"
    "  if signed then return cast(i64p, p)[0] end\n"
    "  return cast(u64p, p)[0]\n"
    "end\n"
    "function H.unbox(v, p)\n"
    "  if istype(u64, v) then cast(u64p, p)[0] = v return 2 end\n"
    "  if istype(i64, v) then cast(i64p, p)[0] = v return 1 end\n"
    "  return 0\n"
    "end\n"
    "local function norm(v)\n"
    "  if type(v) == 'cdata' and v < 2^53 and v > -2^53 then return tonumber(v) end\n"
    "  return v\n"
    "end\n"
    "local function add(a, b)\n"
    "  if a == nil then\n"
    "    if type(b) ~= 'table' then return b end\n"
    "    local r = {}\n"
    "    for k, v in pairs(b) do r[k] = add(nil, v) end\n"
    "    return r\n"
    "  end\n"
    "  local ta, tb = type(a), type(b)\n"
    "  if ta == 'table' and tb == 'table' then\n"
    "    for k, v in pairs(b) do a[k] = add(a[k], v) end\n"
    "    return a\n"
    "  end\n"
    "  if ta == 'number' and tb == 'number' then\n"
    "    local r = a + b\n"
    "    if r < 2^53 and r > -2^53 then return r end\n"
    "    if a >= 0 and b >= 0 then return u64(a) + u64(b) end\n"
    "    return i64(a) + i64(b)\n"
    "  end\n"
    "  if (ta == 'number' or ta == 'cdata') and (tb == 'number' or tb == 'cdata') then\n"
    "    if ta == 'number' and a < 0 or tb == 'number' and b < 0 then return i64(a) + b end\n"
    "    if ta == 'number' then return u64(a) + b end\n"
    "    return a + b\n"
    "  end\n"
    "  return a\n"
    "end\n"
    "local function fix(v)\n"
    "  if type(v) == 'table' then for k, x in pairs(v) do v[k] = fix(x) end return v end\n"
    "  return norm(v)\n"
    "end\n"
    "function H.sum(list)\n"
    "  if type(list) ~= 'table' then\n"
    "    error('bpf.sum expects a list of per-CPU values, got ' .. type(list), 2)\n"
    "  end\n"
    "  local acc\n"
    "  for i = 1, #list do acc = add(acc, list[i]) end\n"
    "  if acc == nil then return 0 end\n"
    "  return fix(acc)\n"
    "end\n"
    "function H.u64(x)\n"
    "  if type(x) == 'number' then\n"
    "    if x < 0 or x ~= math.floor(x) or x >= 2^64 then\n"
    "      error('bpf.u64 expects a non-negative integer, got ' .. tostring(x), 2)\n"
    "    end\n"
    "    return u64(x)\n"
    "  end\n"
    "  if type(x) == 'cdata' then return u64(x) end\n"
    "  if type(x) == 'string' and x:match('^%d+$') then\n"
    "    local r = u64(0)\n"
    "    for i = 1, #x do\n"
    "      local n = r * 10 + (x:byte(i) - 48)\n"
    "      if n / 10 ~= r then error(\"bpf.u64: '\" .. x .. \"' is beyond 2^64\", 2) end\n"
    "      r = n\n"
    "    end\n"
    "    return r\n"
    "  end\n"
    "  error('bpf.u64 expects a number, a decimal string or an integer cdata, got ' .. type(x), "
    "2)\n"
    "end\n"
    "return H\n";

static void load_helpers(lua_State *L)
{
	if (luaL_loadbuffer(L, helpers_src, sizeof(helpers_src) - 1, "=luabpf.codec"))
		lua_error(L);
	lua_call(L, 0, 1);
	lua_getfield(L, -1, "box");
	box_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_getfield(L, -1, "unbox");
	unbox_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	helpers_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

static void push_u64(lua_State *L, uint64_t v, bool sign)
{
	if (sign ? ((int64_t)v <= (1LL << 53) && (int64_t)v >= -(1LL << 53)) : v <= (1ULL << 53)) {
		lua_pushnumber(L, sign ? (lua_Number)(int64_t)v : (lua_Number)v);
		return;
	}
	if (box_ref == LUA_NOREF)
		load_helpers(L);
	lua_rawgeti(L, LUA_REGISTRYINDEX, box_ref);
	lua_pushlightuserdata(L, &v);
	lua_pushboolean(L, sign);
	lua_call(L, 2, 1);
}

/* 0: not an int64 cdata; 1: int64_t; 2: uint64_t. */
static int cdata_u64(lua_State *L, int idx, uint64_t *out)
{
	int r;

	if (unbox_ref == LUA_NOREF)
		load_helpers(L);
	idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
	lua_rawgeti(L, LUA_REGISTRYINDEX, unbox_ref);
	lua_pushvalue(L, idx);
	lua_pushlightuserdata(L, out);
	lua_call(L, 2, 1);
	r = (int)lua_tointeger(L, -1);
	lua_pop(L, 1);
	return r;
}

/* ---- types ------------------------------------------------------------ */

static bool is_char_int(const struct btf *btf, const struct btf_type *t)
{
	const char *n;

	if (!btf_is_int(t) || t->size != 1)
		return false;
	n = btf__name_by_offset(btf, t->name_off);
	return !strcmp(n, "char") || !strcmp(n, "unsigned char") || !strcmp(n, "signed char");
}

/* Follow qualifiers and typedefs; the names that change the Lua view stop here. */
static void resolve(const struct btf *btf, uint32_t id, struct tinfo *ti)
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
 * resolve() on every field of every map operation shows in profiles, so
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

static void resolve_cached(const struct btf *btf, uint32_t id, struct tinfo *ti)
{
	struct cache_ent *e =
	    &cache[(id * 2654435761u ^ (uint32_t)((uintptr_t)btf >> 4)) & (CACHE_SIZE - 1)];
	const char *strs = btf__name_by_offset(btf, 0);
	uint32_t cnt = btf__type_cnt(btf);

	if (e->btf == btf && e->id == id && e->strs == strs && e->cnt == cnt) {
		*ti = e->ti;
		return;
	}
	resolve(btf, id, ti);
	e->btf = btf;
	e->id = id;
	e->strs = strs;
	e->cnt = cnt;
	e->ti = *ti;
}

static void top_info(const struct lbpf_codec *c, struct tinfo *ti)
{
	if (c->btf && c->type_id) {
		resolve_cached(c->btf, c->type_id, ti);
		return;
	}
	ti->id = 0;
	ti->t = NULL;
	ti->size = c->size;
	ti->sign = false;
	ti->kind = (c->size == 1 || c->size == 2 || c->size == 4 || c->size == 8) ? K_INT : K_RAW;
	ti->name = NULL;
}

/* A C-like name: "struct flow", "__u32", "char[16]". */
static void type_name(const struct btf *btf, uint32_t id, uint32_t size, char *out, size_t n)
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

		type_name(btf, btf_array(t)->type, 0, elem, sizeof(elem));
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
	type_name(c->btf, c->type_id, c->size, out, n);
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
static void __attribute__((noreturn, format(printf, 3, 4)))
fail_at(struct ctx *x, bool expects, const char *fmt, ...)
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

static const char *lua_value_desc(lua_State *L, int idx, char *buf, size_t n)
{
	if (lua_type(L, idx) == LUA_TNUMBER) {
		snprintf(buf, n, "%.17g", lua_tonumber(L, idx));
		return buf;
	}
	return luaL_typename(L, idx);
}

static void push_field(struct ctx *x, const char *name, uint32_t index)
{
	if (x->depth >= MAX_DEPTH)
		fail_at(x, false, "types nest deeper than %d levels", MAX_DEPTH);
	x->names[x->depth] = name;
	x->index[x->depth] = index;
	x->depth++;
}

/* ---- integers --------------------------------------------------------- */

static uint64_t load_uint(const void *p, uint32_t size)
{
	switch (size) {
	case 1:
		return *(const uint8_t *)p;
	case 2: {
		uint16_t v;

		memcpy(&v, p, 2);
		return v;
	}
	case 4: {
		uint32_t v;

		memcpy(&v, p, 4);
		return v;
	}
	case 8: {
		uint64_t v;

		memcpy(&v, p, 8);
		return v;
	}
	default: {
		uint64_t v = 0;

		memcpy(&v, p, size < 8 ? size : 8);
		return v;
	}
	}
}

static void store_uint(void *p, uint32_t size, uint64_t v)
{
	switch (size) {
	case 1:
		*(uint8_t *)p = (uint8_t)v;
		break;
	case 2: {
		uint16_t w = (uint16_t)v;

		memcpy(p, &w, 2);
		break;
	}
	case 4: {
		uint32_t w = (uint32_t)v;

		memcpy(p, &w, 4);
		break;
	}
	default:
		memcpy(p, &v, size < 8 ? size : 8);
	}
}

static uint64_t sign_extend(uint64_t v, uint32_t bits)
{
	if (bits < 64 && (v & (1ULL << (bits - 1))))
		v |= ~0ULL << bits;
	return v;
}

/* Bitfields: bits [bit_off, bit_off + bits) counted from p, little-endian. */
static uint64_t load_bits(const uint8_t *p, uint32_t bit_off, uint32_t bits)
{
	unsigned __int128 w = 0;
	uint32_t first = bit_off / 8, nbytes = (bit_off % 8 + bits + 7) / 8;

	for (uint32_t i = 0; i < nbytes; i++)
		w |= (unsigned __int128)p[first + i] << (8 * i);
	w >>= bit_off % 8;
	return (uint64_t)w & (bits == 64 ? ~0ULL : (1ULL << bits) - 1);
}

static void store_bits(uint8_t *p, uint32_t bit_off, uint32_t bits, uint64_t v)
{
	uint32_t first = bit_off / 8, shift = bit_off % 8, nbytes = (shift + bits + 7) / 8;
	unsigned __int128 w = 0, mask;

	mask = (unsigned __int128)(bits == 64 ? ~0ULL : (1ULL << bits) - 1) << shift;
	for (uint32_t i = 0; i < nbytes; i++)
		w |= (unsigned __int128)p[first + i] << (8 * i);
	w = (w & ~mask) | (((unsigned __int128)v << shift) & mask);
	for (uint32_t i = 0; i < nbytes; i++)
		p[first + i] = (uint8_t)(w >> (8 * i));
}

static const char *range_text(bool sign, uint32_t bits, char *buf, size_t n)
{
	if (sign)
		snprintf(buf, n, "%lld..%lld",
			 bits == 64 ? (long long)INT64_MIN : -(1LL << (bits - 1)),
			 bits == 64 ? (long long)INT64_MAX : (1LL << (bits - 1)) - 1);
	else
		snprintf(buf, n, "0..%llu",
			 bits == 64 ? (unsigned long long)UINT64_MAX : (1ULL << bits) - 1);
	return buf;
}

static inline lua_Number pow2(uint32_t bits)
{
	return bits < 64 ? (lua_Number)(1ULL << bits) : 18446744073709551616.0;
}

/* The Lua integer at idx as bits-wide two's complement; raises if it isn't one. */
static uint64_t check_int(struct ctx *x, int idx, const struct tinfo *ti, uint32_t bits)
{
	lua_State *L = x->L;
	char rb[64], vb[64];

	if (ti->kind == K_BOOL) {
		if (lua_type(L, idx) == LUA_TBOOLEAN)
			return lua_toboolean(L, idx);
		if (lua_type(L, idx) == LUA_TNUMBER &&
		    (lua_tonumber(L, idx) == 0 || lua_tonumber(L, idx) == 1))
			return lua_tonumber(L, idx) == 1;
		fail_at(x, true, "expects a boolean, got %s", lua_value_desc(L, idx, vb, 64));
	}
	switch (lua_type(L, idx)) {
	case LUA_TNUMBER: {
		lua_Number n = lua_tonumber(L, idx);

		if (n != floor(n) || isinf(n))
			fail_at(x, true, "expects an integer, got %s",
				lua_value_desc(L, idx, vb, 64));
		if (ti->sign) {
			lua_Number lim = pow2(bits - 1);

			if (n < -lim || n >= lim)
				goto range;
			return (uint64_t)(int64_t)n;
		}
		if (n < 0 || n >= pow2(bits))
			goto range;
		return (uint64_t)n;
	}
	case 10: { /* LUA_TCDATA */
		uint64_t v;
		int k = cdata_u64(L, idx, &v);

		if (!k)
			break;
		if (k == 1)
			snprintf(vb, sizeof(vb), "%lldLL", (long long)v);
		else
			snprintf(vb, sizeof(vb), "%lluULL", (unsigned long long)v);
		if (ti->sign) {
			int64_t s = (int64_t)v;

			if (k == 2 && v > INT64_MAX)
				goto range_str;
			if (bits < 64 && (s < -(1LL << (bits - 1)) || s >= (1LL << (bits - 1))))
				goto range_str;
		} else {
			if (k == 1 && (int64_t)v < 0)
				goto range_str;
			if (bits < 64 && v >= (1ULL << bits))
				goto range_str;
		}
		return v;
	}
	default:
		break;
	}
	fail_at(x, true, "expects an integer, got %s", luaL_typename(L, idx));
range:
	lua_value_desc(L, idx, vb, sizeof(vb));
range_str:
	if (bits != ti->size * 8)
		fail_at(x, true, "expects a %u-bit integer (%s), got %s", bits,
			range_text(ti->sign, bits, rb, sizeof(rb)), vb);
	fail_at(x, true, "expects %s (%s), got %s", ti->name && *ti->name ? ti->name : "an integer",
		range_text(ti->sign, bits, rb, sizeof(rb)), vb);
}

static uint64_t bswap(uint64_t v, uint32_t size)
{
	switch (size) {
	case 2:
		return __builtin_bswap16((uint16_t)v);
	case 4:
		return __builtin_bswap32((uint32_t)v);
	case 8:
		return __builtin_bswap64(v);
	}
	return v;
}

/* ---- encode ----------------------------------------------------------- */

static void encode(struct ctx *x, const struct tinfo *ti, int idx, uint8_t *buf);
static void encode_enum(struct ctx *x, const struct tinfo *ti, int idx, uint8_t *buf);

static bool members_have(const struct btf *btf, const struct btf_type *t, const char *key)
{
	const struct btf_member *m = btf_members(t);

	for (__u16 i = 0; i < btf_vlen(t); i++, m++) {
		const char *n = btf__name_by_offset(btf, m->name_off);

		if (*n) {
			if (!strcmp(n, key))
				return true;
		} else {
			struct tinfo sub;

			resolve(btf, m->type, &sub);
			if ((sub.kind == K_STRUCT || sub.kind == K_UNION) &&
			    members_have(btf, sub.t, key))
				return true;
		}
	}
	return false;
}

static void members_list(lua_State *L, const struct btf *btf, const struct btf_type *t,
			 luaL_Buffer *b, int *n)
{
	const struct btf_member *m = btf_members(t);

	for (__u16 i = 0; i < btf_vlen(t); i++, m++) {
		const char *name = btf__name_by_offset(btf, m->name_off);

		if (*name) {
			luaL_addstring(b, (*n)++ ? ", " : "");
			luaL_addstring(b, name);
		} else {
			struct tinfo sub;

			resolve(btf, m->type, &sub);
			if (sub.kind == K_STRUCT || sub.kind == K_UNION)
				members_list(L, btf, sub.t, b, n);
		}
	}
}

/* Encode the fields of the table at tidx; returns how many were present. */
static int encode_members(struct ctx *x, const struct btf_type *t, int tidx, uint8_t *buf)
{
	lua_State *L = x->L;
	const struct btf *btf = x->c->btf;
	const struct btf_member *m = btf_members(t);
	int found = 0;

	for (__u16 i = 0; i < btf_vlen(t); i++, m++) {
		const char *name = btf__name_by_offset(btf, m->name_off);
		uint32_t bit_off = btf_member_bit_offset(t, i);
		uint32_t bits = btf_member_bitfield_size(t, i);
		struct tinfo sub;

		resolve_cached(btf, m->type, &sub);
		if (!*name) {
			/* Anonymous struct/union: its fields are the parent's, as in C. */
			if (sub.kind == K_STRUCT || sub.kind == K_UNION)
				found += encode_members(x, sub.t, tidx, buf + bit_off / 8);
			continue;
		}
		lua_getfield(L, tidx, name);
		if (lua_isnil(L, -1)) {
			lua_pop(L, 1);
			continue;
		}
		found++;
		push_field(x, name, 0);
		if (bits || bit_off % 8) {
			uint64_t v;

			if (!bits)
				bits = sub.size * 8;
			if (sub.kind == K_ENUM && lua_type(L, -1) == LUA_TSTRING) {
				uint8_t tmp[8] = {0};

				encode_enum(x, &sub, lua_gettop(L), tmp);
				v = load_uint(tmp, sub.size);
			} else {
				v = check_int(x, lua_gettop(L), &sub, bits);
			}
			store_bits(buf, bit_off, bits, v);
		} else {
			encode(x, &sub, lua_gettop(L), buf + bit_off / 8);
		}
		x->depth--;
		lua_pop(L, 1);
	}
	return found;
}

static void encode_struct(struct ctx *x, const struct tinfo *ti, int idx, uint8_t *buf)
{
	lua_State *L = x->L;
	int found = encode_members(x, ti->t, idx, buf), total = 0;

	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		total++;
	}
	if (found == total)
		return;
	/* Name the first key that is not a field. */
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		luaL_Buffer b;
		int n = 0;

		lua_pop(L, 1);
		if (lua_type(L, -1) == LUA_TSTRING &&
		    members_have(x->c->btf, ti->t, lua_tostring(L, -1)))
			continue;
		luaL_buffinit(L, &b);
		members_list(L, x->c->btf, ti->t, &b, &n);
		luaL_pushresult(&b);
		if (lua_type(L, -2) == LUA_TSTRING)
			fail_at(x, false, "unknown field '%s' (fields: %s)", lua_tostring(L, -2),
				lua_tostring(L, -1));
		fail_at(x, false, "expects a table of fields (%s), got a %s key",
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
		fail_at(x, true, "expects at most %u elements, got %zu", a->nelems, n);
	resolve_cached(x->c->btf, a->type, &e);
	for (size_t i = 0; i < n; i++) {
		lua_rawgeti(L, idx, (int)i + 1);
		push_field(x, NULL, (uint32_t)i + 1);
		encode(x, &e, lua_gettop(L), buf + i * e.size);
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
			store_uint(buf, ti->size, (uint64_t)(int64_t)btf_enum(t)[i].val);
			return;
		}
		if (btf_is_enum64(t) &&
		    !strcmp(btf__name_by_offset(btf, btf_enum64(t)[i].name_off), s)) {
			store_uint(buf, ti->size, btf_enum64_value(&btf_enum64(t)[i]));
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
	type_name(btf, ti->id, ti->size, tn, sizeof(tn));
	fail_at(x, false, "'%s' is not a value of %s (values: %s)", s, tn, lua_tostring(x->L, -1));
}

static void encode(struct ctx *x, const struct tinfo *ti, int idx, uint8_t *buf)
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

			type_name(x->c->btf, x->c->type_id, x->c->size, tn, sizeof(tn));
			fail_at(x, true, "expects %s (%u bytes), got a %zu-byte string", tn,
				ti->size, len);
		}
		store_uint(buf, ti->size, check_int(x, idx, ti, ti->size * 8));
		return;
	case K_BOOL:
		if (s && len == ti->size)
			break;
		store_uint(buf, ti->size, check_int(x, idx, ti, ti->size * 8));
		return;
	case K_ENUM:
		if (s && len == ti->size)
			break;
		if (s) {
			encode_enum(x, ti, idx, buf);
			return;
		}
		store_uint(buf, ti->size, check_int(x, idx, ti, ti->size * 8));
		return;
	case K_FLOAT:
		if (s && len == ti->size)
			break;
		if (type != LUA_TNUMBER)
			fail_at(x, true, "expects a number, got %s", luaL_typename(L, idx));
		if (ti->size == 4) {
			float f = (float)lua_tonumber(L, idx);

			memcpy(buf, &f, 4);
		} else {
			double d = lua_tonumber(L, idx);

			memcpy(buf, &d, 8);
		}
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
			fail_at(x, false, "'%s' is not an IPv4 address", s);
		}
		if (s && len == ti->size)
			break;
		if (s)
			fail_at(x, true, "expects %s (a host-order number%s), got string", ti->name,
				ti->size == 4 ? " or dotted-quad text" : "");
		store_uint(buf, ti->size, bswap(check_int(x, idx, ti, ti->size * 8), ti->size));
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
				fail_at(x, false,
					"'%s' is not an IPv6 address (it is IPv4: use '::ffff:%s' "
					"for an IPv4-mapped address)",
					s, s);
			fail_at(x, false, "'%s' is not an IPv6 address", s);
		}
		if (type == LUA_TTABLE && ti->t && (btf_is_struct(ti->t) || btf_is_union(ti->t))) {
			encode_struct(x, ti, idx, buf);
			return;
		}
		fail_at(x, true, "expects an IPv6 address (text like 'fd00::1'), got %s",
			luaL_typename(L, idx));
	case K_STRUCT:
	case K_UNION:
		if (type == LUA_TTABLE) {
			encode_struct(x, ti, idx, buf);
			return;
		}
		if (s && len == ti->size)
			break;
		{
			char tn[128];

			type_name(x->c->btf, ti->id, ti->size, tn, sizeof(tn));
			if (s)
				fail_at(x, true,
					"expects %s (a table, or a %u-byte string), got a "
					"%zu-byte string",
					tn, ti->size, len);
			fail_at(x, true, "expects %s (a table), got %s", tn, luaL_typename(L, idx));
		}
	case K_ARRAY:
		if (type == LUA_TTABLE) {
			encode_array(x, ti, idx, buf);
			return;
		}
		if (s && len == ti->size)
			break;
		fail_at(x, true, "expects a sequence of at most %u elements, got %s",
			btf_array(ti->t)->nelems, luaL_typename(L, idx));
	case K_CHARS:
		if (!s)
			fail_at(x, true, "expects a string (at most %u bytes), got %s", ti->size,
				luaL_typename(L, idx));
		if (len > ti->size)
			fail_at(x, true, "expects a string of at most %u bytes, got %zu bytes",
				ti->size, len);
		memcpy(buf, s, len);
		return;
	case K_RAW:
		if (s && len == ti->size)
			break;
		{
			char tn[128];

			type_name(x->c->btf, ti->id, ti->size, tn, sizeof(tn));
			if (s)
				fail_at(x, true, "expects %s (%u bytes), got a %zu-byte string", tn,
					ti->size, len);
			fail_at(x, true, "expects %s (a %u-byte string), got %s", tn, ti->size,
				luaL_typename(L, idx));
		}
	}
	/* A string of exactly the type's size: raw bytes. */
	memcpy(buf, s, len);
}

/* ---- the fast path ---------------------------------------------------- */

/*
 * Most maps hold an integer or a flat struct of integers. For those the type
 * is compiled once, when the map is opened, into a plan: field offsets and
 * sizes, and the field names as Lua strings kept in the registry. Encoding
 * then walks the Lua table once with lua_next and finds each key by the
 * address of its interned string; decoding pushes the kept names instead of
 * interning them again. Neither raises: anything the plan does not cover
 * (a wrong type, a value out of range, an unknown field, a metatable) makes
 * it give up, and the general codec above redoes the work and reports
 * exactly what it always did.
 */
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
	top_info(c, &ti);
	if (ti.size != c->size) {
		struct lbpf_codec raw = *c;

		raw.type_id = 0;
		top_info(&raw, &ti);
	}
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

		resolve(c->btf, m->type, &sub);
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
		store_uint(buf, f->size, (uint64_t)lua_toboolean(L, idx));
		return true;
	}
	if (lua_type(L, idx) != LUA_TNUMBER)
		return false;
	n = lua_tonumber(L, idx);
	switch (f->kind) {
	case K_FLOAT:
		if (f->size == 4) {
			float x = (float)n;

			memcpy(buf, &x, 4);
		} else {
			memcpy(buf, &n, 8);
		}
		return true;
	case K_BOOL:
		if (n != 0 && n != 1)
			return false;
		v = n == 1;
		break;
	default:
		if (f->sign) {
			lua_Number lim = pow2(f->size * 8 - 1);
			int64_t s;

			if (!(n >= -lim && n < lim))
				return false;
			s = (int64_t)n;
			if ((lua_Number)s != n)
				return false;
			v = (uint64_t)s;
		} else {
			if (!(n >= 0 && n < pow2(f->size * 8)))
				return false;
			v = (uint64_t)n;
			if ((lua_Number)v != n)
				return false;
		}
		if (f->kind == K_BE)
			v = bswap(v, f->size);
	}
	store_uint(buf, f->size, v);
	return true;
}

static bool plan_encode(lua_State *L, const struct lbpf_codec_plan *p, uint32_t size, int idx,
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

static void plan_push(lua_State *L, const struct plan_field *f, const uint8_t *buf)
{
	uint64_t v = load_uint(buf, f->size);

	switch (f->kind) {
	case K_BOOL:
		lua_pushboolean(L, v != 0);
		return;
	case K_FLOAT:
		if (f->size == 4) {
			float x;

			memcpy(&x, buf, 4);
			lua_pushnumber(L, x);
		} else {
			double d;

			memcpy(&d, buf, 8);
			lua_pushnumber(L, d);
		}
		return;
	case K_BE:
		push_u64(L, bswap(v, f->size), false);
		return;
	default:
		if (f->sign)
			v = sign_extend(v, f->size * 8);
		push_u64(L, v, f->sign);
	}
}

static void plan_decode(lua_State *L, const struct lbpf_codec_plan *p, const uint8_t *buf)
{
	int t;

	if (!p->is_struct) {
		plan_push(L, &p->f[0], buf);
		return;
	}
	lua_createtable(L, 0, (int)p->n);
	t = lua_gettop(L);
	lua_rawgeti(L, LUA_REGISTRYINDEX, p->names_ref); /* [t, names] */
	for (uint32_t i = 0; i < p->n; i++) {
		lua_rawgeti(L, t + 1, (int)i + 1);
		plan_push(L, &p->f[i], buf + p->f[i].off);
		lua_rawset(L, t);
	}
	lua_pop(L, 1);
}

/// Encode the Lua value at idx into buf (zeroed first); raises naming c->what and the field.
void lbpf_codec__encode(lua_State *L, const struct lbpf_codec *c, int idx, void *buf)
{
	struct ctx x;
	struct tinfo ti;

	idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
	if (c->plan && plan_encode(L, c->plan, c->size, idx, buf))
		return;
	memset(buf, 0, c->size);
	top_info(c, &ti);
	if (ti.size != c->size) {
		/* BTF that disagrees with the size: fall back to the no-BTF rules. */
		struct lbpf_codec raw = *c;

		raw.type_id = 0;
		top_info(&raw, &ti);
	}
	x.L = L;
	x.c = c;
	x.depth = 0;
	encode(&x, &ti, idx, buf);
}

/* ---- decode ----------------------------------------------------------- */

static void decode(lua_State *L, const struct btf *btf, const struct tinfo *ti, const uint8_t *buf);

static void decode_members(lua_State *L, const struct btf *btf, const struct btf_type *t,
			   const uint8_t *buf)
{
	const struct btf_member *m = btf_members(t);

	for (__u16 i = 0; i < btf_vlen(t); i++, m++) {
		const char *name = btf__name_by_offset(btf, m->name_off);
		uint32_t bit_off = btf_member_bit_offset(t, i);
		uint32_t bits = btf_member_bitfield_size(t, i);
		struct tinfo sub;

		resolve_cached(btf, m->type, &sub);
		if (!*name) {
			if (sub.kind == K_STRUCT || sub.kind == K_UNION)
				decode_members(L, btf, sub.t, buf + bit_off / 8);
			continue;
		}
		if (bits || bit_off % 8) {
			uint64_t v;

			if (!bits)
				bits = sub.size * 8;
			v = load_bits(buf, bit_off, bits);
			if (sub.sign)
				v = sign_extend(v, bits);
			if (sub.kind == K_BOOL)
				lua_pushboolean(L, v != 0);
			else
				push_u64(L, v, sub.sign);
		} else {
			decode(L, btf, &sub, buf + bit_off / 8);
		}
		lua_setfield(L, -2, name);
	}
}

static void decode(lua_State *L, const struct btf *btf, const struct tinfo *ti, const uint8_t *buf)
{
	switch (ti->kind) {
	case K_INT:
	case K_ENUM: {
		uint64_t v = load_uint(buf, ti->size);

		if (ti->sign)
			v = sign_extend(v, ti->size * 8);
		push_u64(L, v, ti->sign);
		return;
	}
	case K_BOOL:
		lua_pushboolean(L, load_uint(buf, ti->size) != 0);
		return;
	case K_FLOAT:
		if (ti->size == 4) {
			float f;

			memcpy(&f, buf, 4);
			lua_pushnumber(L, f);
		} else {
			double d;

			memcpy(&d, buf, 8);
			lua_pushnumber(L, d);
		}
		return;
	case K_BE:
		push_u64(L, bswap(load_uint(buf, ti->size), ti->size), false);
		return;
	case K_IPV4:
	case K_IPV6: {
		char s[INET6_ADDRSTRLEN];

		inet_ntop(ti->kind == K_IPV4 ? AF_INET : AF_INET6, buf, s, sizeof(s));
		lua_pushstring(L, s);
		return;
	}
	case K_STRUCT:
	case K_UNION:
		lua_createtable(L, 0, btf_vlen(ti->t));
		decode_members(L, btf, ti->t, buf);
		return;
	case K_ARRAY: {
		const struct btf_array *a = btf_array(ti->t);
		struct tinfo e;

		resolve_cached(btf, a->type, &e);
		lua_createtable(L, (int)a->nelems, 0);
		for (uint32_t i = 0; i < a->nelems; i++) {
			decode(L, btf, &e, buf + i * e.size);
			lua_rawseti(L, -2, (int)i + 1);
		}
		return;
	}
	case K_CHARS:
		lua_pushlstring(L, (const char *)buf, strnlen((const char *)buf, ti->size));
		return;
	case K_RAW:
		lua_pushlstring(L, (const char *)buf, ti->size);
		return;
	}
}

/// Push the Lua value of buf as the codec's type.
void lbpf_codec__decode(lua_State *L, const struct lbpf_codec *c, const void *buf)
{
	struct tinfo ti;

	if (c->plan) {
		plan_decode(L, c->plan, buf);
		return;
	}
	top_info(c, &ti);
	if (ti.size != c->size) {
		struct lbpf_codec raw = *c;

		raw.type_id = 0;
		top_info(&raw, &ti);
	}
	decode(L, c->btf, &ti, buf);
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
	if (helpers_ref == LUA_NOREF)
		load_helpers(L);
	lua_rawgeti(L, LUA_REGISTRYINDEX, helpers_ref);
	lua_getfield(L, -1, "sum");
	lua_setfield(L, -3, "sum");
	lua_getfield(L, -1, "u64");
	lua_setfield(L, -3, "u64");
	lua_pop(L, 1);
}
