/* SPDX-License-Identifier: MIT */
/*
 * luabpf: what the host's C files share. One userdata type per l_*.c file;
 * this header holds their structs, metatable names and the small set of
 * helpers (errors, logging, callbacks) that every file uses the same way.
 */
#ifndef LUABPF_H
#define LUABPF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lua.h>
#include <lauxlib.h>
#include <uv.h>

#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>

#define LUABPF_VERSION "0.1.0"

/* Metatable names, one per userdata type. */
#define MT_OBJECT  "luabpf.object"
#define MT_MAP     "luabpf.map"
#define MT_PROG    "luabpf.program"
#define MT_LINK    "luabpf.link"
#define MT_RINGBUF "luabpf.ringbuf"
#define MT_PERFBUF "luabpf.perfbuf"

/* Exit codes of the CLI (docs/cli.md). */
enum {
	LBPF_EXIT_OK = 0,
	LBPF_EXIT_ERROR = 1,   /* the script raised, or a command failed */
	LBPF_EXIT_USAGE = 2,   /* bad command line */
	LBPF_EXIT_NOPERM = 3,  /* missing capability, bpffs or BTF */
};

/* ---- log.c ---------------------------------------------------------- */

enum lbpf_level { LBPF_ERROR, LBPF_WARN, LBPF_INFO, LBPF_DEBUG };

/// Messages at or below this level are printed (default LBPF_INFO; -v: DEBUG).
extern enum lbpf_level lbpf_log_level;

/// Print one log line to stderr: "luabpf: LEVEL: message".
void lbpf_log(enum lbpf_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/// Route libbpf's own messages through lbpf_log (warnings always, debug with -v).
void lbpf_log__init_libbpf(void);

/// While non-NULL, libbpf's messages are also appended here (load errors).
struct lbpf_buf {
	char *data;
	size_t len, cap;
};
extern struct lbpf_buf *lbpf_log_capture;

void lbpf_buf__append(struct lbpf_buf *b, const char *s, size_t n);
void lbpf_buf__free(struct lbpf_buf *b);

/// Log each line of a capture of libbpf's warnings as a warning (the
/// operation they came from went on, so they were not part of an error).
void lbpf_log__replay(const struct lbpf_buf *b);

/// Is stderr the journal ($JOURNAL_STREAM names it)? Log lines then carry
/// sd-daemon priority prefixes ("<3>" error ... "<7>" debug) instead of "luabpf: LEVEL:".
bool lbpf_log__journal(void);

/// "<3>" for LBPF_ERROR etc. in the journal, else "": for the CLI's own
/// "ERROR: ..." lines, which are printed directly.
const char *lbpf_log__prefix(enum lbpf_level level);

/* ---- notify.c: the service manager's readiness protocol (sd_notify) --- */

/// Send one sd_notify datagram ("READY=1", "STOPPING=1"...) to $NOTIFY_SOCKET.
/// No-op returning 0 when unset; -errno (and a warning) when it can't be sent.
int lbpf_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/// READY=1 with a STATUS naming what runs: after a script's main chunk.
void lbpf_notify__ready(const char *what);

/// For `run` only (commands stay silent): enables lbpf_notify and, under a
/// service manager, brackets each SIGHUP reload with RELOADING=1 and
/// READY=1 (after the loop iteration that ran the script's SIGHUP handler).
void lbpf_notify__init(void);

/* ---- util.c ----------------------------------------------------------- */

/// Push luv's failure triple for a positive errno: nil, "ENAME: text", "ENAME".
/// Returns 3 so a C function can `return lbpf_fail(L, errno);`.
int lbpf_fail(lua_State *L, int err);

/// Same with a prefix naming the thing: nil, "map 'x': ENOENT: No such...", "ENOENT".
int lbpf_failf(lua_State *L, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/// "ENOENT" for ENOENT; never NULL.
const char *lbpf_errno_name(int err);

/// Read an optional string option from the table at index idx ("" if absent).
const char *lbpf_opt_string(lua_State *L, int idx, const char *key, const char *def);
lua_Integer lbpf_opt_integer(lua_State *L, int idx, const char *key, lua_Integer def);
bool lbpf_opt_bool(lua_State *L, int idx, const char *key, bool def);

/// The index in the NULL-terminated names of the string option key (names[0]
/// when absent); raises "what: option 'key' expects a, b or c, got 'x'".
int lbpf_opt_choice(lua_State *L, int idx, const char *what, const char *key,
		    const char *const names[]);

/// Raise if the options table at idx has a key not in the NULL-terminated list.
void lbpf_check_options(lua_State *L, int idx, const char *what, const char *const known[]);

/// Create a metatable mt with __index = itself plus methods, and add fns
/// (NULL: none) to the module table on top. Returns the metatable's address
/// (lua_topointer), for checks that compare it.
const void *lbpf_new_class(lua_State *L, const char *mt, const luaL_Reg *methods,
			   const luaL_Reg *fns);
/// Add a table name holding fns to the module table on top (luabpf._sys).
void lbpf_new_lib(lua_State *L, const char *name, const luaL_Reg *fns);

/// Push the host's own Lua source src as a function called name ("=strict");
/// raises on a syntax error.
void lbpf_load_chunk(lua_State *L, const char *src, const char *name);

/// Resolve an interface name (or number) to an ifindex, in the current netns.
/// Returns 0 and sets errno when missing.
unsigned lbpf_ifindex(const char *name);

/// Run fn(arg) inside the network namespace NAME (/run/netns/NAME) or PATH,
/// then return to the original one. ns NULL or "" runs it in place.
/// Returns fn's result, or -errno when the namespace could not be entered.
int lbpf_in_netns(const char *ns, int (*fn)(void *arg), void *arg);

/// What kind of BPF object fd is, from /proc/self/fdinfo: "prog", "map" or
/// "link"; NULL for anything else (errno 0) or when fdinfo can't be read
/// (errno set), so a caller may choose to let the kernel decide then.
const char *lbpf_fd_kind(int fd);

/// Is path's directory on a bpffs mount (where bpf_obj_pin can pin)?
bool lbpf_on_bpffs(const char *path);

/// For a path under /sys/fs/bpf where no bpffs is mounted (`ip netns exec`
/// mounts a fresh /sys): why, then a "\nHINT: ..." line saying what to do.
/// NULL when the path is elsewhere or the bpffs is there. When not NULL, the
/// process exits 3 (LBPF_EXIT_NOPERM) if the script fails.
const char *lbpf_bpffs_missing(const char *path);

/// Why a pin can't be made at path: lbpf_bpffs_missing(), or its nearest
/// existing directory is not on bpffs. NULL when it can (or the kernel will say).
const char *lbpf_bpffs_problem(const char *path);

/// The info of program fd with its map ids: *map_ids is a calloc'd array the
/// caller frees (NULL when none). Returns how many ids it holds, or -1 with
/// errno set (nothing to free).
int lbpf_prog_info(int fd, struct bpf_prog_info *info, __u32 **map_ids);

/// Set field "map_ids" of the table at -1 to the n ids, as a sequence.
void lbpf_set_ids(lua_State *L, const __u32 *ids, int n);

/// A program's load_time (ns since boot) as wall-clock seconds since the epoch.
double lbpf_boot_to_wall(__u64 boot_ns);

/// obj:pin(path) for a KIND ("program", "link") named NAME with fd: pins it
/// and keeps a copy of path in *pin, pushing true; or nil, "KIND 'NAME': can't
/// pin at 'PATH': ...", errno (EINVAL when path is not on bpffs).
/// Returns the number of values pushed.
int lbpf_pin(lua_State *L, int fd, const char *path, const char *kind, const char *name,
	     char **pin);

/// obj:unpin([path]) (path at 2, else *pin): removes the pin at path
/// (forgetting *pin when it is that one), pushing true; or nil, "KIND 'NAME':
/// can't unpin 'PATH': ...", errno. Raises "KIND 'NAME' is not pinned" and
/// then hint when there is no path.
int lbpf_unpin(lua_State *L, const char *kind, const char *name, char **pin, const char *hint);

/// Set when an operation failed for want of CAP_BPF or of a bpffs at
/// /sys/fs/bpf (the CLI then exits 3).
extern bool lbpf_missing_caps;

/// For EPERM/EACCES: " (this process lacks CAP_BPF: ...)" when that is why; else "".
const char *lbpf_perm_hint(int err);

/* ---- vm.c ------------------------------------------------------------- */

/// The host's one loop and one Lua state.
uv_loop_t *lbpf_loop(void);
lua_State *lbpf_vm(void);

/// Call the function below nargs arguments in protected mode with a traceback.
/// On error, log it as "error in WHAT: message\ntraceback" and return -1
/// (nothing left on the stack); else 0 with nresults values pushed.
int lbpf_pcall(lua_State *L, int nargs, int nresults, const char *what);

/// How many errors lbpf_pcall has logged: the exit code stays 0 for them
/// (a service goes on), so the CLI says how many there were when it exits.
extern unsigned lbpf_callback_errors;

/// A pcall message handler: the error (or its __tostring, or its type) and a
/// traceback, as one string.
int lbpf_traceback(lua_State *L);

/// Ask the host to stop the loop and run shutdown hooks (signal or script).
void lbpf_request_stop(int exit_code);

/// Add a C step to the shutdown sequence (loop.c): steps run after the
/// scripts' hooks, in the order added. Upper layers (buffers, links) add
/// theirs, so the loop never calls up into them.
void lbpf_loop__at_shutdown(void (*step)(void));

/// Add a step for a second signal, which exits at once without the hooks.
void lbpf_loop__at_fast_exit(void (*step)(void));

/// Directory of shipped BPF objects (build tree or install prefix).
const char *lbpf_object_dir(void);

/* ---- l_object.c ------------------------------------------------------- */

/*
 * A BPF object shared by its Lua userdata and every map, program and link
 * made from it: refcounted, so a map keeps its object alive. close() on the
 * object frees the libbpf object at once; children then raise "closed object".
 */
struct lbpf_object {
	struct bpf_object *obj; /* NULL once closed */
	char *path;
	char *name;
	bool loaded;
	int refs;
};

void lbpf_object__ref(struct lbpf_object *o);
void lbpf_object__unref(struct lbpf_object *o);

/// Raise unless the object is open. what names the caller ("map 'x'").
void lbpf_object__check_open(lua_State *L, struct lbpf_object *o, const char *what);

/// The object userdata at idx (raises if not one, or closed).
struct lbpf_object *lbpf_object__check(lua_State *L, int idx);

/// Module functions: luabpf.open(), luabpf.load().
void lbpf_object__register(lua_State *L);

/* ---- btf_codec.c ------------------------------------------------------ */

/*
 * Converts between bytes laid out as a BTF type and Lua values: structs are
 * tables by field name, integers numbers (int64 cdata beyond 2^53), char
 * arrays strings, other arrays sequences, __be16/__be32/__be64 host-order
 * numbers, ipv4_t/ipv6_t/struct in6_addr text addresses. Without BTF
 * (type_id 0) sizes 1, 2, 4, 8 are integers and others raw strings.
 * A raw Lua string of exactly the type's size is always accepted.
 */
struct lbpf_codec {
	const struct btf *btf; /* may be NULL */
	uint32_t type_id;      /* 0: no type */
	uint32_t size;
	const char *what;      /* "map 'backends' key", used in errors */
	struct lbpf_codec_plan *plan; /* lbpf_codec__prepare's fast path, or NULL */
};

/// Encode the Lua value at idx into buf (codec->size bytes, zeroed first).
/// Raises a Lua error naming codec->what, the field and the expected type.
void lbpf_codec__encode(lua_State *L, const struct lbpf_codec *c, int idx, void *buf);

/// Push the Lua value for buf.
void lbpf_codec__decode(lua_State *L, const struct lbpf_codec *c, const void *buf);

/// Compile the codec's type, once, into a fast path for the common shapes (an
/// integer, a flat struct of scalars); behaviour and errors stay the same.
void lbpf_codec__prepare(lua_State *L, struct lbpf_codec *c);

/// Free what lbpf_codec__prepare made.
void lbpf_codec__release(lua_State *L, struct lbpf_codec *c);

/// A short C-like name of the type ("struct flow_key", "__u32") for messages.
const char *lbpf_codec__type_name(const struct lbpf_codec *c, char *out, size_t n);

/// Register helpers on the module table at -1 (luabpf.ip4, ntoa, ...).
void lbpf_codec__register(lua_State *L);

/* ---- l_map.c ---------------------------------------------------------- */

/// Push a map userdata for map of object o (takes a reference on o).
void lbpf_map__push(lua_State *L, struct lbpf_object *o, struct bpf_map *map);

/// What other files need of a map userdata.
struct lbpf_map_view {
	int fd;
	const struct btf *btf; /* the map's (or its object's) BTF; may be NULL */
	const char *name;
	enum bpf_map_type type;
	uint32_t key_size, value_size, max_entries;
};

/// Fill v for the map userdata at idx; raises if idx is not a map, or the
/// map is closed or its object not loaded yet.
void lbpf_map__view(lua_State *L, int idx, struct lbpf_map_view *v);

/// The fd of the map userdata at idx, or -1 if idx is not a map userdata.
int lbpf_map__to_fd(lua_State *L, int idx);
void lbpf_map__register(lua_State *L);

/* ---- l_prog.c --------------------------------------------------------- */

/// Push a program userdata for prog of object o (takes a reference on o).
void lbpf_prog__push(lua_State *L, struct lbpf_object *o, struct bpf_program *prog);

/// The fd of the program userdata at idx, or -1 if idx is not a program
/// (prog_array values accept programs).
int lbpf_prog__to_fd(lua_State *L, int idx);
void lbpf_prog__register(lua_State *L);

/* ---- l_link.c --------------------------------------------------------- */

/*
 * A link: a bpf_link, or a clsact filter (no kernel link; detached by
 * bpf_tc_detach). Every live link is on a list so shutdown detaches the
 * ones that are not pinned.
 */
struct lbpf_link;

/// Push a link userdata that owns link (a bpf_link from libbpf). desc is a
/// human description ("xdp on veth0 (native)").
void lbpf_link__push(lua_State *L, struct lbpf_object *o, struct bpf_link *link, const char *desc);

/// Push a link for a clsact filter (no bpf_link), described by hook and opts.
void lbpf_link__push_tc(lua_State *L, struct lbpf_object *o, const struct bpf_tc_hook *hook,
			const struct bpf_tc_opts *opts, const char *desc, const char *netns);

/// Push a link userdata that owns fd, a kernel link made by bpf_link_create()
/// (XDP with mode flags, tcx, sk_lookup, cgroup: libbpf 1.1 has no wrapper).
void lbpf_link__push_fd(lua_State *L, struct lbpf_object *o, int fd, const char *desc);

/// Mark the clsact link at idx as the creator of its clsact qdisc: detaching
/// the last of our filters on that qdisc then removes it.
void lbpf_link__own_qdisc(lua_State *L, int idx);

/// Detach every live link that is not pinned (at shutdown). Returns how many.
int lbpf_link__detach_all(void);
void lbpf_link__register(lua_State *L);

/* ---- l_ringbuf.c ------------------------------------------------------ */

/// Stop polling every buffer (at shutdown).
void lbpf_ringbuf__close_all(void);
void lbpf_ringbuf__register(lua_State *L);

/* ---- l_perfbuf.c ------------------------------------------------------ */

void lbpf_perfbuf__close_all(void);
void lbpf_perfbuf__register(lua_State *L);

/* ---- l_sys.c: peer credentials and interrupts for the REPL ------------ */

/// Register bpf._sys (private to lua/luabpf/_service.lua and repl.lua).
void lbpf_sys__register(lua_State *L);

/* ---- l_inspect.c ------------------------------------------------------ */

/// Register bpf.inspect: every program, map and link in the kernel, by id or
/// pin, as plain tables (luabpf ls / dump).
void lbpf_inspect__register(lua_State *L);

/* ---- btf_ffi.c -------------------------------------------------------- */

/// Append to out one C declaration of BTF type id that LuaJIT's ffi takes:
/// an anonymous packed struct with explicit padding, nested types inlined.
/// Returns 0, or -1 with a message in err.
int lbpf_btf__ffi_decl(const struct btf *btf, uint32_t id, struct lbpf_buf *out, char *err,
		       size_t errlen);

/* How a buffer hands events to Lua: decode = "raw" | "struct X" | "cdata:struct X". */
enum lbpf_decode_mode { LBPF_DECODE_RAW, LBPF_DECODE_TABLE, LBPF_DECODE_CDATA };

struct lbpf_decode {
	enum lbpf_decode_mode mode;
	struct btf *btf;     /* our own copy (the object may close first); NULL for raw */
	uint32_t type_id, size;
	char *decl;          /* cdata: the FFI declaration */
	char type_name[128]; /* "struct event" */
};

/// Parse a decode option against the map's BTF; raises, naming what, on misuse.
void lbpf_decode__parse(lua_State *L, struct lbpf_decode *d, const char *spec,
			const struct lbpf_map_view *v, const char *what);
void lbpf_decode__free(struct lbpf_decode *d);

#endif /* LUABPF_H */
