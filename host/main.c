// SPDX-License-Identifier: MIT
/* The luabpf command line: run a script, or a chunk of code, on one loop. */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <luajit.h>

#include "luabpf.h"
#include "vm.h"
#include "watchdog.h"

static const char usage[] =
	"usage: luabpf [OPTIONS] run [OPTIONS] SCRIPT [ARGS...]\n"
	"       luabpf [OPTIONS] -e CODE [ARGS...]\n"
	"       luabpf [OPTIONS] COMMAND [ARGS...]\n"
	"       luabpf help [COMMAND] | version\n"
	"\n"
	"Runs a Lua script with BPF objects, maps, programs, links and ring\n"
	"buffers on one event loop, until the script is done or SIGINT/SIGTERM.\n"
	"\n"
	"Commands (COMMAND --help, or luabpf help COMMAND, describes each):\n"
	"  run SCRIPT   run the Lua file SCRIPT; ARGS are its arg[1..] and ...\n"
	"  -e CODE      run CODE as a script named (command line)\n"
	"  repl         a Lua prompt with the API loaded (after SCRIPT, if given)\n"
	"  attach NAME  a prompt inside the running service NAME\n"
	"  ls           every BPF program, map, link or pin in the kernel\n"
	"  dump MAP     a map's entries, decoded by its BTF\n"
	"  top          a live view of a service's metrics endpoint\n"
	"  check FILE   validate a configuration without touching the kernel\n"
	"  cc FILE.bpf.c  compile your own BPF program against this kernel\n"
	"  lb COMMAND   operate a running load balancer (list, show, drain...)\n"
	"  lb           operate a running balancer: list, show, weight, drain, stop\n"
	"  help         this text; version: the version\n"
	"\n"
	"Options (before the command, or between run and SCRIPT):\n"
	"  -v           debug logging, libbpf's messages included\n"
	"  --watchdog S interrupt a handler stuck for S seconds, exit after 3 x S\n"
	"               (default 10; 0 disables); given, it times the main chunk too\n"
	"  --netns NAME run in network namespace NAME (ip netns) or at a path;\n"
	"               unlike `ip netns exec`, /sys/fs/bpf stays the host's bpffs\n"
	"  --name NAME  the service's name for `luabpf attach NAME` (default: the\n"
	"               script's file name without .lua)\n"
	"  --no-control no control socket for this service\n"
	"  --version    print the version\n"
	"\n"
	"Exit codes: 0 done (also when callbacks raised: they are logged),\n"
	"1 the script failed, 2 bad command line,\n"
	"3 missing privileges (CAP_BPF, CAP_NET_ADMIN) or kernel support.\n"
	"Docs: docs/getting-started.md, docs/cli.md, docs/lua-api.md\n";

/* What the options say, wherever on the command line they were. */
struct options {
	unsigned watchdog;
	bool watchdog_set; /* given: the main chunk is timed too */
	const char *name;
	bool control;
};

/* global_option(): argv[i] is not one of ours; one was taken (and its value). */
enum { OPT_TAKEN = -1 };

/* run_chunk(): SIGINT or SIGTERM stopped the main chunk (exit 0, as in the loop). */
#define RC_SIGNALLED -1
#define WATCHDOG_MAX 86400

/* --watchdog was given: the main chunk is timed as callbacks are. */
static bool time_main_chunk;

static int usage_error(const char *msg)
{
	fprintf(stderr, "%sERROR: %s\n%s", lbpf_log__prefix(LBPF_ERROR), msg, usage);
	return LBPF_EXIT_USAGE;
}

/* [chunk] -> runs it in a fresh strict environment with arg and ... */
static int run_chunk(lua_State *L, const char *name, int argc, char **argv)
{
	char what[300];
	bool timed;
	int rc;

	lua_createtable(L, argc, 1);
	lua_pushstring(L, name);
	lua_rawseti(L, -2, 0);
	for (int i = 0; i < argc; i++) {
		lua_pushstring(L, argv[i]);
		lua_rawseti(L, -2, i + 1);
	}
	lbpf_vm__push_env(L, name);          // [chunk, arg, env]
	lua_pushvalue(L, -2);
	lua_setfield(L, -2, "arg");          // env.arg = arg
	lua_pushvalue(L, -1);
	lua_setfield(L, LUA_REGISTRYINDEX, "luabpf.script_env");
	lua_setfenv(L, -3);                  // [chunk, arg]
	lua_pop(L, 1);
	luaL_checkstack(L, argc, "too many arguments");
	for (int i = 0; i < argc; i++)
		lua_pushstring(L, argv[i]);
	/* The script's own failure reads as the CLI's: "ERROR: file:line: ...". */
	lua_getglobal(L, "debug");
	lua_getfield(L, -1, "traceback");
	lua_remove(L, -2);
	lua_insert(L, -(argc + 2));
	snprintf(what, sizeof(what), "the main chunk of %s", name);
	timed = lbpf_watchdog__main_begin(what, time_main_chunk);
	rc = lua_pcall(L, argc, 0, -(argc + 2));
	if (lbpf_watchdog__main_end(L, timed)) {
		/* Where it was, whether the hook or something it called raised. */
		if (rc)
			lbpf_log(LBPF_INFO, "%s stopped: %.*s", what,
				 (int)strcspn(lua_tostring(L, -1) ?: "", "\n"),
				 lua_tostring(L, -1) ?: "");
		lua_pop(L, rc ? 2 : 1);
		return RC_SIGNALLED;
	}
	if (rc) {
		fprintf(stderr, "%sERROR: %s\n", lbpf_log__prefix(LBPF_ERROR), lua_tostring(L, -1));
		lua_pop(L, 2);
		return LBPF_EXIT_ERROR;
	}
	lua_pop(L, 1);
	return LBPF_EXIT_OK;
}

/* A script's own directory comes first in package.path: its modules beside it. */
static void add_script_dir(lua_State *L, const char *script)
{
	char *copy = strdup(script);

	lua_getglobal(L, "package");
	lua_pushfstring(L, "%s/?.lua;", dirname(copy));
	lua_getfield(L, -2, "path");
	lua_concat(L, 2);
	lua_setfield(L, -2, "path");
	lua_pop(L, 1);
	free(copy);
}

/* The whole process moves: sockets, children and attaches all happen there. */
static int enter_netns(const char *ns)
{
	char path[512];
	int fd, err;

	snprintf(path, sizeof(path), strchr(ns, '/') ? "%s" : "/run/netns/%s", ns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
		err = errno;
		fprintf(stderr, "%sERROR: can't enter network namespace '%s': %s\n", lbpf_log__prefix(LBPF_ERROR), ns, strerror(err));
		if (err == ENOENT)
			fprintf(stderr, "HINT: list them with `ip netns list`; create one with `ip netns add %s`\n", ns);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int finish(int rc)
{
	if (rc == RC_SIGNALLED) {
		/* The loop does not run: the shutdown sequence, then exit 0. */
		lbpf_request_stop(LBPF_EXIT_OK);
		rc = LBPF_EXIT_OK;
	}
	if (rc != LBPF_EXIT_OK)
		lbpf_shutdown(rc);
	rc = rc == LBPF_EXIT_OK ? lbpf_loop__run() : rc;
	lbpf_vm__close();
	if (lbpf_callback_errors)
		lbpf_log(LBPF_WARN, "%u error%s in callbacks during this run (logged above); "
			 "they do not change the exit code (docs/cli.md#exit-codes)",
			 lbpf_callback_errors, lbpf_callback_errors == 1 ? "" : "s");
	if (rc == LBPF_EXIT_ERROR && lbpf_missing_caps)
		rc = LBPF_EXIT_NOPERM;
	return rc;
}

/*
 * After a service's main chunk: its control socket (lua/luabpf/_service.lua),
 * so `luabpf attach NAME` reaches it. A failure there is logged, not fatal.
 */
static void start_service(lua_State *L, const char *name)
{
	lua_getglobal(L, "require");
	lua_pushliteral(L, "luabpf._service");
	if (lbpf_pcall(L, 1, 1, "the control socket") < 0)
		return;
	lua_getfield(L, -1, "start");
	lua_pushstring(L, name);
	lua_getfield(L, LUA_REGISTRYINDEX, "luabpf.script_env");
	lbpf_pcall(L, 2, 0, "the control socket");
	lua_pop(L, 1);
}

/*
 * Before a service's main chunk: claim its control socket, so a second
 * service with the same --name stops before its script touches anything
 * (a name taken by default gets a suffix instead: _service.lua).
 */
static int claim_service(lua_State *L, const char *name, bool explicit)
{
	int rc = 0;

	lua_getglobal(L, "require");
	lua_pushliteral(L, "luabpf._service");
	if (lbpf_pcall(L, 1, 1, "the control socket") < 0)
		return 0;
	lua_getfield(L, -1, "claim");
	lua_pushstring(L, name);
	lua_pushboolean(L, explicit);
	if (lbpf_pcall(L, 2, 3, "the control socket") < 0) {
		lua_pop(L, 1);
		return 0;
	}
	if (!lua_toboolean(L, -3)) {
		fprintf(stderr, "%sERROR: %s\n", lbpf_log__prefix(LBPF_ERROR), lua_tostring(L, -2) ? lua_tostring(L, -2) : "?");
		if (lua_isstring(L, -1))
			fprintf(stderr, "HINT: %s\n", lua_tostring(L, -1));
		rc = -1;
	}
	lua_pop(L, 4);
	return rc;
}

/* "scripts/examples/lb.lua" -> "lb" */
static void default_name(const char *script, char *out, size_t n)
{
	const char *base = strrchr(script, '/');
	size_t len;

	base = base ? base + 1 : script;
	len = strlen(base);
	if (len > 4 && !strcmp(base + len - 4, ".lua"))
		len -= 4;
	snprintf(out, n, "%.*s", (int)len, base);
}

/* luabpf COMMAND ARGS: the Lua module luabpf.cmd.COMMAND, called with ARGS. */
static int run_command(lua_State *L, const char *cmd, int argc, char **argv)
{
	char mod[128], code[256];

	snprintf(mod, sizeof(mod), "luabpf.cmd.%s", cmd);
	lua_getglobal(L, "package");
	lua_getfield(L, -1, "path");
	lua_getglobal(L, "package");
	lua_getfield(L, -1, "searchpath");
	lua_pushstring(L, mod);
	lua_pushvalue(L, -4);
	lua_call(L, 2, 1);
	if (lua_isnil(L, -1) || strchr(cmd, '.') || strchr(cmd, '/')) {
		snprintf(code, sizeof(code), "unknown command '%s'", cmd);
		return usage_error(code);
	}
	lua_settop(L, 0);
	snprintf(code, sizeof(code), "return require('%s')(...)", mod);
	luaL_loadbuffer(L, code, strlen(code), cmd);
	return finish(run_chunk(L, cmd, argc, argv));
}

static int print_version(void)
{
	printf("luabpf %s (%s, libbpf %d.%d)\n", LUABPF_VERSION, LUAJIT_VERSION,
	       libbpf_major_version(), libbpf_minor_version());
	return LBPF_EXIT_OK;
}

/*
 * The option at argv[*i], moving *i past its value: OPT_TAKEN, or the exit
 * code to return now (--help, --version, a bad value, an unknown option).
 */
static int unknown_option(const char *a)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "unknown option '%s'", a);
	return usage_error(msg);
}

static int global_option(int argc, char **argv, int *i, struct options *o)
{
	const char *a = argv[*i];

	if (!strcmp(a, "-v")) {
		lbpf_log_level = LBPF_DEBUG;
	} else if (!strcmp(a, "--version")) {
		return print_version();
	} else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
		fputs(usage, stdout);
		return LBPF_EXIT_OK;
	} else if (!strcmp(a, "--watchdog") || !strncmp(a, "--watchdog=", 11)) {
		const char *v = a[10] == '=' ? a + 11 : (++*i < argc ? argv[*i] : NULL);
		char msg[256];
		unsigned long n;

		if (!v || !*v)
			return usage_error("--watchdog needs SECONDS");
		/* Digits only: strtoul takes "-1" and wraps it, " 5" and "+5" too. */
		n = strspn(v, "0123456789") == strlen(v) && strlen(v) <= 6 ? strtoul(v, NULL, 10)
									  : WATCHDOG_MAX + 1;
		if (n > WATCHDOG_MAX) {
			snprintf(msg, sizeof(msg), "--watchdog takes whole seconds from 1 to %d, "
				 "or 0 to turn it off (got '%.64s')", WATCHDOG_MAX, v);
			return usage_error(msg);
		}
		o->watchdog = (unsigned)n;
		o->watchdog_set = true;
	} else if (!strcmp(a, "--netns")) {
		if (++*i >= argc)
			return usage_error("--netns needs NAME");
		if (enter_netns(argv[*i]) < 0)
			return LBPF_EXIT_ERROR;
	} else if (!strcmp(a, "--name")) {
		if (++*i >= argc || !*argv[*i] || strchr(argv[*i], '/'))
			return usage_error("--name needs a NAME without '/'");
		o->name = argv[*i];
	} else if (!strcmp(a, "--no-control")) {
		o->control = false;
	} else {
		return unknown_option(a);
	}
	return OPT_TAKEN;
}

static int run_script(lua_State *L, const char *script, int argc, char **argv,
		      const struct options *o)
{
	struct stat st;
	char def[256];
	int rc;

	if (stat(script, &st) < 0) {
		fprintf(stderr, "%sERROR: can't open script '%s': %s\n", lbpf_log__prefix(LBPF_ERROR), script, strerror(errno));
		return finish(LBPF_EXIT_ERROR);
	}
	add_script_dir(L, script);
	if (luaL_loadfile(L, script)) {
		/* The message already reads "file:line: reason". */
		fprintf(stderr, "%sERROR: %s\n", lbpf_log__prefix(LBPF_ERROR), lua_tostring(L, -1));
		return finish(LBPF_EXIT_ERROR);
	}
	default_name(script, def, sizeof(def));
	lbpf_notify__init();
	if (o->control && claim_service(L, o->name ? o->name : def, o->name != NULL) < 0)
		return finish(LBPF_EXIT_ERROR);
	rc = run_chunk(L, script, argc, argv);
	if (rc == LBPF_EXIT_OK && o->control)
		start_service(L, o->name ? o->name : def);
	/* The main chunk attached its programs: the service is up. */
	if (rc == LBPF_EXIT_OK)
		lbpf_notify__ready(script);
	return finish(rc);
}

int main(int argc, char **argv)
{
	struct options o = { .watchdog = 10, .control = true };
	char *help_argv[] = { "--help", NULL };
	const char *cmd;
	lua_State *L;
	int i = 1, script = 0, rc;

	for (; i < argc && argv[i][0] == '-' && strcmp(argv[i], "-e"); i++) {
		rc = global_option(argc, argv, &i, &o);
		if (rc != OPT_TAKEN)
			return rc;
	}
	if (i >= argc)
		return usage_error("no command given");
	cmd = argv[i];
	if (!strcmp(cmd, "version"))
		return print_version();
	if (!strcmp(cmd, "help") && (i + 1 >= argc || !strcmp(argv[i + 1], "run") ||
				     !strcmp(argv[i + 1], "-e") || !strcmp(argv[i + 1], "help"))) {
		fputs(usage, stdout);
		return LBPF_EXIT_OK;
	}
	if (!strcmp(cmd, "run")) {
		/* As users type them: `luabpf run --netns NS -v x.lua ARGS`. */
		for (script = i + 1; script < argc && argv[script][0] == '-'; script++) {
			if (!strcmp(argv[script], "--")) {
				script++;
				break;
			}
			rc = global_option(argc, argv, &script, &o);
			if (rc != OPT_TAKEN)
				return rc;
		}
		if (script >= argc)
			return usage_error("run needs a SCRIPT");
	}

	lbpf_log__init_libbpf();
	L = lbpf_vm__open(lbpf_module__open);
	if (!L) {
		fprintf(stderr, "%sERROR: out of memory creating the Lua state\n", lbpf_log__prefix(LBPF_ERROR));
		return LBPF_EXIT_ERROR;
	}
	lbpf_loop__init();
	lbpf_watchdog__start(o.watchdog);
	time_main_chunk = o.watchdog_set;

	if (!strcmp(cmd, "-e")) {
		if (i + 1 >= argc)
			return usage_error("-e needs CODE");
		if (luaL_loadbuffer(L, argv[i + 1], strlen(argv[i + 1]), "=(command line)")) {
			fprintf(stderr, "%sERROR: %s\n", lbpf_log__prefix(LBPF_ERROR), lua_tostring(L, -1));
			return finish(LBPF_EXIT_ERROR);
		}
		if (o.control && o.name && claim_service(L, o.name, true) < 0)
			return finish(LBPF_EXIT_ERROR);
		rc = run_chunk(L, "(command line)", argc - i - 2, argv + i + 2);
		if (rc == LBPF_EXIT_OK && o.control && o.name)
			start_service(L, o.name);
		return finish(rc);
	}
	if (script)
		return run_script(L, argv[script], argc - script - 1, argv + script + 1, &o);
	/* luabpf help COMMAND: what COMMAND --help says. */
	if (!strcmp(cmd, "help"))
		return run_command(L, argv[i + 1], 1, help_argv);
	return run_command(L, cmd, argc - i - 1, argv + i + 1);
}
