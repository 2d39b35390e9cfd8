/* err.c: the first-error-wins error record (see pyhot_err.h). */
#include "pyhot_err.h"

#include <stdio.h>
#include <string.h>

void pyhot_err_init(struct pyhot_err *err)
{
	/* The strings are NUL-terminated: clearing their first bytes is
	 * enough, and it spares touching 9 KB (a new page or three of a fresh
	 * thread's stack) for every record made and never used. */
	err->kind = PYHOT_OK;
	err->sys_errno = 0;
	err->pid = 0;
	err->step[0] = '\0';
	err->msg[0] = '\0';
	err->hint[0] = '\0';
}

int pyhot_err_vset(struct pyhot_err *err, enum pyhot_errkind kind, int sys_errno,
		   pid_t pid, const char *step, const char *fmt, va_list ap)
{
	int n, m;

	if (!err || err->kind != PYHOT_OK)
		return -(int)kind;
	err->kind = kind;
	err->sys_errno = sys_errno;
	err->pid = pid;
	snprintf(err->step, sizeof(err->step), "%s", step);
	n = snprintf(err->msg, sizeof(err->msg), "%s: ", step);
	if (n < 0 || (size_t)n >= sizeof(err->msg))
		n = 0;
	m = vsnprintf(err->msg + n, sizeof(err->msg) - (size_t)n, fmt, ap);
	if (m > 0) {
		pyhot_err_fit(err->msg, sizeof(err->msg), (size_t)n + (size_t)m);
	}
	return -(int)kind;
}

int pyhot_err_set(struct pyhot_err *err, enum pyhot_errkind kind, int sys_errno,
		  pid_t pid, const char *step, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = pyhot_err_vset(err, kind, sys_errno, pid, step, fmt, ap);
	va_end(ap);
	return ret;
}

void pyhot_err_hint(struct pyhot_err *err, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!err || err->kind == PYHOT_OK || err->hint[0])
		return;
	va_start(ap, fmt);
	n = vsnprintf(err->hint, sizeof(err->hint), fmt, ap);
	va_end(ap);
	if (n > 0)
		pyhot_err_fit(err->hint, sizeof(err->hint), (size_t)n);
}

void pyhot_err_fit(char *buf, size_t size, size_t full)
{
	static const char mark[] = "...";
	size_t end;

	if (size < sizeof(mark) + 1 || full < size)
		return;
	/* The cut must leave room for the mark, then go back to a boundary
	 * so that the last word shown is a whole word. */
	end = size - sizeof(mark);
	while (end > 0 && !strchr(" /:,", buf[end - 1]))
		end--;
	if (end == 0)
		end = size - sizeof(mark);
	memcpy(buf + end, mark, sizeof(mark));
}

const char *pyhot_errkind_name(enum pyhot_errkind kind)
{
	switch (kind) {
	case PYHOT_OK:            return "ok";
	case PYHOT_ERR_FAILED:    return "failed";
	case PYHOT_ERR_USAGE:     return "usage";
	case PYHOT_ERR_ATTACH:    return "attach";
	case PYHOT_ERR_UNCERTAIN: return "uncertain";
	case PYHOT_ERR_TIMEOUT:   return "timeout";
	}
	return "unknown";
}
