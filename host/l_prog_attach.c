// SPDX-License-Identifier: MIT
/*
 * luabpf.program: every way to attach but XDP and tc (sk_lookup, cgroup,
 * tracepoints, attach{}), and the errors and hints they share: who holds
 * an interface, in which netns.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "l_prog.h"

/* ---- small helpers -------------------------------------------------------- */

/* nil, "what: ENAME: text\nHINT: hint", "ENAME" */

int prog_fail_hint(lua_State *L, int err, const char *hint, const char *fmt, ...)
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

int prog_fail_netns(lua_State *L, struct prog_ud *u, int err, const char *netns)
{
	char path[PATH_MAX];

	if (strchr(netns, '/'))
		snprintf(path, sizeof(path), "%s", netns);
	else
		snprintf(path, sizeof(path), "/run/netns/%s", netns);
	if (err == ENOENT)
		return prog_fail_hint(L, err,
				      "create it with `ip netns add NAME`, or pass a path "
				      "such as /proc/PID/ns/net",
				      "program '%s': netns '%s' not found (%s)", u->name, netns,
				      path);
	return lbpf_failf(L, err, "program '%s': can't enter netns '%s'", u->name, netns);
}

int prog_check_type_fd(lua_State *L, struct prog_ud *u, enum bpf_prog_type want, const char *how,
		       const char *sec)
{
	enum bpf_prog_type t = prog_ud_type(u);

	if (t != want)
		luaL_error(L, "program '%s' is a %s program: %s needs a %s one (SEC(\"%s\"))",
			   u->name, prog_type_name(t), how, prog_type_name(want), sec);
	return prog_check_fd(L, u);
}

/* prog:attach_X(ifname_or_index [, opts]): the interface at 2, options at 3. */
const char *prog_check_ifname(lua_State *L, struct prog_ud *u, const char *how,
			      const char *const known[])
{
	if (lua_type(L, 2) != LUA_TSTRING && lua_type(L, 2) != LUA_TNUMBER)
		luaL_error(L, "program '%s': %s expects an interface name or index, got %s",
			   u->name, how, luaL_typename(L, 2));
	lbpf_check_options(L, 3, how, known);
	return lua_tostring(L, 2);
}

int prog_fail_no_iface(lua_State *L, struct prog_ud *u, const char *ifname, const char *where)
{
	lua_pushnil(L);
	lua_pushfstring(L, "program '%s': interface '%s' not found%s: ENODEV: %s", u->name, ifname,
			where, strerror(ENODEV));
	lua_pushliteral(L, "ENODEV");
	return 3;
}

/* Who holds link `id`? "pid 123 (luabpf)" from /proc/PID/fdinfo, or "". */
void prog_link_holder(__u32 id, char *out, size_t n)
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
__u32 prog_find_link(__u32 ltype, __u32 ifindex, __u32 prog_id)
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

void prog_name_by_id(__u32 id, char *out, size_t n)
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

/* ---- sk_lookup, cgroup, tracepoints --------------------------------------- */

/* prog:attach_sk_lookup([{netns=}]) -> link */
int lprog_attach_sk_lookup(lua_State *L)
{
	static const char *const known[] = {"netns", NULL};
	struct prog_ud *u = prog_check_ud(L, 1);
	const char *netns;
	char path[PATH_MAX], desc[PATH_MAX + 64];
	int fd, nsfd, lfd, err;

	lbpf_check_options(L, 2, "attach_sk_lookup", known);
	netns = lbpf_opt_string(L, 2, "netns", NULL);
	fd = prog_check_type_fd(L, u, BPF_PROG_TYPE_SK_LOOKUP, "attach_sk_lookup", "sk_lookup");
	if (!netns || !*netns)
		snprintf(path, sizeof(path), "/proc/self/ns/net");
	else if (strchr(netns, '/'))
		snprintf(path, sizeof(path), "%s", netns);
	else
		snprintf(path, sizeof(path), "/run/netns/%s", netns);
	nsfd = open(path, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0)
		return prog_fail_netns(L, u, errno, netns ? netns : "self");
	lfd = bpf_link_create(fd, nsfd, BPF_SK_LOOKUP, NULL);
	err = errno;
	close(nsfd);
	if (lfd < 0)
		return prog_fail_hint(L, err, NULL,
				      "can't attach sk_lookup program '%s' to netns '%s'", u->name,
				      netns ? netns : "(current)");
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
int lprog_attach_cgroup(lua_State *L)
{
	static const char *const known[] = {"type", NULL};
	struct prog_ud *u = prog_check_ud(L, 1);
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
	fd = prog_check_fd(L, u);
	cgfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cgfd < 0)
		return prog_fail_hint(L, errno, NULL, "program '%s': can't open cgroup '%s'",
				      u->name, path);
	lfd = bpf_link_create(fd, cgfd, at, NULL);
	err = errno;
	close(cgfd);
	if (lfd < 0)
		return prog_fail_hint(
		    L, err,
		    err == EINVAL ? "is the path a cgroup v2 directory, and does the "
				    "program's SEC() match the attach type?"
				  : NULL,
		    "can't attach program '%s' to cgroup '%s' (%s)", u->name, path,
		    libbpf_bpf_attach_type_str(at) ? libbpf_bpf_attach_type_str(at) : "?");
	snprintf(desc, sizeof(desc), "cgroup %s (%s)", path,
		 libbpf_bpf_attach_type_str(at) ? libbpf_bpf_attach_type_str(at) : "?");
	lbpf_link__push_fd(L, u->o, lfd, desc);
	return 1;
}

void prog_require_object(lua_State *L, struct prog_ud *u, const char *how)
{
	if (!u->p)
		luaL_error(L,
			   "program '%s' was opened by pin or id: %s needs a program from "
			   "an object",
			   u->name, how);
}

/* prog:attach_tracepoint(category, name) -> link */
int lprog_attach_tracepoint(lua_State *L)
{
	struct prog_ud *u = prog_check_ud(L, 1);
	const char *cat = luaL_checkstring(L, 2);
	const char *name = luaL_checkstring(L, 3);
	struct bpf_link *bl;
	char desc[256], hint[256];
	int err;

	prog_require_object(L, u, "attach_tracepoint");
	prog_check_fd(L, u);
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
		return prog_fail_hint(L, err, err == ENOENT ? hint : NULL,
				      "can't attach program '%s' to tracepoint %s/%s", u->name, cat,
				      name);
	}
	snprintf(desc, sizeof(desc), "tracepoint %s/%s", cat, name);
	lbpf_link__push(L, u->o, bl, desc);
	return 1;
}

/* prog:attach(): where the SEC() name says (tracepoint/, kprobe/, raw_tp/, fentry/...) */
int lprog_attach(lua_State *L)
{
	struct prog_ud *u = prog_check_ud(L, 1);
	struct bpf_link *bl;
	const char *sec;
	enum bpf_prog_type t;
	char desc[256];
	int err;

	prog_require_object(L, u, "attach()");
	t = prog_ud_type(u);
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
	prog_check_fd(L, u);
	sec = bpf_program__section_name(u->p);
	bl = bpf_program__attach(u->p);
	if (!bl) {
		err = errno;
		if (err == EOPNOTSUPP || err == ESRCH)
			return prog_fail_hint(
			    L, err,
			    "attach() needs a SEC() name that says where, "
			    "such as tracepoint/CAT/NAME, raw_tp/NAME, kprobe/FUNC or "
			    "fentry/FUNC; or use attach_tracepoint()",
			    "can't auto-attach program '%s' (SEC(\"%s\"))", u->name, sec);
		if (err == ENOENT && !strncmp(sec, "tracepoint/", 11) &&
		    access("/sys/kernel/tracing/events", F_OK) &&
		    access("/sys/kernel/debug/tracing/events", F_OK))
			return prog_fail_hint(L, err,
					      "tracefs is not mounted, and libbpf finds "
					      "tracepoints there: mount -t tracefs tracefs "
					      "/sys/kernel/tracing",
					      "can't attach program '%s' (SEC(\"%s\"))", u->name,
					      sec);
		return prog_fail_hint(L, err, NULL, "can't attach program '%s' (SEC(\"%s\"))",
				      u->name, sec);
	}
	snprintf(desc, sizeof(desc), "%s", sec);
	lbpf_link__push(L, u->o, bl, desc);
	return 1;
}
