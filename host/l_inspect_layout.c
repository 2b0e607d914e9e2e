// SPDX-License-Identifier: MIT
/* bpf.inspect.layout: a BTF type's fields in the order they print. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "l_inspect.h"

/* ---- BTF layouts: the order fields print in ----------------------------- */

static bool special_typedef(const char *n)
{
	return !strcmp(n, "__be16") || !strcmp(n, "__be32") || !strcmp(n, "__be64") ||
	       !strcmp(n, "ipv4_t") || !strcmp(n, "ipv6_t");
}

static void push_layout(lua_State *L, const struct btf *btf, __u32 id, int depth);

/* Append a struct's members to fields (t at -2, sub at -1), anonymous ones flattened as the codec
 * does. */
static void add_members(lua_State *L, const struct btf *btf, const struct btf_type *t, int depth,
			int *n)
{
	const struct btf_member *m = btf_members(t);

	for (__u16 i = 0; i < btf_vlen(t); i++, m++) {
		const char *name = btf__name_by_offset(btf, m->name_off);

		if (!*name) {
			const struct btf_type *mt = btf__type_by_id(btf, m->type);

			while (mt && (btf_is_mod(mt) || btf_is_typedef(mt)))
				mt = btf__type_by_id(btf, mt->type);
			if (mt && (btf_is_struct(mt) || btf_is_union(mt)))
				add_members(L, btf, mt, depth, n);
			continue;
		}
		lua_pushstring(L, name);
		lua_rawseti(L, -3, ++*n);
		push_layout(L, btf, m->type, depth + 1);
		if (lua_isnil(L, -1))
			lua_pop(L, 1);
		else
			lua_setfield(L, -2, name);
	}
}

/*
 * [layout or nil]: { fields = {names in order}, sub = {name = layout} } for
 * structs and unions, { elem = layout } for arrays, { enum = {[value] = name} }.
 */
static void push_layout(lua_State *L, const struct btf *btf, __u32 id, int depth)
{
	const struct btf_type *t;

	for (;;) {
		t = btf__type_by_id(btf, id);
		if (!t || depth > 16) {
			lua_pushnil(L);
			return;
		}
		if (btf_is_typedef(t) && special_typedef(btf__name_by_offset(btf, t->name_off))) {
			lua_pushnil(L);
			return;
		}
		if (!btf_is_typedef(t) && !btf_is_mod(t))
			break;
		id = t->type;
	}
	if ((btf_is_struct(t) || btf_is_union(t)) &&
	    strcmp(btf__name_by_offset(btf, t->name_off), "in6_addr")) {
		int n = 0;

		lua_createtable(L, 0, 2);
		lua_newtable(L);
		lua_newtable(L);
		add_members(L, btf, t, depth, &n);
		lua_setfield(L, -3, "sub");
		lua_setfield(L, -2, "fields");
	} else if (btf_is_array(t)) {
		lua_createtable(L, 0, 1);
		push_layout(L, btf, btf_array(t)->type, depth + 1);
		lua_setfield(L, -2, "elem");
	} else if (btf_is_enum(t) || btf_is_enum64(t)) {
		lua_createtable(L, 0, 1);
		lua_newtable(L);
		for (__u16 i = 0; i < btf_vlen(t); i++) {
			const char *name;
			lua_Number v;

			if (btf_is_enum(t)) {
				name = btf__name_by_offset(btf, btf_enum(t)[i].name_off);
				v = btf_kflag(t) ? (lua_Number)(__s32)btf_enum(t)[i].val
						 : (lua_Number)(__u32)btf_enum(t)[i].val;
			} else {
				name = btf__name_by_offset(btf, btf_enum64(t)[i].name_off);
				v = (lua_Number)btf_enum64_value(&btf_enum64(t)[i]);
			}
			lua_pushnumber(L, v);
			lua_pushstring(L, name);
			lua_rawset(L, -3);
		}
		lua_setfield(L, -2, "enum");
	} else {
		lua_pushnil(L);
	}
}

/* inspect.layout(btf_id, type_id) -> layout | nil (nothing to order), or nil, msg, errno */
int linspect_layout(lua_State *L)
{
	__u32 btf_id = inspect_check_id(L, 1);
	__u32 type_id = (__u32)luaL_checkinteger(L, 2);
	struct btf *btf = btf__load_from_kernel_by_id(btf_id);

	if (!btf)
		return lbpf_failf(L, errno, "can't load BTF %u", btf_id);
	push_layout(L, btf, type_id, 0);
	btf__free(btf);
	return 1;
}
