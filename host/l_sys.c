// SPDX-License-Identifier: MIT
/*
 * What the REPL and the control socket need from the system that Lua alone
 * can't do safely: peer credentials of a unix socket, and interrupting a
 * command that runs on the (blocked) loop. A signal handler may only touch
 * async-signal-safe things; in LuaJIT lua_sethook is one, so the handler arms
 * a hook that raises "interrupted" in the running command, and only while a
 * command started by run() is running: never in the service's own handlers.
 *
 * Registered as bpf._sys (private: lua/luabpf/_service.lua, repl.lua).
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "luabpf.h"
#include "vm.h"

/* The signal a client sends a service to interrupt its command (sigqueue). */
#define INTERRUPT_SIGNAL (SIGRTMIN + 4)
/* The token of a local command, interrupted by SIGINT (Ctrl-C). */
#define LOCAL_TOKEN (-1)

static volatile sig_atomic_t armed;	  /* token of the running command, 0: none */
static volatile sig_atomic_t sigints;	  /* SIGINTs since take_sigint() */
static volatile sig_atomic_t interrupted; /* the running command was interrupted */
static bool interrupt_installed, sigint_installed;
static struct sigaction old_sigint;
static uv_async_t sigint_async;
static int sigint_ref = LUA_NOREF;

static void interrupt_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	/* A hook armed just as a command ended must not hit the next code. */
	if (!armed) {
		lua_sethook(L, NULL, 0, 0);
		return;
	}
	luaL_error(L, "interrupted");
}

static void arm_hook(void)
{
	interrupted = 1;
	lua_sethook(lbpf_vm(), interrupt_hook, LUA_MASKCOUNT | LUA_MASKCALL | LUA_MASKRET, 100);
}

static void on_interrupt_signal(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (armed > 0 && si->si_code == SI_QUEUE && si->si_value.sival_int == armed)
		arm_hook();
}

static void on_sigint(int sig)
{
	int saved = errno;

	(void)sig;
	sigints++;
	if (armed == LOCAL_TOKEN)
		arm_hook();
	else
		uv_async_send(&sigint_async);
	errno = saved;
}

static void on_sigint_async(uv_async_t *h)
{
	lua_State *L = lbpf_vm();

	(void)h;
	if (sigint_ref == LUA_NOREF)
		return;
	lua_rawgeti(L, LUA_REGISTRYINDEX, sigint_ref);
	lbpf_pcall(L, 0, 0, "the Ctrl-C handler");
}

/*
 * _sys.run(token, fn, ...) -> true, results... | false, "message\ntraceback"
 * Runs fn so that an interrupt for token (SIGINT for -1, the interrupt
 * signal with that value for > 0) raises "interrupted" inside it.
 */
static int l_run(lua_State *L)
{
	int token = (int)luaL_checkinteger(L, 1);
	int rc;

	luaL_checktype(L, 2, LUA_TFUNCTION);
	if (token == 0)
		luaL_argerror(L, 1, "token 0 is reserved");
	lua_pushcfunction(L, lbpf_traceback);
	lua_replace(L, 1); // [traceback, fn, args...]
	interrupted = 0;
	armed = token;
	rc = lua_pcall(L, lua_gettop(L) - 2, LUA_MULTRET, 1);
	armed = 0;
	if (interrupted)
		lua_sethook(L, NULL, 0, 0);
	lua_pushboolean(L, rc == 0);
	lua_replace(L, 1);
	return lua_gettop(L);
}

/* _sys.listen_interrupts() -> signal number: clients may now interrupt run(). */
static int l_listen_interrupts(lua_State *L)
{
	if (!interrupt_installed) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = on_interrupt_signal;
		sa.sa_flags = SA_SIGINFO | SA_RESTART;
		sigemptyset(&sa.sa_mask);
		if (sigaction(INTERRUPT_SIGNAL, &sa, NULL) < 0)
			return lbpf_fail(L, errno);
		interrupt_installed = true;
	}
	lua_pushinteger(L, INTERRUPT_SIGNAL);
	return 1;
}

/* _sys.interrupt(pid, token): ask service pid to interrupt command token. */
static int l_interrupt(lua_State *L)
{
	pid_t pid = (pid_t)luaL_checkinteger(L, 1);
	union sigval v = {.sival_int = (int)luaL_checkinteger(L, 2)};

	if (sigqueue(pid, INTERRUPT_SIGNAL, v) < 0)
		return lbpf_fail(L, errno);
	lua_pushboolean(L, 1);
	return 1;
}

/*
 * _sys.catch_sigint(fn): Ctrl-C no longer stops the process; it interrupts
 * a local run(-1, ...) command, or else calls fn on the loop. Blocking reads
 * return EINTR (no SA_RESTART) so a waiting client sees it at once.
 * _sys.catch_sigint(nil) gives SIGINT back to the loop's handler.
 */
static int l_catch_sigint(lua_State *L)
{
	struct sigaction sa;

	if (lua_isnoneornil(L, 1)) {
		if (sigint_installed) {
			sigaction(SIGINT, &old_sigint, NULL);
			uv_close((uv_handle_t *)&sigint_async, NULL);
			sigint_installed = false;
		}
		luaL_unref(L, LUA_REGISTRYINDEX, sigint_ref);
		sigint_ref = LUA_NOREF;
		return 0;
	}
	luaL_checktype(L, 1, LUA_TFUNCTION);
	luaL_unref(L, LUA_REGISTRYINDEX, sigint_ref);
	lua_pushvalue(L, 1);
	sigint_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	if (sigint_installed)
		return 0;
	if (uv_async_init(lbpf_loop(), &sigint_async, on_sigint_async) < 0)
		return luaL_error(L, "catch_sigint: can't make an async handle");
	uv_unref((uv_handle_t *)&sigint_async);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, &old_sigint) < 0) {
		uv_close((uv_handle_t *)&sigint_async, NULL);
		return lbpf_fail(L, errno);
	}
	sigint_installed = true;
	sigints = 0;
	return 0;
}

/* _sys.take_sigint() -> how many Ctrl-Cs came since the last call. */
static int l_take_sigint(lua_State *L)
{
	int n = sigints;

	sigints = 0;
	lua_pushinteger(L, n);
	return 1;
}

/* _sys.peercred(fd) -> pid, uid, gid of a connected unix socket's peer. */
static int l_peercred(lua_State *L)
{
	int fd = (int)luaL_checkinteger(L, 1);
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return lbpf_fail(L, errno);
	lua_pushinteger(L, cred.pid);
	lua_pushinteger(L, cred.uid);
	lua_pushinteger(L, cred.gid);
	return 3;
}

/* _sys.ids() -> pid, uid, euid */
static int l_ids(lua_State *L)
{
	lua_pushinteger(L, getpid());
	lua_pushinteger(L, getuid());
	lua_pushinteger(L, geteuid());
	return 3;
}

/* _sys.new_env(name) -> a strict environment, as `luabpf run` gives a script. */
static int l_new_env(lua_State *L)
{
	lbpf_vm__push_env(L, luaL_checkstring(L, 1));
	return 1;
}

static const luaL_Reg sys_fns[] = {
    {"run", l_run},
    {"listen_interrupts", l_listen_interrupts},
    {"interrupt", l_interrupt},
    {"catch_sigint", l_catch_sigint},
    {"take_sigint", l_take_sigint},
    {"peercred", l_peercred},
    {"ids", l_ids},
    {"new_env", l_new_env},
    {NULL, NULL},
};

void lbpf_sys__register(lua_State *L)
{
	lbpf_new_lib(L, "_sys", sys_fns);
}
