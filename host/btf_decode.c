// SPDX-License-Identifier: MIT
/* The codec's general path, bytes -> Lua value. */
#include <arpa/inet.h>
#include <string.h>

#include "btf_codec.h"

/* ---- decode ----------------------------------------------------------- */

static void decode_members(lua_State *L, const struct btf *btf, const struct btf_type *t,
			   const uint8_t *buf)
{
	const struct btf_member *m = btf_members(t);

	for (__u16 i = 0; i < btf_vlen(t); i++, m++) {
		const char *name = btf__name_by_offset(btf, m->name_off);
		uint32_t bit_off = btf_member_bit_offset(t, i);
		uint32_t bits = btf_member_bitfield_size(t, i);
		struct tinfo sub;

		codec_resolve_cached(btf, m->type, &sub);
		if (!*name) {
			if (sub.kind == K_STRUCT || sub.kind == K_UNION)
				decode_members(L, btf, sub.t, buf + bit_off / 8);
			continue;
		}
		if (bits || bit_off % 8) {
			uint64_t v;

			if (!bits)
				bits = sub.size * 8;
			v = codec_load_bits(buf, bit_off, bits);
			if (sub.sign)
				v = codec_sign_extend(v, bits);
			if (sub.kind == K_BOOL)
				lua_pushboolean(L, v != 0);
			else
				codec_push_u64(L, v, sub.sign);
		} else {
			codec_decode(L, btf, &sub, buf + bit_off / 8);
		}
		lua_setfield(L, -2, name);
	}
}

void codec_decode(lua_State *L, const struct btf *btf, const struct tinfo *ti, const uint8_t *buf)
{
	switch (ti->kind) {
	case K_INT:
	case K_ENUM:
	case K_BOOL:
	case K_FLOAT:
	case K_BE:
		codec_push_scalar(L, ti->kind, ti->size, ti->sign, buf);
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

		codec_resolve_cached(btf, a->type, &e);
		lua_createtable(L, (int)a->nelems, 0);
		for (uint32_t i = 0; i < a->nelems; i++) {
			codec_decode(L, btf, &e, buf + i * e.size);
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
