// SPDX-License-Identifier: MIT
/* Errors in luv's style, option tables, metatables, interfaces, namespaces, fds and pins. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "luabpf.h"

#ifndef BPF_FS_MAGIC
#define BPF_FS_MAGIC 0xcafe4a11
#endif
#define BPFFS_ROOT "/sys/fs/bpf"

const char *lbpf_errno_name(int err)
{
	const char *n = strerrorname_np(err);

	return n ? n : "EUNKNOWN";
}

int lbpf_fail(lua_State *L, int err)
{
	if (err < 0)
		err = -err;
	lua_pushnil(L);
	lua_pushfstring(L, "%s: %s", lbpf_errno_name(err), strerror(err));
	lua_pushstring(L, lbpf_errno_name(err));
	return 3;
}

int lbpf_failf(lua_State *L, int err, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	if (err < 0)
		err = -err;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	lua_pushnil(L);
	lua_pushfstring(L, "%s: %s: %s", what, lbpf_errno_name(err), strerror(err));
	lua_pushstring(L, lbpf_errno_name(err));
	return 3;
}

/* Push the option key of the table at idx (none or nil: no options) and
 * return true; false when it is absent. Raises unless it has the type. */
static bool opt_get(lua_State *L, int idx, const char *key, int type, const char *expects)
{
	if (lua_isnoneornil(L, idx))
		return false;
	luaL_checktype(L, idx, LUA_TTABLE);
	lua_getfield(L, idx, key);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return false;
	}
	if (lua_type(L, -1) != type)
		luaL_error(L, "option '%s' expects %s, got %s", key, expects, luaL_typename(L, -1));
	return true;
}

const char *lbpf_opt_string(lua_State *L, int idx, const char *key, const char *def)
{
	if (opt_get(L, idx, key, LUA_TSTRING, "a string")) {
		def = lua_tostring(L, -1);
		lua_pop(L, 1); /* still referenced by the options table */
	}
	return def;
}

lua_Integer lbpf_opt_integer(lua_State *L, int idx, const char *key, lua_Integer def)
{
	lua_Number n;

	if (!opt_get(L, idx, key, LUA_TNUMBER, "an integer"))
		return def;
	n = lua_tonumber(L, -1);
	lua_pop(L, 1);
	if (n != (lua_Number)(lua_Integer)n)
		luaL_error(L, "option '%s' expects an integer, got %f", key, n);
	return (lua_Integer)n;
}

bool lbpf_opt_bool(lua_State *L, int idx, const char *key, bool def)
{
	if (opt_get(L, idx, key, LUA_TBOOLEAN, "a boolean")) {
		def = lua_toboolean(L, -1);
		lua_pop(L, 1);
	}
	return def;
}

int lbpf_opt_choice(lua_State *L, int idx, const char *what, const char *key,
		    const char *const names[])
{
	const char *s = lbpf_opt_string(L, idx, key, names[0]);
	luaL_Buffer b;
	int i;

	for (i = 0; names[i]; i++)
		if (!strcmp(s, names[i]))
			return i;
	/* "auto, native or generic" */
	luaL_buffinit(L, &b);
	for (i = 0; names[i]; i++) {
		luaL_addstring(&b, !i ? "" : names[i + 1] ? ", " : " or ");
		luaL_addstring(&b, names[i]);
	}
	luaL_pushresult(&b);
	return luaL_error(L, "%s: option '%s' expects %s, got '%s'", what, key,
			  lua_tostring(L, -1), s);
}

void lbpf_check_options(lua_State *L, int idx, const char *what, const char *const known[])
{
	if (lua_isnoneornil(L, idx))
		return;
	luaL_checktype(L, idx, LUA_TTABLE);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		const char *k;
		bool ok = false;

		lua_pop(L, 1);
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "%s: option names must be strings", what);
		k = lua_tostring(L, -1);
		for (int i = 0; known[i]; i++)
			if (strcmp(k, known[i]) == 0)
				ok = true;
		if (!ok) {
			luaL_Buffer b;

			luaL_buffinit(L, &b);
			for (int i = 0; known[i]; i++) {
				luaL_addstring(&b, i ? ", " : "");
				luaL_addstring(&b, known[i]);
			}
			luaL_pushresult(&b);
			luaL_error(L, "%s: unknown option '%s' (valid: %s)", what, k,
				   lua_tostring(L, -1));
		}
	}
}

const void *lbpf_new_class(lua_State *L, const char *mt, const luaL_Reg *methods,
			   const luaL_Reg *fns)
{
	const void *p;

	luaL_newmetatable(L, mt);
	lua_pushvalue(L, -1);
	lua_setfield(L, -2, "__index");
	luaL_register(L, NULL, methods);
	p = lua_topointer(L, -1);
	lua_pop(L, 1);
	if (fns)
		luaL_register(L, NULL, fns);
	return p;
}

void lbpf_new_lib(lua_State *L, const char *name, const luaL_Reg *fns)
{
	lua_newtable(L);
	luaL_register(L, NULL, fns);
	lua_setfield(L, -2, name);
}

void lbpf_load_chunk(lua_State *L, const char *src, const char *name)
{
	if (luaL_loadbuffer(L, src, strlen(src), name))
		lua_error(L);
}

unsigned lbpf_ifindex(const char *name)
{
	char *end;
	unsigned long n = strtoul(name, &end, 10);

	if (*name && !*end && n > 0 && n < UINT_MAX)
		return (unsigned)n;
	return if_nametoindex(name);
}

int lbpf_in_netns(const char *ns, int (*fn)(void *arg), void *arg)
{
	char path[PATH_MAX];
	int self, target, ret, err;

	if (!ns || !*ns)
		return fn(arg);
	if (strchr(ns, '/'))
		snprintf(path, sizeof(path), "%s", ns);
	else
		snprintf(path, sizeof(path), "/run/netns/%s", ns);
	self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0)
		return -errno;
	target = open(path, O_RDONLY | O_CLOEXEC);
	if (target < 0) {
		err = errno;
		close(self);
		return -err;
	}
	if (setns(target, CLONE_NEWNET) < 0) {
		err = errno;
		close(self);
		close(target);
		return -err;
	}
	ret = fn(arg);
	err = errno;
	if (setns(self, CLONE_NEWNET) < 0) {
		/* Running on in the wrong namespace would be worse than stopping. */
		lbpf_log(LBPF_ERROR, "could not return from netns '%s': %s", ns, strerror(errno));
		abort();
	}
	close(self);
	close(target);
	errno = err;
	return ret;
}

const char *lbpf_fd_kind(int fd)
{
	/* Each kind of BPF fd has one line no other kind starts with. */
	static const struct {
		const char *key, *kind;
	} keys[] = { { "prog_type:", "prog" }, { "map_type:", "map" }, { "link_type:", "link" } };
	char path[64], line[256];
	const char *kind = NULL;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	if (!f)
		return NULL; /* errno says why */
	while (!kind && fgets(line, sizeof(line), f))
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (!strncmp(line, keys[i].key, strlen(keys[i].key)))
				kind = keys[i].kind;
	fclose(f);
	errno = 0;
	return kind;
}

bool lbpf_on_bpffs(const char *path)
{
	char dir[PATH_MAX];
	struct statfs st;

	snprintf(dir, sizeof(dir), "%s", path);
	return statfs(dirname(dir), &st) == 0 && st.f_type == BPF_FS_MAGIC;
}

const char *lbpf_bpffs_missing(const char *path)
{
	struct statfs st;

	if (strncmp(path, BPFFS_ROOT, strlen(BPFFS_ROOT)) ||
	    (path[strlen(BPFFS_ROOT)] && path[strlen(BPFFS_ROOT)] != '/'))
		return NULL;
	/* `ip netns exec` mounts a fresh sysfs: /sys/fs/bpf is its empty mount point. */
	if (statfs(BPFFS_ROOT, &st) == 0 && st.f_type == BPF_FS_MAGIC)
		return NULL;
	lbpf_missing_caps = true; /* exit 3: the system lacks it, not the script */
	return "'" BPFFS_ROOT "' is not a BPF filesystem here (ip netns exec mounts a "
	       "fresh /sys without one)\n"
	       "HINT: run 'luabpf --netns NS ...' instead of 'ip netns exec', "
	       "or mount bpffs: mount -t bpf bpf " BPFFS_ROOT;
}

const char *lbpf_bpffs_problem(const char *path)
{
	const char *missing = lbpf_bpffs_missing(path);
	char dir[PATH_MAX];
	struct statfs st;

	if (missing)
		return missing;
	/* The nearest directory that exists: libbpf makes the last one itself. */
	snprintf(dir, sizeof(dir), "%s", path);
	for (;;) {
		char *up;

		if (statfs(dir, &st) == 0) {
			if (st.f_type == BPF_FS_MAGIC)
				return NULL;
			break;
		}
		if (errno != ENOENT || !strcmp(dir, "/") || !strcmp(dir, "."))
			return NULL; /* let the kernel say why */
		up = dirname(dir);
		memmove(dir, up, strlen(up) + 1);
	}
	return "its directory is not on bpffs (pin under " BPFFS_ROOT ")";
}

int lbpf_pin(lua_State *L, int fd, const char *path, const char *kind, const char *name,
	     char **pin)
{
	const char *why = lbpf_bpffs_missing(path);

	if (why || !lbpf_on_bpffs(path)) {
		lua_pushnil(L);
		lua_pushfstring(L, "%s '%s': can't pin at '%s': %s", kind, name, path,
				why ? why
				    : "its directory is not on bpffs (pin under " BPFFS_ROOT ")");
		lua_pushliteral(L, "EINVAL");
		return 3;
	}
	if (bpf_obj_pin(fd, path) < 0)
		return lbpf_failf(L, errno, "%s '%s': can't pin at '%s'", kind, name, path);
	free(*pin);
	*pin = strdup(path);
	lua_pushboolean(L, 1);
	return 1;
}

int lbpf_unpin(lua_State *L, const char *kind, const char *name, char **pin, const char *hint)
{
	const char *path = luaL_optstring(L, 2, *pin);

	if (!path)
		return luaL_error(L, "%s '%s' is not pinned%s", kind, name, hint);
	if (unlink(path) < 0)
		return lbpf_failf(L, errno, "%s '%s': can't unpin '%s'", kind, name, path);
	if (*pin && !strcmp(path, *pin)) {
		free(*pin);
		*pin = NULL;
	}
	lua_pushboolean(L, 1);
	return 1;
}

int lbpf_prog_info(int fd, struct bpf_prog_info *info, __u32 **map_ids)
{
	__u32 len = sizeof(*info), n;
	int err;

	*map_ids = NULL;
	memset(info, 0, sizeof(*info));
	if (bpf_obj_get_info_by_fd(fd, info, &len) < 0)
		return -1;
	n = info->nr_map_ids;
	if (!n)
		return 0;
	/* Again with room for the ids the first call counted. */
	*map_ids = calloc(n, sizeof(**map_ids));
	memset(info, 0, sizeof(*info));
	info->nr_map_ids = n;
	info->map_ids = (__u64)(uintptr_t)*map_ids;
	len = sizeof(*info);
	if (bpf_obj_get_info_by_fd(fd, info, &len) < 0) {
		err = errno;
		free(*map_ids);
		*map_ids = NULL;
		errno = err;
		return -1;
	}
	return (int)(info->nr_map_ids < n ? info->nr_map_ids : n);
}

void lbpf_set_ids(lua_State *L, const __u32 *ids, int n)
{
	lua_createtable(L, n, 0);
	for (int i = 0; i < n; i++) {
		lua_pushnumber(L, ids[i]);
		lua_rawseti(L, -2, i + 1);
	}
	lua_setfield(L, -2, "map_ids");
}

double lbpf_boot_to_wall(__u64 boot_ns)
{
	struct timespec rt, bt;

	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_BOOTTIME, &bt);
	return (double)(rt.tv_sec - bt.tv_sec) + (rt.tv_nsec - bt.tv_nsec) / 1e9 +
	       (double)boot_ns / 1e9;
}

/* ---- capabilities ------------------------------------------------------ */

static bool have_cap(int cap)
{
	char line[256];
	unsigned long long eff = 0;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &eff) == 1)
			break;
	if (f)
		fclose(f);
	return eff & (1ULL << cap);
}

bool lbpf_missing_caps;

/// A hint for EPERM: which capability the process lacks, or "".
const char *lbpf_perm_hint(int err)
{
	if (err != EPERM && err != EACCES)
		return "";
	if (!have_cap(39 /* CAP_BPF */) && !have_cap(21 /* CAP_SYS_ADMIN */)) {
		lbpf_missing_caps = true;
		return " (this process lacks CAP_BPF: run luabpf as root, or grant it "
		       "CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON)";
	}
	return "";
}
