/* SPDX-License-Identifier: MIT */
/*
 * NAT rewrites both XDP programs make (bpf/lb/lb.bpf.c, bpf/lb/lb_ct_xdp.bpf.c):
 * new addresses and ports, with the IPv4 header and TCP/UDP checksums
 * updated incrementally. Include after vmlinux.h and bpf_endian.h.
 */
#ifndef LB_REWRITE_H
#define LB_REWRITE_H

#include "csum.h"

/*
 * csum.h's csum_update without the helper: the same RFC 1624 sum over n
 * words inline (n is a constant here, the loop unrolls), instead of one
 * bpf_csum_diff call per checksum, two per NAT packet.
 */
static __always_inline void csum_replace(__sum16 *csum, const __be32 *from, const __be32 *to,
					 int n, bool udp)
{
	__u64 sum = ~((__u32)*csum) & 0xffff;
	__u16 c;

#pragma unroll
	for (int i = 0; i < n; i++)
		sum += (__u32)~from[i] + (__u64)to[i];
	sum = (sum & 0xffffffff) + (sum >> 32); /* csum_fold takes 32 bits' worth */
	c = ~csum_fold(sum);
	if (udp && c == 0)
		c = 0xffff; /* 0 means "no checksum" for UDP */
	*csum = c;
}

/*
 * The 32-bit word two ports make in the header, built with memcpy: writing
 * them through a __be16 pointer into a __be32 array is an aliasing violation
 * that clang exploits once the sum reads the array inline (it summed a stale
 * word: bench/lb_pkt.sh caught a wrong TCP checksum).
 */
static __always_inline __be32 ports_word(__be16 a, __be16 b)
{
	__be32 w;

	__builtin_memcpy(&w, &a, 2);
	__builtin_memcpy((__u8 *)&w + 2, &b, 2);
	return w;
}

/*
 * An IPv4 packet to (saddr, sport) -> (daddr, dport); ports are its L4
 * header's [source, dest], l4_csum NULL for UDP without a checksum.
 */
static __always_inline void nat4(struct iphdr *ip, __be16 *ports, __sum16 *l4_csum, bool udp,
				 __be32 saddr, __be16 sport, __be32 daddr, __be16 dport)
{
	__be32 from[3] = { ip->saddr, ip->daddr, ports_word(ports[0], ports[1]) };
	__be32 to[3] = { saddr, daddr, ports_word(sport, dport) };

	csum_replace(&ip->check, from, to, 2, false);
	if (l4_csum)
		csum_replace(l4_csum, from, to, 3, udp);
	ip->saddr = saddr;
	ip->daddr = daddr;
	ports[0] = sport;
	ports[1] = dport;
}

/* The same for IPv6: addresses of 16 bytes, no header checksum. */
static __always_inline void nat6(struct ipv6hdr *ip6, __be16 *ports, __sum16 *l4_csum, bool udp,
				 const void *saddr, __be16 sport, const void *daddr, __be16 dport)
{
	__be32 from[9], to[9];

	__builtin_memcpy(from, &ip6->saddr, 16);
	__builtin_memcpy(from + 4, &ip6->daddr, 16);
	__builtin_memcpy(to, saddr, 16);
	__builtin_memcpy(to + 4, daddr, 16);
	from[8] = ports_word(ports[0], ports[1]);
	to[8] = ports_word(sport, dport);
	if (l4_csum)
		csum_replace(l4_csum, from, to, 9, udp);
	__builtin_memcpy(&ip6->saddr, saddr, 16);
	__builtin_memcpy(&ip6->daddr, daddr, 16);
	ports[0] = sport;
	ports[1] = dport;
}

#endif
