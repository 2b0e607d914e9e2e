// SPDX-License-Identifier: MIT
/*
 * The C baseline for bench/map_ops.lua: the same operations on the same kind
 * of map (tests/bpf/maps.bpf.o, map "bench": __u32 -> struct {__u64, __u64})
 * through libbpf directly. map_ops_op() is what bench/map_ops.lua calls,
 * loaded into the luabpf process (ffi.load of libmap_ops_c.so) on a map it
 * loaded the way it loads its own, with the key and value arrays its cdata
 * way uses: the two sides share the process, its clocks and the arrays'
 * pages (where fresh ones came from moved a batch's figure by half). Built
 * as a program too (MAP_OPS_MAIN), which loads the object itself and prints
 * "op ops_per_wall_second ops_per_cpu_second" lines. usage: map_ops OBJECT N
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

struct cnt {
	__u64 packets;
	__u64 bytes;
};

static double clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wall and CPU time at the start of a phase; report() adds both rates to out. */
static double t0, c0;

static void start(void)
{
	t0 = clock_s(CLOCK_MONOTONIC);
	c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
}

static void report(double *out, __u32 n)
{
	double t = clock_s(CLOCK_MONOTONIC) - t0, c = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;

	out[0] = n / t;
	out[1] = n / c;
}

#define FAIL(what)                                                                              \
	do {                                                                                    \
		fprintf(stderr, "map_ops: %s: %s\n", what, strerror(errno));                   \
		return -1;                                                                      \
	} while (0)

static volatile __u64 sink;

static int update(int fd, __u32 n)
{
	struct cnt v;

	for (__u32 i = 0; i < n; i++) {
		v.packets = i;
		v.bytes = 2ull * i;
		if (bpf_map_update_elem(fd, &i, &v, BPF_ANY))
			FAIL("update");
	}
	return 0;
}

static int lookup(int fd, __u32 n)
{
	struct cnt v;

	for (__u32 i = 0; i < n; i++) {
		if (bpf_map_lookup_elem(fd, &i, &v))
			FAIL("lookup");
		sink += v.packets + v.bytes;
	}
	return 0;
}

static int update_batch(int fd, __u32 n, __u32 *keys, struct cnt *vals)
{
	__u32 count = n;

	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	for (__u32 i = 0; i < n; i++) {
		keys[i] = i;
		vals[i].packets = i + 1;
		vals[i].bytes = 2ull * i;
	}
	if (bpf_map_update_batch(fd, keys, vals, &count, &opts))
		FAIL("update_batch");
	return 0;
}

static int lookup_batch(int fd, __u32 n, __u32 *keys, struct cnt *vals)
{
	__u32 done = 0, in = 0, next = 0, count;
	int rc;

	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	do {
		count = 1024 < n - done ? 1024 : n - done;
		if (!count)
			break;
		rc = bpf_map_lookup_batch(fd, done ? &in : NULL, &next, keys + done, vals + done,
					  &count, &opts);
		if (rc && errno != ENOENT)
			FAIL("lookup_batch");
		done += count;
		in = next;
	} while (!rc);
	for (__u32 i = 0; i < done; i++)
		sink += vals[i].packets;
	return 0;
}

static int delete(int fd, __u32 n)
{
	for (__u32 i = 0; i < n; i++) {
		if (bpf_map_delete_elem(fd, &i))
			FAIL("delete");
	}
	return 0;
}

/* Operation op (0 update, 1 lookup, 2 update_batch, 3 lookup_batch, 4
 * delete; in that order they leave the map empty again) on the map fd (at
 * least n entries), the batches through keys[n] and vals[n]; out[0], out[1]:
 * its rate per wall second and per CPU second. 0, or -1 (said on stderr).
 * Keys are 0..n-1. One call a phase, so the caller can start each one as it
 * starts its own (bench/map_ops.lua collects Lua's garbage first). */
int map_ops_op(int fd, __u32 n, int op, __u32 *keys, struct cnt *vals, double *out)
{
	int err;

	start();
	switch (op) {
	case 0:
		err = update(fd, n);
		break;
	case 1:
		err = lookup(fd, n);
		break;
	case 2:
		err = update_batch(fd, n, keys, vals);
		break;
	case 3:
		err = lookup_batch(fd, n, keys, vals);
		break;
	case 4:
		err = delete(fd, n);
		break;
	default:
		errno = EINVAL;
		FAIL("op");
	}
	report(out, n);
	return err;
}

#ifdef MAP_OPS_MAIN
int main(int argc, char **argv)
{
	static const char *const ops[] = { "update", "lookup", "update_batch", "lookup_batch",
					   "delete" };
	struct bpf_object *obj;
	struct bpf_map *map;
	double rates[2];
	struct cnt *vals;
	__u32 n, *keys;

	if (argc != 3) {
		fprintf(stderr, "usage: map_ops OBJECT N\n");
		return 2;
	}
	n = (__u32)strtoul(argv[2], NULL, 10);
	libbpf_set_print(NULL);
	obj = bpf_object__open_file(argv[1], NULL);
	map = obj ? bpf_object__find_map_by_name(obj, "bench") : NULL;
	if (!map || bpf_map__set_max_entries(map, n) || bpf_object__load(obj)) {
		fprintf(stderr, "map_ops: can't load map 'bench' of %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	keys = calloc(n, sizeof(*keys));
	vals = calloc(n, sizeof(*vals));
	if (!keys || !vals)
		return 1;
	for (int i = 0; i < 5; i++) {
		if (map_ops_op(bpf_map__fd(map), n, i, keys, vals, rates))
			return 1;
		printf("%s %.0f %.0f\n", ops[i], rates[0], rates[1]);
	}
	bpf_object__close(obj);
	free(keys);
	free(vals);
	return 0;
}
#endif
