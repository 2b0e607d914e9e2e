// SPDX-License-Identifier: MIT
/*
 * Table decoding of ring and perf buffer events, the fast way: the event's
 * BTF type as a tree of plain Lua tables (what the general decoder,
 * btf_decode.c, would do at each byte offset), from which
 * lua/luabpf/_ringbuf.lua generates one Lua function per buffer that builds
 * the same table from the event's bytes through the FFI. A type with a
 * shape the generator leaves out (bitfields wider than 32 bits, a function
 * too big to compile) keeps the general decoder; test_ringbuf_decode.lua
 * runs both on fuzzed bytes.
 */
#include <arpa/inet.h>
#include <string.h>

#include "btf_codec.h"
#include "ring_decode.h"

#define TREE_MAX_NODES 4096

static const char *const kind_names[] = {
	[K_INT] = "int",   [K_BOOL] = "bool",	  [K_ENUM] = "int",   [K_FLOAT] = "float",
	[K_BE] = "be",	   [K_IPV4] = "ipv4",	  [K_IPV6] = "ipv6",  [K_STRUCT] = "struct",
	[K_UNION] = "struct", [K_ARRAY] = "array", [K_CHARS] = "chars", [K_RAW] = "raw",
};

static bool push_node(lua_State *L, const struct btf *btf, const struct tinfo *ti, int *budget,
		      int depth);

struct tree_arg {
	lua_State *L;
	const struct btf *btf;
	int *budget, depth;
};

/* Append {name, off, node} for member mb to the list at -1. */
static bool push_member(const struct codec_member *mb, void *arg)
{
	struct tree_arg *a = arg;
	lua_State *L = a->L;

	lua_createtable(L, 0, 3);
	lua_pushstring(L, mb->name);
	lua_setfield(L, -2, "name");
	lua_pushinteger(L, mb->bit_off / 8);
	lua_setfield(L, -2, "off");
	if (mb->bits || mb->bit_off % 8) {
		/* As decode_member: bits from the byte at off, little-endian. */
		if (--*a->budget < 0)
			return false;
		lua_createtable(L, 0, 5);
		lua_pushliteral(L, "bits");
		lua_setfield(L, -2, "k");
		lua_pushinteger(L, mb->bit_off % 8);
		lua_setfield(L, -2, "shift");
		lua_pushinteger(L, mb->bits ? mb->bits : mb->ti.size * 8);
		lua_setfield(L, -2, "bits");
		lua_pushboolean(L, mb->ti.sign);
		lua_setfield(L, -2, "sign");
		lua_pushboolean(L, mb->ti.kind == K_BOOL);
		lua_setfield(L, -2, "bool");
	} else if (!push_node(L, a->btf, &mb->ti, a->budget, a->depth + 1)) {
		return false;
	}
	lua_setfield(L, -2, "node");
	lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
	return true;
}

/* Push {k=, size=, sign=[, n=, e=][, f=]} for ti; false if the tree can't say it. */
static bool push_node(lua_State *L, const struct btf *btf, const struct tinfo *ti, int *budget,
		      int depth)
{
	if (--*budget < 0 || depth > MAX_DEPTH)
		return false;
	lua_createtable(L, 0, 5);
	lua_pushstring(L, kind_names[ti->kind]);
	lua_setfield(L, -2, "k");
	lua_pushinteger(L, ti->size);
	lua_setfield(L, -2, "size");
	lua_pushboolean(L, ti->sign);
	lua_setfield(L, -2, "sign");
	switch (ti->kind) {
	case K_STRUCT:
	case K_UNION:
		lua_newtable(L);
		if (!codec_members(btf, ti->t, 0, push_member,
				   &(struct tree_arg){L, btf, budget, depth}))
			return false;
		lua_setfield(L, -2, "f");
		break;
	case K_ARRAY: {
		const struct btf_array *a = btf_array(ti->t);
		struct tinfo e;

		codec_resolve_cached(btf, a->type, &e);
		lua_pushinteger(L, a->nelems);
		lua_setfield(L, -2, "n");
		if (!push_node(L, btf, &e, budget, depth + 1))
			return false;
		lua_setfield(L, -2, "e");
		break;
	}
	default:
		break;
	}
	return true;
}

/// Push d's type as a decode tree for _ringbuf.lua's generator, or nil.
void lbpf_ring__push_tree(lua_State *L, const struct lbpf_decode *d)
{
	int top = lua_gettop(L), budget = TREE_MAX_NODES;
	struct tinfo ti;

	if (!d->btf) {
		lua_pushnil(L);
		return;
	}
	codec_resolve_cached(d->btf, d->type_id, &ti);
	if (ti.size != d->size || !push_node(L, d->btf, &ti, &budget, 0)) {
		lua_settop(L, top);
		lua_pushnil(L);
	}
}

/// inet_ntop for the generated decoders (FFI): v6 or v4 at src into dst
/// (INET6_ADDRSTRLEN bytes); returns the text's length.
int lbpf_ring__ntop(int v6, const void *src, char *dst)
{
	if (!inet_ntop(v6 ? AF_INET6 : AF_INET, src, dst, INET6_ADDRSTRLEN))
		return 0;
	return (int)strlen(dst);
}
