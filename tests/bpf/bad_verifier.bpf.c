// SPDX-License-Identifier: MIT
/* Rejected by the verifier on purpose: reads the packet without a bounds check. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("xdp")
int unchecked_read(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;

	return data[20] == 1 ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
