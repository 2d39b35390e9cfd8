/*
 * pyhot_err.h: the error record every fallible pyhot function fills.
 *
 * A fallible function returns 0 on success or a negative pyhot_errkind
 * (-PYHOT_ERR_*) and fills a caller-owned struct pyhot_err. The first error
 * wins: once err->kind is set, later pyhot_err_set() calls (typically from
 * cleanup paths) leave it alone, so cleanup can never hide the root cause.
 *
 * The kinds double as the command's exit codes (see README.md).
 */
#ifndef PYHOT_ERR_H
#define PYHOT_ERR_H

#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>

enum pyhot_errkind {
	PYHOT_OK = 0,
	PYHOT_ERR_FAILED = 1,     /* refused or failed; the target is unchanged */
	PYHOT_ERR_USAGE = 2,      /* bad command line */
	PYHOT_ERR_ATTACH = 3,     /* could not attach; the target is unchanged */
	PYHOT_ERR_UNCERTAIN = 4,  /* the target's state is uncertain */
	PYHOT_ERR_TIMEOUT = 124,  /* timed out; the target is unchanged */
};

/* Room for a message naming a few paths of PATH_MAX and a Python error
 * line; a longer one is cut at a word boundary (pyhot_err_fit()). */
#define PYHOT_ERR_MSG_MAX 8192

struct pyhot_err {
	enum pyhot_errkind kind;  /* PYHOT_OK while no error was recorded */
	int sys_errno;            /* errno behind the failure, or 0 */
	pid_t pid;                /* the target, or 0 */
	char step[32];            /* "attach", "inject", "connect", ... */
	char msg[PYHOT_ERR_MSG_MAX];  /* "<step>: <what>(<args>): <cause>" */
	char hint[512];           /* what the user can do, or "" */
};

#define PYHOT_MUST_CHECK __attribute__((warn_unused_result))

/* Clear an error record (kind = PYHOT_OK, all strings empty). */
void pyhot_err_init(struct pyhot_err *err);

/*
 * Record an error unless one is already recorded. The message is
 * "<step>: " followed by the formatted text. Returns -kind, so that callers
 * can write `return pyhot_err_set(err, ...)`. err may be NULL.
 */
int pyhot_err_set(struct pyhot_err *err, enum pyhot_errkind kind, int sys_errno,
		  pid_t pid, const char *step, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

/* Like pyhot_err_set(), with a va_list. */
int pyhot_err_vset(struct pyhot_err *err, enum pyhot_errkind kind, int sys_errno,
		   pid_t pid, const char *step, const char *fmt, va_list ap)
	__attribute__((format(printf, 6, 0)));

/*
 * Set the hint of the recorded error (what the user can do). Only the first
 * hint sticks, like the error itself. Does nothing when no error is recorded.
 */
void pyhot_err_hint(struct pyhot_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Make the text in buf (of size bytes) end at a word boundary when it was
 * cut: full is the length the text would have had (what snprintf returned).
 * A cut text ends at its last space, '/', ':' or ',' followed by "..."
 * (three dots, ASCII). Does nothing when the text fit.
 */
void pyhot_err_fit(char *buf, size_t size, size_t full);

/* The symbolic name of a kind: "failed", "usage", "attach", ... */
const char *pyhot_errkind_name(enum pyhot_errkind kind);

#endif /* PYHOT_ERR_H */
