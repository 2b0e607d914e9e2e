// SPDX-License-Identifier: MIT
/*
 * One map of each type the map tests cover, with keys and values that use
 * every shape the BTF codec knows: nested and anonymous structs, char and
 * other arrays, bitfields, enums, __be16, ipv4_t, ipv6_t, in6_addr, 64-bit.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "luabpf.h"
#include "maps.h"

enum proto_kind { PK_NONE = 0, PK_TCP = 6, PK_UDP = 17 };

struct flow_key {
	union {
		ipv4_t v4;
		ipv6_t v6;
	} addr;
	__be16 port;
	__u8 proto;
	__u8 pad;
};

struct flow_value {
	__u64 packets;
	__u64 bytes;
	char name[16];
	struct {
		__u32 a;
		__u16 b;
	} nested;
	__u32 ports[4];
	__u32 flags : 3;
	__u32 level : 5;
	__s32 delta : 12;
	enum proto_kind kind;
	struct in6_addr a6;
	union {
		__u32 as_u32;
		__u8 bytes4[4];
	};
	__s64 signed64;
	bool on;
	__u8 mac[6];
};

struct cnt {
	__u64 packets;
	__u64 bytes;
};

/* 12 bytes: per-CPU slots are rounded up to 16 in the syscall buffer. */
struct small {
	__u32 a, b, c;
};

struct cfg {
	__u8 proto;
	__be16 port;
	ipv4_t addr;
};

struct lpm_v4 {
	__u32 prefixlen;
	ipv4_t addr;
};

LUABPF_MAP(flows, BPF_MAP_TYPE_HASH, struct flow_key, struct flow_value, 1024);
LUABPF_MAP(counts, BPF_MAP_TYPE_HASH, __u32, __u64, 1024);
LUABPF_MAP(big, BPF_MAP_TYPE_HASH, __u64, __s64, 64);
LUABPF_MAP(cfg, BPF_MAP_TYPE_HASH, __u32, struct cfg, 16);
LUABPF_MAP(arr, BPF_MAP_TYPE_ARRAY, __u32, struct flow_value, 8);
LUABPF_MAP(pc_hash, BPF_MAP_TYPE_PERCPU_HASH, __u32, struct cnt, 64);
LUABPF_MAP(pc_arr, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct cnt, 4);
LUABPF_MAP(pc_small, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct small, 4);
LUABPF_MAP(lru, BPF_MAP_TYPE_LRU_HASH, __u32, struct flow_value, 64);
LUABPF_MAP(lru_pc, BPF_MAP_TYPE_LRU_PERCPU_HASH, __u32, struct cnt, 64);
LUABPF_MAP_FLAGS(routes, BPF_MAP_TYPE_LPM_TRIE, struct lpm_v4, __u32, 64, BPF_F_NO_PREALLOC);
LUABPF_RINGBUF(events, 4096);
LUABPF_PROG_ARRAY(jmp, 4);

/* 8-byte values: a lookup from user space returns the socket cookie. */
LUABPF_MAP(socks, BPF_MAP_TYPE_SOCKMAP, __u32, __u64, 4);
LUABPF_MAP(sockh, BPF_MAP_TYPE_SOCKHASH, __u32, __u64, 4);

/* maps.h has no form for the maps below: map-in-map, a queue (no key), no BTF. */
struct inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
};

struct inner inner_a SEC(".maps");
struct inner inner_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, struct inner);
} outer SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 16);
	__type(value, struct cnt);
} q SEC(".maps");

/* bench/map_ops: sized with set_max_entries before load. */
LUABPF_MAP(bench, BPF_MAP_TYPE_HASH, __u32, struct cnt, 1024);

/* No BTF for key and value: the codec's size rules apply. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__uint(key_size, 4);
	__uint(value_size, 12);
} raw SEC(".maps");

SEC("xdp")
int xdp_tail(struct xdp_md *ctx)
{
	return XDP_PASS;
}

/* Counts packets per CPU, so per-CPU values come from the kernel side too. */
SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	__u32 k = 0;
	struct cnt *c = bpf_map_lookup_elem(&pc_arr, &k);

	if (c) {
		c->packets++;
		c->bytes += ctx->data_end - ctx->data;
	}
	bpf_tail_call(ctx, &jmp, 0);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
