/*
 * hooks.h: the refresh hooks (hooks.c): a module's own
 * __pyhot_before_refresh__() and __pyhot_after_refresh__(changes), the
 * process-wide callbacks of the pyhot package (through one dispatcher it
 * registers), the "refreshing" flag, and the "hooks" field of a module's
 * report. docs/hooks.md states the order and what an exception does.
 *
 * Everything here runs with the GIL held, inside pyhot_patch_refresh()
 * (refresh.c calls it), except pyhot_hooks_refreshing(), which any code
 * holding the GIL may call. A refresh is not re-entered: a hook (or another
 * thread, while a hook or a re-run statement let the GIL go) that asks for
 * a refresh is refused by pyhot_hooks_enter().
 */
#ifndef PYHOT_PATCH_HOOKS_H
#define PYHOT_PATCH_HOOKS_H

#include <Python.h>
#include <stddef.h>

#include "pyhot_err.h"

struct engine;
struct jsonw;
struct modplan;
struct pyhot_change;

/* The module hooks' names. */
#define PYHOT_HOOK_BEFORE "__pyhot_before_refresh__"
#define PYHOT_HOOK_AFTER  "__pyhot_after_refresh__"

/*
 * The pyhot package's dispatcher: called as dispatch("class", cls) for each
 * class patched in place and dispatch("refresh", {module: (qualified names
 * changed, ...)}) once after a refresh; it returns a list of (callback
 * name, error text or None), one per callback it ran, or None. fn is
 * borrowed (a reference is kept); NULL forgets it.
 */
void pyhot_hooks_set_dispatch(PyObject *fn);

/* Claim the engine for one refresh: 0, or -PYHOT_ERR_FAILED with err set
 * when a refresh is already running. pyhot_hooks_leave() releases it and
 * forgets the hooks' outcomes. */
int pyhot_hooks_enter(struct pyhot_err *err) PYHOT_MUST_CHECK;
void pyhot_hooks_leave(void);

/* Whether module statements are being re-run by a refresh (the plan
 * phase); set around it by pyhot_hooks_set_refreshing(). */
int pyhot_hooks_refreshing(void);
void pyhot_hooks_set_refreshing(int on);

/* Run __pyhot_before_refresh__() of every planned module that changes,
 * before anything is applied. 0, or -PYHOT_ERR_FAILED with err set and a
 * "traceback" field written when one raised: the refresh is refused. */
int pyhot_hooks_before(struct engine *e, struct modplan *plans, size_t n,
		       struct jsonw *out, struct pyhot_err *err)
	PYHOT_MUST_CHECK;

/* After apply: the class callbacks, each module's __pyhot_after_refresh__
 * and the process-wide refresh callbacks. Their exceptions are recorded for
 * the report, never raised: the refresh stays applied. */
void pyhot_hooks_after(struct engine *e, struct modplan *plans, size_t n);

/* pyhot_patch_write_module() (report.h) plus, when hooks ran for module,
 * "hooks": [{"name", "ok", "error"?}] inside its object. */
void pyhot_hooks_write_module(struct jsonw *out, const char *module,
			      const char *file, const char *warning,
			      const struct pyhot_change *ch, size_t nch,
			      long generation);

#endif /* PYHOT_PATCH_HOOKS_H */
