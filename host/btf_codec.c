// SPDX-License-Identifier: MIT
/* STUB: replaced by the codec work. */
#include <stdio.h>
#include <string.h>
#include "luabpf.h"

void lbpf_codec__encode(lua_State *L, const struct lbpf_codec *c, int idx, void *buf)
{
	size_t n;
	const char *s = lua_tolstring(L, idx, &n);

	memset(buf, 0, c->size);
	if (lua_type(L, idx) == LUA_TNUMBER) {
		long long v = (long long)lua_tonumber(L, idx);
		memcpy(buf, &v, c->size < 8 ? c->size : 8);
	} else if (s && n == c->size) {
		memcpy(buf, s, n);
	} else {
		luaL_error(L, "%s: unsupported value", c->what);
	}
}

void lbpf_codec__decode(lua_State *L, const struct lbpf_codec *c, const void *buf)
{
	lua_pushlstring(L, buf, c->size);
}

const char *lbpf_codec__type_name(const struct lbpf_codec *c, char *out, size_t n)
{
	(void)c;
	snprintf(out, n, "?");
	return out;
}

void lbpf_codec__register(lua_State *L)
{
	(void)L;
}
