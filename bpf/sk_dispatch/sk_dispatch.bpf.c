// SPDX-License-Identifier: MIT
/*
 * The sk_lookup dispatcher (docs/sk_lookup.md): runs when the kernel looks
 * for a listening TCP or an unconnected UDP socket, picks a binding by
 * longest prefix (then a specific port over "every port"), and assigns the
 * label's socket. A binding whose socket is gone drops (fail closed, counted
 * as a miss) so its traffic never reaches some other socket on that address,
 * unless the binding asked for fall-through.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "maps.h"
#include "sk_dispatch.h"

#define AF_INET	     2
#define AF_INET6     10
#define IPPROTO_UDP_ 17

/* Pinned by name: the dispatcher's state outlives luabpf (docs/sk_lookup.md). */
LUABPF_MAP_PINNED_FLAGS(skd_trie, BPF_MAP_TYPE_LPM_TRIE, struct skd_key, struct skd_entry,
			SKD_MAX_ENTRIES, BPF_F_NO_PREALLOC);
LUABPF_MAP_PINNED(skd_sockets, BPF_MAP_TYPE_SOCKMAP, __u32, __u64, SKD_MAX_LABELS * 4);
LUABPF_MAP_PINNED(skd_stats, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct skd_stats, SKD_MAX_BINDINGS);

/* User space only: the bindings, labels and sockets as registered. */
LUABPF_MAP_PINNED(skd_bindings, BPF_MAP_TYPE_HASH, __u32, struct skd_binding, SKD_MAX_BINDINGS);
LUABPF_MAP_PINNED(skd_labels, BPF_MAP_TYPE_HASH, __u32, struct skd_label, SKD_MAX_LABELS);
LUABPF_MAP_PINNED(skd_dests, BPF_MAP_TYPE_HASH, __u32, struct skd_dest, SKD_MAX_LABELS * 4);

static __always_inline int miss(struct skd_stats *st, const struct skd_entry *e, bool error)
{
	if (error)
		__sync_fetch_and_add(&st->errors, 1);
	else
		__sync_fetch_and_add(&st->misses, 1);
	return (e->flags & SKD_F_FALLTHROUGH) ? SK_PASS : SK_DROP;
}

SEC("sk_lookup")
int sk_dispatch(struct bpf_sk_lookup *ctx)
{
	struct skd_key key = {
	    .prefixlen = SKD_KEY_BITS,
	    .protocol = ctx->protocol,
	    .port = ctx->local_port,
	};
	bool v6 = ctx->family == AF_INET6;
	bool udp = ctx->protocol == IPPROTO_UDP_;
	__u32 *w = (__u32 *)key.addr.addr;

	/*
	 * The barriers keep clang from merging the two branches' last loads
	 * into one at a computed ctx offset, which the verifier refuses.
	 */
	if (v6) {
		w[0] = ctx->local_ip6[0];
		w[1] = ctx->local_ip6[1];
		w[2] = ctx->local_ip6[2];
		w[3] = ctx->local_ip6[3];
		asm volatile("" ::: "memory");
	} else if (ctx->family == AF_INET) {
		w[3] = ctx->local_ip4;
		asm volatile("" ::: "memory");
		w[2] = bpf_htonl(0xffff);
	} else {
		return SK_PASS;
	}

	struct skd_entry *e = bpf_map_lookup_elem(&skd_trie, &key);
	key.port = 0;
	struct skd_entry *any = bpf_map_lookup_elem(&skd_trie, &key);
	/* Longest prefix wins; on a tie the specific port does. */
	if (!e || (any && any->prefixlen > e->prefixlen))
		e = any;
	if (!e)
		return SK_PASS;

	__u32 idx = e->binding;
	struct skd_stats *st = bpf_map_lookup_elem(&skd_stats, &idx);
	if (!st)
		return SK_DROP; /* out of range: a corrupt entry, never someone else's socket */
	__sync_fetch_and_add(&st->lookups, 1);

	__u32 slot = skd_slot(e->label, v6, udp);
	struct bpf_sock *sk = bpf_map_lookup_elem(&skd_sockets, &slot);
	if (!sk && !v6) {
		/* No IPv4 socket: a dual-stack IPv6 one serves IPv4 too. */
		slot = skd_slot(e->label, 1, udp);
		sk = bpf_map_lookup_elem(&skd_sockets, &slot);
	}
	if (!sk)
		return miss(st, e, false);

	long err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	if (err)
		return miss(st, e, true);
	__sync_fetch_and_add(&st->hits, 1);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "GPL";
