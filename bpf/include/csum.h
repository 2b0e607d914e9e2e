/* SPDX-License-Identifier: MIT */
/* Incremental IP/TCP/UDP checksum updates, for programs that rewrite headers. */
#ifndef LUABPF_CSUM_H
#define LUABPF_CSUM_H

static __always_inline __u16 csum_fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/*
 * Incremental checksum update (RFC 1624): csum' = ~(~csum + sum(new) - sum(old)),
 * over n 32-bit words of old and new header fields.
 */
static __always_inline void csum_update(__sum16 *csum, __be32 *from, __be32 *to, __u32 size,
					bool udp)
{
	__s64 d = bpf_csum_diff(from, size, to, size, ~((__u32)*csum) & 0xffff);
	__u16 c;

	if (d < 0)
		return;
	c = ~csum_fold((__u64)d);
	if (udp && c == 0)
		c = 0xffff; /* 0 means "no checksum" for UDP */
	*csum = c;
}

#endif
