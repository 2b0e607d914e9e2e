/* SPDX-License-Identifier: MIT */
/* Table decoding of buffer events through generated Lua: see ring_decode.c. */
#ifndef LUABPF_RING_DECODE_H
#define LUABPF_RING_DECODE_H

#include "luabpf.h"

/// Push d's type as a decode tree for lua/luabpf/_ringbuf.lua's generator,
/// or nil where only the general decoder knows the shape (bitfields).
void lbpf_ring__push_tree(lua_State *L, const struct lbpf_decode *d);

#endif /* LUABPF_RING_DECODE_H */
