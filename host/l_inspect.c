// SPDX-License-Identifier: MIT
/*
 * bpf.inspect: what `luabpf ls` and `luabpf dump` read from the kernel about
 * every program, map and link on the machine, whoever loaded them. Plain
 * tables with bpftool's field names (its JSON is what scripts already parse),
 * no userdata: listing must never take ownership of someone else's link.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "l_inspect.h"

const char *const inspect_kinds[] = {"prog", "map", "link", NULL};

/* ---- names the installed libbpf 1.1 does not know yet ------------------ */

/* libbpf's name s, else newer[t], else "type T" in buf. */
static const char *type_name(const char *s, const char *const newer[], size_t nnewer, __u32 t,
			     char *buf, size_t n)
{
	if (!s && t < nnewer)
		s = newer[t];
	if (s)
		return s;
	snprintf(buf, n, "type %u", t);
	return buf;
}

static const char *map_type_name(__u32 t, char *buf, size_t n)
{
	static const char *const newer[] = {
	    [30] = "user_ringbuf", [31] = "cgrp_storage", [32] = "arena"};

	return type_name(libbpf_bpf_map_type_str((enum bpf_map_type)t), newer,
			 sizeof(newer) / sizeof(newer[0]), t, buf, n);
}

static const char *prog_type_name(__u32 t, char *buf, size_t n)
{
	static const char *const newer[] = {[32] = "syscall", [33] = "netfilter"};

	return type_name(libbpf_bpf_prog_type_str((enum bpf_prog_type)t), newer,
			 sizeof(newer) / sizeof(newer[0]), t, buf, n);
}

static const char *link_type_name(__u32 t, char *buf, size_t n)
{
	static const char *const newer[] = {
	    [8] = "kprobe_multi",  [9] = "struct_ops", [10] = "netfilter", [11] = "tcx",
	    [12] = "uprobe_multi", [13] = "netkit",    [14] = "sockmap"};

	return type_name(libbpf_bpf_link_type_str((enum bpf_link_type)t), newer,
			 sizeof(newer) / sizeof(newer[0]), t, buf, n);
}

static const char *attach_type_name(__u32 t, char *buf, size_t n)
{
	static const char *const newer[] = {
	    [42] = "trace_kprobe_multi",
	    [43] = "lsm_cgroup",
	    [44] = "struct_ops",
	    [45] = "netfilter",
	    [46] = "tcx_ingress",
	    [47] = "tcx_egress",
	    [48] = "trace_uprobe_multi",
	    [49] = "cgroup_unix_connect",
	    [50] = "cgroup_unix_sendmsg",
	    [51] = "cgroup_unix_recvmsg",
	    [52] = "cgroup_unix_getpeername",
	    [53] = "cgroup_unix_getsockname",
	    [54] = "netkit_primary",
	    [55] = "netkit_peer",
	    [56] = "trace_kprobe_session",
	    [57] = "trace_uprobe_session",
	};

	return type_name(libbpf_bpf_attach_type_str((enum bpf_attach_type)t), newer,
			 sizeof(newer) / sizeof(newer[0]), t, buf, n);
}

/* ---- small table helpers ----------------------------------------------- */

void inspect_set_num(lua_State *L, const char *k, lua_Number v)
{
	lua_pushnumber(L, v);
	lua_setfield(L, -2, k);
}

/* u64 counters stay exact: a number below 2^53, else a decimal string. */
static void set_u64(lua_State *L, const char *k, __u64 v)
{
	char buf[32];

	if (v < (1ULL << 53)) {
		lua_pushnumber(L, (lua_Number)v);
	} else {
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
		lua_pushstring(L, buf);
	}
	lua_setfield(L, -2, k);
}

void inspect_set_str(lua_State *L, const char *k, const char *v)
{
	lua_pushstring(L, v);
	lua_setfield(L, -2, k);
}

static void set_bool(lua_State *L, const char *k, bool v)
{
	lua_pushboolean(L, v);
	lua_setfield(L, -2, k);
}

/* A numeric line of the fd's fdinfo ("memlock:\t4096"); false if absent. */
static bool fdinfo_u64(int fd, const char *key, unsigned long long *out)
{
	char path[64], line[256];
	size_t klen = strlen(key);
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && line[klen] == ':')
			found = sscanf(line + klen + 1, "%lli", (long long *)out) == 1;
	fclose(f);
	return found;
}

/* ---- programs ------------------------------------------------------------ */

/* A new table with what every program and map has first. */
static void push_head(lua_State *L, const char *kind, __u32 id, const char *type, const char *name)
{
	lua_newtable(L);
	inspect_set_str(L, "kind", kind);
	inspect_set_num(L, "id", id);
	inspect_set_str(L, "type", type);
	inspect_set_str(L, "name", name);
}

static int push_prog(lua_State *L, int fd)
{
	struct bpf_prog_info info;
	unsigned long long memlock;
	char tag[2 * BPF_TAG_SIZE + 1], buf[32];
	__u32 *ids;
	int nids = lbpf_prog_info(fd, &info, &ids);

	if (nids < 0)
		return lbpf_fail(L, errno);
	push_head(L, "prog", info.id, prog_type_name(info.type, buf, sizeof(buf)), info.name);
	for (int i = 0; i < BPF_TAG_SIZE; i++)
		snprintf(tag + 2 * i, 3, "%02x", info.tag[i]);
	inspect_set_str(L, "tag", tag);
	set_bool(L, "gpl_compatible", info.gpl_compatible);
	/* load_time counts from boot; bpftool prints wall-clock seconds. */
	inspect_set_num(L, "loaded_at", floor(lbpf_boot_to_wall(info.load_time)));
	inspect_set_num(L, "uid", info.created_by_uid);
	inspect_set_num(L, "bytes_xlated", info.xlated_prog_len);
	set_bool(L, "jited", info.jited_prog_len > 0);
	inspect_set_num(L, "bytes_jited", info.jited_prog_len);
	if (fdinfo_u64(fd, "memlock", &memlock))
		inspect_set_num(L, "bytes_memlock", (lua_Number)memlock);
	lbpf_set_ids(L, ids, nids);
	free(ids);
	if (info.btf_id)
		inspect_set_num(L, "btf_id", info.btf_id);
	if (info.run_time_ns) {
		set_u64(L, "run_time_ns", info.run_time_ns);
		set_u64(L, "run_cnt", info.run_cnt);
	}
	if (info.recursion_misses)
		set_u64(L, "recursion_misses", info.recursion_misses);
	inspect_set_num(L, "verified_insns", info.verified_insns);
	return 1;
}

/* ---- maps ------------------------------------------------------------------ */

static int push_map(lua_State *L, int fd)
{
	struct bpf_map_info info = {0};
	__u32 len = sizeof(info);
	unsigned long long v;
	char buf[32];

	if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0)
		return lbpf_fail(L, errno);
	push_head(L, "map", info.id, map_type_name(info.type, buf, sizeof(buf)), info.name);
	inspect_set_num(L, "flags", info.map_flags);
	inspect_set_num(L, "bytes_key", info.key_size);
	inspect_set_num(L, "bytes_value", info.value_size);
	inspect_set_num(L, "max_entries", info.max_entries);
	if (fdinfo_u64(fd, "memlock", &v))
		inspect_set_num(L, "bytes_memlock", (lua_Number)v);
	if (info.type == BPF_MAP_TYPE_PROG_ARRAY && fdinfo_u64(fd, "owner_prog_type", &v)) {
		inspect_set_str(L, "owner_prog_type", prog_type_name((__u32)v, buf, sizeof(buf)));
		if (fdinfo_u64(fd, "owner_jited", &v))
			set_bool(L, "owner_jited", v != 0);
	}
	if (info.map_extra)
		set_u64(L, "map_extra", info.map_extra);
	inspect_set_num(L, "frozen", fdinfo_u64(fd, "frozen", &v) ? (lua_Number)v : 0);
	if (info.btf_id) {
		inspect_set_num(L, "btf_id", info.btf_id);
		inspect_set_num(L, "btf_key_type_id", info.btf_key_type_id);
		inspect_set_num(L, "btf_value_type_id", info.btf_value_type_id);
	}
	return 1;
}

/* ---- links ----------------------------------------------------------------- */

/* Is prog_id attached to ifindex in *this* netns? An ifindex alone may name another netns's device.
 */
static bool ifindex_runs(__u32 ifindex, __u32 attach_type, __u32 prog_id, bool xdp)
{
	__u32 ids[64], cnt = 64;

	if (xdp) {
		LIBBPF_OPTS(bpf_xdp_query_opts, q);

		return bpf_xdp_query((int)ifindex, 0, &q) == 0 &&
		       (q.prog_id == prog_id || q.drv_prog_id == prog_id ||
			q.skb_prog_id == prog_id || q.hw_prog_id == prog_id);
	}
	if (bpf_prog_query((int)ifindex, (enum bpf_attach_type)attach_type, 0, NULL, ids, &cnt))
		return false;
	for (__u32 i = 0; i < cnt; i++)
		if (ids[i] == prog_id)
			return true;
	return false;
}

static void set_ifindex(lua_State *L, __u32 ifindex, __u32 attach_type, __u32 prog_id, bool xdp)
{
	char name[IF_NAMESIZE];

	inspect_set_num(L, "ifindex", ifindex);
	if (ifindex_runs(ifindex, attach_type, prog_id, xdp) && if_indextoname(ifindex, name))
		inspect_set_str(L, "devname", name);
}

/*
 * bpf_link_info as kernel 6.18 lays it out; the union starts at byte 16.
 * libbpf 1.1's header lacks tcx, netkit, netfilter and perf_event.
 */
union link_info {
	struct bpf_link_info i;
	__u32 raw[32];
	__u64 raw64[16];
};

static int push_link(lua_State *L, int fd)
{
	union link_info info;
	__u32 len = sizeof(info);
	char buf[32], name[512] = "";

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info.i, &len) < 0)
		return lbpf_fail(L, errno);
	/* Names come back only into a buffer we hand over: ask again with one. */
	if (info.i.type == BPF_LINK_TYPE_RAW_TRACEPOINT) {
		memset(&info, 0, sizeof(info));
		info.raw64[2] = (__u64)(uintptr_t)name;
		info.raw[6] = sizeof(name);
		len = sizeof(info);
		bpf_obj_get_info_by_fd(fd, &info.i, &len);
	} else if (info.i.type == BPF_LINK_TYPE_PERF_EVENT && info.raw[4] >= 1 &&
		   info.raw[4] <= 5) {
		__u32 pe = info.raw[4];

		memset(&info, 0, sizeof(info));
		info.raw64[3] = (__u64)(uintptr_t)name;
		info.raw[8] = sizeof(name);
		len = sizeof(info);
		if (bpf_obj_get_info_by_fd(fd, &info.i, &len) < 0 || info.raw[4] != pe)
			name[0] = '\0';
	}
	lua_newtable(L);
	inspect_set_str(L, "kind", "link");
	inspect_set_num(L, "id", info.i.id);
	inspect_set_str(L, "type", link_type_name(info.i.type, buf, sizeof(buf)));
	inspect_set_num(L, "prog_id", info.i.prog_id);
	switch (info.i.type) {
	case BPF_LINK_TYPE_RAW_TRACEPOINT:
		inspect_set_str(L, "tp_name", name);
		break;
	case BPF_LINK_TYPE_TRACING:
		inspect_set_str(L, "attach_type",
				attach_type_name(info.i.tracing.attach_type, buf, sizeof(buf)));
		inspect_set_num(L, "target_obj_id", info.i.tracing.target_obj_id);
		inspect_set_num(L, "target_btf_id", info.i.tracing.target_btf_id);
		break;
	case BPF_LINK_TYPE_CGROUP:
		set_u64(L, "cgroup_id", info.i.cgroup.cgroup_id);
		inspect_set_str(L, "attach_type",
				attach_type_name(info.i.cgroup.attach_type, buf, sizeof(buf)));
		break;
	case BPF_LINK_TYPE_NETNS:
		inspect_set_num(L, "netns_ino", info.i.netns.netns_ino);
		inspect_set_str(L, "attach_type",
				attach_type_name(info.i.netns.attach_type, buf, sizeof(buf)));
		break;
	case BPF_LINK_TYPE_XDP:
		set_ifindex(L, info.i.xdp.ifindex, 0, info.i.prog_id, true);
		break;
	case 9: /* struct_ops { map_id } */
		inspect_set_num(L, "map_id", info.raw[4]);
		break;
	case 10: /* netfilter { pf, hooknum, priority, flags } */
		inspect_set_num(L, "pf", info.raw[4]);
		inspect_set_num(L, "hooknum", info.raw[5]);
		inspect_set_num(L, "prio", (int32_t)info.raw[6]);
		inspect_set_num(L, "flags", info.raw[7]);
		break;
	case 11: /* tcx and netkit { ifindex, attach_type } */
	case 13:
		set_ifindex(L, info.raw[4], info.raw[5], info.i.prog_id, false);
		inspect_set_str(L, "attach_type", attach_type_name(info.raw[5], buf, sizeof(buf)));
		break;
	case 14: /* sockmap { map_id, attach_type } */
		inspect_set_num(L, "map_id", info.raw[4]);
		inspect_set_str(L, "attach_type", attach_type_name(info.raw[5], buf, sizeof(buf)));
		break;
	case BPF_LINK_TYPE_PERF_EVENT: {
		/* { type, :32, union at byte 24 } */
		static const char *const pe[] = {"unspec",    "uprobe",	    "uretprobe", "kprobe",
						 "kretprobe", "tracepoint", "event"};
		__u32 t = info.raw[4];

		inspect_set_str(L, "event_type", t < 7 ? pe[t] : "unknown");
		if (t == 5 && name[0])
			inspect_set_str(L, "tp_name", name);
		else if ((t == 3 || t == 4) && name[0])
			inspect_set_str(L, "func", name);
		else if ((t == 1 || t == 2) && name[0]) {
			inspect_set_str(L, "file", name);
			inspect_set_num(L, "offset", info.raw[9]);
		}
		break;
	}
	default:
		break;
	}
	return 1;
}

static int push_by_kind(lua_State *L, enum kind k, int fd)
{
	switch (k) {
	case K_PROG:
		return push_prog(L, fd);
	case K_MAP:
		return push_map(L, fd);
	default:
		return push_link(L, fd);
	}
}

/* After lbpf_failf's triple: the missing-capability hint goes after the errno text. */
static int add_hint(lua_State *L, int err)
{
	lua_pop(L, 1);
	lua_pushstring(L, lbpf_perm_hint(err));
	lua_concat(L, 2);
	lua_pushstring(L, lbpf_errno_name(err));
	return 3;
}

/* ---- module functions ------------------------------------------------------- */

static int (*const next_id[])(__u32, __u32 *) = {bpf_prog_get_next_id, bpf_map_get_next_id,
						 bpf_link_get_next_id};
static int (*const fd_by_id[])(__u32) = {bpf_prog_get_fd_by_id, bpf_map_get_fd_by_id,
					 bpf_link_get_fd_by_id};

/* inspect.ids(kind) -> { id, ... } ascending, or nil, msg, errno */
static int l_ids(lua_State *L)
{
	enum kind k = (enum kind)luaL_checkoption(L, 1, NULL, inspect_kinds);
	__u32 id = 0;
	int n = 0;

	lua_newtable(L);
	for (;;) {
		if (next_id[k](id, &id)) {
			int err = errno;

			if (err == ENOENT)
				break;
			lbpf_failf(L, err, "can't list %ss", inspect_kinds[k]);
			return add_hint(L, err);
		}
		lua_pushnumber(L, id);
		lua_rawseti(L, -2, ++n);
	}
	return 1;
}

__u32 inspect_check_id(lua_State *L, int idx)
{
	lua_Number id = luaL_checknumber(L, idx);

	if (id < 1 || id > 4294967295.0 || id != (lua_Number)(__u32)id)
		luaL_error(L, "bpf.inspect: an id is a positive integer, got %f", id);
	return (__u32)id;
}

/* inspect.info(kind, id) -> info table | nil, msg, errno */
static int l_info(lua_State *L)
{
	enum kind k = (enum kind)luaL_checkoption(L, 1, NULL, inspect_kinds);
	__u32 id = inspect_check_id(L, 2);
	int fd = fd_by_id[k](id), rc;

	if (fd < 0) {
		int err = errno;

		if (err == ENOENT)
			return lbpf_failf(L, err, "no %s with id %u", inspect_kinds[k], id);
		lbpf_failf(L, err, "can't open %s %u", inspect_kinds[k], id);
		return add_hint(L, err);
	}
	rc = push_by_kind(L, k, fd);
	close(fd);
	return rc;
}

/* inspect.pin(path) -> info table with kind = "prog" | "map" | "link", or nil, msg, errno */
static int l_pin(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	const char *kind;
	int fd, rc, err;

	fd = bpf_obj_get(path);
	if (fd < 0) {
		struct stat st;

		err = errno;
		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
			return lbpf_failf(L, EISDIR, "'%s' is a directory, not a pin", path);
		if (err != ENOENT && !lbpf_on_bpffs(path)) {
			lua_pushnil(L);
			lua_pushfstring(
			    L,
			    "'%s' is not a pin: it is not on bpffs (pins live under /sys/fs/bpf)",
			    path);
			lua_pushliteral(L, "EINVAL");
			return 3;
		}
		lbpf_failf(L, err, "can't open pin '%s'", path);
		return add_hint(L, err);
	}
	kind = lbpf_fd_kind(fd);
	if (!kind) {
		close(fd);
		lua_pushnil(L);
		lua_pushfstring(L, "'%s' holds no program, map or link", path);
		lua_pushliteral(L, "EINVAL");
		return 3;
	}
	rc = push_by_kind(L,
			  !strcmp(kind, "prog")	 ? K_PROG
			  : !strcmp(kind, "map") ? K_MAP
						 : K_LINK,
			  fd);
	close(fd);
	return rc;
}

/* Add {pid=, comm=} to holders[kind][id], once per pid. [holders] */
static const luaL_Reg inspect_fns[] = {
    {"ids", l_ids},	   {"info", l_info},
    {"pin", l_pin},	   {"holders", linspect_holders},
    {"xdp", linspect_xdp}, {"layout", linspect_layout},
    {NULL, NULL},
};

/// Register bpf.inspect (ids, info, pin, holders, xdp, layout) on the module table at -1.
void lbpf_inspect__register(lua_State *L)
{
	lbpf_new_lib(L, "inspect", inspect_fns);
}
