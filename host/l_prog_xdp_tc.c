// SPDX-License-Identifier: MIT
/*
 * luabpf.program: attaching to an interface, XDP and tc (tcx where the
 * kernel has it, else netlink), done inside the target netns.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/if_link.h>

#include "l_prog.h"

/* Run job(j) inside netns: 0, with where set to " in netns 'x'" (or ""),
 * or the failure to return when netns can't be entered. */
static int run_in_netns(lua_State *L, struct prog_ud *u, const char *netns, int (*job)(void *),
			void *j, char *where, size_t n)
{
	int rc = lbpf_in_netns(netns, job, j);

	if (rc < 0)
		return prog_fail_netns(L, u, -rc, netns);
	prog_in_netns_text(where, n, netns);
	return 0;
}

/* ---- XDP ------------------------------------------------------------- */

struct xdp_job {
	const char *ifname;
	int prog_fd;
	__u32 flags;
	bool replace;
	unsigned ifindex;
	int link_fd;
	int err;
	const char *stage;	     /* where it failed */
	struct bpf_xdp_query_opts q; /* what is attached, after EBUSY/EEXIST */
	bool replaced;
};

static int xdp_create(struct xdp_job *j, __u32 flags)
{
	LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = flags);

	j->link_fd = bpf_link_create(j->prog_fd, (int)j->ifindex, BPF_XDP, &opts);
	j->err = j->link_fd < 0 ? errno : 0;
	return j->err;
}

static int xdp_job_run(void *arg)
{
	struct xdp_job *j = arg;
	__u32 flags = j->flags;

	j->ifindex = lbpf_ifindex(j->ifname);
	if (!j->ifindex) {
		j->err = ENODEV;
		j->stage = "ifindex";
		return 0;
	}
	if (j->replace) {
		LIBBPF_OPTS(bpf_xdp_query_opts, q);

		/* A program attached by netlink (ip link set xdp) is not a link:
		 * take it off first. Links are never taken over. */
		if (bpf_xdp_query((int)j->ifindex, 0, &q) == 0 && q.prog_id &&
		    !prog_find_link(BPF_LINK_TYPE_XDP, j->ifindex, q.prog_id)) {
			__u32 mode = q.attach_mode == XDP_ATTACHED_SKB	? XDP_FLAGS_SKB_MODE
				     : q.attach_mode == XDP_ATTACHED_HW ? XDP_FLAGS_HW_MODE
									: XDP_FLAGS_DRV_MODE;

			if (bpf_xdp_detach((int)j->ifindex, mode, NULL) == 0)
				j->replaced = true;
		}
	}
	if (flags) {
		xdp_create(j, flags);
	} else if (xdp_create(j, XDP_FLAGS_DRV_MODE) == EOPNOTSUPP) {
		j->flags = XDP_FLAGS_SKB_MODE;
		xdp_create(j, XDP_FLAGS_SKB_MODE);
	} else {
		j->flags = XDP_FLAGS_DRV_MODE;
	}
	if (j->err == EBUSY || j->err == EEXIST) {
		j->q.sz = sizeof(j->q);
		bpf_xdp_query((int)j->ifindex, 0, &j->q);
	}
	j->stage = "attach";
	return 0;
}

static const char *xdp_mode_name(__u32 flags)
{
	return flags == XDP_FLAGS_SKB_MODE  ? "generic"
	       : flags == XDP_FLAGS_HW_MODE ? "offload"
					    : "native";
}

static int xdp_busy(lua_State *L, struct prog_ud *u, struct xdp_job *j, const char *netns)
{
	char hint[1024], holder[128], pname[64], where[PATH_MAX + 16];
	__u32 id = j->q.prog_id	      ? j->q.prog_id
		   : j->q.drv_prog_id ? j->q.drv_prog_id
				      : j->q.skb_prog_id;
	const char *mode = j->q.attach_mode == XDP_ATTACHED_SKB	    ? "generic"
			   : j->q.attach_mode == XDP_ATTACHED_HW    ? "offload"
			   : j->q.attach_mode == XDP_ATTACHED_MULTI ? "several modes"
								    : "native";
	__u32 link_id = id ? prog_find_link(BPF_LINK_TYPE_XDP, j->ifindex, id) : 0;

	prog_in_netns_text(where, sizeof(where), netns);
	prog_name_by_id(id, pname, sizeof(pname));
	if (!id) {
		snprintf(hint, sizeof(hint),
			 "'%s' has an XDP program in another mode; "
			 "native and generic can't be active at once",
			 j->ifname);
	} else if (link_id) {
		prog_link_holder(link_id, holder, sizeof(holder));
		snprintf(hint, sizeof(hint),
			 "'%s'%s already runs XDP program '%s' (id %u, %s) through bpf_link %u, "
			 "%s%s; detach that link (or swap programs with link:update()), or see "
			 "`bpftool link show id %u`",
			 j->ifname, where, pname, id, mode, link_id,
			 holder[0] ? "held by " : "pinned or held by another process", holder,
			 link_id);
	} else {
		snprintf(hint, sizeof(hint),
			 "'%s'%s already runs XDP program '%s' (id %u, %s), attached by netlink "
			 "(ip link set ... xdp): pass replace=true to take it over, or remove it "
			 "with `ip link set dev %s xdp off`",
			 j->ifname, where, pname, id, mode, j->ifname);
	}
	return prog_fail_hint(L, j->err, hint, "can't attach XDP program '%s' to '%s'%s (%s)",
			      u->name, j->ifname, where, xdp_mode_name(j->flags));
}

/* prog:attach_xdp(ifname_or_index [, {mode=, netns=, replace=}]) -> link */
int lprog_attach_xdp(lua_State *L)
{
	static const char *const known[] = {"mode", "netns", "replace", NULL};
	static const char *const modes[] = {"auto", "native", "generic", NULL};
	static const __u32 mode_flags[] = {0, XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE};
	struct prog_ud *u = prog_check_ud(L, 1);
	struct xdp_job j = {.link_fd = -1};
	const char *netns;
	char where[PATH_MAX + 16], desc[PATH_MAX + 128];
	int rc, m;

	j.ifname = prog_check_ifname(L, u, "attach_xdp", known);
	netns = lbpf_opt_string(L, 3, "netns", NULL);
	m = lbpf_opt_choice(L, 3, "attach_xdp", "mode", modes);
	j.flags = mode_flags[m];
	j.replace = lbpf_opt_bool(L, 3, "replace", false);
	j.prog_fd = prog_check_type_fd(L, u, BPF_PROG_TYPE_XDP, "attach_xdp", "xdp");

	rc = run_in_netns(L, u, netns, xdp_job_run, &j, where, sizeof(where));
	if (rc)
		return rc;
	if (j.err == ENODEV && !strcmp(j.stage, "ifindex"))
		return prog_fail_no_iface(L, u, j.ifname, where);
	if (j.err == EBUSY || j.err == EEXIST)
		return xdp_busy(L, u, &j, netns);
	if (j.err == EOPNOTSUPP)
		return prog_fail_hint(L, j.err,
				      "the driver lacks native XDP: use mode='generic' "
				      "(or mode='auto')",
				      "can't attach XDP program '%s' to '%s'%s (native)", u->name,
				      j.ifname, where);
	if (j.err)
		return prog_fail_hint(L, j.err, NULL,
				      "can't attach XDP program '%s' to '%s'%s (%s)", u->name,
				      j.ifname, where, xdp_mode_name(j.flags));
	if (!m && j.flags == XDP_FLAGS_SKB_MODE)
		lbpf_log(LBPF_INFO, "'%s'%s has no native XDP: attached '%s' in generic mode",
			 j.ifname, where, u->name);
	if (j.replaced)
		lbpf_log(LBPF_INFO, "'%s'%s: replaced the XDP program attached by netlink",
			 j.ifname, where);
	snprintf(desc, sizeof(desc), "xdp on %s%s (%s)", j.ifname, where, xdp_mode_name(j.flags));
	lbpf_link__push_fd(L, u->o, j.link_fd, desc);
	return 1;
}

/* ---- tc ---------------------------------------------------------------- */

struct tc_job {
	const char *ifname;
	int prog_fd;
	bool egress;
	bool try_tcx, try_clsact;
	__u32 handle, priority;
	unsigned ifindex;
	int link_fd;
	int err;
	bool no_iface;
	bool used_tcx, created_qdisc;
	struct bpf_tc_hook hook;
	struct bpf_tc_opts opts;
};

static int tc_job_run(void *arg)
{
	struct tc_job *j = arg;

	j->ifindex = lbpf_ifindex(j->ifname);
	if (!j->ifindex) {
		j->err = ENODEV;
		j->no_iface = true;
		return 0;
	}
	if (j->try_tcx) {
		j->link_fd = bpf_link_create(j->prog_fd, (int)j->ifindex,
					     j->egress ? LBPF_TCX_EGRESS : LBPF_TCX_INGRESS, NULL);
		if (j->link_fd >= 0) {
			j->used_tcx = true;
			j->err = 0;
			return 0;
		}
		j->err = errno;
		/* EINVAL: a kernel before 6.6 that does not know tcx. */
		if (!j->try_clsact || j->err != EINVAL)
			return 0;
		lbpf_log(LBPF_INFO, "tcx not supported here: attaching to a clsact qdisc instead");
	}
	memset(&j->hook, 0, sizeof(j->hook));
	j->hook.sz = sizeof(j->hook);
	j->hook.ifindex = (int)j->ifindex;
	j->hook.attach_point = j->egress ? BPF_TC_EGRESS : BPF_TC_INGRESS;
	/* An existing clsact is fine: keep libbpf from warning about it. */
	libbpf_print_fn_t print = libbpf_set_print(NULL);
	int rc = bpf_tc_hook_create(&j->hook);

	j->err = rc < 0 ? errno : 0;
	libbpf_set_print(print);
	if (rc == 0)
		j->created_qdisc = true;
	else if (j->err != EEXIST)
		return 0;
	memset(&j->opts, 0, sizeof(j->opts));
	j->opts.sz = sizeof(j->opts);
	j->opts.prog_fd = j->prog_fd;
	j->opts.handle = j->handle;
	j->opts.priority = j->priority;
	if (bpf_tc_attach(&j->hook, &j->opts) < 0) {
		j->err = errno;
		if (j->created_qdisc) {
			struct bpf_tc_hook h = j->hook;

			h.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
			bpf_tc_hook_destroy(&h);
		}
		return 0;
	}
	j->err = 0;
	/* The link finds the filter by handle and priority, not by fd. */
	j->opts.prog_fd = 0;
	j->opts.flags = 0;
	return 0;
}

/* prog:attach_tc(ifname [, {direction=, netns=, mode=, priority=, handle=}]) -> link */
int lprog_attach_tc(lua_State *L)
{
	static const char *const known[] = {"direction", "netns",  "mode",
					    "priority",	 "handle", NULL};
	static const char *const dirs[] = {"ingress", "egress", NULL};
	enum { TC_AUTO, TC_TCX, TC_CLSACT };
	static const char *const modes[] = {"auto", "tcx", "clsact", NULL};
	struct prog_ud *u = prog_check_ud(L, 1);
	struct tc_job j = {.link_fd = -1};
	const char *netns, *dir;
	char where[PATH_MAX + 16], desc[PATH_MAX + 128];
	lua_Integer prio, handle;
	int rc, mode;

	j.ifname = prog_check_ifname(L, u, "attach_tc", known);
	netns = lbpf_opt_string(L, 3, "netns", NULL);
	j.egress = lbpf_opt_choice(L, 3, "attach_tc", "direction", dirs) == 1;
	dir = dirs[j.egress];
	mode = lbpf_opt_choice(L, 3, "attach_tc", "mode", modes);
	prio = lbpf_opt_integer(L, 3, "priority", 0);
	handle = lbpf_opt_integer(L, 3, "handle", 0);
	if (prio < 0 || prio > 0xffff)
		return luaL_error(L, "attach_tc: option 'priority' expects 1..65535, got %d",
				  (int)prio);
	if (handle < 0 || handle > 0xffffffffLL)
		return luaL_error(L, "attach_tc: option 'handle' expects a 32-bit number");
	if (mode == TC_TCX) {
		if (prio || handle)
			return luaL_error(
			    L, "attach_tc: 'priority' and 'handle' are clsact filter "
			       "settings: use mode='clsact' (tcx orders programs itself)");
		j.try_tcx = true;
	} else if (mode == TC_CLSACT) {
		j.try_clsact = true;
	} else {
		/* auto: a priority or handle only means something to clsact. */
		j.try_tcx = !prio && !handle;
		j.try_clsact = true;
	}
	j.priority = (__u32)prio;
	j.handle = (__u32)handle;
	j.prog_fd = prog_check_type_fd(L, u, BPF_PROG_TYPE_SCHED_CLS, "attach_tc", "tc");

	rc = run_in_netns(L, u, netns, tc_job_run, &j, where, sizeof(where));
	if (rc)
		return rc;
	if (j.no_iface)
		return prog_fail_no_iface(L, u, j.ifname, where);
	if (j.err == EEXIST && !j.used_tcx && j.try_clsact)
		return prog_fail_hint(
		    L, j.err,
		    "pick another priority=, or see `tc filter show dev IF "
		    "ingress|egress`",
		    "can't attach tc program '%s' to '%s'%s %s (clsact): a filter with "
		    "handle %u priority %u exists",
		    u->name, j.ifname, where, dir, j.handle, j.priority);
	if (j.err)
		return prog_fail_hint(L, j.err, NULL,
				      "can't attach tc program '%s' to '%s'%s %s (%s)", u->name,
				      j.ifname, where, dir, j.try_tcx ? "tcx" : "clsact");
	if (j.used_tcx) {
		snprintf(desc, sizeof(desc), "tc %s on %s%s (tcx)", dir, j.ifname, where);
		lbpf_link__push_fd(L, u->o, j.link_fd, desc);
	} else {
		snprintf(desc, sizeof(desc), "tc %s on %s%s (clsact, handle %u priority %u)", dir,
			 j.ifname, where, j.opts.handle, j.opts.priority);
		lbpf_link__push_tc(L, u->o, &j.hook, &j.opts, desc, netns);
		if (j.created_qdisc)
			lbpf_link__own_qdisc(L, -1);
	}
	return 1;
}
