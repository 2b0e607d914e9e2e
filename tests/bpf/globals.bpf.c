// SPDX-License-Identifier: MIT
/* Globals set from Lua: const volatile tunables before load, .bss/.data live. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct cfg {
	__u16 port;
	__u32 weight;
	char label[8];
};

const volatile __u32 drop_when = 0;   /* verdict XDP_DROP when equal to seen+1 */
const volatile struct cfg tunables = { .port = 80, .weight = 1, .label = "none" };
const volatile __u64 big = 0;

__u64 seen = 0;        /* .bss */
__u32 last_port = 0;   /* .bss: copies tunables.port on each run */
__u32 step = 1;        /* .data */

SEC("xdp")
int globals_prog(struct xdp_md *ctx)
{
	seen += step;
	last_port = tunables.port;
	return seen == drop_when ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
