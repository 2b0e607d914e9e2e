// SPDX-License-Identifier: MIT
/*
 * bpf.inspect.holders: which processes hold which programs, maps and links
 * (from /proc/PID/fdinfo); bpf.inspect.xdp: the XDP programs per interface.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "l_inspect.h"

static void add_holder(lua_State *L, const char *kind, unsigned long long id, int pid,
		       const char *comm)
{
	lua_getfield(L, -1, kind);
	lua_rawgeti(L, -1, (int)id);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		lua_newtable(L);
		lua_pushvalue(L, -1);
		lua_rawseti(L, -3, (int)id);
	}
	for (int i = 1; i <= (int)lua_objlen(L, -1); i++) {
		lua_rawgeti(L, -1, i);
		lua_getfield(L, -1, "pid");
		if (lua_tointeger(L, -1) == pid) {
			lua_pop(L, 4);
			return;
		}
		lua_pop(L, 2);
	}
	lua_createtable(L, 0, 2);
	inspect_set_num(L, "pid", pid);
	inspect_set_str(L, "comm", comm);
	lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
	lua_pop(L, 2);
}

/* The id from /proc/PID/fdinfo/FD ("map_id:\t12"). */
static bool proc_fdinfo_id(int pid, const char *fd, const char *key, unsigned long long *out)
{
	char path[320], line[256];
	size_t klen = strlen(key);
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%s", pid, fd);
	f = fopen(path, "r");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen))
			found = sscanf(line + klen, "%llu", out) == 1;
	fclose(f);
	return found;
}

/*
 * inspect.holders() -> { prog = {[id] = {{pid=, comm=}, ...}}, map = ..., link = ... }
 * from every process's open fds (what bpftool's pid iterator finds).
 */
int linspect_holders(lua_State *L)
{
	DIR *proc = opendir("/proc");
	struct dirent *p;
	int self = getpid();

	lua_newtable(L);
	for (int k = 0; inspect_kinds[k]; k++) {
		lua_newtable(L);
		lua_setfield(L, -2, inspect_kinds[k]);
	}
	while (proc && (p = readdir(proc))) {
		char path[320], comm[64] = "", link[64];
		int pid = atoi(p->d_name);
		struct dirent *e;
		DIR *fds;
		FILE *f;

		if (pid <= 0 || pid == self)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/fd", pid);
		fds = opendir(path);
		if (!fds)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/comm", pid);
		f = fopen(path, "r");
		if (f) {
			if (fgets(comm, sizeof(comm), f))
				comm[strcspn(comm, "\n")] = '\0';
			fclose(f);
		}
		while ((e = readdir(fds))) {
			unsigned long long id;
			const char *kind = NULL, *key = NULL;
			ssize_t n;

			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/proc/%d/fd/%s", pid, e->d_name);
			n = readlink(path, link, sizeof(link) - 1);
			if (n <= 0)
				continue;
			link[n] = '\0';
			if (!strcmp(link, "anon_inode:bpf-map"))
				kind = "map", key = "map_id:";
			else if (!strcmp(link, "anon_inode:bpf-prog"))
				kind = "prog", key = "prog_id:";
			else if (!strcmp(link, "anon_inode:bpf_link"))
				kind = "link", key = "link_id:";
			if (kind && proc_fdinfo_id(pid, e->d_name, key, &id))
				add_holder(L, kind, id, pid, comm);
		}
		closedir(fds);
	}
	if (proc)
		closedir(proc);
	return 1;
}

/*
 * inspect.xdp() -> { {ifindex=, devname=, prog_id=, mode=}, ... }: XDP programs
 * on this netns's interfaces, including those attached by netlink
 * (ip link set dev X xdp obj ...), which have no link to list.
 */
int linspect_xdp(lua_State *L)
{
	struct if_nameindex *ifs = if_nameindex(), *i;
	int n = 0;

	lua_newtable(L);
	for (i = ifs; i && i->if_index; i++) {
		LIBBPF_OPTS(bpf_xdp_query_opts, q);
		const struct {
			__u32 id;
			const char *mode;
		} progs[] = {{0, "driver"}, {0, "generic"}, {0, "offload"}};
		__u32 ids[3];

		if (bpf_xdp_query((int)i->if_index, 0, &q))
			continue;
		ids[0] = q.drv_prog_id;
		ids[1] = q.skb_prog_id;
		ids[2] = q.hw_prog_id;
		for (int m = 0; m < 3; m++) {
			if (!ids[m])
				continue;
			lua_createtable(L, 0, 4);
			inspect_set_num(L, "ifindex", i->if_index);
			inspect_set_str(L, "devname", i->if_name);
			inspect_set_num(L, "prog_id", ids[m]);
			inspect_set_str(L, "mode", progs[m].mode);
			lua_rawseti(L, -2, ++n);
		}
	}
	if (ifs)
		if_freenameindex(ifs);
	return 1;
}
