// SPDX-License-Identifier: MIT
/*
 * luabpf.map's fast path, the lua-resty-core way: flat functions with
 * out-parameters that lua/luabpf/_fastmap.lua calls through LuaJIT's FFI
 * (the binary is linked with -Wl,-E, so ffi.C reaches them), and the
 * installer that swaps the map's hot methods for the Lua versions. Each
 * function returns 0 or an errno and never raises: whatever the fast path
 * does not cover (a closed map, an object not loaded, a key that is not the
 * map's type) goes to the C methods, which say what they always said.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "btf_codec.h"
#include "l_map_batch.h"

#define FASTMAP_MODULE "luabpf._fastmap"
#define FASTMAP_FLAG   "luabpf.fastmap installed"

/* ---- what Lua calls through the FFI (declared in _fastmap.lua) --------- */

/// The fd to use for a fast operation on the map userdata u, or -1: the C
/// method must handle it (closed, not loaded, a type the fast path skips).
int lbpf_map__ffi_fd(const struct map_ud *u)
{
	struct lbpf_map *m = u->m;

	if (!m || !m->fast || (m->o && (!m->o->obj || !m->o->loaded)))
		return -1;
	if (m->fd < 0 && m->o)
		m->fd = bpf_map__fd(m->map);
	return m->fd;
}

/// bpf_map_lookup_elem: 0 or errno.
int lbpf_map__ffi_lookup(int fd, const void *key, void *value)
{
	return bpf_map_lookup_elem(fd, key, value) ? errno : 0;
}

/// bpf_map_update_elem: 0 or errno.
int lbpf_map__ffi_update(int fd, const void *key, const void *value, uint64_t flags)
{
	return bpf_map_update_elem(fd, key, value, flags) ? errno : 0;
}

/// bpf_map_delete_elem: 0 or errno.
int lbpf_map__ffi_delete(int fd, const void *key)
{
	return bpf_map_delete_elem(fd, key) ? errno : 0;
}

/// The message the C method gives for an element operation that failed
/// with err (op: "lookup", "update", "delete"); u NULL: "ENAME: text".
/// Valid until the next call.
const char *lbpf_map__ffi_errmsg(const struct map_ud *u, int err, const void *key, const char *op)
{
	static char msg[256];

	if (!u || !u->m) {
		snprintf(msg, sizeof(msg), "%s: %s", lbpf_errno_name(err), strerror(err));
		return msg;
	}
	return map_elem_errmsg(u->m, err, key, op, msg, sizeof(msg));
}

/// "ENOENT" for ENOENT.
const char *lbpf_map__ffi_errname(int err)
{
	return lbpf_errno_name(err);
}

/* No batch operation for the type: key by key, as l_map_batch.c's collect_slow. */
static int lookup_slow(struct lbpf_map *m, uint8_t *keys, uint8_t *vals, uint32_t cap, uint32_t *n)
{
	uint8_t *prev = NULL;

	*n = 0;
	while (*n < cap) {
		uint8_t *k = keys + (size_t)*n * m->key_size;

		if (bpf_map_get_next_key(m->fd, prev, k))
			return errno == ENOENT ? 0 : errno;
		prev = k;
		if (bpf_map_lookup_elem(m->fd, k, vals + (size_t)*n * m->value_size))
			continue; /* deleted since: the next key still follows k */
		(*n)++;
	}
	return 0;
}

/// Every entry (up to cap) into keys[] and values[], with BPF_MAP_LOOKUP_BATCH
/// chunk entries per syscall where the type has it. *n: how many. 0 or errno.
int lbpf_map__ffi_lookup_batch(const struct map_ud *u, void *keys, void *vals, uint32_t cap,
			       uint32_t chunk, uint32_t *n)
{
	struct lbpf_map *m = u->m;
	uint8_t in[64], out[64];
	bool first = true;

	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	*n = 0;
	if (m->key_size > sizeof(in))
		return lookup_slow(m, keys, vals, cap, n);
	while (*n < cap) {
		__u32 got = chunk < cap - *n ? chunk : cap - *n;
		int rc = bpf_map_lookup_batch(
		    m->fd, first ? NULL : in, out, (uint8_t *)keys + (size_t)*n * m->key_size,
		    (uint8_t *)vals + (size_t)*n * m->value_size, &got, &opts);
		int err = rc ? errno : 0;

		if (rc && first && map_batch_unsupported(err, 0))
			return lookup_slow(m, keys, vals, cap, n);
		if (rc && err == ENOSPC && !got) {
			/* A hash bucket holds more than chunk entries: grow and retry. */
			if (chunk >= cap - *n)
				return ENOSPC;
			chunk *= 2;
			continue;
		}
		if (rc && err != ENOENT)
			return err;
		*n += got;
		if (rc)
			return 0; /* ENOENT: that was the last batch */
		first = false;
		memcpy(in, out, sizeof(in));
	}
	return 0;
}

/// One BPF_MAP_LOOKUP_BATCH of up to *n entries into keys[] and vals[], from
/// the position in (first: the start), the next position into out (both
/// max(key_size, 8) bytes). *n: how many were read. 0: more follow; ENOENT:
/// that was the last; -1: the type has no batches (first only, as
/// l_map_batch.c's collect falls back to iteration); else errno.
int lbpf_map__ffi_lookup_chunk(const struct map_ud *u, int first, void *in, void *out, void *keys,
			       void *vals, uint32_t *n)
{
	int err;

	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	if (!bpf_map_lookup_batch(u->m->fd, first ? NULL : in, out, keys, vals, n, &opts))
		return 0;
	err = errno;
	return first && map_batch_unsupported(err, 0) ? -1 : err;
}

/// What m:lookup_batch() reads per syscall without a count: min(max_entries, 1024).
uint32_t lbpf_map__ffi_batch_count(const struct map_ud *u)
{
	return u->m->max_entries < DEFAULT_BATCH ? u->m->max_entries : DEFAULT_BATCH;
}

/// n keys and values from flat arrays, as m:update_batch does. 0 or errno.
int lbpf_map__ffi_update_batch(const struct map_ud *u, const void *keys, const void *vals,
			       uint32_t n, uint64_t flags)
{
	return map_update_flat(u->m, keys, vals, n, u->m->value_size, flags);
}

/// n keys from a flat array, as m:delete_batch does. 0 or errno.
int lbpf_map__ffi_delete_batch(const struct map_ud *u, const void *keys, uint32_t n)
{
	return map_delete_flat(u->m, keys, n);
}

/* ---- the plan, once per map -------------------------------------------- */

/* The FFI declaration of a codec's type: BTF's, or the no-BTF size rule. */
static void push_decl(lua_State *L, const struct lbpf_codec *c)
{
	struct tinfo ti;
	struct lbpf_buf out = {0};
	char err[256];

	codec_info(c, &ti);
	if (!ti.id) {
		if (ti.kind == K_INT)
			lua_pushfstring(L, "uint%d_t", (int)c->size * 8);
		else
			lua_pushfstring(L, "uint8_t[%d]", (int)c->size);
		return;
	}
	if (lbpf_btf__ffi_decl(c->btf, c->type_id, &out, err, sizeof(err))) {
		lbpf_buf__free(&out);
		lua_pushnil(L);
		return;
	}
	lua_pushlstring(L, out.data, out.len);
	lbpf_buf__free(&out);
}

static bool type_is_fast(const struct lbpf_map *m)
{
	return !m->percpu && !m->fd_values && m->key_size && m->value_size &&
	       m->type != BPF_MAP_TYPE_RINGBUF && m->type != BPF_MAP_TYPE_USER_RINGBUF &&
	       m->type != BPF_MAP_TYPE_PERF_EVENT_ARRAY;
}

/*
 * fastinfo(map) -> nil | {name, key_size, value_size, key_decl, value_decl,
 * key_plan, value_plan}: what _fastmap.lua builds a map's plan from. nil for
 * a closed map or a type the fast path leaves to C. The map's fd stays -1
 * for the FFI until this has enabled it.
 */
static int l_fastinfo(lua_State *L)
{
	struct map_ud *u = luaL_testudata(L, 1, MT_MAP);
	struct lbpf_map *m = u ? u->m : NULL;

	if (!m || !type_is_fast(m) || (m->o && !m->o->obj))
		return 0; /* a closed object's BTF is gone */
	lua_createtable(L, 0, 8);
	lua_pushstring(L, m->name);
	lua_setfield(L, -2, "name");
	lua_pushinteger(L, m->key_size);
	lua_setfield(L, -2, "key_size");
	lua_pushinteger(L, m->value_size);
	lua_setfield(L, -2, "value_size");
	push_decl(L, &m->kc);
	lua_setfield(L, -2, "key_decl");
	push_decl(L, &m->vc);
	lua_setfield(L, -2, "value_decl");
	codec_plan_push(L, m->kc.plan);
	lua_setfield(L, -2, "key_plan");
	codec_plan_push(L, m->vc.plan);
	lua_setfield(L, -2, "value_plan");
	m->fast = true;
	return 1;
}

/*
 * Once per Lua state, when the first map userdata is made: let
 * luabpf._fastmap swap the hot methods of the map metatable. If it can't
 * load, the C methods stay (slower, same behaviour).
 */
void map_fast_install(lua_State *L)
{
	int top = lua_gettop(L);

	lua_getfield(L, LUA_REGISTRYINDEX, FASTMAP_FLAG);
	if (!lua_isnil(L, -1)) {
		lua_settop(L, top);
		return;
	}
	lua_pushboolean(L, 1);
	lua_setfield(L, LUA_REGISTRYINDEX, FASTMAP_FLAG);
	lua_getglobal(L, "require");
	lua_pushliteral(L, FASTMAP_MODULE);
	if (lua_pcall(L, 1, 1, 0) || !lua_istable(L, -1)) {
		lbpf_log(LBPF_DEBUG, "map fast path off: %s",
			 lua_isstring(L, -1) ? lua_tostring(L, -1) : "no module");
		lua_settop(L, top);
		return;
	}
	lua_getfield(L, -1, "install");
	luaL_getmetatable(L, MT_MAP);
	lua_pushcfunction(L, l_fastinfo);
	if (lua_pcall(L, 2, 0, 0))
		lbpf_log(LBPF_DEBUG, "map fast path off: %s", lua_tostring(L, -1));
	lua_settop(L, top);
}
