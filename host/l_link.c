// SPDX-License-Identifier: MIT
/*
 * luabpf.link: one attachment of a program. Most are kernel bpf_links (from
 * libbpf, or a raw fd from bpf_link_create); a clsact filter has no kernel
 * link and is detached by removing the filter. Every live link sits on one
 * list that holds a strong reference to its userdata: a link is released by
 * link:detach(), link:close() or shutdown, never by the GC alone. At
 * shutdown, links that are pinned stay attached: that is how a program
 * outlives the process.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "l_link.h"

struct lbpf_link *link_live; /* every live link, newest first */

static void list_add(struct lbpf_link *l)
{
	l->next = link_live;
	l->prev = NULL;
	if (link_live)
		link_live->prev = l;
	link_live = l;
}

static void list_del(struct lbpf_link *l)
{
	if (l->prev)
		l->prev->next = l->next;
	else if (link_live == l)
		link_live = l->next;
	if (l->next)
		l->next->prev = l->prev;
	l->prev = l->next = NULL;
}

static struct lbpf_link *new_link(lua_State *L, struct lbpf_object *o, const char *desc)
{
	struct link_ud *u = lua_newuserdata(L, sizeof(*u));
	struct lbpf_link *l = calloc(1, sizeof(*l));

	if (!l)
		luaL_error(L, "out of memory");
	u->l = l;
	l->fd = -1;
	l->o = o;
	if (o)
		lbpf_object__ref(o);
	l->desc = strdup(desc ? desc : "link");
	l->live = true;
	luaL_getmetatable(L, MT_LINK);
	lua_setmetatable(L, -2);
	lua_pushvalue(L, -1);
	l->ref = luaL_ref(L, LUA_REGISTRYINDEX);
	list_add(l);
	return l;
}

/// Push a link userdata that owns a libbpf bpf_link.
void lbpf_link__push(lua_State *L, struct lbpf_object *o, struct bpf_link *link, const char *desc)
{
	struct lbpf_link *l = new_link(L, o, desc);

	l->kind = LINK_LIBBPF;
	l->bl = link;
	l->fd = bpf_link__fd(link);
}

/// Push a link userdata that owns fd, a kernel link from bpf_link_create().
void lbpf_link__push_fd(lua_State *L, struct lbpf_object *o, int fd, const char *desc)
{
	struct lbpf_link *l = new_link(L, o, desc);

	l->kind = LINK_FD;
	l->fd = fd;
}

/// Push a link for a clsact filter (no bpf_link), described by hook and opts.
void lbpf_link__push_tc(lua_State *L, struct lbpf_object *o, const struct bpf_tc_hook *hook,
			const struct bpf_tc_opts *opts, const char *desc, const char *netns)
{
	struct lbpf_link *l = new_link(L, o, desc);

	l->kind = LINK_CLSACT;
	l->hook = *hook;
	l->tc = *opts;
	l->netns = netns && *netns ? strdup(netns) : NULL;
}

/// The clsact link at idx created its qdisc: the last one detached removes it.
void lbpf_link__own_qdisc(lua_State *L, int idx)
{
	struct link_ud *u = luaL_checkudata(L, idx, MT_LINK);

	u->l->owns_qdisc = true;
}

static bool same_netns(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

struct tc_job {
	struct lbpf_link *l;
	bool destroy_qdisc;
	int err;
};

static int tc_detach_job(void *arg)
{
	struct tc_job *j = arg;
	struct lbpf_link *l = j->l;
	LIBBPF_OPTS(bpf_tc_opts, o, .handle = l->tc.handle, .priority = l->tc.priority);

	if (bpf_tc_detach(&l->hook, &o) < 0) {
		j->err = errno;
		/* The interface or the filter is gone already: nothing to detach. */
		if (j->err == ENOENT || j->err == ENODEV || j->err == EINVAL)
			j->err = 0;
	}
	if (j->destroy_qdisc) {
		struct bpf_tc_hook h = l->hook;

		h.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
		bpf_tc_hook_destroy(&h);
	}
	return 0;
}

/* Hand the qdisc to another of our filters on it, or say to remove it. */
static bool last_qdisc_user(struct lbpf_link *l)
{
	if (!l->owns_qdisc)
		return false;
	for (struct lbpf_link *o = link_live; o; o = o->next) {
		if (o != l && o->kind == LINK_CLSACT && o->hook.ifindex == l->hook.ifindex &&
		    same_netns(o->netns, l->netns)) {
			o->owns_qdisc = true;
			return false;
		}
	}
	return true;
}

static void release(lua_State *L, struct lbpf_link *l)
{
	if (l->live) {
		list_del(l);
		l->live = false;
		if (L)
			luaL_unref(L, LUA_REGISTRYINDEX, l->ref);
		l->ref = LUA_NOREF;
	}
	if (l->kind == LINK_LIBBPF && l->bl) {
		/* libbpf's "detach" closes the fds; a pinned link survives that. */
		bpf_link__destroy(l->bl);
		l->bl = NULL;
	} else if (l->kind == LINK_FD && l->fd >= 0) {
		close(l->fd);
	}
	l->fd = -1;
	if (l->o) {
		lbpf_object__unref(l->o);
		l->o = NULL;
	}
}

/*
 * Detach from the kernel. Returns 0 or a positive errno. A link type the
 * kernel can't detach by force (perf events, tracing) goes when its last fd
 * closes, which only a pin prevents.
 */
static int do_detach(struct lbpf_link *l)
{
	if (l->kind == LINK_CLSACT) {
		struct tc_job j = {.l = l};
		int rc;

		j.destroy_qdisc = last_qdisc_user(l);
		rc = lbpf_in_netns(l->netns, tc_detach_job, &j);
		if (rc < 0)
			return errno == ENOENT ? 0 : -rc; /* netns gone: so is the filter */
		return j.err;
	}
	if (bpf_link_detach(l->fd) < 0) {
		int err = errno;

		if ((err == EOPNOTSUPP || err == EINVAL) && l->pin)
			return err;
		/* ENOLINK: already detached (the device went away). */
	}
	return 0;
}

/* The link at idx while it is attached, else NULL. */
static struct lbpf_link *live_link(lua_State *L, int idx)
{
	struct link_ud *u = luaL_checkudata(L, idx, MT_LINK);

	return u->l && u->l->live ? u->l : NULL;
}

struct lbpf_link *link_check(lua_State *L, int idx)
{
	struct lbpf_link *l = live_link(L, idx);

	if (!l)
		luaL_error(L, "detached link");
	return l;
}

static int l_detach(lua_State *L)
{
	struct lbpf_link *l = live_link(L, 1);
	int err;

	if (!l)
		return 0; /* idempotent */
	err = do_detach(l);
	if (err == EOPNOTSUPP || err == EINVAL)
		return lbpf_failf(L, err,
				  "link '%s' can't be detached while pinned at '%s' "
				  "(this link type goes when its last reference does): "
				  "link:unpin() first",
				  l->desc, l->pin);
	if (err)
		return lbpf_failf(L, err, "can't detach link '%s'", l->desc);
	release(L, l);
	lua_pushboolean(L, 1);
	return 1;
}

/* close(): drop our handle. A pinned link stays attached; others detach. */
static int l_close(lua_State *L)
{
	struct lbpf_link *l = live_link(L, 1);

	if (!l)
		return 0;
	if (!l->pin)
		return l_detach(L);
	release(L, l);
	lua_pushboolean(L, 1);
	return 1;
}

static int l_gc(lua_State *L)
{
	struct link_ud *u = luaL_checkudata(L, 1, MT_LINK);
	struct lbpf_link *l = u->l;

	if (!l)
		return 0;
	/*
	 * Live links are referenced from the registry, so this only runs for
	 * them when the state closes, after shutdown detached the unpinned
	 * ones. Closing the fds never detaches a pinned link.
	 */
	if (l->live && !l->pin)
		do_detach(l);
	release(NULL, l);
	free(l->desc);
	free(l->pin);
	free(l->netns);
	free(l);
	u->l = NULL;
	return 0;
}

static int l_pin(lua_State *L)
{
	struct lbpf_link *l = link_check(L, 1);
	const char *path = luaL_checkstring(L, 2);

	if (l->kind == LINK_CLSACT)
		return luaL_error(L,
				  "link '%s' is a clsact filter, which has no kernel link to "
				  "pin: attach with mode='tcx' to pin it",
				  l->desc);
	return lbpf_pin(L, l->fd, path, "link", l->desc, &l->pin);
}

static int l_unpin(lua_State *L)
{
	struct lbpf_link *l = link_check(L, 1);

	return lbpf_unpin(L, "link", l->desc, &l->pin, "");
}

static int l_pinned(lua_State *L)
{
	struct lbpf_link *l = link_check(L, 1);

	if (l->pin)
		lua_pushstring(L, l->pin);
	else
		lua_pushnil(L);
	return 1;
}

struct tc_update_job {
	struct lbpf_link *l;
	int prog_fd;
	int err;
	__u32 prog_id;
};

static int tc_update_job(void *arg)
{
	struct tc_update_job *j = arg;
	LIBBPF_OPTS(bpf_tc_opts, o, .handle = j->l->tc.handle, .priority = j->l->tc.priority,
		    .prog_fd = j->prog_fd, .flags = BPF_TC_F_REPLACE);

	if (bpf_tc_attach(&j->l->hook, &o) < 0)
		j->err = errno;
	j->prog_id = o.prog_id;
	return 0;
}

/* link:update(prog): swap the program atomically; the link stays attached. */
static int l_update(lua_State *L)
{
	struct lbpf_link *l = link_check(L, 1);
	int fd = lbpf_prog__to_fd(L, 2);

	if (fd < 0)
		return luaL_error(L, "link '%s': update expects a loaded program, got %s", l->desc,
				  luaL_typename(L, 2));
	if (l->kind == LINK_CLSACT) {
		struct tc_update_job j = {.l = l, .prog_fd = fd};
		int rc = lbpf_in_netns(l->netns, tc_update_job, &j);

		if (rc < 0)
			return lbpf_failf(L, -rc, "link '%s': can't enter netns '%s'", l->desc,
					  l->netns);
		if (j.err)
			return lbpf_failf(L, j.err, "link '%s': can't replace the program",
					  l->desc);
		l->tc.prog_id = j.prog_id;
	} else if (bpf_link_update(l->fd, fd, NULL) < 0) {
		int err = errno;

		if (err == EINVAL)
			return lbpf_failf(L, err,
					  "link '%s': can't replace the program (the new one "
					  "must have the same type and attach type)",
					  l->desc);
		return lbpf_failf(L, err, "link '%s': can't replace the program", l->desc);
	}
	lua_pushboolean(L, 1);
	return 1;
}

static int l_fd(lua_State *L)
{
	struct lbpf_link *l = link_check(L, 1);

	if (l->fd < 0)
		return luaL_error(L, "link '%s' is a clsact filter: it has no fd", l->desc);
	lua_pushinteger(L, l->fd);
	return 1;
}

int lbpf_link__detach_all(void)
{
	lua_State *L = lbpf_vm();
	struct lbpf_link *l = link_live, *next;
	int n = 0;

	for (; l; l = next) {
		next = l->next;
		if (l->pin) {
			lbpf_log(LBPF_DEBUG, "leaving link '%s' attached: pinned at %s", l->desc,
				 l->pin);
			continue;
		}
		int err = do_detach(l);

		if (err)
			lbpf_log(LBPF_WARN, "could not detach link '%s': %s", l->desc,
				 strerror(err));
		release(L, l);
		n++;
	}
	return n;
}

static const luaL_Reg methods[] = {
    {"detach", l_detach},
    {"close", l_close},
    {"pin", l_pin},
    {"unpin", l_unpin},
    {"pinned", l_pinned},
    {"update", l_update},
    {"info", llink_info},
    {"fd", l_fd},
    {"description", llink_description},
    {"__gc", l_gc},
    {"__tostring", llink_tostring},
    {NULL, NULL},
};

static const luaL_Reg module_fns[] = {
    {"link_from_pin", llink_from_pin},
    {"link_from_id", llink_from_id},
    {"links", llink_links},
    {NULL, NULL},
};

void lbpf_link__register(lua_State *L)
{
	lbpf_new_class(L, MT_LINK, methods, module_fns);
}
