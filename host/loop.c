// SPDX-License-Identifier: MIT
/*
 * The one libuv loop: signals, running until done or stopped, and the
 * shutdown sequence (hooks, then the steps upper layers added: buffers,
 * links) that every way out goes through.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "luabpf.h"
#include "vm.h"
#include "watchdog.h"

static uv_signal_t sig_int, sig_term;
static uv_idle_t stopper;
static int exit_code;
static bool stopping, shut_down;

#define MAX_STEPS 8

struct steps {
	void (*fn[MAX_STEPS])(void);
	int n;
};

static struct steps at_shutdown, at_fast_exit;

static void add_step(struct steps *s, void (*fn)(void))
{
	if (s->n == MAX_STEPS)
		abort(); /* a host bug: raise MAX_STEPS */
	s->fn[s->n++] = fn;
}

static void run_steps(const struct steps *s)
{
	for (int i = 0; i < s->n; i++)
		s->fn[i]();
}

void lbpf_loop__at_shutdown(void (*step)(void))
{
	add_step(&at_shutdown, step);
}

void lbpf_loop__at_fast_exit(void (*step)(void))
{
	add_step(&at_fast_exit, step);
}

static void walk_close(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

void lbpf_shutdown(int code)
{
	if (shut_down)
		return;
	shut_down = true;
	exit_code = code;
	lbpf_notify("STOPPING=1");
	lbpf_vm__run_shutdown_hooks();
	run_steps(&at_shutdown);
}

/* Stopping happens from an idle callback, never inside another callback. */
static void on_stop(uv_idle_t *h)
{
	uv_idle_stop(h);
	lbpf_shutdown(exit_code);
	uv_stop(lbpf_loop());
}

void lbpf_request_stop(int code)
{
	if (stopping)
		return;
	stopping = true;
	exit_code = code;
	uv_idle_start(&stopper, on_stop);
}

/* A second signal, or a main chunk that won't stop: links only. */
static void fast_exit(void)
{
	run_steps(&at_fast_exit);
}

static void on_signal(uv_signal_t *h, int signum)
{
	(void)h;
	if (stopping) {
		/* A second Ctrl-C while hooks run: give up on them. */
		lbpf_log(LBPF_WARN, "%s again: exiting now", strsignal(signum));
		fast_exit();
		_exit(LBPF_EXIT_ERROR);
	}
	lbpf_log(LBPF_INFO, "%s: stopping", strsignal(signum));
	lbpf_request_stop(LBPF_EXIT_OK);
}

void lbpf_loop__init(void)
{
	uv_loop_t *loop = lbpf_loop();

	signal(SIGPIPE, SIG_IGN);
	uv_signal_init(loop, &sig_int);
	uv_signal_init(loop, &sig_term);
	uv_signal_start(&sig_int, on_signal, SIGINT);
	uv_signal_start(&sig_term, on_signal, SIGTERM);
	uv_unref((uv_handle_t *)&sig_int);
	uv_unref((uv_handle_t *)&sig_term);
	uv_idle_init(loop, &stopper);
	uv_unref((uv_handle_t *)&stopper);
	lbpf_watchdog__at_fast_exit(fast_exit);
}

int lbpf_loop__run(void)
{
	uv_loop_t *loop = lbpf_loop();

	if (!stopping) {
		lbpf_vm__set_running(true);
		uv_run(loop, UV_RUN_DEFAULT);
		lbpf_vm__set_running(false);
	}
	lbpf_shutdown(exit_code);
	/* Close what scripts left open so the loop can be freed. */
	uv_walk(loop, walk_close, NULL);
	uv_run(loop, UV_RUN_DEFAULT);
	return exit_code;
}
