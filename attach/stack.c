/* stack.c: the native stack of one thread, for "where is it stuck". */
#include "pyhot_attach.h"
#include "attach_int.h"
#include "attach_thread.h"
#include "attach_names.h"
#include "attach_unwind.h"
#include "pyhot_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FRAMES 64
#define STOP_WAIT_MS 1000u

struct outbuf {
	char *buf;
	size_t len, off;
};

static void out_add(struct outbuf *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void out_add(struct outbuf *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->off + 1 >= o->len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->off, o->len - o->off, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	o->off += (size_t)n;
	if (o->off >= o->len)
		o->off = o->len - 1;
}

struct collect {
	unsigned long ips[MAX_FRAMES];
	int n;
};

static int collect_ip(unsigned long ip, int n, void *ctx)
{
	struct collect *c = ctx;

	c->ips[c->n++] = ip;
	return 0;
}

/* Stop tid just long enough to collect the return addresses of its stack
 * (frame 0 only when the walk fails); c->n stays 0 when it could not be
 * stopped. */
static int collect_frames(pid_t pid, pid_t tid, struct attach_unwinder *unw,
			  struct collect *c, struct pyhot_err *err)
{
	struct attach_thread th;
	struct attach_chld chld;
	int r, ret;

	c->n = 0;
	if (attach_chld_block(&chld) != 0)
		return pyhot_err_set(err, PYHOT_ERR_FAILED, errno, pid, "stack",
				     "pthread_sigmask() failed");
	r = attach_thread_stop(&th, &chld, pid, tid, STOP_WAIT_MS, err);
	if (r == 1) {
		ret = pyhot_err_set(err, PYHOT_ERR_FAILED, ESRCH, pid, "stack",
				    "thread %d of pid %d does not exist", (int)tid, (int)pid);
		goto out_sigmask;
	}
	if (r < 0) {
		ret = r;
		goto out_sigmask;
	}
	r = attach_unwind(unw, tid, MAX_FRAMES, collect_ip, c);
	if (r <= 0) {
		c->ips[0] = arch_get_ip(&th.regs);
		c->n = 1;
	}
	ret = attach_thread_release(&th, err);
	PYHOT_TRACE("ptrace", "stack of tid %d: %d frames", (int)tid, c->n);
out_sigmask:
	attach_chld_restore(&chld);
	return ret;
}

/* One line a frame into o, with the thread running again: names come from
 * the ELF files (names.c), read from the maps text of before the stop. */
static void print_frames(pid_t pid, const char *maps, const struct collect *c,
			 struct outbuf *o)
{
	struct attach_names *names = attach_names_new(pid, maps);
	char name[256], map[256];
	int i;

	for (i = 0; i < c->n; i++) {
		attach_names_get(names, c->ips[i], i > 0, name, sizeof(name), map,
				 sizeof(map));
		out_add(o, "#%-2d 0x%016lx in %s (%s)\n", i, c->ips[i], name, map);
	}
	attach_names_free(names);
}

int pyhot_native_stack(pid_t pid, pid_t tid, char *buf, size_t len,
		       struct pyhot_err *err)
{
	struct attach_unwinder *unw = NULL;
	struct collect c;
	struct outbuf o = { buf, len, 0 };
	char path[64], eb[128], *maps = NULL;
	size_t mlen;
	int r, ret = 0;

	if (!buf || len == 0)
		return pyhot_err_set(err, PYHOT_ERR_USAGE, EINVAL, pid, "stack",
				     "no buffer for the stack of thread %d", (int)tid);
	buf[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	r = attach_read_file(path, &maps, &mlen);
	if (r < 0)
		return pyhot_err_set(err, PYHOT_ERR_FAILED, -r, pid, "stack",
				     "read('%s'): %s", path,
				     attach_strerror(-r, eb, sizeof(eb)));
	/* Everything that reads files is done before or after the stop: the
	 * thread is stopped only for the walk itself. */
	r = attach_unwinder_new(pid, maps, &unw);
	if (r < 0) {
		ret = pyhot_err_set(err, PYHOT_ERR_FAILED, -r, pid, "stack",
				    "prepare the unwinder: %s",
				    attach_strerror(-r, eb, sizeof(eb)));
		goto out_maps;
	}
	ret = collect_frames(pid, tid, unw, &c, err);
	if (c.n > 0)
		print_frames(pid, maps, &c, &o);
	attach_unwinder_free(unw);
out_maps:
	free(maps);
	return ret;
}
