/* log.c: the trace hook behind PYHOT_TRACE() (see pyhot_log.h). */
#include "pyhot_log.h"

#include <stddef.h>

pyhot_log_fn pyhot_log_callback;
static void *log_ctx;

void pyhot_log_set(pyhot_log_fn fn, void *ctx)
{
	pyhot_log_callback = fn;
	log_ctx = ctx;
}

void pyhot_log_write(const char *component, const char *fmt, ...)
{
	va_list ap;

	if (!pyhot_log_callback)
		return;
	va_start(ap, fmt);
	pyhot_log_callback(log_ctx, component, fmt, ap);
	va_end(ap);
}
