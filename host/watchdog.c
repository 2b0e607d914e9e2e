// SPDX-License-Identifier: MIT
/*
 * A stuck handler: every callback runs on the one loop, so a handler that
 * never returns stops the whole service. LuaJIT's compiled code ignores
 * count hooks, so a hook alone cannot stop it. A watchdog thread therefore
 * (1) after `limit` seconds in one callback logs a warning and sets a hook
 * that raises in the handler (this stops interpreted code, and compiled code
 * as soon as it leaves its trace); (2) after 3 x limit, it exits the process
 * with status 1: links that are not pinned go with it, pinned ones stay.
 *
 * The main chunk runs before the loop, where the loop's signal watchers
 * can't run. While it runs, a plain handler takes SIGINT and SIGTERM: the
 * first sets a hook that raises "interrupted by SIGTERM" in it; a second
 * signal, or GRACE_MS without the chunk returning (a compiled loop, a
 * blocking call), makes this thread run the fast-exit steps and exit 1.
 * The main chunk is timed like a callback only when --watchdog was given.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "luabpf.h"
#include "watchdog.h"

#define GRACE_MS 5000

static atomic_llong entered_ms; /* 0: not in a callback */
static atomic_bool hooked;
static const char *volatile current_what;
static const char *volatile current_kind; /* "handler" or "main chunk" */
static unsigned limit_s = 10;
static bool thread_started;

/* The main chunk: set by the main thread, read by the watchdog thread. */
static atomic_bool in_main;
static char main_what[320];
static atomic_int sig_count, sig_num;
static atomic_llong sig_at_ms;
static atomic_bool announced;
static struct sigaction saved_int, saved_term;
static void (*fast_exit_fn)(void);

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
	luaL_error(L, "%s stopped by the watchdog after %u s (--watchdog)",
		   current_kind ? current_kind : "handler", limit_s);
}

static const char *sig_name(int signum)
{
	return signum == SIGINT ? "SIGINT" : signum == SIGTERM ? "SIGTERM" : "a signal";
}

static void signal_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	lua_sethook(L, NULL, 0, 0);
	luaL_error(L, "interrupted by %s", sig_name(atomic_load(&sig_num)));
}

/* The loop's handler (libuv's), saved when the main chunk began. */
static void forward(int signum, siginfo_t *info, void *ctx)
{
	const struct sigaction *to = signum == SIGINT ? &saved_int : &saved_term;

	if (to->sa_flags & SA_SIGINFO)
		to->sa_sigaction(signum, info, ctx);
	else if (to->sa_handler != SIG_IGN && to->sa_handler != SIG_DFL)
		to->sa_handler(signum);
}

/* Async-signal-safe: atomics, clock_gettime and lua_sethook (as luajit.c does). */
static void on_main_signal(int signum, siginfo_t *info, void *ctx)
{
	/*
	 * After the main chunk, when code that took the signal during it (the
	 * repl's Ctrl-C handler, l_sys.c) gave this handler back: the loop's.
	 */
	if (!atomic_load(&in_main)) {
		forward(signum, info, ctx);
		return;
	}
	if (atomic_fetch_add(&sig_count, 1) == 0) {
		atomic_store(&sig_num, signum);
		atomic_store(&sig_at_ms, now_ms());
		lua_sethook(lbpf_vm(), signal_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
	}
}

static void announce(void)
{
	if (!atomic_exchange(&announced, true))
		lbpf_log(LBPF_INFO, "%s: stopping (interrupting %s)",
			 strsignal(atomic_load(&sig_num)), main_what);
}

/* A signal came while the main chunk ran: exit if it won't stop. */
static void watch_main(void)
{
	int n = atomic_load(&sig_count);
	long long ms;

	if (!n || !atomic_load(&in_main))
		return;
	announce();
	ms = now_ms() - atomic_load(&sig_at_ms);
	if (n >= 2)
		lbpf_log(LBPF_WARN, "%s again: exiting now", strsignal(atomic_load(&sig_num)));
	else if (ms > GRACE_MS)
		lbpf_log(LBPF_WARN,
			 "%s did not stop within %lld s of %s: exiting (links that "
			 "are not pinned are detached with the process)",
			 main_what, ms / 1000, sig_name(atomic_load(&sig_num)));
	else
		return;
	if (fast_exit_fn)
		fast_exit_fn();
	_exit(LBPF_EXIT_ERROR);
}

static void *watch(void *arg)
{
	bool warned = false;

	(void)arg;
	for (;;) {
		long long since = atomic_load(&entered_ms);
		long long ms = since ? now_ms() - since : 0;

		watch_main();
		if (!since || !limit_s) {
			warned = false;
		} else if (ms > 3000LL * limit_s) {
			lbpf_log(LBPF_ERROR,
				 "%s has run for %lld s without returning: exiting "
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
		usleep(100 * 1000);
	}
	return NULL;
}

static void start_thread(void)
{
	pthread_t t;

	if (thread_started)
		return;
	if (pthread_create(&t, NULL, watch, NULL) == 0) {
		thread_started = true;
		pthread_detach(t);
	}
}

void lbpf_watchdog__start(unsigned seconds)
{
	limit_s = seconds;
	if (seconds)
		start_thread();
}

void lbpf_watchdog__at_fast_exit(void (*fn)(void))
{
	fast_exit_fn = fn;
}

static bool enter(const char *what, const char *kind)
{
	if (!limit_s || atomic_load(&entered_ms))
		return false; /* nested: the outermost callback is the one timed */
	current_what = what;
	current_kind = kind;
	atomic_store(&entered_ms, now_ms());
	return true;
}

bool lbpf_watchdog__enter(const char *what)
{
	return enter(what, "handler");
}

void lbpf_watchdog__leave(lua_State *L)
{
	atomic_store(&entered_ms, 0);
	if (atomic_exchange(&hooked, false))
		lua_sethook(L, NULL, 0, 0);
}

static void restore(int signum, const struct sigaction *saved)
{
	struct sigaction cur;

	if (sigaction(signum, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
	    cur.sa_sigaction == on_main_signal)
		sigaction(signum, saved, NULL);
}

bool lbpf_watchdog__main_begin(const char *what, bool timed)
{
	struct sigaction sa;

	snprintf(main_what, sizeof(main_what), "%s", what);
	atomic_store(&sig_count, 0);
	atomic_store(&announced, false);
	start_thread();
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_main_signal;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: a blocking read returns EINTR, so the hook gets to run. */
	sigaction(SIGINT, &sa, &saved_int);
	sigaction(SIGTERM, &sa, &saved_term);
	atomic_store(&in_main, true);
	return timed && enter(main_what, "main chunk");
}

int lbpf_watchdog__main_end(lua_State *L, bool timed)
{
	int n;

	/* The loop's handlers (libuv's) again, unless the chunk put its own. */
	atomic_store(&in_main, false);
	restore(SIGINT, &saved_int);
	restore(SIGTERM, &saved_term);
	if (timed)
		lbpf_watchdog__leave(L);
	n = atomic_load(&sig_count);
	if (!n)
		return 0;
	lua_sethook(L, NULL, 0, 0); /* one that had no chance to fire */
	announce();
	return atomic_load(&sig_num);
}
