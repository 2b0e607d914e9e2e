// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Producer for test_perfbuf's wake-up cases: another process, pinned to a
 * CPU, renames itself to `name` (prctl PR_SET_NAME) and, on that rename, this
 * program writes `count` samples to `perf_events` on the CPU it runs on. The
 * reader's process is then asleep in its loop, so only the kernel's wakeup
 * through the nested epoll can deliver them. A tp_btf program: it attaches
 * without tracefs (a fresh root may not have it mounted) or kprobes (some
 * kernels have none), the same on every arch.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "maps.h"

#define MAX_COUNT 1024

struct wake_sample {
	__u64 seq;
	__u32 cpu; /* bpf_get_smp_processor_id() of the producer */
	__u32 pid;
};

LUABPF_PERF_EVENT_ARRAY(perf_events);

/* Types only used inside functions don't reach BTF: this puts it there. */
struct wake_sample *unused_wake_sample __attribute__((unused));

const volatile char name[16] = {}; /* set before load: unique per test run */
const volatile __u32 count = 1;

__u64 produced;
__u64 failed; /* bpf_perf_event_output errors */

SEC("tp_btf/task_rename")
int BPF_PROG(wake, struct task_struct *task, const char *comm)
{
	struct wake_sample s = {};
	char buf[16] = {};

	if (!name[0] || bpf_probe_read_kernel_str(buf, sizeof(buf), comm) < 0)
		return 0;
	for (int i = 0; i < sizeof(buf); i++)
		if (buf[i] != name[i])
			return 0;
	s.cpu = bpf_get_smp_processor_id();
	s.pid = bpf_get_current_pid_tgid() >> 32;
	for (__u32 i = 0; i < MAX_COUNT && i < count; i++) {
		s.seq = __sync_fetch_and_add(&produced, 1);
		if (bpf_perf_event_output(ctx, &perf_events, BPF_F_CURRENT_CPU, &s, sizeof(s)))
			__sync_fetch_and_add(&failed, 1);
	}
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
