/*
 * verb_exec.h: the "exec" verb, behind `pyhot exec` and (its module list)
 * `pyhot watch`. Private to the payload; a row of pyhot_verbs[] (verbs.c).
 * A PYHOT_VERB_PYTHON handler: GIL held at a safe point, no Python
 * exception left set.
 */
#ifndef PYHOT_VERB_EXEC_H
#define PYHOT_VERB_EXEC_H

#include "jsonw.h"
#include "pyhot_err.h"
#include "request.h"

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

#endif /* PYHOT_VERB_EXEC_H */
