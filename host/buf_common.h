/* SPDX-License-Identifier: MIT */
/*
 * What luabpf.ringbuf (l_ringbuf.c) and luabpf.perfbuf (l_perfbuf.c) do the
 * same way: checking the constructor's arguments, decoding an event, the
 * shared part of stats() and __tostring, and reaching their Lua module.
 * Their lifetimes and drain loops differ, so each file keeps its own.
 */
#ifndef LUABPF_BUF_COMMON_H
#define LUABPF_BUF_COMMON_H

#include "luabpf.h"

/// Check luabpf.KIND(map, handler [, opts]): the map at 1 is a `want` map
/// (the error names the other constructor when it is the other kind of
/// buffer), the handler at 2 is a function and the options at 3 are among
/// known. Fills v, and what with "KIND 'name' handler". Raises on misuse.
void lbpf_evbuf__check_args(lua_State *L, const char *kind, enum bpf_map_type want,
			    const char *const known[], struct lbpf_map_view *v, char *what,
			    size_t n);

/// Raise "KIND 'name': a 3-byte event is smaller than struct x (8 bytes)"
/// when an event of len bytes can't be decoded as d's type.
void lbpf_evbuf__check_len(lua_State *L, const struct lbpf_decode *d, uint32_t len,
			   const char *kind, const char *name);

/// Push the table that d's type decodes data into; what names it in errors.
void lbpf_evbuf__decode_table(lua_State *L, const struct lbpf_decode *d, const void *data,
			      const char *what);

/// "raw", "struct event" or "cdata:struct event", as the decode option said.
const char *lbpf_evbuf__decode_spec(const struct lbpf_decode *d, char *out, size_t n);

/// Push a stats() table with the fields both buffers have; callers add theirs.
void lbpf_evbuf__push_stats(lua_State *L, uint64_t events, uint64_t batches, uint64_t errors,
			    bool paused);

/// Push fn from the buffers' Lua module, luabpf._ringbuf (ring, caster...).
void lbpf_evbuf__push_module_fn(lua_State *L, const char *fn);

#endif /* LUABPF_BUF_COMMON_H */
