/* SPDX-License-Identifier: MIT */
/* Shared between bpf/examples/exec_trace.bpf.c and scripts/examples/exec_trace.lua. */
#ifndef EXEC_TRACE_H
#define EXEC_TRACE_H

#define EXEC_COMM_LEN 16
#define EXEC_FILENAME_LEN 256
#define EXEC_ARGS_LEN 512

/* One successful execve()/execveat(), after the new program is in place. */
struct exec_event {
	__u64 time_ns; /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u32 pid; /* the process (thread group) id, the same before and after exec */
	__u32 ppid; /* the parent's process id */
	__u32 uid;
	__u32 args_len; /* bytes in args: NUL-separated argv, argv[0] first */
	__u32 args_truncated; /* 1 when argv was longer than EXEC_ARGS_LEN */
	__u32 pad;
	char comm[EXEC_COMM_LEN]; /* the new comm */
	char filename[EXEC_FILENAME_LEN]; /* the path given to execve */
	char args[EXEC_ARGS_LEN];
};

#endif
