/* SPDX-License-Identifier: MIT */
/*
 * luabpf.program's insides, shared by its files and by nothing else:
 *   l_prog.c         the userdata, info, pins, test_run, the methods table
 *   l_prog_attach.c  attach errors and hints, sk_lookup, cgroup, tracepoints, attach{}
 *   l_prog_xdp_tc.c  attaching to an interface: XDP and tc (tcx or netlink)
 */
#ifndef LUABPF_L_PROG_H
#define LUABPF_L_PROG_H

#include <stdio.h>

#include "luabpf.h"

#pragma GCC visibility push(hidden)

/* libbpf 1.1's headers predate tcx (kernel 6.6). */
#define LBPF_TCX_INGRESS   46
#define LBPF_TCX_EGRESS	   47
#define LBPF_LINK_TYPE_TCX 11

struct prog_ud {
	struct lbpf_object *o; /* NULL for programs opened by pin or id */
	struct bpf_program *p; /* NULL likewise */
	int fd;		       /* our own fd when there is no object; else -1 */
	char *name;
	enum bpf_prog_type type; /* for programs without an object */
	char *pin;
};

struct prog_ud *prog_check_ud(lua_State *L, int idx);
int prog_check_fd(lua_State *L, struct prog_ud *u);
enum bpf_prog_type prog_ud_type(struct prog_ud *u);
const char *prog_type_name(enum bpf_prog_type t);
/// nil, "what: ENAME: text\nHINT: hint", "ENAME"
int prog_fail_hint(lua_State *L, int err, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int prog_fail_netns(lua_State *L, struct prog_ud *u, int err, const char *netns);
/// The fd of u, a `want` program (SEC("sec")); raises, for how, when it is another type.
int prog_check_type_fd(lua_State *L, struct prog_ud *u, enum bpf_prog_type want, const char *how,
		       const char *sec);
const char *prog_check_ifname(lua_State *L, struct prog_ud *u, const char *how,
			      const char *const known[]);
int prog_fail_no_iface(lua_State *L, struct prog_ud *u, const char *ifname, const char *where);
void prog_link_holder(__u32 id, char *out, size_t n);
__u32 prog_find_link(__u32 ltype, __u32 ifindex, __u32 prog_id);
void prog_name_by_id(__u32 id, char *out, size_t n);
int lprog_attach_xdp(lua_State *L);
int lprog_attach_tc(lua_State *L);
int lprog_attach_sk_lookup(lua_State *L);
int lprog_attach_cgroup(lua_State *L);
void prog_require_object(lua_State *L, struct prog_ud *u, const char *how);
int lprog_attach_tracepoint(lua_State *L);
int lprog_attach(lua_State *L);

/* " in netns 'x'", or "" */
static inline void prog_in_netns_text(char *out, size_t n, const char *netns)
{
	if (netns && *netns)
		snprintf(out, n, " in netns '%s'", netns);
	else
		out[0] = '\0';
}

#pragma GCC visibility pop

#endif
