/*
 * pyhot_log.h: the trace log that libraries write through.
 *
 * Libraries never print. The host (cli/) installs a callback with
 * pyhot_log_set(); until it does, tracing costs one branch and the
 * arguments of PYHOT_TRACE() are not evaluated.
 */
#ifndef PYHOT_LOG_H
#define PYHOT_LOG_H

#include <stdarg.h>

typedef void (*pyhot_log_fn)(void *ctx, const char *component, const char *fmt,
			     va_list ap);

/* Install (or, with fn == NULL, remove) the trace callback. Not thread-safe:
 * call it once at start-up. */
void pyhot_log_set(pyhot_log_fn fn, void *ctx);

/* Non-zero when a callback is installed. */
extern pyhot_log_fn pyhot_log_callback;

void pyhot_log_write(const char *component, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Trace one line; component is a short word ("ptrace", "elf", "socket"). */
#define PYHOT_TRACE(component, ...)                                        \
	do {                                                               \
		if (pyhot_log_callback)                                    \
			pyhot_log_write((component), __VA_ARGS__);         \
	} while (0)

#endif /* PYHOT_LOG_H */
