/* SPDX-License-Identifier: MIT */
/*
 * luabpf.link's insides: l_link.c (the userdata, its lifetime, detach,
 * pin, update, the methods table) and l_link_info.c (info, descriptions,
 * links from a pin or an id, bpf.links()).
 */
#ifndef LUABPF_L_LINK_H
#define LUABPF_L_LINK_H

#include "luabpf.h"

#pragma GCC visibility push(hidden)

enum link_kind {
	LINK_LIBBPF, /* struct bpf_link from libbpf */
	LINK_FD,     /* a kernel link fd from bpf_link_create */
	LINK_CLSACT, /* a tc filter on a clsact qdisc: no kernel link */
};

struct lbpf_link {
	enum link_kind kind;
	struct bpf_link *bl;
	int fd; /* kernel link fd; -1 for clsact */
	struct bpf_tc_hook hook;
	struct bpf_tc_opts tc;
	char *netns; /* clsact: where the filter lives */
	bool owns_qdisc;
	struct lbpf_object *o; /* may be NULL */
	char *desc;
	char *pin; /* path while pinned */
	bool live; /* attached and on the list */
	int ref;   /* registry reference to the userdata while live */
	struct lbpf_link *prev, *next;
};

struct link_ud {
	struct lbpf_link *l;
};

extern struct lbpf_link *link_live;

struct lbpf_link *link_check(lua_State *L, int idx);
int llink_info(lua_State *L);
int llink_description(lua_State *L);
int llink_tostring(lua_State *L);
int llink_from_pin(lua_State *L);
int llink_from_id(lua_State *L);
int llink_links(lua_State *L);

#pragma GCC visibility pop

#endif
