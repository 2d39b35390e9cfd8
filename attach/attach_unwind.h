/*
 * attach_unwind.h: private to attach/. Walk the stack of a stopped thread
 * quickly enough to keep the stop well under a millisecond (unwind.c).
 */
#ifndef PYHOT_ATTACH_UNWIND_H
#define PYHOT_ATTACH_UNWIND_H

#include <sys/types.h>

struct attach_unwinder;

/* Prepare for pid, from its /proc/PID/maps text, before any thread is
 * stopped: finds the unwind table of every mapped object. Returns 0 or
 * -errno. */
int attach_unwinder_new(pid_t pid, const char *maps,
			struct attach_unwinder **out) __attribute__((warn_unused_result));
void attach_unwinder_free(struct attach_unwinder *u);

/* Walk the stack of stopped thread tid, innermost frame first, calling
 * cb(ip, n, ctx) for at most max_frames frames; cb returns non-zero to
 * stop. Returns the number of frames seen (0 when even the first could not
 * be read) or a negative error. */
int attach_unwind(struct attach_unwinder *u, pid_t tid, int max_frames,
		  int (*cb)(unsigned long ip, int n, void *ctx), void *ctx);

#endif /* PYHOT_ATTACH_UNWIND_H */
