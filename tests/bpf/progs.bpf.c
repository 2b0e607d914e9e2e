// SPDX-License-Identifier: MIT
/*
 * Programs for the program/link tests: XDP verdicts and a rewrite that
 * test_run can check byte by byte, tc, sk_lookup, a tracepoint counter and
 * a cgroup skb program. Counters are globals so tests read them with
 * obj:get() (live .bss) without needing the map API.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_P_IP     0x0800
#define IPPROTO_UDP_ 17
#define TC_ACT_OK    0
#define TC_ACT_SHOT  2
#define REWRITE_PORT 7777

const volatile __u32 target_pid = 0;

__u64 getpid_calls = 0;
__u64 tc_packets = 0;
__u64 cgroup_packets = 0;
__u64 sk_lookups = 0;

/* A program that only returns its verdict. */
#define VERDICT_PROG(sec, name, ctx_type, verdict) \
	SEC(sec)                                   \
	int name(ctx_type *ctx)                    \
	{                                          \
		return verdict;                    \
	}

VERDICT_PROG("xdp", xdp_pass, struct xdp_md, XDP_PASS)
VERDICT_PROG("xdp", xdp_drop, struct xdp_md, XDP_DROP)

/*
 * UDP to port 7777: the first payload byte becomes 0xAB, the IPv4 TTL drops
 * by one (checksum left alone: test_run does not care) and the packet goes
 * back out (XDP_TX). Anything else passes untouched.
 */
SEC("xdp")
int xdp_rewrite(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct udphdr *udp;
	__u8 *payload;

	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->ihl != 5 || ip->protocol != IPPROTO_UDP_)
		return XDP_PASS;
	udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end || udp->dest != bpf_htons(REWRITE_PORT))
		return XDP_PASS;
	payload = (void *)(udp + 1);
	if ((void *)(payload + 1) > end)
		return XDP_PASS;
	payload[0] = 0xAB;
	ip->ttl--;
	return XDP_TX;
}

SEC("tc")
int tc_pass(struct __sk_buff *skb)
{
	__sync_fetch_and_add(&tc_packets, 1);
	return TC_ACT_OK;
}

VERDICT_PROG("tc", tc_drop, struct __sk_buff, TC_ACT_SHOT)

SEC("sk_lookup")
int sk_lookup_pass(struct bpf_sk_lookup *ctx)
{
	__sync_fetch_and_add(&sk_lookups, 1);
	return SK_PASS;
}

SEC("tracepoint/syscalls/sys_enter_getpid")
int tp_getpid(void *ctx)
{
	if (target_pid && (bpf_get_current_pid_tgid() >> 32) != target_pid)
		return 0;
	__sync_fetch_and_add(&getpid_calls, 1);
	return 0;
}

SEC("cgroup_skb/egress")
int cgroup_skb_count(struct __sk_buff *skb)
{
	__sync_fetch_and_add(&cgroup_packets, 1);
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
