/* SPDX-License-Identifier: MIT */
/* The stuck-handler watchdog (see watchdog.c for the policy). */
#ifndef LUABPF_WATCHDOG_H
#define LUABPF_WATCHDOG_H

#include <stdbool.h>
#include <lua.h>

/// Start watching; seconds = 0 disables the watchdog.
void lbpf_watchdog__start(unsigned seconds);
/// A callback starts. Returns true if this call is timed (the outermost one);
/// only then call lbpf_watchdog__leave.
bool lbpf_watchdog__enter(const char *what);
/// It returned: stop timing, clear a pending interrupt hook.
void lbpf_watchdog__leave(lua_State *L);

/// The main chunk (named by what, e.g. "the main chunk of x.lua") starts,
/// before the loop runs: until lbpf_watchdog__main_end, SIGINT and SIGTERM
/// interrupt it. Timed like a callback when timed and the watchdog is on.
/// Returns whether it is timed: pass that to lbpf_watchdog__main_end.
bool lbpf_watchdog__main_begin(const char *what, bool timed);
/// It returned: the loop's signal handlers again. Returns the signal
/// (SIGINT, SIGTERM) that came while it ran, or 0: then the caller stops.
int lbpf_watchdog__main_end(lua_State *L, bool timed);
/// What to run before exiting when the main chunk won't stop after a signal
/// (the loop's fast-exit steps; called from the watchdog thread).
void lbpf_watchdog__at_fast_exit(void (*fn)(void));

#endif
