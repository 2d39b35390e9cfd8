/*
 * recompute.h: what a class computed from its body at creation, computed
 * again on the live class after a refresh changed its members
 * (recompute.c). GIL held.
 */
#ifndef PYHOT_PATCH_RECOMPUTE_H
#define PYHOT_PATCH_RECOMPUTE_H

#include "plan.h"

/*
 * Plan: class live, patched in place from class statement ncd, gained or
 * lost members (its body binds the names in bound): schedule its parent's
 * __init_subclass__ (with the statement's class keywords) and its class
 * decorators (evaluated now) to run again on it after the apply, with the
 * copies frameworks made of what they computed (recompute_copies_find()).
 * line: the index of the class's line in the module's report, whose detail
 * says what re-runs. Nothing to re-run: nothing scheduled. 0, or -1 error.
 */
int recompute_plan(struct engine *e, PyObject *live, PyObject *ncd,
		   PyObject *bound, size_t line);

/*
 * After the apply: run what recompute_plan() scheduled. What the hooks
 * change on each class (and on the framework copies) is recorded as
 * applied ops of the class's module (tag), so a rollback undoes it; the
 * report lines of plans (indexed by tag) say what changed. 0, or -1 with
 * the hook's exception set: every class is back as it was after the apply
 * (the caller undoes the apply); what a hook did outside its class stays.
 */
int recompute_run(struct engine *e, struct modplan *plans, size_t nmods);

#endif /* PYHOT_PATCH_RECOMPUTE_H */
