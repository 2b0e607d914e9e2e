// SPDX-License-Identifier: MIT
/* STUB: replaced by the map work. */
#include "luabpf.h"

void lbpf_map__push(lua_State *L, struct lbpf_object *o, struct bpf_map *map)
{
	(void)o; (void)map;
	lua_pushnil(L);
}

void lbpf_map__view(lua_State *L, int idx, struct lbpf_map_view *v)
{
	(void)idx; (void)v;
	luaL_error(L, "not a map");
}

int lbpf_map__to_fd(lua_State *L, int idx)
{
	(void)L; (void)idx;
	return -1;
}

void lbpf_map__register(lua_State *L)
{
	(void)L;
}
