/* SPDX-License-Identifier: MIT */
/*
 * What luabpf.ringbuf (l_ringbuf.c) and luabpf.perfbuf (l_perfbuf.c) do the
 * same way: the state both keep (struct lbpf_evbuf, the first member of
 * each), their list, userdata and close protocol, checking the
 * constructor's arguments, decoding an event, the shared part of stats()
 * and __tostring, and reaching their Lua module. How each reads its
 * kernel buffer, and what releasing it takes, stay in its own file.
 */
#ifndef LUABPF_BUF_COMMON_H
#define LUABPF_BUF_COMMON_H

#include "luabpf.h"

/* What both buffers keep the same way; the first member of each. */
struct lbpf_evbuf {
	struct lbpf_evbuf *next, **pprev; /* its kind's list, for close_all */
	struct lbpf_evbuf_ud *ud;	  /* NULL once closed */
	bool paused, closing, draining, released;
	struct lbpf_decode decode;
	char name[BPF_OBJ_NAME_LEN + 1];
	char what[BPF_OBJ_NAME_LEN + 32]; /* "ringbuf 'events' handler" */
};

/* The userdata of either kind. */
struct lbpf_evbuf_ud {
	struct lbpf_evbuf *b; /* NULL once closed */
};

/// Take over d (freed by the owner's release) and set the names.
void lbpf_evbuf__init(struct lbpf_evbuf *b, const struct lbpf_decode *d, const char *name,
		      const char *what);

/// Put b on list and tie it to its new userdata u.
void lbpf_evbuf__add(struct lbpf_evbuf *b, struct lbpf_evbuf **list, struct lbpf_evbuf_ud *u);

/// The open buffer of the userdata at idx (metatable mt); raises "closed KIND".
struct lbpf_evbuf *lbpf_evbuf__check(lua_State *L, int idx, const char *mt, const char *kind);

/// Untie b from its userdata and mark it closing. True when it may be
/// released now; false while its own handler runs (the drain releases it).
bool lbpf_evbuf__close(struct lbpf_evbuf *b);

/// Mark b released and take it off its list; false if it already was.
bool lbpf_evbuf__release(struct lbpf_evbuf *b);

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
