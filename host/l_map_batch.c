// SPDX-License-Identifier: MIT
/*
 * luabpf.map: iteration (pairs, keys) and batches (lookup_batch,
 * update_batch, delete_batch, dump), with a slow path where the kernel has
 * no batch operations for the map type.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "l_map_batch.h"

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
	struct lbpf_map *m = map_check_elems(L, lua_upvalueindex(1));
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
			map_decode_key(L, m, it->cur);
			return 1;
		}
		if (bpf_map_lookup_elem(m->fd, it->cur, m->vbuf)) {
			if (errno == ENOENT)
				continue; /* deleted since we saw it */
			return luaL_error(L, "map '%s': lookup during iteration failed: %s",
					  m->name, strerror(errno));
		}
		map_decode_key(L, m, it->cur);
		map_decode_value(L, m, m->vbuf);
		return 2;
	}
}

static int push_iter(lua_State *L, bool with_values)
{
	struct lbpf_map *m = map_check_elems(L, 1);
	struct iter *it;

	if (!m->key_size)
		return luaL_error(L, "map '%s' is a %s: it has no keys to iterate (use pop())",
				  m->name, map_type_name(m->type));
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
int lmap_pairs(lua_State *L)
{
	return push_iter(L, true);
}

/* for k in m:keys() do ... end */
int lmap_keys(lua_State *L)
{
	return push_iter(L, false);
}

/* ---- batches ---------------------------------------------------------- */

bool map_batch_unsupported(int err, __u32 done)
{
	return err == ENOTSUPP || err == EOPNOTSUPP || (err == EINVAL && !done);
}

int map_update_flat(struct lbpf_map *m, const void *keys, const void *vals, size_t n,
		    size_t vstride, __u64 flags)
{
	const uint8_t *k = keys, *v = vals;
	__u32 count = (__u32)n;
	int rc, err;

	LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = flags);
	if (flags == BPF_ANY || flags == BPF_F_LOCK) {
		rc = bpf_map_update_batch(m->fd, keys, vals, &count, &opts);
		err = rc ? errno : 0;
	} else {
		rc = -1;
		err = EINVAL;
		count = 0;
	}
	if (rc && map_batch_unsupported(err, count == n ? 0 : count)) {
		err = 0;
		for (size_t i = 0; i < n && !err; i++)
			if (bpf_map_update_elem(m->fd, k + i * m->key_size, v + i * vstride, flags))
				err = errno;
	}
	return err;
}

int map_delete_flat(struct lbpf_map *m, const void *keys, size_t n)
{
	const uint8_t *k = keys;
	__u32 count = (__u32)n;
	int rc, err;

	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	rc = bpf_map_delete_batch(m->fd, keys, &count, &opts);
	err = rc ? errno : 0;
	if (rc && map_batch_unsupported(err, count == n ? 0 : count)) {
		err = 0;
		for (size_t i = 0; i < n && !err; i++)
			if (bpf_map_delete_elem(m->fd, k + i * m->key_size))
				err = errno;
	}
	return err;
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
		map_decode_key(L, m, cur);
		lua_rawseti(L, kt, n);
		map_decode_value(L, m, m->vbuf);
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
		if (rc && first && map_batch_unsupported(err, 0)) {
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
			map_decode_key(L, m, keys + (size_t)i * m->key_size);
			lua_rawseti(L, kt, n);
			map_decode_value(L, m, vals + (size_t)i * m->vlen);
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
int lmap_lookup_batch(lua_State *L)
{
	struct lbpf_map *m = map_check_elems(L, 1);
	uint32_t count = batch_count(L, 2, m, "lookup_batch");
	int n;

	if (!m->key_size)
		return luaL_error(L, "map '%s' is a %s: it has no keys", m->name,
				  map_type_name(m->type));
	lua_settop(L, 2);
	lua_newtable(L);
	lua_newtable(L);
	n = collect(L, m, 3, 4, count);
	if (n < 0)
		return lbpf_failf(L, -n, "map '%s': lookup_batch", m->name);
	return 2;
}

/* m:dump() -> { {key=, value=}, ... } */
int lmap_dump(lua_State *L)
{
	struct lbpf_map *m = map_check_elems(L, 1);
	int n;

	if (!m->key_size)
		return luaL_error(L, "map '%s' is a %s: it has no keys", m->name,
				  map_type_name(m->type));
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
int lmap_update_batch(lua_State *L)
{
	struct lbpf_map *m = map_check_elems(L, 1);
	size_t n = check_list(L, 2, m, "update_batch", "keys");
	size_t nv = check_list(L, 3, m, "update_batch", "values");
	__u64 flags = map_check_flags(L, 4, m);
	uint8_t *keys, *vals;
	int err;

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
		map_encode_key(L, m, -1, keys + i * m->key_size);
		lua_rawgeti(L, 3, (int)i + 1);
		map_encode_value(L, m, -1, vals + i * m->vlen);
		lua_pop(L, 2);
	}
	err = map_update_flat(m, keys, vals, n, m->vlen, flags);
	if (err)
		return lbpf_failf(L, err, "map '%s': update_batch", m->name);
	lua_pushboolean(L, 1);
	return 1;
}

/* m:delete_batch(keys) -> true | nil, msg, errno */
int lmap_delete_batch(lua_State *L)
{
	struct lbpf_map *m = map_check_elems(L, 1);
	size_t n = check_list(L, 2, m, "delete_batch", "keys");
	uint8_t *keys;
	int err;

	if (!n) {
		lua_pushboolean(L, 1);
		return 1;
	}
	keys = lua_newuserdata(L, n * m->key_size);
	for (size_t i = 0; i < n; i++) {
		lua_rawgeti(L, 2, (int)i + 1);
		map_encode_key(L, m, -1, keys + i * m->key_size);
		lua_pop(L, 1);
	}
	err = map_delete_flat(m, keys, n);
	if (err)
		return lbpf_failf(L, err, "map '%s': delete_batch", m->name);
	lua_pushboolean(L, 1);
	return 1;
}
