// SPDX-License-Identifier: MIT
/*
 * obj:load(): pins checked first, globals mapped as the skeleton does, and
 * a failed load explained: the verifier log's reason and tail, the missing
 * capability.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "l_object.h"

static bool is_reason_line(const char *q, const char *p)
{
	const char *c = q;

	if (p - q <= 1 || *q == ';' || !strncmp(q, "processed ", 10) ||
	    !strncmp(q, "verification time", 17) || !strncmp(q, "stack depth", 11) ||
	    !strncmp(q, "-- END", 6))
		return false;
	while (c < p && *c >= '0' && *c <= '9')
		c++;
	return !(c > q && *c == ':'); /* "12: (71) r1 = ..." is an instruction */
}

/*
 * The reason is the verifier's last one or two lines that are neither an
 * instruction, a source line nor a statistic; the tail gives the context.
 */
static void push_log_summary(lua_State *L, const char *log, bool full)
{
	const char *end = log + strlen(log), *p = end, *r_start = NULL, *r_end = NULL;
	int lines = 0, reasons = 0;

	while (p > log && (p[-1] == '\n' || p[-1] == ' '))
		p--;
	end = p;
	while (p > log && lines < LOG_TAIL_LINES) {
		const char *q = p - 1;

		while (q > log && q[-1] != '\n')
			q--;
		/* Consecutive reason lines only: stop at the first instruction. */
		if (reasons < 2 && (!r_start || r_start == p) && is_reason_line(q, p)) {
			if (!r_end)
				r_end = p;
			r_start = q;
			reasons++;
		}
		p = q;
		lines++;
	}
	if (r_start) {
		while (r_end > r_start && r_end[-1] == '\n')
			r_end--;
		lua_pushlstring(L, r_start, (size_t)(r_end - r_start));
		lua_getglobal(L, "string");
		lua_getfield(L, -1, "gsub");
		lua_pushvalue(L, -3);
		lua_pushliteral(L, "\n+");
		lua_pushliteral(L, "; ");
		lua_call(L, 3, 1);
		lua_replace(L, -3);
		lua_pop(L, 1);
	} else {
		lua_pushliteral(L, "see the log");
	}
	if (full) {
		lua_pushfstring(L, "\n--- verifier log ---\n%s", log);
	} else {
		lua_pushfstring(L, "\n--- verifier log, last %d lines ---\n", lines);
		lua_pushlstring(L, p, (size_t)(end - p));
		lua_concat(L, 2);
	}
}

/*
 * After load, point each data section's memory at the kernel's map, as
 * bpf_object__load_skeleton does, so obj:get/set see and change the live
 * values. bpf_object__load alone leaves libbpf's private copy in place.
 */
static void map_globals(struct lbpf_object *o)
{
	long page = sysconf(_SC_PAGESIZE);
	struct bpf_map *m;

	bpf_object__for_each_map(m, o->obj)
	{
		__u32 flags = bpf_map__map_flags(m);
		size_t vsz, sz;
		void *addr;

		if (!bpf_map__is_internal(m) || !(flags & BPF_F_MMAPABLE))
			continue;
		addr = (void *)bpf_map__initial_value(m, &vsz);
		if (!addr)
			continue;
		sz = ((vsz + 7) / 8 * 8 * bpf_map__max_entries(m) + page - 1) / page * page;
		if (mmap(addr, sz, (flags & BPF_F_RDONLY_PROG) ? PROT_READ : PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_FIXED, bpf_map__fd(m), 0) == MAP_FAILED)
			lbpf_log(LBPF_WARN,
				 "object '%s': can't map '%s' (%s): obj:get() shows "
				 "values from before load",
				 o->name, bpf_map__name(m), strerror(errno));
	}
}

/* Pins need a bpffs: say so, naming the path, before libbpf's "failed to mkdir". */
static int check_pins(lua_State *L, struct lbpf_object *o)
{
	struct bpf_map *m;

	bpf_object__for_each_map(m, o->obj)
	{
		const char *path = bpf_map__pin_path(m);
		const char *why = path ? lbpf_bpffs_problem(path) : NULL;

		if (why) {
			lua_pushnil(L);
			lua_pushfstring(L, "object '%s': can't pin map '%s' at '%s': %s", o->name,
					bpf_map__name(m), path, why);
			lua_pushliteral(L, "EINVAL");
			return 3;
		}
	}
	return 0;
}

/* obj:load([{log_level=N, log="full"}]) -> true | nil, message, errno */
int lobject_load(lua_State *L)
{
	static const char *const known[] = {"log_level", "log", NULL};
	struct lbpf_object *o = lbpf_object__check(L, 1);
	int level = (int)lbpf_opt_integer(L, 2, "log_level", 0);
	bool full = !strcmp(lbpf_opt_string(L, 2, "log", "tail"), "full");
	struct lbpf_buf capture = {0};
	struct bpf_program *p, *bad = NULL;
	int err, nprogs = 0;
	char **bufs;

	lbpf_check_options(L, 2, "obj:load", known);
	if (o->loaded)
		return luaL_error(L, "object '%s' is already loaded", o->name);
	if (check_pins(L, o))
		return 3;
	bpf_object__for_each_program(p, o->obj) nprogs++;
	bufs = calloc(nprogs ? nprogs : 1, sizeof(*bufs));
	nprogs = 0;
	bpf_object__for_each_program(p, o->obj)
	{
		/* libbpf retries a failed load with log level 1 into this buffer. */
		bufs[nprogs] = malloc(LOG_BUF_SIZE);
		bufs[nprogs][0] = '\0';
		bpf_program__set_log_buf(p, bufs[nprogs], LOG_BUF_SIZE);
		if (level)
			bpf_program__set_log_level(p, level);
		nprogs++;
	}
	lbpf_log_capture = &capture;
	err = bpf_object__load(o->obj);
	err = err ? errno : 0;
	lbpf_log_capture = NULL;

	if (!err) {
		o->loaded = true;
		map_globals(o);
		lua_pushboolean(L, 1);
	} else {
		bpf_object__for_each_program(p, o->obj)
		{
			size_t sz;
			const char *log = bpf_program__log_buf(p, &sz);

			if (log && *log && !bad)
				bad = p;
		}
		lua_pushnil(L);
		if (bad) {
			push_log_summary(L, bpf_program__log_buf(bad, &(size_t){0}), full);
			lua_pushfstring(
			    L, "object '%s': program '%s' rejected by the verifier: %s%s", o->name,
			    bpf_program__name(bad), lua_tostring(L, -2), lua_tostring(L, -1));
			lua_replace(L, -3);
			lua_pop(L, 1);
		} else {
			lua_pushfstring(L, "object '%s': load failed: %s: %s%s%s%s", o->name,
					lbpf_errno_name(err), strerror(err), lbpf_perm_hint(err),
					capture.len ? "\n--- libbpf ---\n" : "",
					capture.len ? capture.data : "");
		}
		lua_pushstring(L, lbpf_errno_name(err));
	}
	nprogs = 0;
	bpf_object__for_each_program(p, o->obj)
	{
		bpf_program__set_log_buf(p, NULL, 0);
		free(bufs[nprogs++]);
	}
	free(bufs);
	lbpf_buf__free(&capture);
	return err ? 3 : 1;
}
