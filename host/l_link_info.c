// SPDX-License-Identifier: MIT
/* luabpf.link: info and descriptions, links from a pin or an id, bpf.links(). */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "l_link.h"

static const char *link_type_name(__u32 type)
{
	/* libbpf 1.1 predates the newer ones. */
	static const char *const newer[] = {[10] = "netfilter",
					    [11] = "tcx",
					    [12] = "uprobe_multi",
					    [13] = "netkit",
					    [14] = "sockmap"};
	const char *s = libbpf_bpf_link_type_str(type);

	if (s)
		return s;
	if (type < sizeof(newer) / sizeof(newer[0]) && newer[type])
		return newer[type];
	return "unknown";
}

static const char *attach_type_name(__u32 type)
{
	const char *s = libbpf_bpf_attach_type_str(type);

	if (s)
		return s;
	switch (type) {
	case 46:
		return "tcx_ingress";
	case 47:
		return "tcx_egress";
	default:
		return "unknown";
	}
}

static void set_int(lua_State *L, const char *k, lua_Number v)
{
	lua_pushnumber(L, v);
	lua_setfield(L, -2, k);
}

static void set_str(lua_State *L, const char *k, const char *v)
{
	lua_pushstring(L, v);
	lua_setfield(L, -2, k);
}

static void set_prog(lua_State *L, __u32 prog_id)
{
	struct bpf_prog_info pi = {0};
	__u32 len = sizeof(pi);
	int fd;

	set_int(L, "prog_id", prog_id);
	fd = bpf_prog_get_fd_by_id(prog_id);
	if (fd < 0)
		return;
	if (bpf_obj_get_info_by_fd(fd, &pi, &len) == 0)
		set_str(L, "prog_name", pi.name);
	close(fd);
}

static void set_ifindex(lua_State *L, __u32 ifindex, bool here)
{
	char name[IF_NAMESIZE];

	set_int(L, "ifindex", ifindex);
	if (here && if_indextoname(ifindex, name))
		set_str(L, "ifname", name);
}

/* link:info() -> {id, type, prog_id, prog_name, ...type-specific, description} */
int llink_info(lua_State *L)
{
	struct lbpf_link *l = link_check(L, 1);
	union {
		struct bpf_link_info i;
		__u32 raw[64];
	} info;
	__u32 len = sizeof(info);

	lua_newtable(L);
	set_str(L, "description", l->desc);
	if (l->pin)
		set_str(L, "pinned", l->pin);
	if (l->kind == LINK_CLSACT) {
		set_str(L, "type", "tc_clsact");
		set_str(L, "direction",
			l->hook.attach_point == BPF_TC_EGRESS ? "egress" : "ingress");
		set_int(L, "handle", l->tc.handle);
		set_int(L, "priority", l->tc.priority);
		set_ifindex(L, l->hook.ifindex, !l->netns);
		if (l->netns)
			set_str(L, "netns", l->netns);
		lua_pushboolean(L, l->owns_qdisc);
		lua_setfield(L, -2, "owns_qdisc");
		set_prog(L, l->tc.prog_id);
		return 1;
	}
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(l->fd, &info.i, &len) < 0)
		return lbpf_failf(L, errno, "link '%s': can't read its info", l->desc);
	set_int(L, "id", info.i.id);
	set_str(L, "type", link_type_name(info.i.type));
	set_prog(L, info.i.prog_id);
	switch (info.i.type) {
	case BPF_LINK_TYPE_XDP:
		set_ifindex(L, info.i.xdp.ifindex, !strstr(l->desc, " in netns "));
		break;
	case 11: /* tcx: { ifindex, attach_type } where xdp has ifindex */
		set_ifindex(L, info.i.xdp.ifindex, !strstr(l->desc, " in netns "));
		set_str(L, "attach_type", attach_type_name(info.raw[5]));
		break;
	case BPF_LINK_TYPE_NETNS:
		set_int(L, "netns_ino", info.i.netns.netns_ino);
		set_str(L, "attach_type", attach_type_name(info.i.netns.attach_type));
		break;
	case BPF_LINK_TYPE_CGROUP:
		set_int(L, "cgroup_id", (lua_Number)info.i.cgroup.cgroup_id);
		set_str(L, "attach_type", attach_type_name(info.i.cgroup.attach_type));
		break;
	case BPF_LINK_TYPE_TRACING:
		set_str(L, "attach_type", attach_type_name(info.i.tracing.attach_type));
		set_int(L, "target_btf_id", info.i.tracing.target_btf_id);
		break;
	default:
		break;
	}
	return 1;
}

int llink_description(lua_State *L)
{
	lua_pushstring(L, link_check(L, 1)->desc);
	return 1;
}

int llink_tostring(lua_State *L)
{
	struct link_ud *u = luaL_checkudata(L, 1, MT_LINK);
	struct lbpf_link *l = u->l;
	struct bpf_link_info info = {0};
	__u32 len = sizeof(info);

	if (!l || !l->live) {
		lua_pushfstring(L, "luabpf.link '%s' (detached)", l ? l->desc : "?");
	} else if (l->fd >= 0 && bpf_obj_get_info_by_fd(l->fd, &info, &len) == 0) {
		lua_pushfstring(L, "luabpf.link %d: %s%s%s", (int)info.id, l->desc,
				l->pin ? ", pinned at " : "", l->pin ? l->pin : "");
	} else {
		lua_pushfstring(L, "luabpf.link: %s", l->desc);
	}
	return 1;
}

static void describe_from_kernel(int fd, const char *how, char *out, size_t n)
{
	union {
		struct bpf_link_info i;
		__u32 raw[64];
	} info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info.i, &len) == 0)
		snprintf(out, n, "%s link %u (%s)", link_type_name(info.i.type), info.i.id, how);
	else
		snprintf(out, n, "link (%s)", how);
}

/* luabpf.link_from_pin(path): the pinned link, to update, detach or unpin. */
int llink_from_pin(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	struct bpf_link *bl = bpf_link__open(path);
	struct lbpf_link *l;
	char desc[PATH_MAX + 64], how[PATH_MAX + 16];

	if (!bl && errno == ENOENT && lbpf_bpffs_missing(path)) {
		lua_pushnil(L);
		lua_pushfstring(L, "can't open pinned link '%s': %s", path,
				lbpf_bpffs_missing(path));
		lua_pushliteral(L, "ENOENT");
		return 3;
	}
	if (!bl)
		return lbpf_failf(L, errno, "can't open pinned link '%s'", path);
	if (strcmp(lbpf_fd_kind(bpf_link__fd(bl)) ?: "", "link")) {
		bpf_link__destroy(bl);
		lua_pushnil(L);
		lua_pushfstring(L, "'%s' is pinned but is not a link (a map or a program?)", path);
		lua_pushliteral(L, "EINVAL");
		return 3;
	}
	snprintf(how, sizeof(how), "pinned at %s", path);
	describe_from_kernel(bpf_link__fd(bl), how, desc, sizeof(desc));
	lbpf_link__push(L, NULL, bl, desc);
	l = ((struct link_ud *)lua_touserdata(L, -1))->l;
	l->pin = strdup(path);
	return 1;
}

/* luabpf.link_from_id(id): any link in the system, by its id. */
int llink_from_id(lua_State *L)
{
	lua_Integer id = luaL_checkinteger(L, 1);
	char desc[128];
	int fd = bpf_link_get_fd_by_id((__u32)id);

	if (fd < 0)
		return lbpf_failf(L, errno, "no link with id %d", (int)id);
	describe_from_kernel(fd, "by id", desc, sizeof(desc));
	lbpf_link__push_fd(L, NULL, fd, desc);
	return 1;
}

/* luabpf.links() -> the live links this process made or opened. */
int llink_links(lua_State *L)
{
	int i = 0;

	lua_newtable(L);
	for (struct lbpf_link *l = link_live; l; l = l->next) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, l->ref);
		lua_rawseti(L, -2, ++i);
	}
	/* Oldest first reads better in a listing. */
	for (int a = 1, b = i; a < b; a++, b--) {
		lua_rawgeti(L, -1, a);
		lua_rawgeti(L, -2, b);
		lua_rawseti(L, -3, a);
		lua_rawseti(L, -2, b);
	}
	return 1;
}

/// Detach every live link that is not pinned (at shutdown). Returns how many.
