/* SPDX-License-Identifier: MIT */
/*
 * luabpf.map's insides, shared by its files and by nothing else:
 *   l_map.c        the userdata, its checks, info/close, the methods table
 *   l_map_elem.c   keys and values through the codec, element operations
 *   l_map_batch.c  iteration (pairs, keys) and batches (lookup/update/delete, dump)
 *   l_map_pin.c    pins, and maps from a pin or an id
 *   l_map_ffi.c    the flat functions lua/luabpf/_fastmap.lua calls through the FFI
 */
#ifndef LUABPF_L_MAP_H
#define LUABPF_L_MAP_H

#include "luabpf.h"

#pragma GCC visibility push(hidden)

#ifndef ENOTSUPP
#define ENOTSUPP 524 /* the kernel's own, returned by the bpf syscall */
#endif

#define DEFAULT_BATCH 1024

struct lbpf_map {
	struct lbpf_object *o; /* NULL for maps from a pin or an id */
	struct bpf_map *map;   /* the object's map, or NULL */
	int fd;		       /* -1 until known (the object loaded) */
	bool own_fd;	       /* ours to close (pin or id) */
	struct btf *own_btf;   /* fetched from the kernel; ours to free */
	const struct btf *btf;
	char name[BPF_OBJ_NAME_LEN + 16];
	char *pin_path; /* for maps not from an object */
	enum bpf_map_type type;
	uint32_t key_size, value_size, max_entries, flags;
	bool percpu, fd_values;
	bool fast;	 /* _fastmap.lua has a plan for it (l_map_ffi.c) */
	uint32_t stride; /* bytes per value in a buffer: per CPU, rounded to 8 */
	uint32_t vlen;	 /* bytes of one whole value (all CPUs) */
	struct lbpf_codec kc, vc;
	char kwhat[BPF_OBJ_NAME_LEN + 32], vwhat[BPF_OBJ_NAME_LEN + 32];
	uint8_t *kbuf, *vbuf;
};

struct map_ud {
	struct lbpf_map *m; /* NULL once closed */
};

/* ---- l_map.c ---------------------------------------------------------- */

int map_ncpus(void);
const char *map_type_name(enum bpf_map_type t);
void map_setup(lua_State *L, struct lbpf_map *m, uint32_t key_type_id, uint32_t value_type_id);
struct lbpf_map *map_new_ud(lua_State *L, struct lbpf_map *m);
struct lbpf_map *map_check_open(lua_State *L, int idx);
struct lbpf_map *map_check_map(lua_State *L, int idx);
struct lbpf_map *map_check_elems(lua_State *L, int idx);
const char *map_pinned_path(struct lbpf_map *m);
/* ---- l_map_elem.c ------------------------------------------------------ */

void *map_encode_key(lua_State *L, struct lbpf_map *m, int idx, uint8_t *buf);
void map_decode_key(lua_State *L, struct lbpf_map *m, const uint8_t *buf);
void map_encode_value(lua_State *L, struct lbpf_map *m, int idx, uint8_t *buf);
void map_decode_value(lua_State *L, struct lbpf_map *m, const uint8_t *buf);
__u64 map_check_flags(lua_State *L, int idx, struct lbpf_map *m);
const char *map_elem_errmsg(struct lbpf_map *m, int err, const void *key, const char *op,
			    char *out, size_t n);
int lmap_lookup(lua_State *L);
int lmap_update(lua_State *L);
int lmap_delete(lua_State *L);
int lmap_lookup_and_delete(lua_State *L);
int lmap_lookup_sum(lua_State *L);
int lmap_push(lua_State *L);
int lmap_pop(lua_State *L);
int lmap_peek(lua_State *L);
/* ---- l_map_batch.c ----------------------------------------------------- */

int lmap_pairs(lua_State *L);
int lmap_keys(lua_State *L);
int lmap_lookup_batch(lua_State *L);
int lmap_dump(lua_State *L);
int lmap_update_batch(lua_State *L);
int lmap_delete_batch(lua_State *L);
/* ---- l_map_pin.c ------------------------------------------------------- */

int lmap_pin(lua_State *L);
int lmap_unpin(lua_State *L);
int lmap_from_pin(lua_State *L);
int lmap_from_id(lua_State *L);
/* ---- l_map_ffi.c ------------------------------------------------------- */

void map_fast_install(lua_State *L);

#pragma GCC visibility pop

#endif
