/*
 * pyhot_patch.h: the patch engine, which changes a running module in place.
 *
 * Every function here runs with the GIL held at a safe point (see verbs.h)
 * and never leaves a Python exception set. A refresh is all-or-nothing:
 * everything that runs Python (compiling, executing the new module body into
 * a scratch namespace, decorators, class bodies) happens first on new
 * objects; only then are the live objects changed, with plain C attribute
 * sets, in one go.
 *
 * Baseline: to know what changed, the engine needs the source each module
 * had when it was loaded. pyhot_patch_baseline_take() records it (in C
 * memory, so the target's heap does not grow) for every module loaded from a
 * file outside the standard library and site-packages; a refresh renews it.
 */
#ifndef PYHOT_PATCH_H
#define PYHOT_PATCH_H

#include "jsonw.h"
#include "pyhot_err.h"
#include "request.h"

/* Verb "refresh". Request keys: "module" (repeatable; none: every module
 * whose file changed since its baseline), "dry_run" ("1" plans only).
 * Response fields: documented in README.md ("refresh --json"). */
int pyhot_patch_refresh(const struct pyhot_req *req, struct jsonw *out,
			struct pyhot_err *err);

/* Record the baseline source of every user module not recorded yet.
 * Called by the agent at its first safe point after boot. */
int pyhot_patch_baseline_take(struct pyhot_err *err);

#endif /* PYHOT_PATCH_H */
