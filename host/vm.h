/* SPDX-License-Identifier: MIT */
/* The VM and loop entry points used by main.c (not by the l_*.c files). */
#ifndef LUABPF_VM_H
#define LUABPF_VM_H

#include <stdbool.h>
#include <lua.h>

lua_State *lbpf_vm__open(void);
void lbpf_vm__close(void);
void lbpf_vm__push_env(lua_State *L, const char *name);
void lbpf_vm__run_shutdown_hooks(void);
void lbpf_vm__set_running(bool running);

/// Install SIGINT/SIGTERM handlers (unreferenced: they never keep the loop alive).
void lbpf_loop__init(void);
/// Run the loop until it has nothing left or a stop is requested. Returns the exit code.
int lbpf_loop__run(void);

/// Run shutdown hooks, stop buffers, detach unpinned links. Idempotent.
void lbpf_shutdown(int exit_code);

#endif
