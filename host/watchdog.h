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

#endif
