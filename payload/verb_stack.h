/*
 * verb_stack.h: the "stack" verb, behind `pyhot stack`. Private to the
 * payload; a row of pyhot_verbs[] (verbs.c). A PYHOT_VERB_PYTHON handler:
 * GIL held at a safe point, no Python exception left set.
 */
#ifndef PYHOT_VERB_STACK_H
#define PYHOT_VERB_STACK_H

#include "jsonw.h"
#include "pyhot_err.h"
#include "request.h"

/*
 * "stack": the Python stack of every thread that has one.
 *   -> "threads": [{"ident", "tid" (native id or null), "name" (or null),
 *        "main": bool, "daemon": bool|null, "frames": [{"file", "line",
 *        "function", "source"}] (oldest call first, as in a traceback),
 *        "truncated": bool}], "via": "pending-call"|"gil-thread",
 *      "asyncio": the tasks of every event loop (asyncio_tasks.h).
 * Thread names come from threading._active (read without its lock, which the
 * interrupted code may hold); source lines from linecache. Never fails
 * because of one unreadable frame or thread: the field is null.
 */
int pyhot_verb_stack(const struct pyhot_req *req, struct jsonw *out,
		     struct pyhot_err *err);

#endif /* PYHOT_VERB_STACK_H */
