// SPDX-License-Identifier: MIT
/*
 * Process exec events, as execsnoop shows them: from the sched_process_exec
 * tracepoint (only execs that succeeded, with the new program's comm and
 * argv) through a ring buffer to Lua.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include "exec_trace.h"
#include "ringbuf_lost.h"

/* 0: everyone; else only events from this uid (set before load). */
const volatile __u32 target_uid = 0;
const volatile bool filter_uid = false;

/* Events, and the count of those a full ring refused (rb:lost()). */
LUABPF_EVENTS_RING(256 * 1024);

/* Keeps struct exec_event in BTF for decode = "cdata:struct exec_event". */
struct exec_event *unused_exec_event __attribute__((unused));

SEC("tracepoint/sched/sched_process_exec")
int exec_trace(struct trace_event_raw_sched_process_exec *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task_btf();
	__u32 uid = (__u32)bpf_get_current_uid_gid();
	unsigned long start, end, len;
	struct exec_event *e;

	if (filter_uid && uid != target_uid)
		return 0;
	e = ringbuf_reserve_or_count(&events, &events_lost, sizeof(*e));
	if (!e)
		return 0;
	e->time_ns = bpf_ktime_get_ns();
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->uid = uid;
	e->pad = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_probe_read_kernel_str(e->filename, sizeof(e->filename),
				  (void *)ctx + (ctx->__data_loc_filename & 0xffff));

	/* argv as the new program sees it: the mm's argument area, just written by exec. */
	start = BPF_CORE_READ(task, mm, arg_start);
	end = BPF_CORE_READ(task, mm, arg_end);
	len = end > start ? end - start : 0;
	e->args_truncated = len > EXEC_ARGS_LEN;
	if (len > EXEC_ARGS_LEN)
		len = EXEC_ARGS_LEN;
	if (len && bpf_probe_read_user(e->args, len, (void *)start) < 0)
		len = 0;
	e->args_len = len;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
