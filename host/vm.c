// SPDX-License-Identifier: MIT
/*
 * The one Lua state: LuaJIT with luv sharing the host's loop, the luabpf
 * module, search paths, strict per-script environments and the protected
 * call every callback goes through.
 */
#include <errno.h>
#include <limits.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lualib.h>
#include <luajit.h>
#include <luv/luv.h>

#include "luabpf.h"
#include "paths.h"
#include "vm.h"
#include "watchdog.h"

static lua_State *vm_L;
static char lua_dir[PATH_MAX];
static char object_dir[PATH_MAX];

lua_State *lbpf_vm(void)
{
	return vm_L;
}

uv_loop_t *lbpf_loop(void)
{
	return uv_default_loop();
}

const char *lbpf_object_dir(void)
{
	return object_dir;
}

int lbpf_traceback(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);

	if (!msg) {
		if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
			return 1;
		msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
	}
	luaL_traceback(L, L, msg, 1);
	return 1;
}

unsigned lbpf_callback_errors;

int lbpf_pcall(lua_State *L, int nargs, int nresults, const char *what)
{
	int base = lua_gettop(L) - nargs;
	bool timed = lbpf_watchdog__enter(what);
	int rc;

	lua_pushcfunction(L, lbpf_traceback);
	lua_insert(L, base);
	rc = lua_pcall(L, nargs, nresults, base);
	lua_remove(L, base);
	if (timed)
		lbpf_watchdog__leave(L);
	if (rc != 0) {
		lbpf_callback_errors++;
		lbpf_log(LBPF_ERROR, "error in %s: %s", what ? what : "callback",
			 lua_tostring(L, -1) ? lua_tostring(L, -1) : "(no message)");
		lua_pop(L, 1);
		return -1;
	}
	return 0;
}

/* luv calls every callback through this: log and go on, never exit. */
static int luv_callback_pcall(lua_State *L, int nargs, int nresults, int flags)
{
	int top = lua_gettop(L) - nargs - 1;

	(void)flags;
	if (lbpf_pcall(L, nargs, nresults, "luv callback") < 0)
		return -LUA_ERRRUN;
	return lua_gettop(L) - top;
}

static void find_dirs(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	const char *env;

	const char *dir;

	exe[n > 0 ? n : 0] = '\0';
	dir = dirname(exe);
	if (strcmp(dir, LUABPF_BUILD_DIR) == 0) {
		snprintf(lua_dir, sizeof(lua_dir), "%s/lua", LUABPF_SOURCE_DIR);
		snprintf(object_dir, sizeof(object_dir), "%s/bpf", LUABPF_BUILD_DIR);
	} else {
		snprintf(lua_dir, sizeof(lua_dir), "%s/%s", dir, LUABPF_LUA_REL);
		snprintf(object_dir, sizeof(object_dir), "%s/%s", dir, LUABPF_BPF_REL);
	}
	env = getenv("LUABPF_LUA_DIR");
	if (env && *env)
		snprintf(lua_dir, sizeof(lua_dir), "%s", env);
	env = getenv("LUABPF_OBJECT_DIR");
	if (env && *env)
		snprintf(object_dir, sizeof(object_dir), "%s", env);
}

/* Put the product's Lua library in front of the usual search path. */
static void set_package_path(lua_State *L)
{
	lua_getglobal(L, "package");
	lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;", lua_dir, lua_dir);
	lua_getfield(L, -2, "path");
	lua_concat(L, 2);
	lua_setfield(L, -2, "path");
	lua_pop(L, 1);
}

static int l_version(lua_State *L)
{
	lua_pushstring(L, LUABPF_VERSION);
	return 1;
}

static int l_log(lua_State *L)
{
	static const char *const levels[] = { "error", "warn", "info", "debug", NULL };
	int level = luaL_checkoption(L, 1, NULL, levels);
	int n = lua_gettop(L);
	luaL_Buffer b;

	if ((enum lbpf_level)level > lbpf_log_level)
		return 0;
	luaL_buffinit(L, &b);
	for (int i = 2; i <= n; i++) {
		lua_getglobal(L, "tostring");
		lua_pushvalue(L, i);
		lua_call(L, 1, 1);
		if (i > 2)
			luaL_addchar(&b, ' ');
		luaL_addvalue(&b);
	}
	luaL_pushresult(&b);
	lbpf_log((enum lbpf_level)level, "%s", lua_tostring(L, -1));
	return 0;
}

/* luabpf.on_shutdown(fn): run fn when the service stops (signal, stop()). */
static int l_on_shutdown(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TFUNCTION);
	lua_getfield(L, LUA_REGISTRYINDEX, "luabpf.shutdown");
	lua_pushvalue(L, 1);
	lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
	return 0;
}

static int l_stop(lua_State *L)
{
	lbpf_request_stop((int)luaL_optinteger(L, 1, 0));
	return 0;
}

static int l_exit(lua_State *L)
{
	int code = 0;

	if (lua_isboolean(L, 1))
		code = lua_toboolean(L, 1) ? 0 : 1;
	else
		code = (int)luaL_optinteger(L, 1, 0);
	lbpf_shutdown(code);
	exit(code);
}

/// Run the shutdown hooks registered by scripts, newest first.
void lbpf_vm__run_shutdown_hooks(void)
{
	lua_State *L = vm_L;

	lua_getfield(L, LUA_REGISTRYINDEX, "luabpf.shutdown");
	for (int i = (int)lua_objlen(L, -1); i >= 1; i--) {
		lua_rawgeti(L, -1, i);
		lbpf_pcall(L, 0, 0, "shutdown hook");
	}
	lua_pop(L, 1);
	lua_newtable(L);
	lua_setfield(L, LUA_REGISTRYINDEX, "luabpf.shutdown");
}

static const luaL_Reg module_fns[] = {
	{ "version", l_version },
	{ "log", l_log },
	{ "on_shutdown", l_on_shutdown },
	{ "stop", l_stop },
	{ NULL, NULL },
};

/// Add version, log, on_shutdown and stop to the module table at -1.
void lbpf_vm__register(lua_State *L)
{
	luaL_register(L, NULL, module_fns);
}

/*
 * Timers count from the loop's clock, which libuv reads once per loop turn.
 * After blocking work (bpf.load holds the loop 100-200 ms, test_run loops) a
 * timer started at once would count from that stale time and fire on the
 * next turn, before any ring buffer is polled. So start and again read the
 * clock first, as Node's setTimeout does. Lua wrappers with a tail call keep
 * luv's own argument errors ("bad argument #1 to 'start'") unchanged.
 */
static const char fresh_timers_src[] =
	"local uv, methods = ...\n"
	"local update = uv.update_time\n"
	"for _, name in ipairs({ 'start', 'again' }) do\n"
	"  local method, fn = methods[name], uv['timer_' .. name]\n"
	"  methods[name] = function(...) update() return method(...) end\n"
	"  uv['timer_' .. name] = function(...) update() return fn(...) end\n"
	"end\n";

/* [uv] -> [uv] */
static void fresh_timers(lua_State *L)
{
	lbpf_load_chunk(L, fresh_timers_src, "=luv timers");
	lua_pushvalue(L, -2);
	luaL_getmetatable(L, "uv_timer");
	lua_getfield(L, -1, "__index");
	lua_remove(L, -2);
	lua_call(L, 2, 0);
}

/*
 * Strict environments: a script reads globals from _G and may declare its
 * own at its top level; reading an undeclared name, or creating one inside a
 * function, raises. Written in Lua: it is policy, not plumbing.
 */
static const char strict_src[] =
	"local G, name = ...\n"
	"local declared = {}\n"
	"local env = {}\n"
	"local getinfo, rawget, rawset, error = debug.getinfo, rawget, rawset, error\n"
	"return setmetatable(env, {\n"
	"  __index = function(_, k)\n"
	"    local v = rawget(G, k)\n"
	"    if v == nil and not declared[k] then\n"
	"      error(\"undeclared global '\" .. tostring(k) .. \"' (strict mode: \"\n"
	"        .. \"declare it with local, or assign it at the top level of \" .. name .. \")\", 2)\n"
	"    end\n"
	"    return v\n"
	"  end,\n"
	"  __newindex = function(t, k, v)\n"
	"    if not declared[k] then\n"
	"      local w = getinfo(2, 'S')\n"
	"      if w and w.what ~= 'main' and w.what ~= 'C' then\n"
	"        error(\"assignment to undeclared global '\" .. tostring(k) .. \"' (strict mode: \"\n"
	"          .. \"use local, or assign it once at the top level of \" .. name .. \")\", 2)\n"
	"      end\n"
	"      declared[k] = true\n"
	"    end\n"
	"    rawset(t, k, v)\n"
	"  end,\n"
	"})\n";

/// Push a new strict environment for a script called name.
void lbpf_vm__push_env(lua_State *L, const char *name)
{
	lbpf_load_chunk(L, strict_src, "=strict");
	lua_pushvalue(L, LUA_GLOBALSINDEX);
	lua_pushstring(L, name);
	lua_call(L, 2, 1);
}

lua_State *lbpf_vm__open(lua_CFunction open_module)
{
	lua_State *L = luaL_newstate();

	if (!L)
		return NULL;
	vm_L = L;
	find_dirs();
	luaL_openlibs(L);
	luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_ON);
	set_package_path(L);

	lua_newtable(L);
	lua_setfield(L, LUA_REGISTRYINDEX, "luabpf.shutdown");

	/* luv on our loop, with our callback handler, before luaopen_luv. */
	luv_set_loop(L, lbpf_loop());
	luv_set_callback(L, luv_callback_pcall);
	lua_getglobal(L, "package");
	lua_getfield(L, -1, "loaded");
	lua_pushcfunction(L, luaopen_luv);
	lua_call(L, 0, 1);
	fresh_timers(L);
	lua_setfield(L, -2, "luv");

	lua_pushcfunction(L, open_module);
	lua_call(L, 0, 1);
	/* bpf.addr is Lua (lua/luabpf/_addr.lua): the FFI reads a cdata field's bytes. */
	lua_getglobal(L, "require");
	lua_pushstring(L, "luabpf._addr");
	if (lua_pcall(L, 1, 1, 0) == 0) {
		lua_getfield(L, -1, "addr");
		lua_setfield(L, -3, "addr"); /* [module, _addr] */
	}
	lua_pop(L, 1);
	lua_pushvalue(L, -1);
	lua_setfield(L, -3, "luabpf");
	/* `bpf` is the module's short name in every script. */
	lua_setglobal(L, "bpf");
	lua_pop(L, 2);

	/* os.exit detaches what we attached before the process goes. */
	lua_getglobal(L, "os");
	lua_pushcfunction(L, l_exit);
	lua_setfield(L, -2, "exit");
	lua_pop(L, 1);
	return L;
}

/// Mark luv's context as running so a script's uv.run() reports the loop is busy.
void lbpf_vm__set_running(bool running)
{
	luv_context(vm_L)->mode = running ? UV_RUN_DEFAULT : -1;
}

void lbpf_vm__close(void)
{
	if (vm_L)
		lua_close(vm_L);
	vm_L = NULL;
}
