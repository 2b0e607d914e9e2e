/* SPDX-License-Identifier: MIT */
/*
 * The BTF codec's insides, shared by its files and by nothing else (the
 * l_*.c files use lbpf_codec__* from luabpf.h):
 *   btf_codec.c   types seen from Lua, error paths, the entry points
 *   btf_scalar.c  integers, floats, bitfields and 64-bit values as cdata
 *   btf_encode.c  Lua value -> bytes, one encoder per kind
 *   btf_decode.c  bytes -> Lua value
 *   btf_plan.c    the fast path compiled once per map (flat structs, scalars)
 */
#ifndef LUABPF_BTF_CODEC_H
#define LUABPF_BTF_CODEC_H

#include "luabpf.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the codec's bitfield handling assumes a little-endian host"
#endif

#pragma GCC visibility push(hidden)

#define MAX_DEPTH 32

/* How a type looks from Lua, after typedefs and qualifiers. */
enum kind {
	K_INT,	  /* number (cdata beyond 2^53) */
	K_BOOL,	  /* boolean */
	K_ENUM,	  /* number, or an enumerator's name on encode */
	K_FLOAT,  /* number */
	K_BE,	  /* __be16/32/64: host-order number */
	K_IPV4,	  /* ipv4_t: "10.0.0.1" */
	K_IPV6,	  /* ipv6_t, struct in6_addr: "fd00::1" */
	K_STRUCT, /* table by field name */
	K_UNION,
	K_ARRAY, /* sequence */
	K_CHARS, /* char[N]: string */
	K_RAW,	 /* string of exactly size bytes */
};

struct tinfo {
	enum kind kind;
	bool sign;
	uint32_t id; /* resolved (qualifiers and typedefs followed) */
	uint32_t size;
	const struct btf_type *t;
	const char *name; /* the outermost name, for messages */
};

/* Where an encode is: the field path for error messages. */
struct ctx {
	lua_State *L;
	const struct lbpf_codec *c;
	int depth;
	const char *names[MAX_DEPTH]; /* field name, or NULL for an index */
	uint32_t index[MAX_DEPTH];
};

/* ---- btf_codec.c: types and errors ---------------------------------- */

/// Follow qualifiers and typedefs; the names that change the Lua view stop there.
void codec_resolve(const struct btf *btf, uint32_t id, struct tinfo *ti);
/// codec_resolve, remembered per (btf, type id).
void codec_resolve_cached(const struct btf *btf, uint32_t id, struct tinfo *ti);

/* A named member of a struct or union (codec_members). */
struct codec_member {
	const char *name;
	uint32_t bit_off; /* from the start of the outermost struct walked */
	uint32_t bits;	  /* the bitfield's size; 0: not a bitfield */
	struct tinfo ti;
};

/* Called for each member; returning false stops the walk. */
typedef bool (*codec_member_fn)(const struct codec_member *mb, void *arg);

/// Each named member of struct or union t in order, the members of anonymous
/// structs and unions as the parent's (as in C), bit offsets from bit_base.
/// false if fn stopped the walk.
bool codec_members(const struct btf *btf, const struct btf_type *t, uint32_t bit_base,
		   codec_member_fn fn, void *arg);
/// The codec's top type; BTF that disagrees with c->size falls back to the no-BTF rules.
void codec_info(const struct lbpf_codec *c, struct tinfo *ti);
/// A C-like name: "struct flow", "__u32", "char[16]".
void codec_type_name(const struct btf *btf, uint32_t id, uint32_t size, char *out, size_t n);

/// Raise "map 'x' value field 'a.b' expects ..." (expects) or "...: msg".
void codec_fail_at(struct ctx *x, bool expects, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));
/// A number as text, or the value's type name.
const char *codec_value_desc(lua_State *L, int idx, char *buf, size_t n);
void codec_push_field(struct ctx *x, const char *name, uint32_t index);

/* ---- btf_scalar.c ----------------------------------------------------- */

uint64_t codec_load_uint(const void *p, uint32_t size);
void codec_store_uint(void *p, uint32_t size, uint64_t v);
uint64_t codec_sign_extend(uint64_t v, uint32_t bits);
/// Bitfields: bits [bit_off, bit_off + bits) counted from p, little-endian.
uint64_t codec_load_bits(const uint8_t *p, uint32_t bit_off, uint32_t bits);
void codec_store_bits(uint8_t *p, uint32_t bit_off, uint32_t bits, uint64_t v);
uint64_t codec_bswap(uint64_t v, uint32_t size);
/// The Lua integer at idx as bits-wide two's complement; raises if it isn't one.
uint64_t codec_check_int(struct ctx *x, int idx, const struct tinfo *ti, uint32_t bits);
void codec_store_float(uint8_t *buf, uint32_t size, lua_Number n);
/// Push a scalar (int, enum, bool, float, big-endian) of the given shape.
void codec_push_scalar(lua_State *L, enum kind kind, uint32_t size, bool sign, const uint8_t *buf);
/// A number, or an int64/uint64 cdata beyond 2^53.
void codec_push_u64(lua_State *L, uint64_t v, bool sign);
/// 0: not an int64 cdata; 1: int64_t; 2: uint64_t.
int codec_cdata_u64(lua_State *L, int idx, uint64_t *out);
/// Push the table of Lua helpers (box, unbox, sum, u64).
void codec_push_helpers(lua_State *L);

static inline lua_Number codec_pow2(uint32_t bits)
{
	return bits < 64 ? (lua_Number)(1ULL << bits) : 18446744073709551616.0;
}

/* ---- btf_encode.c, btf_decode.c, btf_plan.c --------------------------- */

void codec_encode(struct ctx *x, const struct tinfo *ti, int idx, uint8_t *buf);
void codec_decode(lua_State *L, const struct btf *btf, const struct tinfo *ti, const uint8_t *buf);
/// False when the plan does not cover the value: the general codec redoes it.
bool codec_plan_encode(lua_State *L, const struct lbpf_codec_plan *p, uint32_t size, int idx,
		       uint8_t *buf);
void codec_plan_decode(lua_State *L, const struct lbpf_codec_plan *p, const uint8_t *buf);
/// Push the plan as {struct = bool, fields = {{name, off, size, kind, sign}...}}, or nil.
void codec_plan_push(lua_State *L, const struct lbpf_codec_plan *p);

#pragma GCC visibility pop

#endif
