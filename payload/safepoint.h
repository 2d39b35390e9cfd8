/*
 * safepoint.h: run a PYHOT_VERB_PYTHON handler at a safe point, exactly once.
 * Private to the payload.
 *
 * How (measured facts in shared/design-notes.md, "Running Python at a safe
 * point"): the agent thread queues a pending call (Py_AddPendingCall needs no
 * GIL), which the main thread runs at its next eval-breaker check while it
 * runs Python. If it has not started after PYHOT_PENDING_GRACE_MS, the main
 * thread is most likely blocked with the GIL released (time.sleep, join,
 * I/O): a short-lived thread of ours then takes the GIL with
 * PyGILState_Ensure. That is a separate thread, never the agent thread,
 * because it may block for ever (the main thread holds the GIL in C) and,
 * during finalization, take_gil may end the calling thread.
 *
 * An atomic state (PENDING -> RUNNING -> DONE, or PENDING -> CANCELLED on
 * timeout) decides who runs the job; the job is refcounted so that a late
 * pending call or a late GIL thread never touches freed memory.
 */
#ifndef PYHOT_SAFEPOINT_H
#define PYHOT_SAFEPOINT_H

#include "jsonw.h"
#include "pyhot_err.h"
#include "request.h"
#include "verbs.h"

enum pyhot_sp_via {
	PYHOT_SP_NONE,
	PYHOT_SP_PENDING_CALL,   /* on the main thread, while it ran Python */
	PYHOT_SP_GIL_THREAD,     /* on a thread of ours; the main thread was blocked */
};

/* "pending-call", "gil-thread" or "none". */
const char *pyhot_sp_via_name(enum pyhot_sp_via via);

struct pyhot_sp_info {
	enum pyhot_sp_via via;
	double wait_ms;          /* from queueing to the start of the handler */
	double run_ms;           /* the handler itself */
};

/*
 * Run verb->fn(req, ...) at a safe point and wait for it. Runs on a thread
 * of ours that never holds the GIL (the agent thread, the baseline thread):
 * called with the GIL held it would wait for itself. Request keys (extensions of pyhot_proto.h's, all optional):
 *   timeout_ms      bound on reaching the safe point (the caller passes it)
 *   grace_ms        how long the pending call alone is given before a GIL
 *                   thread is started (default PYHOT_PENDING_GRACE_MS)
 *   run_timeout_ms  bound on a handler that has started (default 60000);
 *                   past it the result is "uncertain"
 *
 * frame is the request buffer req points into; the job takes it over
 * (frees it) whatever the outcome, because a handler that is still running
 * when we give up keeps using it.
 *
 * On return, fields holds the JSON members the handler wrote (no braces, ""
 * when none; the caller frees it, NULL when there are none to copy). Returns
 * 0 or a negative pyhot_errkind with err filled: "timeout" when no safe
 * point was reached (the handler never ran and never will), "uncertain" when
 * the handler started but did not finish in time, or the handler's own error.
 */
int pyhot_sp_call(const struct pyhot_verb *verb, const struct pyhot_req *req,
		  char *frame, long timeout_ms, char **fields,
		  struct pyhot_sp_info *info, struct pyhot_err *err)
	PYHOT_MUST_CHECK;

/*
 * Record the patch engine's baseline at the first safe point after boot
 * (the engine needs the source as it was when we attached). A short-lived
 * thread runs it through pyhot_sp_call() (so by pending call or GIL thread,
 * within PYHOT_DEFAULT_TIMEOUT_MS) while the agent serves requests; if it
 * times out, the first safe-point request takes the baseline before its
 * handler. Agent thread.
 */
void pyhot_sp_baseline_soon(void);

/* Whether the baseline of this boot is recorded: `pyhot attach` waits for
 * it, so that an edit made after the attach returns is always seen as a
 * change. Any thread; no GIL. */
int pyhot_sp_baseline_ready(void);

/* How the handler that is running now reached its safe point (for "status";
 * valid only inside a handler). */
enum pyhot_sp_via pyhot_sp_current_via(void);

/* The main thread's ident (threading.get_ident()) when a pending call has
 * run on it, or 0. */
unsigned long pyhot_sp_main_ident(void);

/* Forget every job and GIL thread after fork() in the child (the child has
 * none of our threads; the jobs it inherited are leaked, never touched). */
void pyhot_sp_atfork_child(void);

#endif /* PYHOT_SAFEPOINT_H */
