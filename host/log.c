// SPDX-License-Identifier: MIT
/* One log for the host, the scripts and libbpf. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "luabpf.h"

enum lbpf_level lbpf_log_level = LBPF_INFO;
struct lbpf_buf *lbpf_log_capture;

static const char *const level_names[] = { "ERROR", "WARN", "INFO", "DEBUG" };

/* sd-daemon(3) priorities: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG. */
static const char journal_prio[] = { '3', '4', '6', '7' };

bool lbpf_log__journal(void)
{
	static int journal = -1;
	unsigned long long dev, ino;
	struct stat st;
	const char *js;

	if (journal < 0) {
		/* "DEV:INO" of the stream systemd gave us, still our stderr? */
		js = getenv("JOURNAL_STREAM");
		journal = js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(2, &st) == 0 &&
			  st.st_dev == dev && st.st_ino == ino;
	}
	return journal;
}

const char *lbpf_log__prefix(enum lbpf_level level)
{
	static const char *const prio[] = { "<3>", "<4>", "<6>", "<7>" };

	return lbpf_log__journal() ? prio[level] : "";
}

/* In the journal, every line of a message (tracebacks) carries its priority. */
static void log_journal(enum lbpf_level level, const char *fmt, va_list ap)
{
	char buf[8192];
	const char *p = buf, *nl;

	vsnprintf(buf, sizeof(buf), fmt, ap);
	do {
		int len;

		nl = strchr(p, '\n');
		len = nl ? (int)(nl - p) : (int)strlen(p);
		fprintf(stderr, "<%c>%.*s\n", journal_prio[level], len, p);
		p = nl ? nl + 1 : NULL;
	} while (p && *p);
}

void lbpf_log(enum lbpf_level level, const char *fmt, ...)
{
	va_list ap;

	if (level > lbpf_log_level)
		return;
	if (lbpf_log__journal()) {
		va_start(ap, fmt);
		log_journal(level, fmt, ap);
		va_end(ap);
		return;
	}
	fprintf(stderr, "luabpf: %s: ", level_names[level]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void lbpf_buf__append(struct lbpf_buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->data, cap);
		if (!p)
			return;
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void lbpf_buf__free(struct lbpf_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[1024];
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	enum lbpf_level ours = level == LIBBPF_WARN ? LBPF_WARN
			       : level == LIBBPF_INFO ? LBPF_DEBUG
						      : LBPF_DEBUG;

	if (n < 0)
		return n;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	if (lbpf_log_capture) {
		/* During a load, warnings become part of the returned error. */
		if (level == LIBBPF_WARN)
			lbpf_buf__append(lbpf_log_capture, line, n);
		if (lbpf_log_level < LBPF_DEBUG)
			return n;
	}
	while (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';
	/* libbpf's warnings already begin with "libbpf: "; its debug lines do not all. */
	lbpf_log(ours, "%s%s", strncmp(line, "libbpf: ", 8) ? "libbpf: " : "", line);
	return n;
}

void lbpf_log__replay(const struct lbpf_buf *b)
{
	const char *p = b->data, *nl;

	while (p && *p) {
		nl = strchr(p, '\n');
		lbpf_log(LBPF_WARN, "%.*s", nl ? (int)(nl - p) : (int)strlen(p), p);
		p = nl ? nl + 1 : NULL;
	}
}

void lbpf_log__init_libbpf(void)
{
	libbpf_set_print(libbpf_print);
}
