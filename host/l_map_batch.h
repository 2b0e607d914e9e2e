/* SPDX-License-Identifier: MIT */
/*
 * The kernel side of a map's batches, on flat arrays: what m:update_batch and
 * m:delete_batch (l_map_batch.c) and their FFI versions (l_map_ffi.c) do the
 * same way, with the per-element fallback where the kernel has no batch
 * operation for the map type.
 */
#ifndef LUABPF_L_MAP_BATCH_H
#define LUABPF_L_MAP_BATCH_H

#include "l_map.h"

/// True when err says the map type has no batch operation. The kernel then
/// leaves count as it was, so count can't tell; EINVAL is ambiguous and only
/// counts when nothing was done.
bool map_batch_unsupported(int err, __u32 done);

/// Update n keys (key_size bytes each) with n values (vstride bytes each).
/// The kernel's batch takes BPF_F_LOCK only: exist/noexist go one by one.
/// 0 or an errno.
int map_update_flat(struct lbpf_map *m, const void *keys, const void *vals, size_t n,
		    size_t vstride, __u64 flags);

/// Delete n keys (key_size bytes each). 0 or an errno.
int map_delete_flat(struct lbpf_map *m, const void *keys, size_t n);

#endif /* LUABPF_L_MAP_BATCH_H */
