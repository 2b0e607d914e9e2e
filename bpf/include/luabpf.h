/* SPDX-License-Identifier: MIT */
/*
 * Types whose names tell luabpf's BTF codec how Lua sees them. Include after
 * vmlinux.h. ipv4_t and ipv6_t read and write as text ("10.0.0.1",
 * "fd00::1"); __be16/__be32/__be64 as host-order numbers.
 */
#ifndef LUABPF_BPF_H
#define LUABPF_BPF_H

typedef __be32 ipv4_t;
/* 4-byte aligned so BPF code may read it as words without a misaligned access. */
typedef struct {
	__u8 addr[16];
} __attribute__((aligned(4))) ipv6_t;

#endif
