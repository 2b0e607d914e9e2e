// SPDX-License-Identifier: MIT
/*
 * The codec's scalars: integers of any width (numbers, or int64/uint64
 * cdata beyond 2^53, through LuaJIT's FFI), bitfields, byte order, floats.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "btf_codec.h"

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
	lbpf_load_chunk(L, helpers_src, "=luabpf.codec");
	lua_call(L, 0, 1);
	lua_getfield(L, -1, "box");
	box_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_getfield(L, -1, "unbox");
	unbox_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	helpers_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

void codec_push_u64(lua_State *L, uint64_t v, bool sign)
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

int codec_cdata_u64(lua_State *L, int idx, uint64_t *out)
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

void codec_push_helpers(lua_State *L)
{
	if (helpers_ref == LUA_NOREF)
		load_helpers(L);
	lua_rawgeti(L, LUA_REGISTRYINDEX, helpers_ref);
}

/* ---- integers --------------------------------------------------------- */

uint64_t codec_load_uint(const void *p, uint32_t size)
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

void codec_store_uint(void *p, uint32_t size, uint64_t v)
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

uint64_t codec_sign_extend(uint64_t v, uint32_t bits)
{
	if (bits < 64 && (v & (1ULL << (bits - 1))))
		v |= ~0ULL << bits;
	return v;
}

uint64_t codec_load_bits(const uint8_t *p, uint32_t bit_off, uint32_t bits)
{
	unsigned __int128 w = 0;
	uint32_t first = bit_off / 8, nbytes = (bit_off % 8 + bits + 7) / 8;

	for (uint32_t i = 0; i < nbytes; i++)
		w |= (unsigned __int128)p[first + i] << (8 * i);
	w >>= bit_off % 8;
	return (uint64_t)w & (bits == 64 ? ~0ULL : (1ULL << bits) - 1);
}

void codec_store_bits(uint8_t *p, uint32_t bit_off, uint32_t bits, uint64_t v)
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

uint64_t codec_check_int(struct ctx *x, int idx, const struct tinfo *ti, uint32_t bits)
{
	lua_State *L = x->L;
	char rb[64], vb[64];

	if (ti->kind == K_BOOL) {
		if (lua_type(L, idx) == LUA_TBOOLEAN)
			return lua_toboolean(L, idx);
		if (lua_type(L, idx) == LUA_TNUMBER &&
		    (lua_tonumber(L, idx) == 0 || lua_tonumber(L, idx) == 1))
			return lua_tonumber(L, idx) == 1;
		codec_fail_at(x, true, "expects a boolean, got %s",
			      codec_value_desc(L, idx, vb, 64));
	}
	switch (lua_type(L, idx)) {
	case LUA_TNUMBER: {
		lua_Number n = lua_tonumber(L, idx);

		if (n != floor(n) || isinf(n))
			codec_fail_at(x, true, "expects an integer, got %s",
				      codec_value_desc(L, idx, vb, 64));
		if (ti->sign) {
			lua_Number lim = codec_pow2(bits - 1);

			if (n < -lim || n >= lim)
				goto range;
			return (uint64_t)(int64_t)n;
		}
		if (n < 0 || n >= codec_pow2(bits))
			goto range;
		return (uint64_t)n;
	}
	case 10: { /* LUA_TCDATA */
		uint64_t v;
		int k = codec_cdata_u64(L, idx, &v);

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
	codec_fail_at(x, true, "expects an integer, got %s", luaL_typename(L, idx));
range:
	codec_value_desc(L, idx, vb, sizeof(vb));
range_str:
	if (bits != ti->size * 8)
		codec_fail_at(x, true, "expects a %u-bit integer (%s), got %s", bits,
			      range_text(ti->sign, bits, rb, sizeof(rb)), vb);
	codec_fail_at(x, true, "expects %s (%s), got %s",
		      ti->name && *ti->name ? ti->name : "an integer",
		      range_text(ti->sign, bits, rb, sizeof(rb)), vb);
}

uint64_t codec_bswap(uint64_t v, uint32_t size)
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

void codec_store_float(uint8_t *buf, uint32_t size, lua_Number n)
{
	if (size == 4) {
		float f = (float)n;

		memcpy(buf, &f, 4);
	} else {
		memcpy(buf, &n, 8);
	}
}

void codec_push_scalar(lua_State *L, enum kind kind, uint32_t size, bool sign, const uint8_t *buf)
{
	uint64_t v = codec_load_uint(buf, size);

	switch (kind) {
	case K_BOOL:
		lua_pushboolean(L, v != 0);
		return;
	case K_FLOAT:
		if (size == 4) {
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
		codec_push_u64(L, codec_bswap(v, size), false);
		return;
	default:
		if (sign)
			v = codec_sign_extend(v, size * 8);
		codec_push_u64(L, v, sign);
	}
}
