// SPDX-License-Identifier: MIT
/*
 * luabpf.map: keys and values through the BTF codec (per-CPU values, and
 * fds for maps whose values are fds), and the element operations.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "l_map.h"

/* ---- keys and values -------------------------------------------------- */

/* NULL for maps without keys (queue, stack), where the key must be nil. */
void *map_encode_key(lua_State *L, struct lbpf_map *m, int idx, uint8_t *buf)
{
	if (!m->key_size) {
		if (!lua_isnoneornil(L, idx))
			luaL_error(L, "map '%s' is a %s: it has no keys (pass nil)", m->name,
				   map_type_name(m->type));
		return NULL;
	}
	if (lua_isnoneornil(L, idx))
		luaL_error(L, "%s: expects a key, got nil", m->kwhat);
	lbpf_codec__encode(L, &m->kc, idx, buf);
	return buf;
}

void map_decode_key(lua_State *L, struct lbpf_map *m, const uint8_t *buf)
{
	if (!m->key_size)
		lua_pushnil(L);
	else
		lbpf_codec__decode(L, &m->kc, buf);
}

static int call_fileno(lua_State *L, int idx)
{
	int top = lua_gettop(L), fd;

	if (lua_type(L, idx) != LUA_TTABLE) {
		if (!luaL_getmetafield(L, idx, "__index"))
			return -1;
		lua_pop(L, 1);
	}
	lua_getfield(L, idx, "fileno");
	if (!lua_isfunction(L, -1)) {
		lua_settop(L, top);
		return -1;
	}
	lua_pushvalue(L, idx);
	lua_call(L, 1, 2);
	if (lua_type(L, -2) != LUA_TNUMBER)
		luaL_error(L, "fileno() failed: %s",
			   lua_isstring(L, -1) ? lua_tostring(L, -1) : "no fd");
	fd = (int)lua_tointeger(L, -2);
	lua_settop(L, top);
	return fd;
}

/* Values of prog arrays, sockmaps and maps of maps are fds on the way in. */
static void encode_fd_value(lua_State *L, struct lbpf_map *m, int idx, uint8_t *buf)
{
	const char *want;
	int top = lua_gettop(L), fd = -1;

	switch (m->type) {
	case BPF_MAP_TYPE_PROG_ARRAY:
		want = "a program (or a program fd)";
		break;
	case BPF_MAP_TYPE_ARRAY_OF_MAPS:
	case BPF_MAP_TYPE_HASH_OF_MAPS:
		want = "a map (or a map fd)";
		break;
	case BPF_MAP_TYPE_SOCKMAP:
	case BPF_MAP_TYPE_SOCKHASH:
	case BPF_MAP_TYPE_XSKMAP:
		want = "a socket fd (or a handle with :fileno())";
		break;
	default:
		want = "an fd";
	}
	idx = idx < 0 ? top + idx + 1 : idx;
	if (lua_type(L, idx) == LUA_TNUMBER) {
		lua_Number n = lua_tonumber(L, idx);

		if (n < 0 || n != (lua_Number)(int)n)
			luaL_error(L, "%s expects %s, got %f", m->vwhat, want, n);
		fd = (int)n;
	} else if (lua_type(L, idx) == LUA_TUSERDATA || lua_type(L, idx) == LUA_TTABLE) {
		if (m->type == BPF_MAP_TYPE_PROG_ARRAY)
			fd = lbpf_prog__to_fd(L, idx);
		else if (m->type == BPF_MAP_TYPE_ARRAY_OF_MAPS ||
			 m->type == BPF_MAP_TYPE_HASH_OF_MAPS)
			fd = lbpf_map__to_fd(L, idx);
		if (fd < 0)
			fd = call_fileno(L, idx);
		lua_settop(L, top);
	}
	if (fd < 0)
		luaL_error(L, "%s expects %s, got %s", m->vwhat, want, luaL_typename(L, idx));
	memset(buf, 0, m->value_size);
	if (m->value_size >= 8) {
		uint64_t v = (uint64_t)fd;

		memcpy(buf, &v, 8);
	} else {
		uint32_t v = (uint32_t)fd;

		memcpy(buf, &v, 4);
	}
}

/* A table that is a list of per-CPU values, not one value that is a table. */
static bool is_cpu_list(lua_State *L, struct lbpf_map *m, int idx)
{
	bool array_type = false;
	bool r;

	if (lua_type(L, idx) != LUA_TTABLE)
		return false;
	if (m->btf && m->vc.type_id) {
		int id = btf__resolve_type(m->btf, m->vc.type_id);
		const struct btf_type *t = id > 0 ? btf__type_by_id(m->btf, id) : NULL;

		array_type = t && btf_is_array(t);
	}
	lua_rawgeti(L, idx, 1);
	r = !lua_isnil(L, -1) && (!array_type || lua_type(L, -1) == LUA_TTABLE);
	lua_pop(L, 1);
	return r;
}

void map_encode_value(lua_State *L, struct lbpf_map *m, int idx, uint8_t *buf)
{
	int n = map_ncpus();

	idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
	if (lua_isnoneornil(L, idx))
		luaL_error(L, "%s: expects a value, got nil", m->vwhat);
	if (m->fd_values) {
		encode_fd_value(L, m, idx, buf);
		return;
	}
	if (!m->percpu) {
		lbpf_codec__encode(L, &m->vc, idx, buf);
		return;
	}
	memset(buf, 0, m->vlen);
	if (is_cpu_list(L, m, idx)) {
		int len = (int)lua_objlen(L, idx);

		if (len != n)
			luaL_error(L,
				   "%s: per-CPU map expects one value per possible CPU (%d), "
				   "got %d (or pass a single value for every CPU)",
				   m->vwhat, n, len);
		for (int i = 0; i < n; i++) {
			lua_rawgeti(L, idx, i + 1);
			lbpf_codec__encode(L, &m->vc, -1, buf + (size_t)i * m->stride);
			lua_pop(L, 1);
		}
		return;
	}
	lbpf_codec__encode(L, &m->vc, idx, buf);
	for (int i = 1; i < n; i++)
		memcpy(buf + (size_t)i * m->stride, buf, m->value_size);
}

void map_decode_value(lua_State *L, struct lbpf_map *m, const uint8_t *buf)
{
	int n;

	if (!m->percpu) {
		lbpf_codec__decode(L, &m->vc, buf);
		return;
	}
	n = map_ncpus();
	lua_createtable(L, n, 0);
	for (int i = 0; i < n; i++) {
		lbpf_codec__decode(L, &m->vc, buf + (size_t)i * m->stride);
		lua_rawseti(L, -2, i + 1);
	}
}

__u64 map_check_flags(lua_State *L, int idx, struct lbpf_map *m)
{
	static const char *const names[] = {"any", "noexist", "exist", "lock", NULL};
	static const __u64 values[] = {BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK};
	const char *s;

	if (lua_isnoneornil(L, idx))
		return BPF_ANY;
	s = lua_tostring(L, idx);
	for (int i = 0; s && lua_type(L, idx) == LUA_TSTRING && names[i]; i++)
		if (!strcmp(s, names[i]))
			return values[i];
	return (__u64)luaL_error(L,
				 "map '%s': unknown update flag '%s' (valid: any, noexist, "
				 "exist, lock)",
				 m->name, s ? s : luaL_typename(L, idx));
}

/* ---- element operations ----------------------------------------------- */

/* Maps whose keys are an index 0..max_entries-1. */
static bool type_is_indexed(enum bpf_map_type t)
{
	return t == BPF_MAP_TYPE_ARRAY || t == BPF_MAP_TYPE_PERCPU_ARRAY ||
	       t == BPF_MAP_TYPE_PROG_ARRAY || t == BPF_MAP_TYPE_CGROUP_ARRAY ||
	       t == BPF_MAP_TYPE_ARRAY_OF_MAPS || t == BPF_MAP_TYPE_DEVMAP ||
	       t == BPF_MAP_TYPE_CPUMAP || t == BPF_MAP_TYPE_XSKMAP || t == BPF_MAP_TYPE_SOCKMAP ||
	       t == BPF_MAP_TYPE_REUSEPORT_SOCKARRAY;
}

/*
 * The message for an element operation that failed with err: where the
 * kernel's bare code (E2BIG, ENOENT, EINVAL) means an index past the end, or
 * a delete an array can't do, say that, naming the map. Shared with the FFI
 * path (l_map_ffi.c), so both say the same.
 */
const char *map_elem_errmsg(struct lbpf_map *m, int err, const void *key, const char *op,
			    char *out, size_t n)
{
	uint32_t i;

	if (key && type_is_indexed(m->type) && m->key_size == sizeof(i)) {
		memcpy(&i, key, sizeof(i));
		if (i >= m->max_entries) {
			snprintf(out, n, "map '%s': index %u is out of range 0..%u (%s of %u entries)",
				 m->name, (unsigned)i, (unsigned)m->max_entries - 1,
				 map_type_name(m->type), (unsigned)m->max_entries);
			return out;
		}
		if (err == EINVAL && !strcmp(op, "delete") &&
		    (m->type == BPF_MAP_TYPE_ARRAY || m->type == BPF_MAP_TYPE_PERCPU_ARRAY)) {
			snprintf(out, n,
				 "map '%s' is an %s: its entries can't be deleted "
				 "(update one to zero it)",
				 m->name, map_type_name(m->type));
			return out;
		}
	}
	snprintf(out, n, "%s: %s", lbpf_errno_name(err), strerror(err));
	return out;
}

static int elem_fail(lua_State *L, struct lbpf_map *m, int err, const void *key, const char *op)
{
	char msg[256];

	lua_pushnil(L);
	lua_pushstring(L, map_elem_errmsg(m, err, key, op, msg, sizeof(msg)));
	lua_pushstring(L, lbpf_errno_name(err));
	return 3;
}

/* m:lookup(key) -> value | nil, "ENOENT: ...", "ENOENT" */
int lmap_lookup(lua_State *L)
{
	struct lbpf_map *m = map_check_elems(L, 1);
	void *k = map_encode_key(L, m, 2, m->kbuf);

	if (bpf_map_lookup_elem(m->fd, k, m->vbuf))
		return elem_fail(L, m, errno, k, "lookup");
	map_decode_value(L, m, m->vbuf);
	return 1;
}

/* m:update(key, value [, flags]) -> true | nil, msg, errno */
int lmap_update(lua_State *L)
{
	struct lbpf_map *m = map_check_elems(L, 1);
	__u64 flags = map_check_flags(L, 4, m);
	void *k = map_encode_key(L, m, 2, m->kbuf);

	map_encode_value(L, m, 3, m->vbuf);
	if (bpf_map_update_elem(m->fd, k, m->vbuf, flags))
		return elem_fail(L, m, errno, k, "update");
	lua_pushboolean(L, 1);
	return 1;
}

int lmap_delete(lua_State *L)
{
	struct lbpf_map *m = map_check_elems(L, 1);
	void *k = map_encode_key(L, m, 2, m->kbuf);

	if (bpf_map_delete_elem(m->fd, k))
		return elem_fail(L, m, errno, k, "delete");
	lua_pushboolean(L, 1);
	return 1;
}

int lmap_lookup_and_delete(lua_State *L)
{
	struct lbpf_map *m = map_check_elems(L, 1);
	void *k = map_encode_key(L, m, 2, m->kbuf);

	if (bpf_map_lookup_and_delete_elem(m->fd, k, m->vbuf))
		return lbpf_fail(L, errno);
	map_decode_value(L, m, m->vbuf);
	return 1;
}

/* m:lookup_sum(key): the per-CPU values summed (bpf.sum). */
int lmap_lookup_sum(lua_State *L)
{
	struct lbpf_map *m = map_check_elems(L, 1);
	int n = lmap_lookup(L);

	if (n != 1)
		return n;
	if (!m->percpu)
		return 1;
	lua_getglobal(L, "bpf");
	if (lua_istable(L, -1))
		lua_getfield(L, -1, "sum");
	else
		lua_pushnil(L);
	if (!lua_isfunction(L, -1))
		return luaL_error(L, "bpf.sum is missing");
	lua_pushvalue(L, -3);
	lua_call(L, 1, 1);
	return 1;
}

/* q:push(value [, flags]), q:pop(), q:peek() for queues and stacks. */
int lmap_push(lua_State *L)
{
	struct lbpf_map *m = map_check_elems(L, 1);
	__u64 flags = map_check_flags(L, 3, m);

	map_encode_value(L, m, 2, m->vbuf);
	if (bpf_map_update_elem(m->fd, NULL, m->vbuf, flags))
		return lbpf_fail(L, errno);
	lua_pushboolean(L, 1);
	return 1;
}

int lmap_pop(lua_State *L)
{
	struct lbpf_map *m = map_check_elems(L, 1);

	if (bpf_map_lookup_and_delete_elem(m->fd, NULL, m->vbuf))
		return lbpf_fail(L, errno);
	map_decode_value(L, m, m->vbuf);
	return 1;
}

int lmap_peek(lua_State *L)
{
	struct lbpf_map *m = map_check_elems(L, 1);

	if (bpf_map_lookup_elem(m->fd, NULL, m->vbuf))
		return lbpf_fail(L, errno);
	map_decode_value(L, m, m->vbuf);
	return 1;
}
