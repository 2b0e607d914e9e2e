/* SPDX-License-Identifier: MIT */
/* The VM and loop entry points used by main.c (not by the l_*.c files). */
#ifndef LUABPF_VM_H
#define LUABPF_VM_H

#include <stdbool.h>
#include <lua.h>

/// Open the Lua state; open_module pushes the luabpf module (module.c's
/// lbpf_module__open: the VM does not reach up into the bindings itself).
lua_State *lbpf_vm__open(lua_CFunction open_module);
/// module.c: push the luabpf module table, every binding registered.
int lbpf_module__open(lua_State *L);
/// Add version, log, on_shutdown and stop to the module table at -1.
void lbpf_vm__register(lua_State *L);
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
