/* SPDX-License-Identifier: MIT */
/*
 * BTF-defined maps in one line, as bcc's BPF_HASH() declares them:
 *
 *	LUABPF_MAP(counts, BPF_MAP_TYPE_HASH, __u32, __u64, 1024);
 *
 * is exactly
 *
 *	struct {
 *		__uint(type, BPF_MAP_TYPE_HASH);
 *		__uint(max_entries, 1024);
 *		__type(key, __u32);
 *		__type(value, __u64);
 *	} counts SEC(".maps");
 *
 * so the map keeps its name, type, key and value BTF types (by which Lua
 * reads and writes it), size, flags and pinning. Include after vmlinux.h and
 * <bpf/bpf_helpers.h>. A map these don't cover is written out as above.
 */
#ifndef LUABPF_MAPS_H
#define LUABPF_MAPS_H

/* The definition every macro below expands to; `extra` is more fields (or nothing). */
#define LUABPF_MAP_DEF(name, map_type, key_t, value_t, max, extra) \
	struct {                                                   \
		__uint(type, map_type);                            \
		__uint(max_entries, max);                          \
		__type(key, key_t);                                \
		__type(value, value_t);                            \
		extra                                              \
	} name SEC(".maps")

/* A map of max entries of key_t to value_t. */
#define LUABPF_MAP(name, map_type, key_t, value_t, max) \
	LUABPF_MAP_DEF(name, map_type, key_t, value_t, max, )

/* With map_flags, e.g. BPF_F_NO_PREALLOC (which an LPM trie must have). */
#define LUABPF_MAP_FLAGS(name, map_type, key_t, value_t, max, flags) \
	LUABPF_MAP_DEF(name, map_type, key_t, value_t, max, __uint(map_flags, flags);)

/*
 * Pinned by name (LIBBPF_PIN_BY_NAME): libbpf reuses the map pinned under
 * the object's pin directory, or pins this one there, so it outlives the
 * process and objects that declare it alike share one map.
 */
#define LUABPF_MAP_PINNED(name, map_type, key_t, value_t, max) \
	LUABPF_MAP_DEF(name, map_type, key_t, value_t, max, __uint(pinning, LIBBPF_PIN_BY_NAME);)

#define LUABPF_MAP_PINNED_FLAGS(name, map_type, key_t, value_t, max, flags) \
	LUABPF_MAP_DEF(name, map_type, key_t, value_t, max,                 \
		       __uint(map_flags, flags); __uint(pinning, LIBBPF_PIN_BY_NAME);)

/* A per-CPU array of one slot (key 0): a per-CPU counter or scratch value. */
#define LUABPF_PERCPU_SLOT(name, value_t) \
	LUABPF_MAP(name, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, value_t, 1)

/* Tail-call targets: bpf_tail_call(ctx, &name, i), filled from Lua. */
#define LUABPF_PROG_ARRAY(name, max) LUABPF_MAP(name, BPF_MAP_TYPE_PROG_ARRAY, __u32, __u32, max)

/* A ring buffer of size bytes (a power of 2, a multiple of the page size); no key or value. */
#define LUABPF_RINGBUF(name, size)                  \
	struct {                                    \
		__uint(type, BPF_MAP_TYPE_RINGBUF); \
		__uint(max_entries, size);          \
	} name SEC(".maps")

#define LUABPF_RINGBUF_PINNED(name, size)                  \
	struct {                                           \
		__uint(type, BPF_MAP_TYPE_RINGBUF);        \
		__uint(max_entries, size);                 \
		__uint(pinning, LIBBPF_PIN_BY_NAME);       \
	} name SEC(".maps")

/* A perf event array, one slot per CPU (libbpf sizes it at load). */
#define LUABPF_PERF_EVENT_ARRAY(name)                         \
	struct {                                              \
		__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);  \
		__uint(key_size, sizeof(__u32));              \
		__uint(value_size, sizeof(__u32));            \
	} name SEC(".maps")

#endif
