// SPDX-License-Identifier: MIT
/* STUB: replaced by the program work. */
#include "luabpf.h"

void lbpf_prog__push(lua_State *L, struct lbpf_object *o, struct bpf_program *prog)
{
	(void)o; (void)prog;
	lua_pushnil(L);
}

int lbpf_prog__to_fd(lua_State *L, int idx)
{
	(void)L; (void)idx;
	return -1;
}

void lbpf_prog__register(lua_State *L)
{
	(void)L;
}
