// SPDX-License-Identifier: MIT
/* The codec's general path, bytes -> Lua value. */
#include <arpa/inet.h>
#include <string.h>

#include "btf_codec.h"

/* ---- decode ----------------------------------------------------------- */

struct decode_arg {
	lua_State *L;
	const struct btf *btf;
	const uint8_t *buf;
};

static bool decode_member(const struct codec_member *mb, void *arg)
{
	struct decode_arg *a = arg;
	lua_State *L = a->L;

	if (mb->bits || mb->bit_off % 8) {
		uint32_t bits = mb->bits ? mb->bits : mb->ti.size * 8;
		uint64_t v = codec_load_bits(a->buf, mb->bit_off, bits);

		if (mb->ti.sign)
			v = codec_sign_extend(v, bits);
		if (mb->ti.kind == K_BOOL)
			lua_pushboolean(L, v != 0);
		else
			codec_push_u64(L, v, mb->ti.sign);
	} else {
		codec_decode(L, a->btf, &mb->ti, a->buf + mb->bit_off / 8);
	}
	lua_setfield(L, -2, mb->name);
	return true;
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
		codec_members(btf, ti->t, 0, decode_member, &(struct decode_arg){L, btf, buf});
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
