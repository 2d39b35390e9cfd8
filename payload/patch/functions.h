/*
 * functions.h: patching functions in place (functions.c). A function keeps
 * its identity: its code, defaults and attributes change, so every
 * reference to it (decorators, registries, bound methods) sees the new
 * behaviour. GIL held; "queue" means adding ops to e->ops.
 */
#ifndef PYHOT_PATCH_FUNCTIONS_H
#define PYHOT_PATCH_FUNCTIONS_H

#include "plan.h"

/* What transplant() moves. */
enum tp_mode {
	TP_FULL,        /* code, defaults, annotations, doc, new attributes */
	TP_CODE_ONLY,   /* code only (an unchanged def that moved) */
};

/*
 * Queue what makes live run new's code: the code (with new's closure when
 * the free variables differ, as for a method that starts using super()),
 * and in TP_FULL mode defaults, keyword defaults, annotations, doc and
 * attributes. detail gets a short list of what differs. Returns 1 when
 * queued, 0 when the code cannot be moved (a generator that became a plain
 * function or back, a closure of the wrong size), -1 on error.
 */
int transplant(struct engine *e, PyObject *live, PyObject *new,
	       enum tp_mode mode, char *detail, size_t dsize);

/* Patch the function behind live (decorated or not) with the one behind
 * new; name is the def's, old_code (may be NULL) the baseline's code of it,
 * which tells same-named functions apart. In TP_FULL mode the caches of
 * lru_cache-like wrappers on the way are cleared. 1 done, 0 no function
 * found on one side, -1 error. */
int patch_behind(struct engine *e, PyObject *live, PyObject *new,
		 PyObject *name, PyObject *old_code, enum tp_mode mode,
		 char *detail, size_t dsize);

/* Breadth-first from root (a decorated object) to the function a def
 * named name made: through __wrapped__, __func__, partial.func and the
 * cells of wrapper closures; with several candidates, the one whose code
 * has old_code's bytecode (old_code may be NULL). Wrappers with a
 * cache_clear() go into caches (may be NULL). The function, or NULL, into
 * *out (new reference). 0, or -1 error. */
int find_inner(struct engine *e, PyObject *root, PyObject *name,
	       PyObject *old_code, PyObject *caches, PyObject **out);

/* Queue live.__firstlineno__ = the first line of class statement st, when
 * live has one that differs (3.13's inspect finds a class by it). 0, or -1
 * error. */
int queue_firstlineno(struct engine *e, PyObject *live, PyObject *st);

/* An unchanged def or class statement st that moved in the file: its live
 * object's functions (nested classes' too) get the code compiled at the new
 * lines, same bytecode, so that tracebacks and inspect.getsource stay
 * right. live may be NULL (nothing to do). 0, or -1 error. */
int relocate_stmt(struct engine *e, PyObject *st, PyObject *live);

/* After a module is planned: functions still running code that a patched
 * function's code contained (a decorator's wrapper, a closure made by a
 * factory), wherever they are held, follow the new code when their free
 * variables still fit (e->codemap pairs old and new); found with one
 * gc.get_referrers() pass, made only when such nested code changed. Then
 * the frames that keep running old code are named (running.h). 0, or -1
 * error. */
int follow_codes(struct engine *e);

#endif /* PYHOT_PATCH_FUNCTIONS_H */
