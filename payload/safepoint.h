/*
 * safepoint.h: run a PYHOT_VERB_PYTHON handler at a safe point, exactly once.
 * Private to the payload.
 *
 * How (docs/safepoints.md has the reasons): the calling thread queues a
 * pending call (Py_AddPendingCall needs no GIL), which the main thread runs
 * at its next eval-breaker check while it runs Python, and at once hands
 * the job to the payload's one GIL thread, which waits for the GIL with
 * the switch interval shortened: with the main thread blocked (time.sleep,
 * select, a lock) the GIL is free and that thread runs the job; with the
 * main thread running Python, the wait makes CPython ask it to drop the
 * GIL, and it runs the pending call first. The GIL thread is never the
 * caller, because it may block for ever (the main thread holds the GIL in
 * C) and, during finalization, take_gil may end it.
 *
 * An atomic state (PENDING -> RUNNING -> DONE, or PENDING -> CANCELLED on
 * timeout) decides who runs the job; the job is refcounted so that a late
 * pending call or a late GIL thread never touches freed memory.
 *
 * The safe point knows no caller: it reports how the trip went through
 * struct pyhot_sp_info, and whoever keeps counters counts from that.
 */
#ifndef PYHOT_SAFEPOINT_H
#define PYHOT_SAFEPOINT_H

#include "jsonw.h"
#include "pyhot_err.h"
#include "request.h"
#include "verbs.h"

/* How long a handler that has started is waited for, by default. */
#define PYHOT_SP_RUN_TIMEOUT_MS 60000

enum pyhot_sp_via {
	PYHOT_SP_NONE,
	PYHOT_SP_PENDING_CALL,   /* on the main thread, while it ran Python */
	PYHOT_SP_GIL_THREAD,     /* on a thread of ours; the main thread was blocked */
};

/* "pending-call", "gil-thread" or "none". */
const char *pyhot_sp_via_name(enum pyhot_sp_via via);

enum pyhot_sp_outcome {
	PYHOT_SP_NOT_QUEUED,     /* failed before the trip (no memory, no Python) */
	PYHOT_SP_TIMED_OUT,      /* no safe point in time: it never ran, never will */
	PYHOT_SP_UNFINISHED,     /* it started but did not finish in time */
	PYHOT_SP_FINISHED,       /* the handler returned (maybe an error of its own) */
};

struct pyhot_sp_info {
	enum pyhot_sp_outcome outcome;
	enum pyhot_sp_via via;   /* how it got there; NONE when it never started */
	double wait_ms;          /* FINISHED: from queueing to the start of the handler */
	double run_ms;           /* FINISHED: the handler itself */
	double total_ms;         /* FINISHED: from the call to the results in
				  * the caller's hands (total - run: what the
				  * safe point added to the request) */
};

struct pyhot_sp_opts {
	long timeout_ms;         /* bound on reaching the safe point (> 0) */
	long grace_ms;           /* the pending call alone, before the GIL
				  * thread waits too; negative:
				  * PYHOT_PENDING_GRACE_MS (none) */
	long run_ms;             /* bound on a handler that has started;
				  * negative: PYHOT_SP_RUN_TIMEOUT_MS */
	void (*before)(void);    /* run first at the safe point, GIL held, no
				  * exception left set; NULL: nothing */
};

/*
 * Run opts->before() then verb->fn(req, ...) at a safe point and wait for
 * it. Runs on a thread of ours that never holds the GIL (the agent thread,
 * the baseline thread): called with the GIL held it would wait for itself.
 *
 * frame is the request buffer req points into; the job takes it over
 * (frees it) whatever the outcome, because a handler that is still running
 * when we give up keeps using it.
 *
 * On return, info says how far the trip went and fields holds the JSON
 * members the handler wrote (no braces, "" when none; the caller frees it,
 * NULL when there are none to copy). Returns 0 or a negative pyhot_errkind
 * with err filled: "timeout" when no safe point was reached (the handler
 * never ran and never will), "uncertain" when the handler started but did
 * not finish in time, or the handler's own error.
 */
int pyhot_sp_call(const struct pyhot_verb *verb, const struct pyhot_req *req,
		  char *frame, const struct pyhot_sp_opts *opts, char **fields,
		  struct pyhot_sp_info *info, struct pyhot_err *err)
	PYHOT_MUST_CHECK;

/* How the handler that is running now reached its safe point (for "status";
 * valid only inside a handler). */
enum pyhot_sp_via pyhot_sp_current_via(void);

/* The main thread's ident (threading.get_ident()) when a pending call has
 * run on it, or 0. */
unsigned long pyhot_sp_main_ident(void);

/* Forget the GIL thread after fork() in the child (the child has none of
 * our threads; the jobs it inherited are leaked, never touched), and put
 * back a switch interval a job of the parent's had shortened. */
void pyhot_sp_atfork_child(void);

#endif /* PYHOT_SAFEPOINT_H */
