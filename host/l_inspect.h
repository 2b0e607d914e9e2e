/* SPDX-License-Identifier: MIT */
/*
 * bpf.inspect's insides, shared by its files and by nothing else:
 *   l_inspect.c         ids, info and pin for every program, map and link
 *   l_inspect_holders.c which processes hold what, and XDP per interface
 *   l_inspect_layout.c  BTF layouts: the order fields print in
 */
#ifndef LUABPF_L_INSPECT_H
#define LUABPF_L_INSPECT_H

#include "luabpf.h"

#pragma GCC visibility push(hidden)

enum kind { K_PROG, K_MAP, K_LINK };
extern const char *const inspect_kinds[];

void inspect_set_num(lua_State *L, const char *k, lua_Number v);
void inspect_set_str(lua_State *L, const char *k, const char *v);
__u32 inspect_check_id(lua_State *L, int idx);
int linspect_holders(lua_State *L);
int linspect_xdp(lua_State *L);
int linspect_layout(lua_State *L);

#pragma GCC visibility pop

#endif
