/*
 * verb_cli.h: the verbs behind pyhot stack, exec and watch (verb_stack.c,
 * verb_exec.c). Private to the payload; rows in pyhot_verbs[] (verbs.c).
 * Both are PYHOT_VERB_PYTHON handlers: GIL held at a safe point, no Python
 * exception left set.
 */
#ifndef PYHOT_VERB_CLI_H
#define PYHOT_VERB_CLI_H

#include "jsonw.h"
#include "pyhot_err.h"
#include "request.h"

/*
 * "stack": the Python stack of every thread that has one.
 *   -> "threads": [{"ident", "tid" (native id or null), "name" (or null),
 *        "main": bool, "daemon": bool|null, "frames": [{"file", "line",
 *        "function", "source"}] (oldest call first, as in a traceback),
 *        "truncated": bool}], "via": "pending-call"|"gil-thread".
 * Thread names come from threading._active (read without its lock, which the
 * interrupted code may hold); source lines from linecache. Never fails
 * because of one unreadable frame or thread: the field is null.
 */
int pyhot_verb_stack(const struct pyhot_req *req, struct jsonw *out,
		     struct pyhot_err *err);

/*
 * "exec": run Python source in the target.
 *   request: "code" (required), "filename" (for tracebacks, default
 *            "<pyhot-exec>").
 *   -> "stdout", "stderr" (what the code printed: sys.stdout and sys.stderr
 *      are io.StringIO objects while it runs, restored whatever happens),
 *      "value" (repr of the final expression statement, null when there is
 *      none or it is None).
 * The code runs in a fresh dict {"__name__": "__pyhot_exec__",
 * "__builtins__": builtins}. On an exception (SystemExit and
 * KeyboardInterrupt included) fails with PYHOT_ERR_FAILED, "exec: Type:
 * message", and writes "traceback", "exception" besides the captured output.
 * May import ast and traceback into the target when they are not loaded.
 *
 *   request: "list" = "modules" instead of "code": no code runs; ->
 *   "modules": {name: __file__} for every module in sys.modules whose
 *   __dict__ has a str __file__ (read from the dict: no __getattr__ runs).
 */
int pyhot_verb_exec(const struct pyhot_req *req, struct jsonw *out,
		    struct pyhot_err *err);

#endif /* PYHOT_VERB_CLI_H */
