// SPDX-License-Identifier: MIT
/* STUB: replaced by the program work. */
#include "luabpf.h"

int lbpf_link__detach_all(void)
{
	return 0;
}

void lbpf_link__register(lua_State *L)
{
	(void)L;
}
