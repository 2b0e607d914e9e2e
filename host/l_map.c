// SPDX-License-Identifier: MIT
/*
 * luabpf.map: a BPF map as Lua sees it. Keys and values go through the BTF
 * codec; per-CPU maps take and give one value per possible CPU; maps whose
 * values are fds (prog arrays, sockmaps, maps of maps) take the userdata or
 * socket the user already has. Maps come from an object (and keep it alive)
 * or from a pin or an id, with their BTF fetched from the kernel.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "l_map.h"

int map_ncpus(void)
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

const char *map_type_name(enum bpf_map_type t)
{
	const char *s = libbpf_bpf_map_type_str(t);

	return s ? s : "unknown";
}

/* Sizes, codecs and buffers, once the type and sizes are known. */
void map_setup(lua_State *L, struct lbpf_map *m, uint32_t key_type_id, uint32_t value_type_id)
{
	m->percpu = type_is_percpu(m->type);
	m->fd_values = type_has_fd_values(m->type);
	m->stride = m->percpu ? (m->value_size + 7) & ~7u : m->value_size;
	m->vlen = m->percpu ? m->stride * (uint32_t)map_ncpus() : m->value_size;
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

struct lbpf_map *map_new_ud(lua_State *L, struct lbpf_map *m)
{
	struct map_ud *u = lua_newuserdata(L, sizeof(*u));

	u->m = m;
	luaL_getmetatable(L, MT_MAP);
	lua_setmetatable(L, -2);
	map_fast_install(L);
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
	map_setup(L, m, kid, vid);
	map_new_ud(L, m);
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
struct lbpf_map *map_check_open(lua_State *L, int idx)
{
	struct lbpf_map *m = check_ud(L, idx)->m;

	if (!m)
		luaL_error(L, "closed map");
	if (m->o && !m->o->obj)
		luaL_error(L, "map '%s': its object '%s' is closed", m->name, m->o->name);
	return m;
}

/* The map at idx, usable for kernel operations: its fd is known. */
struct lbpf_map *map_check_map(lua_State *L, int idx)
{
	struct lbpf_map *m = map_check_open(L, idx);

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
struct lbpf_map *map_check_elems(lua_State *L, int idx)
{
	struct lbpf_map *m = map_check_map(L, idx);

	if (m->type == BPF_MAP_TYPE_RINGBUF || m->type == BPF_MAP_TYPE_USER_RINGBUF)
		luaL_error(L, "map '%s' is a ringbuf: read it with bpf.ringbuf(map, handler)",
			   m->name);
	if (m->type == BPF_MAP_TYPE_PERF_EVENT_ARRAY)
		luaL_error(L, "map '%s' is a perf event array: read it with a perf buffer",
			   m->name);
	return m;
}

/* ---- about the map ---------------------------------------------------- */

/* Where we pinned it, or where libbpf did (pinning by name). */
const char *map_pinned_path(struct lbpf_map *m)
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
	struct lbpf_map *m = map_check_open(L, 1);
	struct bpf_map_info info = {0};
	__u32 len = sizeof(info);
	bool loaded = !m->o || m->o->loaded;
	const char *pin;

	if (loaded) {
		map_check_map(L, 1);
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
	lua_pushstring(L, map_type_name(info.type));
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
		lua_pushinteger(L, map_ncpus());
		lua_setfield(L, -2, "ncpus");
	}
	pin = map_pinned_path(m);
	if (pin) {
		lua_pushstring(L, pin);
		lua_setfield(L, -2, "pinned");
	}
	return 1;
}

static int l_fd(lua_State *L)
{
	lua_pushinteger(L, map_check_map(L, 1)->fd);
	return 1;
}

static int l_name(lua_State *L)
{
	lua_pushstring(L, map_check_open(L, 1)->name);
	return 1;
}

static int l_type(lua_State *L)
{
	lua_pushstring(L, map_type_name(map_check_open(L, 1)->type));
	return 1;
}

/* m:set_max_entries(n): before obj:load() only. */
static int l_set_max_entries(lua_State *L)
{
	struct lbpf_map *m = map_check_open(L, 1);
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
				map_type_name(m->type), (int)m->key_size, (int)m->value_size,
				(int)m->max_entries);
	return 1;
}

/* ---- what other files use --------------------------------------------- */

/// Fill v for the map at idx; raises if it is not an open map of a loaded object.
void lbpf_map__view(lua_State *L, int idx, struct lbpf_map_view *v)
{
	struct lbpf_map *m = map_check_map(L, idx);

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

static const luaL_Reg methods[] = {
    {"lookup", lmap_lookup},
    {"update", lmap_update},
    {"delete", lmap_delete},
    {"lookup_and_delete", lmap_lookup_and_delete},
    {"lookup_sum", lmap_lookup_sum},
    {"push", lmap_push},
    {"pop", lmap_pop},
    {"peek", lmap_peek},
    {"pairs", lmap_pairs},
    {"keys", lmap_keys},
    {"lookup_batch", lmap_lookup_batch},
    {"update_batch", lmap_update_batch},
    {"delete_batch", lmap_delete_batch},
    {"dump", lmap_dump},
    {"info", l_info},
    {"fd", l_fd},
    {"name", l_name},
    {"type", l_type},
    {"set_max_entries", l_set_max_entries},
    {"pin", lmap_pin},
    {"unpin", lmap_unpin},
    {"close", l_close},
    {"__gc", l_close},
    {"__tostring", l_tostring},
    {NULL, NULL},
};

static const luaL_Reg module_fns[] = {
    {"map_from_pin", lmap_from_pin},
    {"map_from_id", lmap_from_id},
    {NULL, NULL},
};

/// Register the map metatable and bpf.map_from_pin / bpf.map_from_id.
void lbpf_map__register(lua_State *L)
{
	map_mt = lbpf_new_class(L, MT_MAP, methods, module_fns);
}
