// SPDX-License-Identifier: MIT
/*
 * systemd's readiness protocol (sd_notify(3)): one datagram of "KEY=VALUE"
 * lines to the unix socket in $NOTIFY_SOCKET. The protocol is stable and
 * systemd documents it for daemons that do without libsystemd, so we write
 * the datagram ourselves: no library to link for a 40-line sendto().
 */
#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "luabpf.h"

static uv_signal_t sig_hup;
static uv_check_t reloaded;
static bool enabled; /* a `run` service, not a command such as `luabpf check` */

int lbpf_notify(const char *fmt, ...)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char msg[1024];
	size_t plen;
	va_list ap;
	int fd, n, err = 0;

	if (!enabled || !path || !*path)
		return 0;
	plen = strlen(path);
	/* A path, or "@name" for the abstract namespace (systemd uses both). */
	if ((path[0] != '/' && path[0] != '@') || plen >= sizeof(sa.sun_path))
		return -EAFNOSUPPORT;
	memcpy(sa.sun_path, path, plen);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(msg))
		return -EMSGSIZE;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (sendto(fd, msg, n, MSG_NOSIGNAL, (struct sockaddr *)&sa,
		   offsetof(struct sockaddr_un, sun_path) + plen) < 0)
		err = errno;
	close(fd);
	if (err) {
		lbpf_log(LBPF_WARN, "can't notify the service manager at %s: %s", path,
			 strerror(err));
		return -err;
	}
	return 0;
}

void lbpf_notify__ready(const char *what)
{
	lbpf_notify("READY=1\nSTATUS=running %s\nMAINPID=%ld", what, (long)getpid());
}

/*
 * READY=1 again once the loop iteration that delivered SIGHUP is over: a
 * script's own SIGHUP handler (a uv signal too) ran in that iteration's
 * poll phase, and check handles run right after it.
 */
static void on_reloaded(uv_check_t *h)
{
	uv_check_stop(h);
	lbpf_notify("READY=1\nSTATUS=running (reloaded)");
}

static void on_hup(uv_signal_t *h, int signum)
{
	struct timespec ts;

	(void)h;
	(void)signum;
	/* MONOTONIC_USEC: what Type=notify-reload (systemd 253+) matches the reload by. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	lbpf_notify("RELOADING=1\nSTATUS=reloading\nMONOTONIC_USEC=%llu",
		    (unsigned long long)ts.tv_sec * 1000000ULL +
			(unsigned long long)ts.tv_nsec / 1000);
	uv_check_start(&reloaded, on_reloaded);
}

void lbpf_notify__init(void)
{
	const char *path = getenv("NOTIFY_SOCKET");

	/*
	 * Only under a service manager: there `systemctl reload` sends SIGHUP and
	 * waits for RELOADING=1 ... READY=1. Elsewhere SIGHUP keeps its usual
	 * meaning for scripts that do not handle it (the terminal hung up: exit).
	 */
	if (!path || !*path)
		return;
	enabled = true;
	uv_signal_init(lbpf_loop(), &sig_hup);
	uv_signal_start(&sig_hup, on_hup, SIGHUP);
	uv_unref((uv_handle_t *)&sig_hup);
	uv_check_init(lbpf_loop(), &reloaded);
	uv_unref((uv_handle_t *)&reloaded);
}
