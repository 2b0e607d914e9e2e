// SPDX-License-Identifier: MIT
/*
 * A stuck handler: every callback runs on the one loop, so a handler that
 * never returns stops the whole service. LuaJIT's compiled code ignores
 * count hooks, so a hook alone cannot stop it. A watchdog thread therefore
 * (1) after `limit` seconds in one callback logs a warning and sets a hook
 * that raises in the handler (this stops interpreted code, and compiled code
 * as soon as it leaves its trace); (2) after 3 x limit, it exits the process
 * with status 1: links that are not pinned go with it, pinned ones stay.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "luabpf.h"
#include "watchdog.h"

static atomic_llong entered_ms; /* 0: not in a callback */
static atomic_bool hooked;
static const char *volatile current_what;
static unsigned limit_s = 10;

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void raise_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	lua_sethook(L, NULL, 0, 0);
	luaL_error(L, "handler stopped by the watchdog after %u s (--watchdog)", limit_s);
}

static void *watch(void *arg)
{
	bool warned = false;

	(void)arg;
	for (;;) {
		long long since = atomic_load(&entered_ms);
		long long ms = since ? now_ms() - since : 0;

		if (!since) {
			warned = false;
		} else if (ms > 3000LL * limit_s) {
			lbpf_log(LBPF_ERROR, "%s has run for %lld s without returning: exiting "
			         "(links that are not pinned are detached with the process)",
			         current_what ? current_what : "a handler", ms / 1000);
			_exit(LBPF_EXIT_ERROR);
		} else if (ms > 1000LL * limit_s && !warned) {
			warned = true;
			lbpf_log(LBPF_WARN, "%s has run for %lld s: interrupting it",
			         current_what ? current_what : "a handler", ms / 1000);
			atomic_store(&hooked, true);
			lua_sethook(lbpf_vm(), raise_hook, LUA_MASKCOUNT | LUA_MASKCALL, 1000);
		}
		usleep(200 * 1000);
	}
	return NULL;
}

void lbpf_watchdog__start(unsigned seconds)
{
	pthread_t t;

	limit_s = seconds;
	if (!seconds)
		return;
	if (pthread_create(&t, NULL, watch, NULL) == 0)
		pthread_detach(t);
}

bool lbpf_watchdog__enter(const char *what)
{
	if (!limit_s || atomic_load(&entered_ms))
		return false; /* nested: the outermost callback is the one timed */
	current_what = what;
	atomic_store(&entered_ms, now_ms());
	return true;
}

void lbpf_watchdog__leave(lua_State *L)
{
	atomic_store(&entered_ms, 0);
	if (atomic_exchange(&hooked, false))
		lua_sethook(L, NULL, 0, 0);
}
