// SPDX-License-Identifier: MIT
/*
 * luabpf.program: a BPF program from an object (or opened by pin or id),
 * its kernel info, pins, test runs, and every way to attach it. Attaching
 * returns a link (l_link.c); a kernel link wherever the kernel makes one,
 * so detach, pin and update work the same for all of them.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/if_link.h>

#include "luabpf.h"

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

/* ---- access ------------------------------------------------------------ */

static struct prog_ud *check_ud(lua_State *L, int idx)
{
	struct prog_ud *u = luaL_checkudata(L, idx, MT_PROG);

	if (!u->name)
		luaL_error(L, "closed program");
	if (u->o) {
		char what[128];

		snprintf(what, sizeof(what), "program '%s'", u->name);
		lbpf_object__check_open(L, u->o, what);
	}
	return u;
}

static int ud_fd(struct prog_ud *u)
{
	return u->p ? bpf_program__fd(u->p) : u->fd;
}

/* The fd of a loaded program, or raise saying why there is none. */
static int check_fd(lua_State *L, struct prog_ud *u)
{
	int fd = ud_fd(u);

	if (fd >= 0)
		return fd;
	if (!u->o->loaded)
		luaL_error(L, "program '%s' is not loaded: call obj:load() first", u->name);
	luaL_error(L, "program '%s' was not loaded (autoload is off)", u->name);
	return -1;
}

static enum bpf_prog_type ud_type(struct prog_ud *u)
{
	return u->p ? bpf_program__type(u->p) : u->type;
}

static const char *prog_type_name(enum bpf_prog_type t)
{
	const char *s = libbpf_bpf_prog_type_str(t);

	return s ? s : "unknown";
}

/// Push a program userdata for prog of object o (takes a reference on o).
void lbpf_prog__push(lua_State *L, struct lbpf_object *o, struct bpf_program *prog)
{
	struct prog_ud *u = lua_newuserdata(L, sizeof(*u));

	memset(u, 0, sizeof(*u));
	u->o = o;
	u->p = prog;
	u->fd = -1;
	u->name = strdup(bpf_program__name(prog));
	lbpf_object__ref(o);
	luaL_getmetatable(L, MT_PROG);
	lua_setmetatable(L, -2);
}

/// The fd of the program userdata at idx, or -1 if it is not a loaded program.
int lbpf_prog__to_fd(lua_State *L, int idx)
{
	struct prog_ud *u = luaL_testudata(L, idx, MT_PROG);

	if (!u || !u->name || (u->o && !u->o->obj))
		return -1;
	return ud_fd(u) >= 0 ? ud_fd(u) : -1; /* libbpf says -EINVAL before load */
}

/* ---- small helpers -------------------------------------------------------- */

/* nil, "what: ENAME: text\nHINT: hint", "ENAME" */
static int fail_hint(lua_State *L, int err, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_hint(lua_State *L, int err, const char *hint, const char *fmt, ...)
{
	char what[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	lua_pushnil(L);
	if (hint && *hint)
		lua_pushfstring(L, "%s: %s: %s\nHINT: %s", what, lbpf_errno_name(err),
				strerror(err), hint);
	else
		lua_pushfstring(L, "%s: %s: %s%s", what, lbpf_errno_name(err), strerror(err),
				lbpf_perm_hint(err));
	lua_pushstring(L, lbpf_errno_name(err));
	return 3;
}

static void in_netns_text(char *out, size_t n, const char *netns)
{
	if (netns && *netns)
		snprintf(out, n, " in netns '%s'", netns);
	else
		out[0] = '\0';
}

static int fail_netns(lua_State *L, struct prog_ud *u, int err, const char *netns)
{
	char path[PATH_MAX];

	if (strchr(netns, '/'))
		snprintf(path, sizeof(path), "%s", netns);
	else
		snprintf(path, sizeof(path), "/run/netns/%s", netns);
	if (err == ENOENT)
		return fail_hint(L, err,
				 "create it with `ip netns add NAME`, or pass a path "
				 "such as /proc/PID/ns/net",
				 "program '%s': netns '%s' not found (%s)", u->name, netns, path);
	return lbpf_failf(L, err, "program '%s': can't enter netns '%s'", u->name, netns);
}

static void require_type(lua_State *L, struct prog_ud *u, enum bpf_prog_type want, const char *how,
			 const char *sec)
{
	enum bpf_prog_type t = ud_type(u);

	if (t != want)
		luaL_error(L, "program '%s' is a %s program: %s needs a %s one (SEC(\"%s\"))",
			   u->name, prog_type_name(t), how, prog_type_name(want), sec);
}

/* prog:attach_X(ifname_or_index [, opts]): the interface at 2, options at 3. */
static const char *check_ifname(lua_State *L, struct prog_ud *u, const char *how,
				const char *const known[])
{
	if (lua_type(L, 2) != LUA_TSTRING && lua_type(L, 2) != LUA_TNUMBER)
		luaL_error(L, "program '%s': %s expects an interface name or index, got %s",
			   u->name, how, luaL_typename(L, 2));
	lbpf_check_options(L, 3, how, known);
	return lua_tostring(L, 2);
}

static int fail_no_iface(lua_State *L, struct prog_ud *u, const char *ifname, const char *where)
{
	lua_pushnil(L);
	lua_pushfstring(L, "program '%s': interface '%s' not found%s: ENODEV: %s", u->name, ifname,
			where, strerror(ENODEV));
	lua_pushliteral(L, "ENODEV");
	return 3;
}

/* Who holds link `id`? "pid 123 (luabpf)" from /proc/PID/fdinfo, or "". */
static void link_holder(__u32 id, char *out, size_t n)
{
	DIR *proc = opendir("/proc");
	struct dirent *pe;
	char want[32];

	out[0] = '\0';
	snprintf(want, sizeof(want), "link_id:\t%u\n", id);
	while (proc && (pe = readdir(proc)) && !out[0]) {
		char path[PATH_MAX], target[64], line[128];
		struct dirent *fe;
		DIR *fds;

		if (pe->d_name[0] < '1' || pe->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/fd", pe->d_name);
		fds = opendir(path);
		while (fds && (fe = readdir(fds)) && !out[0]) {
			ssize_t len;
			FILE *f;

			snprintf(path, sizeof(path), "/proc/%s/fd/%s", pe->d_name, fe->d_name);
			len = readlink(path, target, sizeof(target) - 1);
			if (len <= 0)
				continue;
			target[len] = '\0';
			if (strcmp(target, "anon_inode:bpf_link"))
				continue;
			snprintf(path, sizeof(path), "/proc/%s/fdinfo/%s", pe->d_name, fe->d_name);
			f = fopen(path, "r");
			while (f && fgets(line, sizeof(line), f)) {
				if (strcmp(line, want))
					continue;
				char comm[64] = "?";
				FILE *c;

				snprintf(path, sizeof(path), "/proc/%s/comm", pe->d_name);
				c = fopen(path, "r");
				if (c && fgets(comm, sizeof(comm), c))
					comm[strcspn(comm, "\n")] = '\0';
				if (c)
					fclose(c);
				snprintf(out, n, "pid %.16s (%.32s)", pe->d_name, comm);
				break;
			}
			if (f)
				fclose(f);
		}
		if (fds)
			closedir(fds);
	}
	if (proc)
		closedir(proc);
}

/* The id of the link of type ltype attaching prog_id at ifindex, or 0. */
static __u32 find_link(__u32 ltype, __u32 ifindex, __u32 prog_id)
{
	__u32 id = 0;

	while (bpf_link_get_next_id(id, &id) == 0) {
		union {
			struct bpf_link_info i;
			__u32 raw[64];
		} info;
		__u32 len = sizeof(info);
		int fd = bpf_link_get_fd_by_id(id);

		if (fd < 0)
			continue;
		memset(&info, 0, sizeof(info));
		if (bpf_obj_get_info_by_fd(fd, &info.i, &len) == 0 && info.i.type == ltype &&
		    info.i.xdp.ifindex == ifindex && (!prog_id || info.i.prog_id == prog_id)) {
			close(fd);
			return id;
		}
		close(fd);
	}
	return 0;
}

static void prog_name_by_id(__u32 id, char *out, size_t n)
{
	struct bpf_prog_info info = {0};
	__u32 len = sizeof(info);
	int fd = bpf_prog_get_fd_by_id(id);

	snprintf(out, n, "?");
	if (fd < 0)
		return;
	if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0)
		snprintf(out, n, "%s", info.name);
	close(fd);
}

/* ---- XDP ------------------------------------------------------------- */

struct xdp_job {
	const char *ifname;
	int prog_fd;
	__u32 flags;
	bool replace;
	unsigned ifindex;
	int link_fd;
	int err;
	const char *stage;	     /* where it failed */
	struct bpf_xdp_query_opts q; /* what is attached, after EBUSY/EEXIST */
	bool replaced;
};

static int xdp_create(struct xdp_job *j, __u32 flags)
{
	LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = flags);

	j->link_fd = bpf_link_create(j->prog_fd, (int)j->ifindex, BPF_XDP, &opts);
	j->err = j->link_fd < 0 ? errno : 0;
	return j->err;
}

static int xdp_job_run(void *arg)
{
	struct xdp_job *j = arg;
	__u32 flags = j->flags;

	j->ifindex = lbpf_ifindex(j->ifname);
	if (!j->ifindex) {
		j->err = ENODEV;
		j->stage = "ifindex";
		return 0;
	}
	if (j->replace) {
		LIBBPF_OPTS(bpf_xdp_query_opts, q);

		/* A program attached by netlink (ip link set xdp) is not a link:
		 * take it off first. Links are never taken over. */
		if (bpf_xdp_query((int)j->ifindex, 0, &q) == 0 && q.prog_id &&
		    !find_link(BPF_LINK_TYPE_XDP, j->ifindex, q.prog_id)) {
			__u32 mode = q.attach_mode == XDP_ATTACHED_SKB	? XDP_FLAGS_SKB_MODE
				     : q.attach_mode == XDP_ATTACHED_HW ? XDP_FLAGS_HW_MODE
									: XDP_FLAGS_DRV_MODE;

			if (bpf_xdp_detach((int)j->ifindex, mode, NULL) == 0)
				j->replaced = true;
		}
	}
	if (flags) {
		xdp_create(j, flags);
	} else if (xdp_create(j, XDP_FLAGS_DRV_MODE) == EOPNOTSUPP) {
		j->flags = XDP_FLAGS_SKB_MODE;
		xdp_create(j, XDP_FLAGS_SKB_MODE);
	} else {
		j->flags = XDP_FLAGS_DRV_MODE;
	}
	if (j->err == EBUSY || j->err == EEXIST) {
		j->q.sz = sizeof(j->q);
		bpf_xdp_query((int)j->ifindex, 0, &j->q);
	}
	j->stage = "attach";
	return 0;
}

static const char *xdp_mode_name(__u32 flags)
{
	return flags == XDP_FLAGS_SKB_MODE  ? "generic"
	       : flags == XDP_FLAGS_HW_MODE ? "offload"
					    : "native";
}

static int xdp_busy(lua_State *L, struct prog_ud *u, struct xdp_job *j, const char *netns)
{
	char hint[1024], holder[128], pname[64], where[PATH_MAX + 16];
	__u32 id = j->q.prog_id	      ? j->q.prog_id
		   : j->q.drv_prog_id ? j->q.drv_prog_id
				      : j->q.skb_prog_id;
	const char *mode = j->q.attach_mode == XDP_ATTACHED_SKB	    ? "generic"
			   : j->q.attach_mode == XDP_ATTACHED_HW    ? "offload"
			   : j->q.attach_mode == XDP_ATTACHED_MULTI ? "several modes"
								    : "native";
	__u32 link_id = id ? find_link(BPF_LINK_TYPE_XDP, j->ifindex, id) : 0;

	in_netns_text(where, sizeof(where), netns);
	prog_name_by_id(id, pname, sizeof(pname));
	if (!id) {
		snprintf(hint, sizeof(hint),
			 "'%s' has an XDP program in another mode; "
			 "native and generic can't be active at once",
			 j->ifname);
	} else if (link_id) {
		link_holder(link_id, holder, sizeof(holder));
		snprintf(hint, sizeof(hint),
			 "'%s'%s already runs XDP program '%s' (id %u, %s) through bpf_link %u, "
			 "%s%s; detach that link (or swap programs with link:update()), or see "
			 "`bpftool link show id %u`",
			 j->ifname, where, pname, id, mode, link_id,
			 holder[0] ? "held by " : "pinned or held by another process", holder,
			 link_id);
	} else {
		snprintf(hint, sizeof(hint),
			 "'%s'%s already runs XDP program '%s' (id %u, %s), attached by netlink "
			 "(ip link set ... xdp): pass replace=true to take it over, or remove it "
			 "with `ip link set dev %s xdp off`",
			 j->ifname, where, pname, id, mode, j->ifname);
	}
	return fail_hint(L, j->err, hint, "can't attach XDP program '%s' to '%s'%s (%s)", u->name,
			 j->ifname, where, xdp_mode_name(j->flags));
}

/* prog:attach_xdp(ifname_or_index [, {mode=, netns=, replace=}]) -> link */
static int l_attach_xdp(lua_State *L)
{
	static const char *const known[] = {"mode", "netns", "replace", NULL};
	static const char *const modes[] = {"auto", "native", "generic", NULL};
	static const __u32 mode_flags[] = {0, XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE};
	struct prog_ud *u = check_ud(L, 1);
	struct xdp_job j = {.link_fd = -1};
	const char *netns;
	char where[PATH_MAX + 16], desc[PATH_MAX + 128];
	int rc, m;

	j.ifname = check_ifname(L, u, "attach_xdp", known);
	netns = lbpf_opt_string(L, 3, "netns", NULL);
	m = lbpf_opt_choice(L, 3, "attach_xdp", "mode", modes);
	j.flags = mode_flags[m];
	j.replace = lbpf_opt_bool(L, 3, "replace", false);
	require_type(L, u, BPF_PROG_TYPE_XDP, "attach_xdp", "xdp");
	j.prog_fd = check_fd(L, u);

	rc = lbpf_in_netns(netns, xdp_job_run, &j);
	if (rc < 0)
		return fail_netns(L, u, -rc, netns);
	in_netns_text(where, sizeof(where), netns);
	if (j.err == ENODEV && !strcmp(j.stage, "ifindex"))
		return fail_no_iface(L, u, j.ifname, where);
	if (j.err == EBUSY || j.err == EEXIST)
		return xdp_busy(L, u, &j, netns);
	if (j.err == EOPNOTSUPP)
		return fail_hint(L, j.err,
				 "the driver lacks native XDP: use mode='generic' "
				 "(or mode='auto')",
				 "can't attach XDP program '%s' to '%s'%s (native)", u->name,
				 j.ifname, where);
	if (j.err)
		return fail_hint(L, j.err, NULL, "can't attach XDP program '%s' to '%s'%s (%s)",
				 u->name, j.ifname, where, xdp_mode_name(j.flags));
	if (!m && j.flags == XDP_FLAGS_SKB_MODE)
		lbpf_log(LBPF_INFO, "'%s'%s has no native XDP: attached '%s' in generic mode",
			 j.ifname, where, u->name);
	if (j.replaced)
		lbpf_log(LBPF_INFO, "'%s'%s: replaced the XDP program attached by netlink",
			 j.ifname, where);
	snprintf(desc, sizeof(desc), "xdp on %s%s (%s)", j.ifname, where, xdp_mode_name(j.flags));
	lbpf_link__push_fd(L, u->o, j.link_fd, desc);
	return 1;
}

/* ---- tc ---------------------------------------------------------------- */

struct tc_job {
	const char *ifname;
	int prog_fd;
	bool egress;
	bool try_tcx, try_clsact;
	__u32 handle, priority;
	unsigned ifindex;
	int link_fd;
	int err;
	bool no_iface;
	bool used_tcx, created_qdisc;
	struct bpf_tc_hook hook;
	struct bpf_tc_opts opts;
};

static int tc_job_run(void *arg)
{
	struct tc_job *j = arg;

	j->ifindex = lbpf_ifindex(j->ifname);
	if (!j->ifindex) {
		j->err = ENODEV;
		j->no_iface = true;
		return 0;
	}
	if (j->try_tcx) {
		j->link_fd = bpf_link_create(j->prog_fd, (int)j->ifindex,
					     j->egress ? LBPF_TCX_EGRESS : LBPF_TCX_INGRESS, NULL);
		if (j->link_fd >= 0) {
			j->used_tcx = true;
			j->err = 0;
			return 0;
		}
		j->err = errno;
		/* EINVAL: a kernel before 6.6 that does not know tcx. */
		if (!j->try_clsact || j->err != EINVAL)
			return 0;
		lbpf_log(LBPF_INFO, "tcx not supported here: attaching to a clsact qdisc instead");
	}
	memset(&j->hook, 0, sizeof(j->hook));
	j->hook.sz = sizeof(j->hook);
	j->hook.ifindex = (int)j->ifindex;
	j->hook.attach_point = j->egress ? BPF_TC_EGRESS : BPF_TC_INGRESS;
	/* An existing clsact is fine: keep libbpf from warning about it. */
	libbpf_print_fn_t print = libbpf_set_print(NULL);
	int rc = bpf_tc_hook_create(&j->hook);

	j->err = rc < 0 ? errno : 0;
	libbpf_set_print(print);
	if (rc == 0)
		j->created_qdisc = true;
	else if (j->err != EEXIST)
		return 0;
	memset(&j->opts, 0, sizeof(j->opts));
	j->opts.sz = sizeof(j->opts);
	j->opts.prog_fd = j->prog_fd;
	j->opts.handle = j->handle;
	j->opts.priority = j->priority;
	if (bpf_tc_attach(&j->hook, &j->opts) < 0) {
		j->err = errno;
		if (j->created_qdisc) {
			struct bpf_tc_hook h = j->hook;

			h.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
			bpf_tc_hook_destroy(&h);
		}
		return 0;
	}
	j->err = 0;
	/* The link finds the filter by handle and priority, not by fd. */
	j->opts.prog_fd = 0;
	j->opts.flags = 0;
	return 0;
}

/* prog:attach_tc(ifname [, {direction=, netns=, mode=, priority=, handle=}]) -> link */
static int l_attach_tc(lua_State *L)
{
	static const char *const known[] = {"direction", "netns",  "mode",
					    "priority",	 "handle", NULL};
	static const char *const dirs[] = {"ingress", "egress", NULL};
	enum { TC_AUTO, TC_TCX, TC_CLSACT };
	static const char *const modes[] = {"auto", "tcx", "clsact", NULL};
	struct prog_ud *u = check_ud(L, 1);
	struct tc_job j = {.link_fd = -1};
	const char *netns, *dir;
	char where[PATH_MAX + 16], desc[PATH_MAX + 128];
	lua_Integer prio, handle;
	int rc, mode;

	j.ifname = check_ifname(L, u, "attach_tc", known);
	netns = lbpf_opt_string(L, 3, "netns", NULL);
	j.egress = lbpf_opt_choice(L, 3, "attach_tc", "direction", dirs) == 1;
	dir = dirs[j.egress];
	mode = lbpf_opt_choice(L, 3, "attach_tc", "mode", modes);
	prio = lbpf_opt_integer(L, 3, "priority", 0);
	handle = lbpf_opt_integer(L, 3, "handle", 0);
	if (prio < 0 || prio > 0xffff)
		return luaL_error(L, "attach_tc: option 'priority' expects 1..65535, got %d",
				  (int)prio);
	if (handle < 0 || handle > 0xffffffffLL)
		return luaL_error(L, "attach_tc: option 'handle' expects a 32-bit number");
	if (mode == TC_TCX) {
		if (prio || handle)
			return luaL_error(
			    L, "attach_tc: 'priority' and 'handle' are clsact filter "
			       "settings: use mode='clsact' (tcx orders programs itself)");
		j.try_tcx = true;
	} else if (mode == TC_CLSACT) {
		j.try_clsact = true;
	} else {
		/* auto: a priority or handle only means something to clsact. */
		j.try_tcx = !prio && !handle;
		j.try_clsact = true;
	}
	j.priority = (__u32)prio;
	j.handle = (__u32)handle;
	require_type(L, u, BPF_PROG_TYPE_SCHED_CLS, "attach_tc", "tc");
	j.prog_fd = check_fd(L, u);

	rc = lbpf_in_netns(netns, tc_job_run, &j);
	if (rc < 0)
		return fail_netns(L, u, -rc, netns);
	in_netns_text(where, sizeof(where), netns);
	if (j.no_iface)
		return fail_no_iface(L, u, j.ifname, where);
	if (j.err == EEXIST && !j.used_tcx && j.try_clsact)
		return fail_hint(
		    L, j.err,
		    "pick another priority=, or see `tc filter show dev IF "
		    "ingress|egress`",
		    "can't attach tc program '%s' to '%s'%s %s (clsact): a filter with "
		    "handle %u priority %u exists",
		    u->name, j.ifname, where, dir, j.handle, j.priority);
	if (j.err)
		return fail_hint(L, j.err, NULL, "can't attach tc program '%s' to '%s'%s %s (%s)",
				 u->name, j.ifname, where, dir, j.try_tcx ? "tcx" : "clsact");
	if (j.used_tcx) {
		snprintf(desc, sizeof(desc), "tc %s on %s%s (tcx)", dir, j.ifname, where);
		lbpf_link__push_fd(L, u->o, j.link_fd, desc);
	} else {
		snprintf(desc, sizeof(desc), "tc %s on %s%s (clsact, handle %u priority %u)", dir,
			 j.ifname, where, j.opts.handle, j.opts.priority);
		lbpf_link__push_tc(L, u->o, &j.hook, &j.opts, desc, netns);
		if (j.created_qdisc)
			lbpf_link__own_qdisc(L, -1);
	}
	return 1;
}

/* ---- sk_lookup, cgroup, tracepoints --------------------------------------- */

/* prog:attach_sk_lookup([{netns=}]) -> link */
static int l_attach_sk_lookup(lua_State *L)
{
	static const char *const known[] = {"netns", NULL};
	struct prog_ud *u = check_ud(L, 1);
	const char *netns;
	char path[PATH_MAX], desc[PATH_MAX + 64];
	int fd, nsfd, lfd, err;

	lbpf_check_options(L, 2, "attach_sk_lookup", known);
	netns = lbpf_opt_string(L, 2, "netns", NULL);
	require_type(L, u, BPF_PROG_TYPE_SK_LOOKUP, "attach_sk_lookup", "sk_lookup");
	fd = check_fd(L, u);
	if (!netns || !*netns)
		snprintf(path, sizeof(path), "/proc/self/ns/net");
	else if (strchr(netns, '/'))
		snprintf(path, sizeof(path), "%s", netns);
	else
		snprintf(path, sizeof(path), "/run/netns/%s", netns);
	nsfd = open(path, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0)
		return fail_netns(L, u, errno, netns ? netns : "self");
	lfd = bpf_link_create(fd, nsfd, BPF_SK_LOOKUP, NULL);
	err = errno;
	close(nsfd);
	if (lfd < 0)
		return fail_hint(L, err, NULL, "can't attach sk_lookup program '%s' to netns '%s'",
				 u->name, netns ? netns : "(current)");
	if (netns && *netns)
		snprintf(desc, sizeof(desc), "sk_lookup in netns '%s'", netns);
	else
		snprintf(desc, sizeof(desc), "sk_lookup in the current netns");
	lbpf_link__push_fd(L, u->o, lfd, desc);
	return 1;
}

static bool attach_type_by_name(const char *name, enum bpf_attach_type *out)
{
	for (int t = 0; t < 64; t++) {
		const char *s = libbpf_bpf_attach_type_str((enum bpf_attach_type)t);

		if (!s)
			continue;
		if (!strcmp(s, name) || (!strncmp(s, "cgroup_", 7) && !strcmp(s + 7, name))) {
			*out = (enum bpf_attach_type)t;
			return true;
		}
	}
	return false;
}

/* prog:attach_cgroup(path [, {type="cgroup_inet_egress"}]) -> link */
static int l_attach_cgroup(lua_State *L)
{
	static const char *const known[] = {"type", NULL};
	struct prog_ud *u = check_ud(L, 1);
	const char *path = luaL_checkstring(L, 2);
	const char *tname;
	enum bpf_attach_type at;
	char desc[PATH_MAX + 64];
	int fd, cgfd, lfd, err;

	lbpf_check_options(L, 3, "attach_cgroup", known);
	tname = lbpf_opt_string(L, 3, "type", NULL);
	if (tname) {
		if (!attach_type_by_name(tname, &at))
			return luaL_error(L,
					  "attach_cgroup: unknown attach type '%s' (e.g. "
					  "cgroup_inet_ingress, cgroup_inet_egress, "
					  "cgroup_inet4_connect, cgroup_sock_ops)",
					  tname);
	} else if (u->p) {
		at = bpf_program__expected_attach_type(u->p);
	} else {
		return luaL_error(L,
				  "program '%s' has no object to say its attach type: pass "
				  "{type=...} to attach_cgroup",
				  u->name);
	}
	fd = check_fd(L, u);
	cgfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cgfd < 0)
		return fail_hint(L, errno, NULL, "program '%s': can't open cgroup '%s'", u->name,
				 path);
	lfd = bpf_link_create(fd, cgfd, at, NULL);
	err = errno;
	close(cgfd);
	if (lfd < 0)
		return fail_hint(L, err,
				 err == EINVAL ? "is the path a cgroup v2 directory, and does the "
						 "program's SEC() match the attach type?"
					       : NULL,
				 "can't attach program '%s' to cgroup '%s' (%s)", u->name, path,
				 libbpf_bpf_attach_type_str(at) ? libbpf_bpf_attach_type_str(at)
								: "?");
	snprintf(desc, sizeof(desc), "cgroup %s (%s)", path,
		 libbpf_bpf_attach_type_str(at) ? libbpf_bpf_attach_type_str(at) : "?");
	lbpf_link__push_fd(L, u->o, lfd, desc);
	return 1;
}

static void require_object(lua_State *L, struct prog_ud *u, const char *how)
{
	if (!u->p)
		luaL_error(L,
			   "program '%s' was opened by pin or id: %s needs a program from "
			   "an object",
			   u->name, how);
}

/* prog:attach_tracepoint(category, name) -> link */
static int l_attach_tracepoint(lua_State *L)
{
	struct prog_ud *u = check_ud(L, 1);
	const char *cat = luaL_checkstring(L, 2);
	const char *name = luaL_checkstring(L, 3);
	struct bpf_link *bl;
	char desc[256], hint[256];
	int err;

	require_object(L, u, "attach_tracepoint");
	check_fd(L, u);
	bl = bpf_program__attach_tracepoint(u->p, cat, name);
	if (!bl) {
		err = errno;
		if (access("/sys/kernel/tracing/events", F_OK) &&
		    access("/sys/kernel/debug/tracing/events", F_OK))
			snprintf(hint, sizeof(hint),
				 "tracefs is not mounted, and libbpf finds "
				 "tracepoints there: mount -t tracefs tracefs /sys/kernel/tracing");
		else
			snprintf(hint, sizeof(hint),
				 "no such tracepoint? see `ls "
				 "/sys/kernel/tracing/events/%s/` or `bpftrace -l "
				 "'tracepoint:%s:*'`",
				 cat, cat);
		return fail_hint(L, err, err == ENOENT ? hint : NULL,
				 "can't attach program '%s' to tracepoint %s/%s", u->name, cat,
				 name);
	}
	snprintf(desc, sizeof(desc), "tracepoint %s/%s", cat, name);
	lbpf_link__push(L, u->o, bl, desc);
	return 1;
}

/* prog:attach(): where the SEC() name says (tracepoint/, kprobe/, raw_tp/, fentry/...) */
static int l_attach(lua_State *L)
{
	struct prog_ud *u = check_ud(L, 1);
	struct bpf_link *bl;
	const char *sec;
	enum bpf_prog_type t;
	char desc[256];
	int err;

	require_object(L, u, "attach()");
	t = ud_type(u);
	if (t == BPF_PROG_TYPE_XDP)
		return luaL_error(L, "program '%s' is xdp: attach it with prog:attach_xdp(ifname)",
				  u->name);
	if (t == BPF_PROG_TYPE_SCHED_CLS)
		return luaL_error(L,
				  "program '%s' is sched_cls: attach it with "
				  "prog:attach_tc(ifname, {direction=...})",
				  u->name);
	if (t == BPF_PROG_TYPE_SK_LOOKUP)
		return luaL_error(L,
				  "program '%s' is sk_lookup: attach it with "
				  "prog:attach_sk_lookup({netns=...})",
				  u->name);
	if (t == BPF_PROG_TYPE_CGROUP_SKB || t == BPF_PROG_TYPE_CGROUP_SOCK ||
	    t == BPF_PROG_TYPE_CGROUP_SOCK_ADDR || t == BPF_PROG_TYPE_SOCK_OPS)
		return luaL_error(L, "program '%s' is %s: attach it with prog:attach_cgroup(path)",
				  u->name, prog_type_name(t));
	check_fd(L, u);
	sec = bpf_program__section_name(u->p);
	bl = bpf_program__attach(u->p);
	if (!bl) {
		err = errno;
		if (err == EOPNOTSUPP || err == ESRCH)
			return fail_hint(L, err,
					 "attach() needs a SEC() name that says where, "
					 "such as tracepoint/CAT/NAME, raw_tp/NAME, kprobe/FUNC or "
					 "fentry/FUNC; or use attach_tracepoint()",
					 "can't auto-attach program '%s' (SEC(\"%s\"))", u->name,
					 sec);
		if (err == ENOENT && !strncmp(sec, "tracepoint/", 11) &&
		    access("/sys/kernel/tracing/events", F_OK) &&
		    access("/sys/kernel/debug/tracing/events", F_OK))
			return fail_hint(L, err,
					 "tracefs is not mounted, and libbpf finds "
					 "tracepoints there: mount -t tracefs tracefs "
					 "/sys/kernel/tracing",
					 "can't attach program '%s' (SEC(\"%s\"))", u->name, sec);
		return fail_hint(L, err, NULL, "can't attach program '%s' (SEC(\"%s\"))", u->name,
				 sec);
	}
	snprintf(desc, sizeof(desc), "%s", sec);
	lbpf_link__push(L, u->o, bl, desc);
	return 1;
}

/* ---- test_run ------------------------------------------------------------- */

static const char *verdict_name(enum bpf_prog_type t, __u32 ret)
{
	static const char *const xdp[] = {"XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX",
					  "XDP_REDIRECT"};
	static const char *const tc[] = {"TC_ACT_OK",	  "TC_ACT_RECLASSIFY", "TC_ACT_SHOT",
					 "TC_ACT_PIPE",	  "TC_ACT_STOLEN",     "TC_ACT_QUEUED",
					 "TC_ACT_REPEAT", "TC_ACT_REDIRECT",   "TC_ACT_TRAP"};
	static const char *const sk[] = {"SK_DROP", "SK_PASS"};

	switch (t) {
	case BPF_PROG_TYPE_XDP:
		return ret < 5 ? xdp[ret] : NULL;
	case BPF_PROG_TYPE_SCHED_CLS:
	case BPF_PROG_TYPE_SCHED_ACT:
		if ((int)ret == -1)
			return "TC_ACT_UNSPEC";
		return ret < 9 ? tc[ret] : NULL;
	case BPF_PROG_TYPE_SK_LOOKUP:
	case BPF_PROG_TYPE_CGROUP_SKB:
		return ret < 2 ? sk[ret] : NULL;
	default:
		return NULL;
	}
}

/* prog:test_run(data [, {repeat=N, ctx=bytes, data_size_out=N}])
 * -> {retval, verdict, data, duration_ns, ctx} */
static int l_test_run(lua_State *L)
{
	static const char *const known[] = {"repeat", "ctx", "data_size_out", NULL};
	struct prog_ud *u = check_ud(L, 1);
	size_t len = 0, ctx_len = 0;
	const char *data = luaL_optlstring(L, 2, NULL, &len);
	const char *ctx = NULL;
	lua_Integer rep, out_size;
	char *out, *ctx_out = NULL;
	const char *v;
	int fd, err;

	lbpf_check_options(L, 3, "test_run", known);
	rep = lbpf_opt_integer(L, 3, "repeat", 1);
	out_size = lbpf_opt_integer(L, 3, "data_size_out", (lua_Integer)len + 4096);
	if (rep < 1 || rep > 0x7fffffff)
		return luaL_error(L, "test_run: option 'repeat' expects 1..2^31-1, got %d",
				  (int)rep);
	if (out_size < 0 || out_size > (64 << 20))
		return luaL_error(L, "test_run: option 'data_size_out' expects 0..64 MiB");
	if (!lua_isnoneornil(L, 3)) {
		lua_getfield(L, 3, "ctx"); /* bytes: a Lua string is not copied */
		if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
			return luaL_error(
			    L, "test_run: option 'ctx' expects a string of bytes, got %s",
			    luaL_typename(L, -1));
		ctx = lua_tolstring(L, -1, &ctx_len);
		lua_pop(L, 1);
	}
	fd = check_fd(L, u);
	out = malloc(out_size ? (size_t)out_size : 1);
	if (ctx)
		ctx_out = malloc(ctx_len);
	if (!out || (ctx && !ctx_out)) {
		free(out);
		free(ctx_out);
		return luaL_error(L, "out of memory");
	}
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = data, .data_size_in = (__u32)len,
		    .data_out = out, .data_size_out = (__u32)out_size, .repeat = (int)rep,
		    .ctx_in = ctx, .ctx_size_in = (__u32)ctx_len, .ctx_out = ctx_out,
		    .ctx_size_out = (__u32)ctx_len);
	err = bpf_prog_test_run_opts(fd, &opts) < 0 ? errno : 0;
	if (err) {
		free(out);
		free(ctx_out);
		if (err == ENOSPC)
			return fail_hint(L, err,
					 "the output is larger than data_size_out: "
					 "pass a bigger one",
					 "program '%s': test_run", u->name);
		if (err == EOPNOTSUPP || err == 524 /* ENOTSUPP */)
			return fail_hint(L, err, NULL,
					 "program '%s': test_run is not supported for "
					 "%s programs",
					 u->name, prog_type_name(ud_type(u)));
		return fail_hint(L, err,
				 err == EINVAL ? "the input is too short or the ctx does "
						 "not fit this program type"
					       : NULL,
				 "program '%s': test_run", u->name);
	}
	lua_createtable(L, 0, 5);
	lua_pushinteger(L, (lua_Integer)(int32_t)opts.retval);
	lua_setfield(L, -2, "retval");
	v = verdict_name(ud_type(u), opts.retval);
	if (v) {
		lua_pushstring(L, v);
		lua_setfield(L, -2, "verdict");
	}
	lua_pushlstring(L, out, opts.data_size_out);
	lua_setfield(L, -2, "data");
	lua_pushinteger(L, opts.duration);
	lua_setfield(L, -2, "duration_ns");
	if (ctx) {
		lua_pushlstring(L, ctx_out, opts.ctx_size_out);
		lua_setfield(L, -2, "ctx");
	}
	free(out);
	free(ctx_out);
	return 1;
}

/* ---- info, pins, small accessors ---------------------------------------- */

static void set_num(lua_State *L, const char *k, lua_Number v)
{
	lua_pushnumber(L, v);
	lua_setfield(L, -2, k);
}

/* bpf_enable_stats() holds stats on while its fd is open; the sysctl does too. */
static int stats_fd = -1;

static bool stats_enabled(void)
{
	char c = '0';
	FILE *f = fopen("/proc/sys/kernel/bpf_stats_enabled", "r");

	if (f) {
		if (fread(&c, 1, 1, f) != 1)
			c = '0';
		fclose(f);
	}
	return c == '1' || stats_fd >= 0;
}

/* Push the info table for the program fd; returns 1, or a failure triple. */
static int push_info(lua_State *L, int fd, const char *what)
{
	struct bpf_prog_info info;
	struct timespec rt, bt;
	char tag[2 * BPF_TAG_SIZE + 1];
	__u32 *ids;
	int nids = lbpf_prog_info(fd, &info, &ids);

	if (nids < 0)
		return lbpf_failf(L, errno, "program '%s': can't read its info", what);
	lua_newtable(L);
	set_num(L, "id", info.id);
	lua_pushstring(L, info.name);
	lua_setfield(L, -2, "name");
	lua_pushstring(L, prog_type_name((enum bpf_prog_type)info.type));
	lua_setfield(L, -2, "type");
	for (int i = 0; i < BPF_TAG_SIZE; i++)
		snprintf(tag + 2 * i, 3, "%02x", info.tag[i]);
	lua_pushstring(L, tag);
	lua_setfield(L, -2, "tag");
	set_num(L, "run_cnt", (lua_Number)info.run_cnt);
	set_num(L, "run_time_ns", (lua_Number)info.run_time_ns);
	lua_pushboolean(L, stats_enabled());
	lua_setfield(L, -2, "stats_enabled");
	set_num(L, "recursion_misses", (lua_Number)info.recursion_misses);
	set_num(L, "jited_size", info.jited_prog_len);
	set_num(L, "xlated_size", info.xlated_prog_len);
	set_num(L, "verified_insns", info.verified_insns);
	set_num(L, "uid", info.created_by_uid);
	set_num(L, "btf_id", info.btf_id);
	lua_pushboolean(L, info.gpl_compatible);
	lua_setfield(L, -2, "gpl_compatible");
	/* load_time counts from boot; a wall-clock time is what people compare. */
	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_BOOTTIME, &bt);
	set_num(L, "loaded_at",
		(double)rt.tv_sec + rt.tv_nsec / 1e9 - (double)bt.tv_sec - bt.tv_nsec / 1e9 +
		    (double)info.load_time / 1e9);
	lua_createtable(L, (int)info.nr_map_ids, 0);
	for (int i = 0; i < nids; i++) {
		lua_pushnumber(L, ids[i]);
		lua_rawseti(L, -2, (int)i + 1);
	}
	lua_setfield(L, -2, "map_ids");
	free(ids);
	return 1;
}

static int l_info(lua_State *L)
{
	struct prog_ud *u = check_ud(L, 1);

	return push_info(L, check_fd(L, u), u->name);
}

static int l_name(lua_State *L)
{
	lua_pushstring(L, check_ud(L, 1)->name);
	return 1;
}

static int l_fd(lua_State *L)
{
	struct prog_ud *u = check_ud(L, 1);

	lua_pushinteger(L, check_fd(L, u));
	return 1;
}

static int l_type(lua_State *L)
{
	lua_pushstring(L, prog_type_name(ud_type(check_ud(L, 1))));
	return 1;
}

static int l_section(lua_State *L)
{
	struct prog_ud *u = check_ud(L, 1);

	if (u->p)
		lua_pushstring(L, bpf_program__section_name(u->p));
	else
		lua_pushnil(L);
	return 1;
}

static int l_set_autoload(lua_State *L)
{
	struct prog_ud *u = check_ud(L, 1);

	luaL_checktype(L, 2, LUA_TBOOLEAN);
	require_object(L, u, "set_autoload");
	if (u->o->loaded)
		return luaL_error(L, "program '%s': set_autoload must come before obj:load()",
				  u->name);
	bpf_program__set_autoload(u->p, lua_toboolean(L, 2));
	return 0;
}

static int l_autoload(lua_State *L)
{
	struct prog_ud *u = check_ud(L, 1);

	lua_pushboolean(L, u->p ? bpf_program__autoload(u->p) : 1);
	return 1;
}

static int l_pin(lua_State *L)
{
	struct prog_ud *u = check_ud(L, 1);
	const char *path = luaL_checkstring(L, 2);
	int fd = check_fd(L, u);

	return lbpf_pin(L, fd, path, "program", u->name, &u->pin);
}

static int l_unpin(lua_State *L)
{
	struct prog_ud *u = check_ud(L, 1);
	const char *path = luaL_optstring(L, 2, u->pin);

	if (!path)
		return luaL_error(L, "program '%s' is not pinned (pass the path)", u->name);
	return lbpf_unpin(L, path, "program", u->name, &u->pin);
}

static void ud_close(struct prog_ud *u)
{
	if (!u->name)
		return;
	if (u->o)
		lbpf_object__unref(u->o);
	else if (u->fd >= 0)
		close(u->fd);
	free(u->name);
	free(u->pin);
	memset(u, 0, sizeof(*u));
	u->fd = -1;
}

/* close(): drop this handle. Links made from it keep the program attached. */
static int l_close(lua_State *L)
{
	ud_close(luaL_checkudata(L, 1, MT_PROG));
	return 0;
}

static int l_tostring(lua_State *L)
{
	struct prog_ud *u = luaL_checkudata(L, 1, MT_PROG);

	if (!u->name)
		lua_pushliteral(L, "luabpf.program (closed)");
	else if (u->o && !u->o->obj)
		lua_pushfstring(L, "luabpf.program '%s' (object closed)", u->name);
	else
		lua_pushfstring(L, "luabpf.program '%s' (%s%s)", u->name,
				prog_type_name(ud_type(u)), ud_fd(u) >= 0 ? "" : ", not loaded");
	return 1;
}

/* ---- programs without an object ------------------------------------------ */

static int push_fd_prog(lua_State *L, int fd)
{
	struct bpf_prog_info info = {0};
	__u32 len = sizeof(info);
	struct prog_ud *u;
	int err;

	if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0) {
		err = errno;
		close(fd);
		return lbpf_fail(L, err);
	}
	u = lua_newuserdata(L, sizeof(*u));
	memset(u, 0, sizeof(*u));
	u->fd = fd;
	u->type = (enum bpf_prog_type)info.type;
	u->name = strdup(info.name[0] ? info.name : "(unnamed)");
	luaL_getmetatable(L, MT_PROG);
	lua_setmetatable(L, -2);
	return 1;
}

/* luabpf.program_from_pin(path) */
static int l_program_from_pin(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	int fd = bpf_obj_get(path);

	if (fd < 0)
		return lbpf_failf(L, errno, "can't open pinned program '%s'", path);
	if (strcmp(lbpf_fd_kind(fd) ?: "", "prog")) {
		close(fd);
		lua_pushnil(L);
		lua_pushfstring(L, "'%s' is pinned but is not a program (a map or a link?)", path);
		lua_pushliteral(L, "EINVAL");
		return 3;
	}
	return push_fd_prog(L, fd);
}

/* luabpf.program_from_id(id) */
static int l_program_from_id(lua_State *L)
{
	lua_Integer id = luaL_checkinteger(L, 1);
	int fd = bpf_prog_get_fd_by_id((__u32)id);

	if (fd < 0)
		return lbpf_failf(L, errno, "no program with id %d", (int)id);
	return push_fd_prog(L, fd);
}

/* luabpf.enable_stats(): run_cnt/run_time_ns count while this process lives. */
static int l_enable_stats(lua_State *L)
{
	if (stats_fd < 0) {
		stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
		if (stats_fd < 0)
			return lbpf_failf(L, errno, "can't enable BPF run-time stats");
	}
	lua_pushboolean(L, 1);
	return 1;
}

static const luaL_Reg methods[] = {
    {"name", l_name},
    {"fd", l_fd},
    {"type", l_type},
    {"section", l_section},
    {"info", l_info},
    {"pin", l_pin},
    {"unpin", l_unpin},
    {"set_autoload", l_set_autoload},
    {"autoload", l_autoload},
    {"attach_xdp", l_attach_xdp},
    {"attach_tc", l_attach_tc},
    {"attach_sk_lookup", l_attach_sk_lookup},
    {"attach_cgroup", l_attach_cgroup},
    {"attach_tracepoint", l_attach_tracepoint},
    {"attach", l_attach},
    {"test_run", l_test_run},
    {"close", l_close},
    {"__gc", l_close},
    {"__tostring", l_tostring},
    {NULL, NULL},
};

static const luaL_Reg module_fns[] = {
    {"program_from_pin", l_program_from_pin},
    {"program_from_id", l_program_from_id},
    {"enable_stats", l_enable_stats},
    {NULL, NULL},
};

void lbpf_prog__register(lua_State *L)
{
	lbpf_new_class(L, MT_PROG, methods);
	luaL_register(L, NULL, module_fns);
}
