// SPDX-License-Identifier: MIT
/*
 * The C baseline for bench/map_ops.lua: the same operations on the same map
 * (tests/bpf/maps.bpf.o, map "bench": __u32 -> struct {__u64, __u64}) through
 * libbpf directly. Prints "op ops_per_wall_second ops_per_cpu_second" lines.
 * usage: map_ops OBJECT N
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

/* Wall and CPU time at the start of a phase; report() prints both rates. */
static double t0, c0;

static void start(void)
{
	t0 = clock_s(CLOCK_MONOTONIC);
	c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
}

static void report(const char *op, __u32 n)
{
	double t = clock_s(CLOCK_MONOTONIC) - t0, c = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;

	printf("%s %.0f %.0f\n", op, n / t, n / c);
}

static void die(const char *what)
{
	fprintf(stderr, "map_ops: %s: %s\n", what, strerror(errno));
	exit(1);
}

int main(int argc, char **argv)
{
	struct bpf_object *obj;
	struct bpf_map *map;
	__u32 n, *keys;
	struct cnt *vals, v;
	volatile __u64 sink = 0;
	int fd;

	if (argc != 3) {
		fprintf(stderr, "usage: map_ops OBJECT N\n");
		return 2;
	}
	n = (__u32)strtoul(argv[2], NULL, 10);
	libbpf_set_print(NULL);
	obj = bpf_object__open_file(argv[1], NULL);
	if (!obj)
		die("open");
	map = bpf_object__find_map_by_name(obj, "bench");
	if (!map)
		die("no map 'bench'");
	bpf_map__set_max_entries(map, n);
	if (bpf_object__load(obj))
		die("load");
	fd = bpf_map__fd(map);
	keys = calloc(n, sizeof(*keys));
	vals = calloc(n, sizeof(*vals));

	start();
	for (__u32 i = 0; i < n; i++) {
		v.packets = i;
		v.bytes = 2ull * i;
		if (bpf_map_update_elem(fd, &i, &v, BPF_ANY))
			die("update");
	}
	report("update", n);

	start();
	for (__u32 i = 0; i < n; i++) {
		if (bpf_map_lookup_elem(fd, &i, &v))
			die("lookup");
		sink += v.packets + v.bytes;
	}
	report("lookup", n);

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
			die("update_batch");
	}
	report("update_batch", n);

	start();
	{
		__u32 done = 0, in = 0, out = 0, count;
		int rc;

		LIBBPF_OPTS(bpf_map_batch_opts, opts);
		do {
			count = 1024 < n - done ? 1024 : n - done;
			if (!count)
				break;
			rc = bpf_map_lookup_batch(fd, done ? &in : NULL, &out, keys + done,
						  vals + done, &count, &opts);
			if (rc && errno != ENOENT)
				die("lookup_batch");
			done += count;
			in = out;
		} while (!rc);
		for (__u32 i = 0; i < done; i++)
			sink += vals[i].packets;
	}
	report("lookup_batch", n);

	start();
	for (__u32 i = 0; i < n; i++) {
		if (bpf_map_delete_elem(fd, &i))
			die("delete");
	}
	report("delete", n);
	bpf_object__close(obj);
	free(keys);
	free(vals);
	return sink == 0;
}
