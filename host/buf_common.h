/* SPDX-License-Identifier: MIT */
/*
 * What luabpf.ringbuf (l_ringbuf.c) and luabpf.perfbuf (l_perfbuf.c) do the
 * same way: the state both keep (struct lbpf_evbuf, the first member of
 * each), their list, userdata and close protocol, checking the
 * constructor's arguments and options, building and running the Lua drain
 * loop (drain, wake, the poll callback), decoding an event, the methods
 * that work alike (pause, resume, consume, stats, name, close, __tostring)
 * and registering the class, and reaching their Lua module. What each does
 * its own way (reading its kernel buffer, lost records, its stats, releasing
 * it) it gives as a struct lbpf_evbuf_ops; its own methods stay in its file.
 */
#ifndef LUABPF_BUF_COMMON_H
#define LUABPF_BUF_COMMON_H

#include "luabpf.h"

struct lbpf_evbuf;

/* What one kind of buffer does its own way. */
struct lbpf_evbuf_ops {
	const char *kind; /* "ringbuf": in messages and luabpf.KIND */
	const char *mt;	  /* its metatable */
	void (*begin)(struct lbpf_evbuf *b);  /* a drain starts */
	void (*settle)(struct lbpf_evbuf *b); /* commit what the handler took */
	/* After each call of the drain loop: true to call it again even when it
	 * returned (perf buffers' lost records). NULL: never. */
	bool (*again)(struct lbpf_evbuf *b, lua_State *L);
	void (*woke)(struct lbpf_evbuf *b);     /* after a wake's drain; may be NULL */
	void (*paused)(struct lbpf_evbuf *b);   /* after pause(); may be NULL */
	void (*resumed)(struct lbpf_evbuf *b);  /* after resume(); may be NULL */
	void (*release)(struct lbpf_evbuf *b);  /* free the kernel side */
	/* stats(): add this kind's fields to the table on top; may be NULL. */
	void (*stats)(struct lbpf_evbuf *b, lua_State *L);
	/* __tostring: push what follows "N events" (", 3 lost"); may be NULL. */
	void (*describe)(struct lbpf_evbuf *b, lua_State *L);
	bool consume_takes_max; /* consume([max]), else consume() */
};

/* What both buffers keep the same way; the first member of each. */
struct lbpf_evbuf {
	struct lbpf_evbuf *next, **pprev; /* its kind's list, for close_all */
	struct lbpf_evbuf_ud *ud;	  /* NULL once closed */
	const struct lbpf_evbuf_ops *ops;
	bool paused, closing, draining, released;
	uv_poll_t poll; /* data: this struct */
	/* What the drain loop reads (in struct lbpf_ring or struct
	 * lbpf_perf_chunk): set by the owner before it is drained, with
	 * lbpf_evbuf__tie. */
	uint32_t *stop, *cur;
	const void *const *ptr;
	const uint32_t *len;
	const uint64_t *events;
	int drain_ref, ctype_ref, anchor_ref;
	int batch;
	uint64_t slice_ns;
	uint64_t batches, errors;
	struct lbpf_decode decode;
	char name[BPF_OBJ_NAME_LEN + 1];
	char what[BPF_OBJ_NAME_LEN + 32]; /* "ringbuf 'events' handler" */
};

/* The userdata of either kind. */
struct lbpf_evbuf_ud {
	struct lbpf_evbuf *b; /* NULL once closed */
};

/// Take over d (freed by the owner's release), set the names, the pace
/// (batch, slice_us) and ops; the Lua references start as LUA_NOREF.
void lbpf_evbuf__init(struct lbpf_evbuf *b, const struct lbpf_evbuf_ops *ops,
		      const struct lbpf_decode *d, const char *name, const char *what, int batch,
		      uint64_t slice_ns);

/// Point b at what its drain loop reads and writes: the stop flag, the
/// count of records handed out (the record in the handler is ptr[count - 1]),
/// the records and their lengths, and the events counted so far.
static inline void lbpf_evbuf__tie(struct lbpf_evbuf *b, uint32_t *stop, uint32_t *cur,
				   const void *const *ptr, const uint32_t *len,
				   const uint64_t *events)
{
	b->stop = stop;
	b->cur = cur;
	b->ptr = ptr;
	b->len = len;
	b->events = events;
}

/// Check the options both take, batch and slice_us, in the table at 3.
/// Raises "KIND 'name': option 'batch' must be ..." on a bad value.
void lbpf_evbuf__check_pace(lua_State *L, const char *kind, const char *name, int *batch,
			    uint64_t *slice_ns);

/// Start b, whose userdata is at 4: build its drain loop,
/// luabpf._ringbuf.FN(chunk, mode, decl, size, handler, decode, name,
/// type_name, tree) with the handler at 2, and poll it. 0; else b is closed
/// and this raises the loop's error (after "KIND 'name': " where named) or
/// returns 3 for the nil, "KIND 'name': can't poll: ..." triple.
int lbpf_evbuf__start(lua_State *L, struct lbpf_evbuf *b, const char *fn, void *chunk,
		      bool named);

/// Drop b's Lua references (a release step).
void lbpf_evbuf__unref(struct lbpf_evbuf *b);

/// Hand up to budget events to the handler, in batches of batch: no batch
/// starts after deadline (uv_hrtime), or after the first when deadline is 0.
/// An error in the handler is logged and counted, its event counts as
/// consumed, and the rest goes on. Releases b if it was closed meanwhile.
uint64_t lbpf_evbuf__drain(struct lbpf_evbuf *b, lua_State *L, uint64_t budget, uint64_t batch,
			   uint64_t deadline);

/// A wake: batches until empty or the slice is used up, then ops->woke.
void lbpf_evbuf__wake(struct lbpf_evbuf *b);

/// uv_poll callback of both (h->data is the buffer).
void lbpf_evbuf__on_readable(uv_poll_t *h, int status, int events);

/// Close b (pause its chunk, untie its userdata) and release it unless its
/// own handler runs (the drain releases it then).
void lbpf_evbuf__close_now(struct lbpf_evbuf *b);

/// Close every buffer on list (a shutdown step).
void lbpf_evbuf__close_all(struct lbpf_evbuf **list);

/// Register luabpf.KIND (ops->kind): the metatable ops->mt with the methods
/// both kinds have (pause, resume, consume, stats, name, close, __gc,
/// __tostring, bound to ops) and own, and ctor in the module table on top.
void lbpf_evbuf__register(lua_State *L, const struct lbpf_evbuf_ops *ops, const luaL_Reg *own,
			  lua_CFunction ctor);

/// Push a new userdata of ops' kind, not tied to a buffer yet.
struct lbpf_evbuf_ud *lbpf_evbuf__new_ud(lua_State *L, const struct lbpf_evbuf_ops *ops);

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

/// Push fn from the buffers' Lua module, luabpf._ringbuf (ring, caster...).
void lbpf_evbuf__push_module_fn(lua_State *L, const char *fn);

#endif /* LUABPF_BUF_COMMON_H */
