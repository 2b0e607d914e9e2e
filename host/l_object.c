// SPDX-License-Identifier: MIT
/*
 * luabpf.object: a BPF ELF object opened from a path or by shipped name,
 * its globals set before load, loaded with the verifier's verdict in the
 * error, its maps and programs handed out as userdata that keep it alive.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "l_object.h"

#ifndef EM_BPF
#define EM_BPF 247
#endif

struct object_ud {
	struct lbpf_object *o;
};

void lbpf_object__ref(struct lbpf_object *o)
{
	o->refs++;
}

static void object_close(struct lbpf_object *o)
{
	if (o->obj) {
		bpf_object__close(o->obj);
		o->obj = NULL;
	}
}

void lbpf_object__unref(struct lbpf_object *o)
{
	if (--o->refs > 0)
		return;
	object_close(o);
	free(o->path);
	free(o->name);
	free(o);
}

void lbpf_object__check_open(lua_State *L, struct lbpf_object *o, const char *what)
{
	if (!o->obj)
		luaL_error(L, "%s: its object '%s' is closed", what, o->name);
}

static struct object_ud *check_ud(lua_State *L, int idx)
{
	return luaL_checkudata(L, idx, MT_OBJECT);
}

struct lbpf_object *lbpf_object__check(lua_State *L, int idx)
{
	struct object_ud *u = check_ud(L, idx);

	if (!u->o || !u->o->obj)
		luaL_error(L, "closed object");
	return u->o;
}

/* Shipped objects by name: "xdp_count" is OBJECT_DIR/xdp_count.bpf.o. */
static int list_shipped(lua_State *L)
{
	DIR *d = opendir(lbpf_object_dir());
	struct dirent *e;
	luaL_Buffer b;
	int n = 0;

	luaL_buffinit(L, &b);
	while (d && (e = readdir(d))) {
		size_t len = strlen(e->d_name);

		if (len > 6 && !strcmp(e->d_name + len - 6, ".bpf.o")) {
			luaL_addstring(&b, n++ ? ", " : "");
			luaL_addlstring(&b, e->d_name, len - 6);
		}
	}
	if (d)
		closedir(d);
	if (!n)
		luaL_addstring(&b, "none");
	luaL_pushresult(&b);
	return 1;
}

/* Say what is wrong with a file before libbpf does, in words a user acts on. */
static int check_elf(lua_State *L, const char *path)
{
	Elf64_Ehdr eh;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return lbpf_failf(L, errno, "can't open BPF object '%s'", path);
	n = read(fd, &eh, sizeof(eh));
	close(fd);
	if (n < (ssize_t)sizeof(eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) {
		lua_pushnil(L);
		lua_pushfstring(L, "'%s' is not a BPF object: not an ELF file "
				   "(build it with clang -target bpf -c)", path);
		lua_pushstring(L, "EINVAL");
		return 3;
	}
	if (eh.e_machine != EM_BPF) {
		lua_pushnil(L);
		lua_pushfstring(L, "'%s' is not a BPF object: ELF machine %d, not BPF "
				   "(build it with clang -target bpf -c)", path, (int)eh.e_machine);
		lua_pushstring(L, "EINVAL");
		return 3;
	}
	return 0;
}

/*
 * bpf_object__open_file with libbpf's warnings kept for the error: its
 * reasons (no BTF, a bad section) are otherwise warnings above a bare errno.
 * Pushes nil, message, errno on failure.
 */
static struct bpf_object *open_file(lua_State *L, const char *path,
				    const struct bpf_object_open_opts *opts)
{
	struct lbpf_buf capture = { 0 };
	struct bpf_object *obj;
	struct btf *btf = NULL;
	int err = 0;

	lbpf_log_capture = &capture;
	obj = bpf_object__open_file(path, opts);
	if (!obj) {
		err = errno;
		/*
		 * libbpf says ENOENT for an object without BTF, a file that exists
		 * (check_elf read it); btf__parse_elf: ENOENT or ENODATA (by version).
		 */
		btf = btf__parse_elf(path, NULL);
		if (!btf && (errno == ENOENT || errno == ENODATA)) {
			lbpf_log_capture = NULL;
			lbpf_buf__free(&capture);
			lua_pushnil(L);
			lua_pushfstring(L, "can't open BPF object '%s': object has no BTF: "
					   "compile with clang -g", path);
			lua_pushstring(L, lbpf_errno_name(err));
			return NULL;
		}
		btf__free(btf);
	}
	lbpf_log_capture = NULL;
	if (!obj) {
		lua_pushnil(L);
		lua_pushfstring(L, "can't open BPF object '%s': %s: %s%s%s", path,
				lbpf_errno_name(err), strerror(err),
				capture.len ? "\n--- libbpf ---\n" : "", capture.len ? capture.data : "");
		lua_pushstring(L, lbpf_errno_name(err));
	} else if (capture.len && lbpf_log_level < LBPF_DEBUG) {
		lbpf_log__replay(&capture); /* it opened: the warnings still apply */
	}
	lbpf_buf__free(&capture);
	return obj;
}

/* luabpf.open(path_or_name [, {name=, btf_custom_path=, pin_root_path=}]) */
static int l_open(lua_State *L)
{
	static const char *const known[] = { "name", "btf_custom_path", "pin_root_path", NULL };
	const char *arg = luaL_checkstring(L, 1);
	char path[4096];
	struct object_ud *u;
	struct bpf_object *obj;
	struct lbpf_object *o;
	int err;

	lbpf_check_options(L, 2, "luabpf.open", known);
	if (strchr(arg, '/') || strstr(arg, ".o")) {
		snprintf(path, sizeof(path), "%s", arg);
	} else {
		snprintf(path, sizeof(path), "%s/%s.bpf.o", lbpf_object_dir(), arg);
		if (access(path, R_OK) != 0) {
			list_shipped(L);
			lua_pushnil(L);
			lua_pushfstring(L, "no shipped BPF object '%s' (looked for %s; shipped: %s)",
					arg, path, lua_tostring(L, -2));
			lua_pushstring(L, "ENOENT");
			return 3;
		}
	}
	err = check_elf(L, path);
	if (err)
		return err;

	LIBBPF_OPTS(bpf_object_open_opts, opts,
		    .object_name = lbpf_opt_string(L, 2, "name", NULL),
		    .btf_custom_path = lbpf_opt_string(L, 2, "btf_custom_path", NULL),
		    .pin_root_path = lbpf_opt_string(L, 2, "pin_root_path", NULL));
	obj = open_file(L, path, &opts);
	if (!obj)
		return 3;

	o = calloc(1, sizeof(*o));
	o->obj = obj;
	o->path = strdup(path);
	o->name = strdup(bpf_object__name(obj));
	o->refs = 1;
	u = lua_newuserdata(L, sizeof(*u));
	u->o = o;
	luaL_getmetatable(L, MT_OBJECT);
	lua_setmetatable(L, -2);
	return 1;
}

/* Find the global NAME in the object's data sections: its map and offset. */
static struct bpf_map *find_global(struct bpf_object *obj, const char *name,
				   struct lbpf_codec *c, size_t *off)
{
	struct btf *btf = bpf_object__btf(obj);
	__u32 n = btf ? btf__type_cnt(btf) : 0;

	for (__u32 id = 1; id < n; id++) {
		const struct btf_type *t = btf__type_by_id(btf, id);
		const struct btf_var_secinfo *vs;
		const char *sec;
		struct bpf_map *m;

		if (!btf_is_datasec(t))
			continue;
		sec = btf__name_by_offset(btf, t->name_off);
		vs = btf_var_secinfos(t);
		for (__u16 i = 0; i < btf_vlen(t); i++, vs++) {
			const struct btf_type *v = btf__type_by_id(btf, vs->type);

			if (strcmp(btf__name_by_offset(btf, v->name_off), name) != 0)
				continue;
			bpf_object__for_each_map(m, obj) {
				const char *mn = bpf_map__name(m);
				size_t ml = strlen(mn), sl = strlen(sec);

				if (!bpf_map__is_internal(m) || ml < sl || strcmp(mn + ml - sl, sec))
					continue;
				c->btf = btf;
				c->type_id = v->type;
				c->size = vs->size;
				*off = vs->offset;
				return m;
			}
		}
	}
	return NULL;
}

/* obj:set(name, value): a const volatile (before load) or data/bss global. */
static int l_set(lua_State *L)
{
	struct lbpf_object *o = lbpf_object__check(L, 1);
	const char *name = luaL_checkstring(L, 2);
	struct lbpf_codec c = { 0 };
	char what[256];
	struct bpf_map *m;
	size_t off, size;
	void *data, *tmp;

	luaL_checkany(L, 3);
	m = find_global(o->obj, name, &c, &off);
	if (!m)
		return luaL_error(L, "object '%s' has no global '%s'", o->name, name);
	if (o->loaded && strstr(bpf_map__name(m), ".rodata"))
		return luaL_error(L, "object '%s': global '%s' is const volatile and the object "
				     "is loaded: set it before obj:load()", o->name, name);
	data = (void *)bpf_map__initial_value(m, &size);
	if (!data || off + c.size > size)
		return luaL_error(L, "object '%s': global '%s' is not writable from here",
				  o->name, name);
	snprintf(what, sizeof(what), "object '%s' global '%s'", o->name, name);
	c.what = what;
	/* Encode aside first: a value that does not fit must not clobber the old one. */
	tmp = lua_newuserdata(L, c.size);
	lbpf_codec__encode(L, &c, 3, tmp);
	memcpy((char *)data + off, tmp, c.size);
	return 0;
}

/* obj:get(name): the current value of a global. */
static int l_get(lua_State *L)
{
	struct lbpf_object *o = lbpf_object__check(L, 1);
	const char *name = luaL_checkstring(L, 2);
	struct lbpf_codec c = { 0 };
	struct bpf_map *m;
	size_t off = 0, size;
	const void *data;

	m = find_global(o->obj, name, &c, &off);
	if (!m)
		return luaL_error(L, "object '%s' has no global '%s'", o->name, name);
	data = bpf_map__initial_value(m, &size);
	if (!data || off + c.size > size)
		return luaL_error(L, "object '%s': global '%s' is not readable", o->name, name);
	c.what = name;
	lbpf_codec__decode(L, &c, (const char *)data + off);
	return 1;
}

/* The names of the object's programs (progs) or maps, in its order. */
static void push_names(lua_State *L, struct lbpf_object *o, bool progs)
{
	struct bpf_program *p = NULL;
	struct bpf_map *m = NULL;
	const char *name;
	int i = 1;

	lua_newtable(L);
	for (;;) {
		if (progs) {
			p = bpf_object__next_program(o->obj, p);
			name = p ? bpf_program__name(p) : NULL;
		} else {
			m = bpf_object__next_map(o->obj, m);
			name = m ? bpf_map__name(m) : NULL;
		}
		if (!name)
			return;
		lua_pushstring(L, name);
		lua_rawseti(L, -2, i++);
	}
}

static int l_maps(lua_State *L)
{
	push_names(L, lbpf_object__check(L, 1), false);
	return 1;
}

static int l_programs(lua_State *L)
{
	push_names(L, lbpf_object__check(L, 1), true);
	return 1;
}

/* Raise: the object has no program (progs) or map name; the error lists those it has. */
static void no_such(lua_State *L, struct lbpf_object *o, const char *name, bool progs)
{
	lua_getglobal(L, "table");
	lua_getfield(L, -1, "concat");
	push_names(L, o, progs);
	lua_pushliteral(L, ", ");
	lua_call(L, 2, 1);
	luaL_error(L, "object '%s' has no %s '%s' (%s: %s)", o->name, progs ? "program" : "map",
		   name, progs ? "programs" : "maps", lua_tostring(L, -1));
}

/* obj:map(name), obj:program(name) */
static int find(lua_State *L, bool progs)
{
	struct lbpf_object *o = lbpf_object__check(L, 1);
	const char *name = luaL_checkstring(L, 2);
	struct bpf_program *p = progs ? bpf_object__find_program_by_name(o->obj, name) : NULL;
	struct bpf_map *m = progs ? NULL : bpf_object__find_map_by_name(o->obj, name);

	if (p)
		lbpf_prog__push(L, o, p);
	else if (m)
		lbpf_map__push(L, o, m);
	else
		no_such(L, o, name, progs);
	return 1;
}

static int l_map(lua_State *L)
{
	return find(L, false);
}

static int l_program(lua_State *L)
{
	return find(L, true);
}

static int l_name(lua_State *L)
{
	lua_pushstring(L, lbpf_object__check(L, 1)->name);
	return 1;
}

static int l_close(lua_State *L)
{
	struct object_ud *u = check_ud(L, 1);

	if (u->o) {
		object_close(u->o);
		lbpf_object__unref(u->o);
		u->o = NULL;
	}
	return 0;
}

static int l_gc(lua_State *L)
{
	struct object_ud *u = check_ud(L, 1);

	/* Only drop our reference: maps and programs may still use the object. */
	if (u->o) {
		lbpf_object__unref(u->o);
		u->o = NULL;
	}
	return 0;
}

static int l_tostring(lua_State *L)
{
	struct object_ud *u = check_ud(L, 1);

	if (!u->o || !u->o->obj)
		lua_pushliteral(L, "luabpf.object (closed)");
	else
		lua_pushfstring(L, "luabpf.object '%s' (%s)", u->o->name,
				u->o->loaded ? "loaded" : "not loaded");
	return 1;
}

/*
 * Per-map settings before load: max_entries={map=n} or map_flags={map=flags}
 * (the table at index t), each naming a map the object has.
 */
static int set_per_map(lua_State *L, struct lbpf_object *o, int t, const char *what,
		       int (*set)(struct bpf_map *, __u32))
{
	luaL_checktype(L, t, LUA_TTABLE);
	lua_pushnil(L);
	while (lua_next(L, t)) {
		const char *mn = luaL_checkstring(L, -2);
		struct bpf_map *m = bpf_object__find_map_by_name(o->obj, mn);

		if (!m)
			return luaL_error(L, "luabpf.load: %s names map '%s', which object '%s' does not have",
					  what, mn, o->name);
		set(m, (__u32)luaL_checkinteger(L, -1));
		lua_pop(L, 1);
	}
	return 0;
}

/* luabpf.load(path_or_name, {globals={...}, max_entries={map=n}, map_flags={map=f}, log_level=, log=}) */
static int l_open_and_load(lua_State *L)
{
	static const char *const known[] = { "globals", "max_entries", "name", "btf_custom_path",
					     "pin_root_path", "log_level", "log", "map_flags", NULL };
	struct lbpf_object *o;

	lbpf_check_options(L, 2, "luabpf.load", known);
	lua_settop(L, 2);
	lua_pushcfunction(L, l_open);
	lua_pushvalue(L, 1);
	lua_newtable(L);
	for (const char *const *k = known + 2; k < known + 5; k++) {
		if (!lua_isnil(L, 2)) {
			lua_getfield(L, 2, *k);
			lua_setfield(L, -2, *k);
		}
	}
	lua_call(L, 2, 3);
	if (lua_isnil(L, -3))
		return 3;
	lua_pop(L, 2); // [path, opts, obj]
	o = lbpf_object__check(L, 3);
	if (!lua_isnil(L, 2)) {
		lua_getfield(L, 2, "globals");
		if (!lua_isnil(L, -1)) {
			luaL_checktype(L, -1, LUA_TTABLE);
			lua_pushnil(L);
			while (lua_next(L, -2)) {
				lua_pushcfunction(L, l_set);
				lua_pushvalue(L, 3);
				lua_pushvalue(L, -4);
				lua_pushvalue(L, -4);
				lua_call(L, 3, 0);
				lua_pop(L, 1);
			}
		}
		lua_pop(L, 1);
		lua_getfield(L, 2, "max_entries");
		if (!lua_isnil(L, -1))
			set_per_map(L, o, lua_gettop(L), "max_entries", bpf_map__set_max_entries);
		lua_getfield(L, 2, "map_flags");
		if (!lua_isnil(L, -1))
			set_per_map(L, o, lua_gettop(L), "map_flags", bpf_map__set_map_flags);
		lua_pop(L, 2);
	}
	lua_pushcfunction(L, lobject_load);
	lua_pushvalue(L, 3);
	lua_newtable(L);
	if (!lua_isnil(L, 2)) {
		lua_getfield(L, 2, "log_level");
		lua_setfield(L, -2, "log_level");
		lua_getfield(L, 2, "log");
		lua_setfield(L, -2, "log");
	}
	lua_call(L, 2, 3);
	if (lua_isnil(L, -3)) {
		/* Don't keep a half-made object: close it now, return the error. */
		object_close(o);
		return 3;
	}
	lua_pop(L, 3);
	return 1;
}

static const luaL_Reg methods[] = {
	{ "set", l_set },
	{ "get", l_get },
	{ "load", lobject_load },
	{ "maps", l_maps },
	{ "programs", l_programs },
	{ "map", l_map },
	{ "program", l_program },
	{ "name", l_name },
	{ "close", l_close },
	{ "__gc", l_gc },
	{ "__tostring", l_tostring },
	{ NULL, NULL },
};

static const luaL_Reg module_fns[] = {
	{ "open", l_open },
	{ "load", l_open_and_load },
	{ NULL, NULL },
};

void lbpf_object__register(lua_State *L)
{
	lbpf_new_class(L, MT_OBJECT, methods, module_fns);
}
