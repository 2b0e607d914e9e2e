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

#include "l_prog.h"

/* ---- access ------------------------------------------------------------ */

struct prog_ud *prog_check_ud(lua_State *L, int idx)
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
int prog_check_fd(lua_State *L, struct prog_ud *u)
{
	int fd = ud_fd(u);

	if (fd >= 0)
		return fd;
	if (!u->o->loaded)
		luaL_error(L, "program '%s' is not loaded: call obj:load() first", u->name);
	luaL_error(L, "program '%s' was not loaded (autoload is off)", u->name);
	return -1;
}

enum bpf_prog_type prog_ud_type(struct prog_ud *u)
{
	return u->p ? bpf_program__type(u->p) : u->type;
}

const char *prog_type_name(enum bpf_prog_type t)
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
	struct prog_ud *u = prog_check_ud(L, 1);
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
	fd = prog_check_fd(L, u);
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
			return prog_fail_hint(L, err,
					      "the output is larger than data_size_out: "
					      "pass a bigger one",
					      "program '%s': test_run", u->name);
		if (err == EOPNOTSUPP || err == 524 /* ENOTSUPP */)
			return prog_fail_hint(L, err, NULL,
					      "program '%s': test_run is not supported for "
					      "%s programs",
					      u->name, prog_type_name(prog_ud_type(u)));
		return prog_fail_hint(L, err,
				      err == EINVAL ? "the input is too short or the ctx does "
						      "not fit this program type"
						    : NULL,
				      "program '%s': test_run", u->name);
	}
	lua_createtable(L, 0, 5);
	lua_pushinteger(L, (lua_Integer)(int32_t)opts.retval);
	lua_setfield(L, -2, "retval");
	v = verdict_name(prog_ud_type(u), opts.retval);
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
	set_num(L, "loaded_at", lbpf_boot_to_wall(info.load_time));
	lbpf_set_ids(L, ids, nids);
	free(ids);
	return 1;
}

static int l_info(lua_State *L)
{
	struct prog_ud *u = prog_check_ud(L, 1);

	return push_info(L, prog_check_fd(L, u), u->name);
}

static int l_name(lua_State *L)
{
	lua_pushstring(L, prog_check_ud(L, 1)->name);
	return 1;
}

static int l_fd(lua_State *L)
{
	struct prog_ud *u = prog_check_ud(L, 1);

	lua_pushinteger(L, prog_check_fd(L, u));
	return 1;
}

static int l_type(lua_State *L)
{
	lua_pushstring(L, prog_type_name(prog_ud_type(prog_check_ud(L, 1))));
	return 1;
}

static int l_section(lua_State *L)
{
	struct prog_ud *u = prog_check_ud(L, 1);

	if (u->p)
		lua_pushstring(L, bpf_program__section_name(u->p));
	else
		lua_pushnil(L);
	return 1;
}

static int l_set_autoload(lua_State *L)
{
	struct prog_ud *u = prog_check_ud(L, 1);

	luaL_checktype(L, 2, LUA_TBOOLEAN);
	prog_require_object(L, u, "set_autoload");
	if (u->o->loaded)
		return luaL_error(L, "program '%s': set_autoload must come before obj:load()",
				  u->name);
	bpf_program__set_autoload(u->p, lua_toboolean(L, 2));
	return 0;
}

static int l_autoload(lua_State *L)
{
	struct prog_ud *u = prog_check_ud(L, 1);

	lua_pushboolean(L, u->p ? bpf_program__autoload(u->p) : 1);
	return 1;
}

static int l_pin(lua_State *L)
{
	struct prog_ud *u = prog_check_ud(L, 1);
	const char *path = luaL_checkstring(L, 2);
	int fd = prog_check_fd(L, u);

	return lbpf_pin(L, fd, path, "program", u->name, &u->pin);
}

static int l_unpin(lua_State *L)
{
	struct prog_ud *u = prog_check_ud(L, 1);

	return lbpf_unpin(L, "program", u->name, &u->pin, " (pass the path)");
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
				prog_type_name(prog_ud_type(u)),
				ud_fd(u) >= 0 ? "" : ", not loaded");
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
    {"attach_xdp", lprog_attach_xdp},
    {"attach_tc", lprog_attach_tc},
    {"attach_sk_lookup", lprog_attach_sk_lookup},
    {"attach_cgroup", lprog_attach_cgroup},
    {"attach_tracepoint", lprog_attach_tracepoint},
    {"attach", lprog_attach},
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
	lbpf_new_class(L, MT_PROG, methods, module_fns);
}
