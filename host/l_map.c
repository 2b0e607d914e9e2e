// SPDX-License-Identifier: MIT
/*
 * luabpf.map: a BPF map as Lua sees it. Keys and values go through the BTF
 * codec; per-CPU maps take and give one value per possible CPU; maps whose
 * values are fds (prog arrays, sockmaps, maps of maps) take the userdata or
 * socket the user already has. Maps come from an object (and keep it alive)
 * or from a pin or an id, with their BTF fetched from the kernel.
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <linux/magic.h>

#include "luabpf.h"

#ifndef ENOTSUPP
#define ENOTSUPP 524 /* the kernel's own, returned by the bpf syscall */
#endif

#define DEFAULT_BATCH 1024

struct lbpf_map {
	struct lbpf_object *o; /* NULL for maps from a pin or an id */
	struct bpf_map *map;   /* the object's map, or NULL */
	int fd;		       /* -1 until known (the object loaded) */
	bool own_fd;	       /* ours to close (pin or id) */
	struct btf *own_btf;   /* fetched from the kernel; ours to free */
	const struct btf *btf;
	char name[BPF_OBJ_NAME_LEN + 16];
	char *pin_path; /* for maps not from an object */
	enum bpf_map_type type;
	uint32_t key_size, value_size, max_entries, flags;
	bool percpu, fd_values;
	uint32_t stride; /* bytes per value in a buffer: per CPU, rounded to 8 */
	uint32_t vlen;	 /* bytes of one whole value (all CPUs) */
	struct lbpf_codec kc, vc;
	char kwhat[BPF_OBJ_NAME_LEN + 32], vwhat[BPF_OBJ_NAME_LEN + 32];
	uint8_t *kbuf, *vbuf;
};

struct map_ud {
	struct lbpf_map *m; /* NULL once closed */
};

static int ncpus(void)
{
	static int n;

	if (!n) {
		n = libbpf_num_possible_cpus();
		if (n < 1)
			n = 1;
	}
	return n;
}

static bool type_is_percpu(enum bpf_map_type t)
{
	return t == BPF_MAP_TYPE_PERCPU_HASH || t == BPF_MAP_TYPE_PERCPU_ARRAY ||
	       t == BPF_MAP_TYPE_LRU_PERCPU_HASH || t == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

static bool type_has_fd_values(enum bpf_map_type t)
{
	return t == BPF_MAP_TYPE_PROG_ARRAY || t == BPF_MAP_TYPE_SOCKMAP ||
	       t == BPF_MAP_TYPE_SOCKHASH || t == BPF_MAP_TYPE_ARRAY_OF_MAPS ||
	       t == BPF_MAP_TYPE_HASH_OF_MAPS || t == BPF_MAP_TYPE_PERF_EVENT_ARRAY ||
	       t == BPF_MAP_TYPE_CGROUP_ARRAY || t == BPF_MAP_TYPE_XSKMAP;
}

static const char *type_name(enum bpf_map_type t)
{
	const char *s = libbpf_bpf_map_type_str(t);

	return s ? s : "unknown";
}

/* Sizes, codecs and buffers, once the type and sizes are known. */
static void setup(lua_State *L, struct lbpf_map *m, uint32_t key_type_id, uint32_t value_type_id)
{
	m->percpu = type_is_percpu(m->type);
	m->fd_values = type_has_fd_values(m->type);
	m->stride = m->percpu ? (m->value_size + 7) & ~7u : m->value_size;
	m->vlen = m->percpu ? m->stride * (uint32_t)ncpus() : m->value_size;
	snprintf(m->kwhat, sizeof(m->kwhat), "map '%s' key", m->name);
	snprintf(m->vwhat, sizeof(m->vwhat), "map '%s' value", m->name);
	m->kc = (struct lbpf_codec){
	    .btf = m->btf, .type_id = key_type_id, .size = m->key_size, .what = m->kwhat};
	m->vc = (struct lbpf_codec){.btf = m->btf,
				    .type_id = m->fd_values ? 0 : value_type_id,
				    .size = m->value_size,
				    .what = m->vwhat};
	lbpf_codec__prepare(L, &m->kc);
	lbpf_codec__prepare(L, &m->vc);
	m->kbuf = calloc(1, m->key_size + 8);
	m->vbuf = calloc(1, m->vlen + 8);
}

static struct lbpf_map *new_ud(lua_State *L, struct lbpf_map *m)
{
	struct map_ud *u = lua_newuserdata(L, sizeof(*u));

	u->m = m;
	luaL_getmetatable(L, MT_MAP);
	lua_setmetatable(L, -2);
	return m;
}

/*
 * libbpf zeroes the BTF type ids of some map types (queue, stack, sockmap...)
 * when it creates them, since the kernel refuses BTF there. The object's BTF
 * still says what the key and value are: read the map's definition in .maps.
 */
static void def_types(const struct btf *btf, const char *name, uint32_t *kid, uint32_t *vid)
{
	__u32 n = btf ? btf__type_cnt(btf) : 0;

	for (__u32 id = 1; id < n; id++) {
		const struct btf_type *t = btf__type_by_id(btf, id);
		const struct btf_var_secinfo *vs;

		if (!btf_is_datasec(t) || strcmp(btf__name_by_offset(btf, t->name_off), ".maps"))
			continue;
		vs = btf_var_secinfos(t);
		for (__u16 i = 0; i < btf_vlen(t); i++, vs++) {
			const struct btf_type *v = btf__type_by_id(btf, vs->type);
			const struct btf_type *def;
			const struct btf_member *m;

			if (strcmp(btf__name_by_offset(btf, v->name_off), name))
				continue;
			def = btf__type_by_id(btf, btf__resolve_type(btf, v->type));
			if (!def || !btf_is_struct(def))
				return;
			m = btf_members(def);
			for (__u16 j = 0; j < btf_vlen(def); j++, m++) {
				const char *mn = btf__name_by_offset(btf, m->name_off);
				const struct btf_type *p = btf__type_by_id(btf, m->type);

				if (!p || !btf_is_ptr(p))
					continue;
				if (!strcmp(mn, "key") && !*kid)
					*kid = p->type;
				else if (!strcmp(mn, "value") && !*vid)
					*vid = p->type;
			}
			return;
		}
	}
}

/// Push a map userdata for map of object o (takes a reference on o).
void lbpf_map__push(lua_State *L, struct lbpf_object *o, struct bpf_map *map)
{
	uint32_t kid = bpf_map__btf_key_type_id(map), vid = bpf_map__btf_value_type_id(map);

	struct lbpf_map *m = calloc(1, sizeof(*m));

	if (!m)
		luaL_error(L, "out of memory");
	lbpf_object__ref(o);
	m->o = o;
	m->map = map;
	m->fd = -1;
	m->btf = bpf_object__btf(o->obj);
	snprintf(m->name, sizeof(m->name), "%s", bpf_map__name(map));
	m->type = bpf_map__type(map);
	m->key_size = bpf_map__key_size(map);
	m->value_size = bpf_map__value_size(map);
	m->max_entries = bpf_map__max_entries(map);
	m->flags = bpf_map__map_flags(map);
	if ((!kid && m->key_size) || !vid)
		def_types(m->btf, m->name, &kid, &vid);
	setup(L, m, kid, vid);
	new_ud(L, m);
}

static void map_free(lua_State *L, struct lbpf_map *m)
{
	lbpf_codec__release(L, &m->kc);
	lbpf_codec__release(L, &m->vc);
	if (m->own_fd && m->fd >= 0)
		close(m->fd);
	if (m->own_btf)
		btf__free(m->own_btf);
	if (m->o)
		lbpf_object__unref(m->o);
	free(m->pin_path);
	free(m->kbuf);
	free(m->vbuf);
	free(m);
}

static const void *map_mt; /* our metatable: compared by address on the hot path */

static struct map_ud *check_ud(lua_State *L, int idx)
{
	struct map_ud *u = lua_touserdata(L, idx);

	if (u && lua_getmetatable(L, idx)) {
		const void *mt = lua_topointer(L, -1);

		lua_pop(L, 1);
		if (mt == map_mt)
			return u;
	}
	return luaL_checkudata(L, idx, MT_MAP);
}

/* The map at idx, open; its object (if any) still open. */
static struct lbpf_map *check_open(lua_State *L, int idx)
{
	struct lbpf_map *m = check_ud(L, idx)->m;

	if (!m)
		luaL_error(L, "closed map");
	if (m->o && !m->o->obj)
		luaL_error(L, "map '%s': its object '%s' is closed", m->name, m->o->name);
	return m;
}

/* The map at idx, usable for kernel operations: its fd is known. */
static struct lbpf_map *check_map(lua_State *L, int idx)
{
	struct lbpf_map *m = check_open(L, idx);

	if (m->fd < 0 || m->o) {
		if (m->o && !m->o->loaded)
			luaL_error(L,
				   "map '%s': its object is not loaded yet (call obj:load() first)",
				   m->name);
		if (m->o)
			m->fd = bpf_map__fd(m->map);
		if (m->fd < 0)
			luaL_error(L, "map '%s' has no fd (it was not created)", m->name);
	}
	return m;
}

/* Elementwise operations make no sense on a ring buffer. */
static struct lbpf_map *check_elems(lua_State *L, int idx)
{
	struct lbpf_map *m = check_map(L, idx);

	if (m->type == BPF_MAP_TYPE_RINGBUF || m->type == BPF_MAP_TYPE_USER_RINGBUF)
		luaL_error(L, "map '%s' is a ringbuf: read it with bpf.ringbuf(map, handler)",
			   m->name);
	if (m->type == BPF_MAP_TYPE_PERF_EVENT_ARRAY)
		luaL_error(L, "map '%s' is a perf event array: read it with a perf buffer",
			   m->name);
	return m;
}

/* ---- keys and values -------------------------------------------------- */

/* NULL for maps without keys (queue, stack), where the key must be nil. */
static void *encode_key(lua_State *L, struct lbpf_map *m, int idx, uint8_t *buf)
{
	if (!m->key_size) {
		if (!lua_isnoneornil(L, idx))
			luaL_error(L, "map '%s' is a %s: it has no keys (pass nil)", m->name,
				   type_name(m->type));
		return NULL;
	}
	if (lua_isnoneornil(L, idx))
		luaL_error(L, "%s: expects a key, got nil", m->kwhat);
	lbpf_codec__encode(L, &m->kc, idx, buf);
	return buf;
}

static void decode_key(lua_State *L, struct lbpf_map *m, const uint8_t *buf)
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

static void encode_value(lua_State *L, struct lbpf_map *m, int idx, uint8_t *buf)
{
	int n = ncpus();

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

static void decode_value(lua_State *L, struct lbpf_map *m, const uint8_t *buf)
{
	int n;

	if (!m->percpu) {
		lbpf_codec__decode(L, &m->vc, buf);
		return;
	}
	n = ncpus();
	lua_createtable(L, n, 0);
	for (int i = 0; i < n; i++) {
		lbpf_codec__decode(L, &m->vc, buf + (size_t)i * m->stride);
		lua_rawseti(L, -2, i + 1);
	}
}

static __u64 check_flags(lua_State *L, int idx, struct lbpf_map *m)
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
 * An element operation failed with err: where the kernel's bare code
 * (E2BIG, ENOENT, EINVAL) means an index past the end, or a delete an array
 * can't do, say that, naming the map.
 */
static int elem_fail(lua_State *L, struct lbpf_map *m, int err, const void *key, const char *op)
{
	uint32_t i;

	if (!key || !type_is_indexed(m->type) || m->key_size != sizeof(i))
		return lbpf_fail(L, err);
	memcpy(&i, key, sizeof(i));
	lua_pushnil(L);
	if (i >= m->max_entries)
		lua_pushfstring(L, "map '%s': index %u is out of range 0..%u (%s of %u entries)",
				m->name, (unsigned)i, (unsigned)m->max_entries - 1, type_name(m->type),
				(unsigned)m->max_entries);
	else if (err == EINVAL && !strcmp(op, "delete") &&
		 (m->type == BPF_MAP_TYPE_ARRAY || m->type == BPF_MAP_TYPE_PERCPU_ARRAY))
		lua_pushfstring(L, "map '%s' is an %s: its entries can't be deleted "
				   "(update one to zero it)", m->name, type_name(m->type));
	else
		lua_pushfstring(L, "%s: %s", lbpf_errno_name(err), strerror(err));
	lua_pushstring(L, lbpf_errno_name(err));
	return 3;
}

/* m:lookup(key) -> value | nil, "ENOENT: ...", "ENOENT" */
static int l_lookup(lua_State *L)
{
	struct lbpf_map *m = check_elems(L, 1);
	void *k = encode_key(L, m, 2, m->kbuf);

	if (bpf_map_lookup_elem(m->fd, k, m->vbuf))
		return elem_fail(L, m, errno, k, "lookup");
	decode_value(L, m, m->vbuf);
	return 1;
}

/* m:update(key, value [, flags]) -> true | nil, msg, errno */
static int l_update(lua_State *L)
{
	struct lbpf_map *m = check_elems(L, 1);
	__u64 flags = check_flags(L, 4, m);
	void *k = encode_key(L, m, 2, m->kbuf);

	encode_value(L, m, 3, m->vbuf);
	if (bpf_map_update_elem(m->fd, k, m->vbuf, flags))
		return elem_fail(L, m, errno, k, "update");
	lua_pushboolean(L, 1);
	return 1;
}

static int l_delete(lua_State *L)
{
	struct lbpf_map *m = check_elems(L, 1);
	void *k = encode_key(L, m, 2, m->kbuf);

	if (bpf_map_delete_elem(m->fd, k))
		return elem_fail(L, m, errno, k, "delete");
	lua_pushboolean(L, 1);
	return 1;
}

static int l_lookup_and_delete(lua_State *L)
{
	struct lbpf_map *m = check_elems(L, 1);
	void *k = encode_key(L, m, 2, m->kbuf);

	if (bpf_map_lookup_and_delete_elem(m->fd, k, m->vbuf))
		return lbpf_fail(L, errno);
	decode_value(L, m, m->vbuf);
	return 1;
}

/* m:lookup_sum(key): the per-CPU values summed (bpf.sum). */
static int l_lookup_sum(lua_State *L)
{
	struct lbpf_map *m = check_elems(L, 1);
	int n = l_lookup(L);

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
static int l_push(lua_State *L)
{
	struct lbpf_map *m = check_elems(L, 1);
	__u64 flags = check_flags(L, 3, m);

	encode_value(L, m, 2, m->vbuf);
	if (bpf_map_update_elem(m->fd, NULL, m->vbuf, flags))
		return lbpf_fail(L, errno);
	lua_pushboolean(L, 1);
	return 1;
}

static int l_pop(lua_State *L)
{
	struct lbpf_map *m = check_elems(L, 1);

	if (bpf_map_lookup_and_delete_elem(m->fd, NULL, m->vbuf))
		return lbpf_fail(L, errno);
	decode_value(L, m, m->vbuf);
	return 1;
}

static int l_peek(lua_State *L)
{
	struct lbpf_map *m = check_elems(L, 1);

	if (bpf_map_lookup_elem(m->fd, NULL, m->vbuf))
		return lbpf_fail(L, errno);
	decode_value(L, m, m->vbuf);
	return 1;
}

/* ---- iteration -------------------------------------------------------- */

struct iter {
	bool started, have_next, done, with_values;
	uint8_t *cur, *next; /* both key_size bytes, in keys[] */
	uint8_t keys[];
};

/*
 * The next key is fetched before the current one is handed out, so the loop
 * body may delete the current key (expiring entries) without the kernel
 * restarting the walk from the first key.
 */
static int iter_step(lua_State *L)
{
	struct lbpf_map *m = check_elems(L, lua_upvalueindex(1));
	struct iter *it = lua_touserdata(L, lua_upvalueindex(2));
	uint8_t *tmp;

	if (it->done)
		return 0;
	if (!it->started) {
		it->started = true;
		it->have_next = !bpf_map_get_next_key(m->fd, NULL, it->next);
		if (!it->have_next && errno != ENOENT)
			return luaL_error(L, "map '%s': iteration failed: %s", m->name,
					  strerror(errno));
	}
	for (;;) {
		if (!it->have_next) {
			it->done = true;
			return 0;
		}
		tmp = it->cur;
		it->cur = it->next;
		it->next = tmp;
		it->have_next = !bpf_map_get_next_key(m->fd, it->cur, it->next);
		if (!it->have_next && errno != ENOENT)
			return luaL_error(L, "map '%s': iteration failed: %s", m->name,
					  strerror(errno));
		if (!it->with_values) {
			decode_key(L, m, it->cur);
			return 1;
		}
		if (bpf_map_lookup_elem(m->fd, it->cur, m->vbuf)) {
			if (errno == ENOENT)
				continue; /* deleted since we saw it */
			return luaL_error(L, "map '%s': lookup during iteration failed: %s",
					  m->name, strerror(errno));
		}
		decode_key(L, m, it->cur);
		decode_value(L, m, m->vbuf);
		return 2;
	}
}

static int push_iter(lua_State *L, bool with_values)
{
	struct lbpf_map *m = check_elems(L, 1);
	struct iter *it;

	if (!m->key_size)
		return luaL_error(L, "map '%s' is a %s: it has no keys to iterate (use pop())",
				  m->name, type_name(m->type));
	lua_pushvalue(L, 1);
	it = lua_newuserdata(L, sizeof(*it) + 2 * (size_t)m->key_size);
	memset(it, 0, sizeof(*it));
	it->cur = it->keys;
	it->next = it->keys + m->key_size;
	it->with_values = with_values;
	lua_pushcclosure(L, iter_step, 2);
	return 1;
}

/* for k, v in m:pairs() do ... end */
static int l_pairs(lua_State *L)
{
	return push_iter(L, true);
}

/* for k in m:keys() do ... end */
static int l_keys(lua_State *L)
{
	return push_iter(L, false);
}

/* ---- batches ---------------------------------------------------------- */

/*
 * The map type has no batch operation. The kernel then leaves count as it
 * was, so count can't tell; EINVAL is ambiguous and only counts when nothing
 * was done.
 */
static bool batch_unsupported(int err, __u32 done)
{
	return err == ENOTSUPP || err == EOPNOTSUPP || (err == EINVAL && !done);
}

/* Per-element fallback: keys and values appended to the tables at kt, vt. */
static int collect_slow(lua_State *L, struct lbpf_map *m, int kt, int vt, int n)
{
	uint8_t *cur = malloc(m->key_size), *next = malloc(m->key_size), *tmp;
	bool have = !bpf_map_get_next_key(m->fd, NULL, next);

	while (have) {
		tmp = cur;
		cur = next;
		next = tmp;
		have = !bpf_map_get_next_key(m->fd, cur, next);
		if (bpf_map_lookup_elem(m->fd, cur, m->vbuf))
			continue;
		n++;
		decode_key(L, m, cur);
		lua_rawseti(L, kt, n);
		decode_value(L, m, m->vbuf);
		lua_rawseti(L, vt, n);
	}
	free(cur);
	free(next);
	return n;
}

/*
 * Every entry into two lists at kt and vt, with BPF_MAP_LOOKUP_BATCH where
 * the map type has it. Returns the count, or -errno.
 */
static int collect(lua_State *L, struct lbpf_map *m, int kt, int vt, uint32_t count)
{
	size_t tok = m->key_size > 8 ? m->key_size : 8;
	uint8_t *in = calloc(1, tok), *out = calloc(1, tok), *keys, *vals, *tmp;
	bool first = true;
	int n = 0, err = 0;

	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	keys = malloc((size_t)count * m->key_size);
	vals = malloc((size_t)count * m->vlen);
	for (;;) {
		__u32 got = count;
		int rc =
		    bpf_map_lookup_batch(m->fd, first ? NULL : in, out, keys, vals, &got, &opts);

		err = rc ? errno : 0;
		if (rc && first && batch_unsupported(err, 0)) {
			n = collect_slow(L, m, kt, vt, 0);
			err = 0;
			break;
		}
		if (rc && err == ENOSPC && !got) {
			/* A hash bucket holds more than count entries: grow and retry. */
			count *= 2;
			keys = realloc(keys, (size_t)count * m->key_size);
			vals = realloc(vals, (size_t)count * m->vlen);
			continue;
		}
		if (rc && err != ENOENT)
			break;
		for (__u32 i = 0; i < got; i++) {
			n++;
			decode_key(L, m, keys + (size_t)i * m->key_size);
			lua_rawseti(L, kt, n);
			decode_value(L, m, vals + (size_t)i * m->vlen);
			lua_rawseti(L, vt, n);
		}
		if (rc) {
			err = 0; /* ENOENT: that was the last batch */
			break;
		}
		first = false;
		tmp = in;
		in = out;
		out = tmp;
	}
	free(in);
	free(out);
	free(keys);
	free(vals);
	return err ? -err : n;
}

static uint32_t batch_count(lua_State *L, int idx, struct lbpf_map *m, const char *fn)
{
	static const char *const known[] = {"count", NULL};
	lua_Integer n;
	char what[96];

	snprintf(what, sizeof(what), "map '%s': %s", m->name, fn);
	lbpf_check_options(L, idx, what, known);
	n = lbpf_opt_integer(L, idx, "count",
			     m->max_entries < DEFAULT_BATCH ? m->max_entries : DEFAULT_BATCH);
	if (n < 1)
		luaL_error(L, "%s: count must be at least 1, got %d", what, (int)n);
	return (uint32_t)n;
}

/* m:lookup_batch([{count=N}]) -> keys, values (every entry) */
static int l_lookup_batch(lua_State *L)
{
	struct lbpf_map *m = check_elems(L, 1);
	uint32_t count = batch_count(L, 2, m, "lookup_batch");
	int n;

	if (!m->key_size)
		return luaL_error(L, "map '%s' is a %s: it has no keys", m->name,
				  type_name(m->type));
	lua_settop(L, 2);
	lua_newtable(L);
	lua_newtable(L);
	n = collect(L, m, 3, 4, count);
	if (n < 0)
		return lbpf_failf(L, -n, "map '%s': lookup_batch", m->name);
	return 2;
}

/* m:dump() -> { {key=, value=}, ... } */
static int l_dump(lua_State *L)
{
	struct lbpf_map *m = check_elems(L, 1);
	int n;

	if (!m->key_size)
		return luaL_error(L, "map '%s' is a %s: it has no keys", m->name,
				  type_name(m->type));
	lua_settop(L, 1);
	lua_newtable(L);
	lua_newtable(L);
	n = collect(L, m, 2, 3, m->max_entries < DEFAULT_BATCH ? m->max_entries : DEFAULT_BATCH);
	if (n < 0)
		return lbpf_failf(L, -n, "map '%s': dump", m->name);
	lua_createtable(L, n, 0);
	for (int i = 1; i <= n; i++) {
		lua_createtable(L, 0, 2);
		lua_rawgeti(L, 2, i);
		lua_setfield(L, -2, "key");
		lua_rawgeti(L, 3, i);
		lua_setfield(L, -2, "value");
		lua_rawseti(L, -2, i);
	}
	return 1;
}

static size_t check_list(lua_State *L, int idx, struct lbpf_map *m, const char *fn,
			 const char *what)
{
	if (lua_type(L, idx) != LUA_TTABLE)
		luaL_error(L, "map '%s': %s expects a list of %s, got %s", m->name, fn, what,
			   luaL_typename(L, idx));
	return lua_objlen(L, idx);
}

/* m:update_batch(keys, values [, flags]) -> true | nil, msg, errno */
static int l_update_batch(lua_State *L)
{
	struct lbpf_map *m = check_elems(L, 1);
	size_t n = check_list(L, 2, m, "update_batch", "keys");
	size_t nv = check_list(L, 3, m, "update_batch", "values");
	__u64 flags = check_flags(L, 4, m);
	uint8_t *keys, *vals;
	__u32 count = (__u32)n;
	int rc, err = 0;

	if (n != nv)
		return luaL_error(L, "map '%s': update_batch got %d keys and %d values", m->name,
				  (int)n, (int)nv);
	if (!n) {
		lua_pushboolean(L, 1);
		return 1;
	}
	/* Lua userdata, so an error while encoding frees them. */
	keys = lua_newuserdata(L, n * m->key_size);
	vals = lua_newuserdata(L, n * m->vlen);
	for (size_t i = 0; i < n; i++) {
		lua_rawgeti(L, 2, (int)i + 1);
		encode_key(L, m, -1, keys + i * m->key_size);
		lua_rawgeti(L, 3, (int)i + 1);
		encode_value(L, m, -1, vals + i * m->vlen);
		lua_pop(L, 2);
	}
	/* The kernel's batch takes BPF_F_LOCK only: exist/noexist go one by one. */
	LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = flags);
	if (flags == BPF_ANY || flags == BPF_F_LOCK) {
		rc = bpf_map_update_batch(m->fd, keys, vals, &count, &opts);
		err = rc ? errno : 0;
	} else {
		rc = -1;
		err = EINVAL;
		count = 0;
	}
	if (rc && batch_unsupported(err, count == n ? 0 : count)) {
		err = 0;
		for (size_t i = 0; i < n && !err; i++)
			if (bpf_map_update_elem(m->fd, keys + i * m->key_size, vals + i * m->vlen,
						flags))
				err = errno;
	}
	if (err)
		return lbpf_failf(L, err, "map '%s': update_batch", m->name);
	lua_pushboolean(L, 1);
	return 1;
}

/* m:delete_batch(keys) -> true | nil, msg, errno */
static int l_delete_batch(lua_State *L)
{
	struct lbpf_map *m = check_elems(L, 1);
	size_t n = check_list(L, 2, m, "delete_batch", "keys");
	__u32 count = (__u32)n;
	uint8_t *keys;
	int rc, err;

	if (!n) {
		lua_pushboolean(L, 1);
		return 1;
	}
	keys = lua_newuserdata(L, n * m->key_size);
	for (size_t i = 0; i < n; i++) {
		lua_rawgeti(L, 2, (int)i + 1);
		encode_key(L, m, -1, keys + i * m->key_size);
		lua_pop(L, 1);
	}
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	rc = bpf_map_delete_batch(m->fd, keys, &count, &opts);
	err = rc ? errno : 0;
	if (rc && batch_unsupported(err, count == n ? 0 : count)) {
		err = 0;
		for (size_t i = 0; i < n && !err; i++)
			if (bpf_map_delete_elem(m->fd, keys + i * m->key_size))
				err = errno;
	}
	if (err)
		return lbpf_failf(L, err, "map '%s': delete_batch", m->name);
	lua_pushboolean(L, 1);
	return 1;
}

/* ---- about the map ---------------------------------------------------- */

/* Where we pinned it, or where libbpf did (pinning by name). */
static const char *pinned_path(struct lbpf_map *m)
{
	if (m->pin_path)
		return m->pin_path;
	if (m->map && bpf_map__is_pinned(m->map))
		return bpf_map__pin_path(m->map);
	return NULL;
}

/* m:info() -> {type=, key_size=, value_size=, max_entries=, id=, name=, flags=, btf_id=, pinned=}
 */
static int l_info(lua_State *L)
{
	struct lbpf_map *m = check_open(L, 1);
	struct bpf_map_info info = {0};
	__u32 len = sizeof(info);
	bool loaded = !m->o || m->o->loaded;
	const char *pin;

	if (loaded) {
		check_map(L, 1);
		if (bpf_obj_get_info_by_fd(m->fd, &info, &len))
			return lbpf_failf(L, errno, "map '%s': info", m->name);
	} else {
		info.type = m->type;
		info.key_size = m->key_size;
		info.value_size = m->value_size;
		info.max_entries = m->max_entries;
		info.map_flags = m->flags;
	}
	lua_createtable(L, 0, 10);
	lua_pushstring(L, type_name(info.type));
	lua_setfield(L, -2, "type");
	lua_pushstring(L, loaded && info.name[0] ? info.name : m->name);
	lua_setfield(L, -2, "name");
	lua_pushinteger(L, info.key_size);
	lua_setfield(L, -2, "key_size");
	lua_pushinteger(L, info.value_size);
	lua_setfield(L, -2, "value_size");
	lua_pushnumber(L, info.max_entries);
	lua_setfield(L, -2, "max_entries");
	lua_pushnumber(L, info.map_flags);
	lua_setfield(L, -2, "flags");
	if (loaded) {
		lua_pushnumber(L, info.id);
		lua_setfield(L, -2, "id");
		if (info.btf_id) {
			lua_pushnumber(L, info.btf_id);
			lua_setfield(L, -2, "btf_id");
		}
	}
	if (m->percpu) {
		lua_pushinteger(L, ncpus());
		lua_setfield(L, -2, "ncpus");
	}
	pin = pinned_path(m);
	if (pin) {
		lua_pushstring(L, pin);
		lua_setfield(L, -2, "pinned");
	}
	return 1;
}

static int l_fd(lua_State *L)
{
	lua_pushinteger(L, check_map(L, 1)->fd);
	return 1;
}

static int l_name(lua_State *L)
{
	lua_pushstring(L, check_open(L, 1)->name);
	return 1;
}

static int l_type(lua_State *L)
{
	lua_pushstring(L, type_name(check_open(L, 1)->type));
	return 1;
}

/* m:set_max_entries(n): before obj:load() only. */
static int l_set_max_entries(lua_State *L)
{
	struct lbpf_map *m = check_open(L, 1);
	lua_Number n = luaL_checknumber(L, 2);

	if (n < 1 || n > 4294967295.0 || n != (lua_Number)(uint32_t)n)
		return luaL_error(L, "map '%s': max_entries expects a positive integer, got %f",
				  m->name, n);
	if (!m->o)
		return luaL_error(L,
				  "map '%s' was not created by this process: its size is "
				  "fixed",
				  m->name);
	if (m->o->loaded)
		return luaL_error(L,
				  "map '%s': set_max_entries must come before obj:load() "
				  "(the map already exists in the kernel)",
				  m->name);
	if (bpf_map__set_max_entries(m->map, (__u32)n))
		return lbpf_failf(L, errno, "map '%s': set_max_entries", m->name);
	m->max_entries = (uint32_t)n;
	lua_pushboolean(L, 1);
	return 1;
}

/* Why a pin failed, in words: a missing bpffs is the usual cause. */
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
static int l_pin(lua_State *L)
{
	struct lbpf_map *m = check_map(L, 1);
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
static int l_unpin(lua_State *L)
{
	struct lbpf_map *m = check_open(L, 1);
	const char *path = luaL_optstring(L, 2, pinned_path(m));
	int rc;

	if (!path)
		return luaL_error(L, "map '%s' is not pinned (pass the path to unpin)", m->name);
	if (!m->pin_path && m->map && pinned_path(m) && !strcmp(path, pinned_path(m)))
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

static int l_close(lua_State *L)
{
	struct map_ud *u = check_ud(L, 1);

	if (u->m) {
		map_free(L, u->m);
		u->m = NULL;
	}
	return 0;
}

static int l_tostring(lua_State *L)
{
	struct lbpf_map *m = check_ud(L, 1)->m;

	if (!m)
		lua_pushliteral(L, "luabpf.map (closed)");
	else
		lua_pushfstring(L, "luabpf.map '%s' (%s, %d->%d bytes, %d max)", m->name,
				type_name(m->type), (int)m->key_size, (int)m->value_size,
				(int)m->max_entries);
	return 1;
}

/* ---- what other files use --------------------------------------------- */

/// Fill v for the map at idx; raises if it is not an open map of a loaded object.
void lbpf_map__view(lua_State *L, int idx, struct lbpf_map_view *v)
{
	struct lbpf_map *m = check_map(L, idx);

	v->fd = m->fd;
	v->btf = m->btf;
	v->name = m->name;
	v->type = m->type;
	v->key_size = m->key_size;
	v->value_size = m->value_size;
	v->max_entries = m->max_entries;
}

/// The fd of the map userdata at idx, or -1 if it is none (or not usable).
int lbpf_map__to_fd(lua_State *L, int idx)
{
	struct map_ud *u = luaL_testudata(L, idx, MT_MAP);
	struct lbpf_map *m = u ? u->m : NULL;

	if (!m || (m->o && (!m->o->obj || !m->o->loaded)))
		return -1;
	return m->o ? bpf_map__fd(m->map) : m->fd;
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
	setup(L, m, m->btf ? info.btf_key_type_id : 0, m->btf ? info.btf_value_type_id : 0);
	new_ud(L, m);
	return 1;
}

/* bpf.map_from_pin(path) -> map | nil, msg, errno */
static int l_map_from_pin(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	int fd = bpf_obj_get(path);

	if (fd < 0 && errno == ENOENT && lbpf_bpffs_missing(path)) {
		lua_pushnil(L);
		lua_pushfstring(L, "can't open pinned map '%s': %s", path, lbpf_bpffs_missing(path));
		lua_pushliteral(L, "ENOENT");
		return 3;
	}
	if (fd < 0)
		return lbpf_failf(L, errno, "can't open pinned map '%s'", path);
	return push_from_fd(L, fd, path);
}

/* bpf.map_from_id(id) -> map | nil, msg, errno */
static int l_map_from_id(lua_State *L)
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

static const luaL_Reg methods[] = {
    {"lookup", l_lookup},
    {"update", l_update},
    {"delete", l_delete},
    {"lookup_and_delete", l_lookup_and_delete},
    {"lookup_sum", l_lookup_sum},
    {"push", l_push},
    {"pop", l_pop},
    {"peek", l_peek},
    {"pairs", l_pairs},
    {"keys", l_keys},
    {"lookup_batch", l_lookup_batch},
    {"update_batch", l_update_batch},
    {"delete_batch", l_delete_batch},
    {"dump", l_dump},
    {"info", l_info},
    {"fd", l_fd},
    {"name", l_name},
    {"type", l_type},
    {"set_max_entries", l_set_max_entries},
    {"pin", l_pin},
    {"unpin", l_unpin},
    {"close", l_close},
    {"__gc", l_close},
    {"__tostring", l_tostring},
    {NULL, NULL},
};

static const luaL_Reg module_fns[] = {
    {"map_from_pin", l_map_from_pin},
    {"map_from_id", l_map_from_id},
    {NULL, NULL},
};

/// Register the map metatable and bpf.map_from_pin / bpf.map_from_id.
void lbpf_map__register(lua_State *L)
{
	lbpf_new_class(L, MT_MAP, methods);
	luaL_getmetatable(L, MT_MAP);
	map_mt = lua_topointer(L, -1);
	lua_pop(L, 1);
	luaL_register(L, NULL, module_fns);
}
