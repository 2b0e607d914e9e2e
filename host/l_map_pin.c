// SPDX-License-Identifier: MIT
/* luabpf.map: pins, and maps from a pin or an id (their BTF fetched from the kernel). */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <linux/magic.h>

#include "l_map.h"

static int pin_fail(lua_State *L, struct lbpf_map *m, int err, const char *path, const char *op)
{
	char dir[4096];
	struct statfs fs;
	const char *hint = "";

	if (lbpf_bpffs_missing(path)) {
		lua_pushnil(L);
		lua_pushfstring(L, "map '%s': can't %s '%s': %s", m->name, op, path,
				lbpf_bpffs_missing(path));
		lua_pushstring(L, lbpf_errno_name(err));
		return 3;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	if (statfs(dirname(dir), &fs) == 0) {
		if ((unsigned long)fs.f_type != BPF_FS_MAGIC)
			hint = " ('%s' is not on a BPF filesystem: is /sys/fs/bpf mounted? "
			       "mount -t bpf bpf /sys/fs/bpf)";
	} else if (errno == ENOENT) {
		bool mounted =
		    statfs("/sys/fs/bpf", &fs) == 0 && (unsigned long)fs.f_type == BPF_FS_MAGIC;

		hint = mounted ? " (directory '%s' does not exist: create it first)"
			       : " (directory '%s' does not exist: is /sys/fs/bpf mounted? "
				 "mount -t bpf bpf /sys/fs/bpf)";
	}
	lua_pushnil(L);
	lua_pushfstring(L, "map '%s': can't %s '%s': %s: %s", m->name, op, path,
			lbpf_errno_name(err), strerror(err));
	if (*hint) {
		lua_pushfstring(L, hint, dir);
		lua_concat(L, 2);
	}
	lua_pushstring(L, lbpf_errno_name(err));
	return 3;
}

/*
 * m:pin(path) -> true | nil, msg, errno. bpf_obj_pin rather than
 * bpf_map__pin: libbpf remembers one pin path per map, even after unpin.
 */
int lmap_pin(lua_State *L)
{
	struct lbpf_map *m = map_check_map(L, 1);
	const char *path = luaL_checkstring(L, 2);

	if (m->pin_path && !strcmp(m->pin_path, path)) {
		lua_pushboolean(L, 1); /* already there, as libbpf treats it */
		return 1;
	}
	if (bpf_obj_pin(m->fd, path))
		return pin_fail(L, m, errno, path, "pin at");
	free(m->pin_path);
	m->pin_path = strdup(path);
	lua_pushboolean(L, 1);
	return 1;
}

/* m:unpin([path]) -> true | nil, msg, errno */
int lmap_unpin(lua_State *L)
{
	struct lbpf_map *m = map_check_open(L, 1);
	const char *path = luaL_optstring(L, 2, map_pinned_path(m));
	int rc;

	if (!path)
		return luaL_error(L, "map '%s' is not pinned (pass the path to unpin)", m->name);
	if (!m->pin_path && m->map && map_pinned_path(m) && !strcmp(path, map_pinned_path(m)))
		rc = bpf_map__unpin(m->map, NULL);
	else
		rc = unlink(path);
	if (rc)
		return pin_fail(L, m, errno, path, "unpin");
	if (m->pin_path && !strcmp(path, m->pin_path)) {
		free(m->pin_path);
		m->pin_path = NULL;
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* ---- maps not from an object ------------------------------------------ */

/* A pin may hold a program or a link: only a map's fdinfo has map_type. */
static bool fd_is_map(int fd)
{
	const char *kind = lbpf_fd_kind(fd);

	return kind ? !strcmp(kind, "map") : errno != 0; /* no procfs: let the kernel decide */
}

/* Wrap an fd we own; BTF comes from the kernel so fields still have names. */
static int push_from_fd(lua_State *L, int fd, const char *pin)
{
	struct bpf_map_info info = {0};
	__u32 len = sizeof(info);
	struct lbpf_map *m;

	if (!fd_is_map(fd)) {
		close(fd);
		lua_pushnil(L);
		lua_pushfstring(L, "'%s' is not a map (a program or a link is pinned there)",
				pin ? pin : "?");
		lua_pushstring(L, "EINVAL");
		return 3;
	}

	if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
		int err = errno;

		close(fd);
		return lbpf_failf(L, err, "map info");
	}
	m = calloc(1, sizeof(*m));
	m->fd = fd;
	m->own_fd = true;
	snprintf(m->name, sizeof(m->name), "%s", info.name[0] ? info.name : "(unnamed)");
	m->type = info.type;
	m->key_size = info.key_size;
	m->value_size = info.value_size;
	m->max_entries = info.max_entries;
	m->flags = info.map_flags;
	m->pin_path = pin ? strdup(pin) : NULL;
	if (info.btf_id) {
		m->own_btf = btf__load_from_kernel_by_id(info.btf_id);
		if (!m->own_btf)
			lbpf_log(LBPF_DEBUG,
				 "map '%s': can't load BTF %u: %s; keys and values "
				 "will be raw",
				 m->name, info.btf_id, strerror(errno));
		m->btf = m->own_btf;
	}
	map_setup(L, m, m->btf ? info.btf_key_type_id : 0, m->btf ? info.btf_value_type_id : 0);
	map_new_ud(L, m);
	return 1;
}

/* bpf.map_from_pin(path) -> map | nil, msg, errno */
int lmap_from_pin(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	int fd = bpf_obj_get(path);

	if (fd < 0 && errno == ENOENT && lbpf_bpffs_missing(path)) {
		lua_pushnil(L);
		lua_pushfstring(L, "can't open pinned map '%s': %s", path,
				lbpf_bpffs_missing(path));
		lua_pushliteral(L, "ENOENT");
		return 3;
	}
	if (fd < 0)
		return lbpf_failf(L, errno, "can't open pinned map '%s'", path);
	return push_from_fd(L, fd, path);
}

/* bpf.map_from_id(id) -> map | nil, msg, errno */
int lmap_from_id(lua_State *L)
{
	lua_Number id = luaL_checknumber(L, 1);
	int fd;

	if (id < 1 || id > 4294967295.0 || id != (lua_Number)(uint32_t)id)
		return luaL_error(
		    L, "bpf.map_from_id expects a map id (a positive integer), got %f", id);
	fd = bpf_map_get_fd_by_id((__u32)id);
	if (fd < 0)
		return lbpf_failf(L, errno, "no map with id %u", (unsigned)id);
	return push_from_fd(L, fd, NULL);
}
