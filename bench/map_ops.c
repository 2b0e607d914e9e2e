// SPDX-License-Identifier: MIT
/*
 * The C baseline for bench/map_ops.lua: the same operations on the same kind
 * of map (tests/bpf/maps.bpf.o, map "bench": __u32 -> struct {__u64, __u64})
 * through libbpf directly. map_ops_run() is what bench/map_ops.lua calls,
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

static void report(double **out, __u32 n)
{
	double t = clock_s(CLOCK_MONOTONIC) - t0, c = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;

	*(*out)++ = n / t;
	*(*out)++ = n / c;
}

#define FAIL(what)                                                                              \
	do {                                                                                    \
		fprintf(stderr, "map_ops: %s: %s\n", what, strerror(errno));                   \
		return -1;                                                                      \
	} while (0)

/* The operations in order on the map fd (empty, at least n entries):
 * update, lookup, update_batch, lookup_batch, delete, the batches through
 * keys[n] and vals[n]; out gets each one's rate per wall second and per CPU
 * second (10 numbers). 0, or -1 (said on stderr). Keys are 0..n-1. */
int map_ops_run(int fd, __u32 n, __u32 *keys, struct cnt *vals, double *out)
{
	volatile __u64 sink = 0;
	struct cnt v;

	start();
	for (__u32 i = 0; i < n; i++) {
		v.packets = i;
		v.bytes = 2ull * i;
		if (bpf_map_update_elem(fd, &i, &v, BPF_ANY))
			FAIL("update");
	}
	report(&out, n);

	start();
	for (__u32 i = 0; i < n; i++) {
		if (bpf_map_lookup_elem(fd, &i, &v))
			FAIL("lookup");
		sink += v.packets + v.bytes;
	}
	report(&out, n);

	start();
	for (__u32 i = 0; i < n; i++) {
		keys[i] = i;
		vals[i].packets = i + 1;
		vals[i].bytes = 2ull * i;
	}
	{
		__u32 count = n;

		LIBBPF_OPTS(bpf_map_batch_opts, opts);
		if (bpf_map_update_batch(fd, keys, vals, &count, &opts))
			FAIL("update_batch");
	}
	report(&out, n);

	start();
	{
		__u32 done = 0, in = 0, next = 0, count;
		int rc;

		LIBBPF_OPTS(bpf_map_batch_opts, opts);
		do {
			count = 1024 < n - done ? 1024 : n - done;
			if (!count)
				break;
			rc = bpf_map_lookup_batch(fd, done ? &in : NULL, &next, keys + done,
						  vals + done, &count, &opts);
			if (rc && errno != ENOENT)
				FAIL("lookup_batch");
			done += count;
			in = next;
		} while (!rc);
		for (__u32 i = 0; i < done; i++)
			sink += vals[i].packets;
	}
	report(&out, n);

	start();
	for (__u32 i = 0; i < n; i++) {
		if (bpf_map_delete_elem(fd, &i))
			FAIL("delete");
	}
	report(&out, n);
	return sink == 0 ? -1 : 0;
}

#ifdef MAP_OPS_MAIN
int main(int argc, char **argv)
{
	static const char *const ops[] = { "update", "lookup", "update_batch", "lookup_batch",
					   "delete" };
	struct bpf_object *obj;
	struct bpf_map *map;
	double rates[10];
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
	if (!keys || !vals || map_ops_run(bpf_map__fd(map), n, keys, vals, rates))
		return 1;
	for (int i = 0; i < 5; i++)
		printf("%s %.0f %.0f\n", ops[i], rates[2 * i], rates[2 * i + 1]);
	bpf_object__close(obj);
	free(keys);
	free(vals);
	return 0;
}
#endif
