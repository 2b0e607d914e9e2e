// SPDX-License-Identifier: MIT
/*
 * The luabpf module, assembled on top of everything: the VM's own
 * functions, then each binding's, and the C steps of the shutdown sequence
 * in their order (buffers stop before links are detached). The layers
 * below never call up: the VM takes this function from main.c, and the
 * loop runs the steps added here.
 */
#include "luabpf.h"
#include "vm.h"

static void detach_links(void)
{
	int n = lbpf_link__detach_all();

	if (n)
		lbpf_log(LBPF_DEBUG, "detached %d link%s", n, n == 1 ? "" : "s");
}

/* A second signal: links only, then _exit. */
static void detach_links_now(void)
{
	lbpf_link__detach_all();
}

int lbpf_module__open(lua_State *L)
{
	static bool steps_added;

	lua_newtable(L);
	lbpf_vm__register(L);
	lbpf_object__register(L);
	lbpf_map__register(L);
	lbpf_prog__register(L);
	lbpf_link__register(L);
	lbpf_ringbuf__register(L);
	lbpf_perfbuf__register(L);
	lbpf_codec__register(L);
	lbpf_inspect__register(L);
	lbpf_sys__register(L);
	if (!steps_added) {
		steps_added = true;
		lbpf_loop__at_shutdown(lbpf_ringbuf__close_all);
		lbpf_loop__at_shutdown(lbpf_perfbuf__close_all);
		lbpf_loop__at_shutdown(detach_links);
		lbpf_loop__at_fast_exit(detach_links_now);
	}
	return 1;
}
