/* SPDX-License-Identifier: MIT */
/*
 * luabpf.object's insides: l_object.c (the userdata, open, globals, the
 * methods table) and l_object_load.c (load, and what a failed load says).
 */
#ifndef LUABPF_L_OBJECT_H
#define LUABPF_L_OBJECT_H

#include "luabpf.h"

#pragma GCC visibility push(hidden)

#define LOG_BUF_SIZE   (4u << 20)
#define LOG_TAIL_LINES 20

int lobject_load(lua_State *L);

#pragma GCC visibility pop

#endif
