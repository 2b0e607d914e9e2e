// SPDX-License-Identifier: MIT
/*
 * Passes every packet. The baseline of the benchmarks, and what a veth peer
 * needs attached so that frames another program sends with XDP_TX or
 * redirects into it in native mode are not dropped.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
