/*
 * history.h: the generation tracker, private to the patch engine.
 *
 * Every refresh that changed a module is a generation: a number (one
 * counter for the whole process), the time, the module, the SHA-256 of the
 * source it installed, its report lines, and its undo log: the applied ops
 * of the refresh, each holding what it replaced (ops.h). Rolling back a
 * generation applies the inverse of its ops, so the very objects it
 * replaced come back (identities kept) and nothing is re-executed.
 *
 * Per module, the refresh generations whose change is part of the running
 * code form a chain, oldest first. A rollback undoes the newest ones down
 * to the generation asked for, takes them out of the chain (their undo logs
 * are freed) and is recorded as a generation itself, one that cannot be
 * undone: "rollback" again goes further back, "refresh" goes forward.
 *
 * The list is bounded per module (pyhot_patch_set_history_limit()).
 * Records without an undo log (rollbacks, refreshes rolled back) fall out
 * first, oldest first; then the oldest applied refresh, and with it its
 * undo log: the code and objects only it held are freed, and rolling back
 * past it is no longer possible (the module's "floor").
 *
 * Leak watch: objects that should die once a refresh is done (what the
 * refresh built and did not install, what a dropped undo log held) are
 * watched with weak references, grouped by generation, so that a status
 * request can list those still alive and who holds them.
 *
 * The C side lives in C memory; the Python side is one dict of small sets
 * of weak references, empty when nothing leaks. GIL held for everything.
 */
#ifndef PYHOT_PATCH_HISTORY_H
#define PYHOT_PATCH_HISTORY_H

#include "ops.h"
#include "report.h"

struct jsonw;

/*
 * Record a successful refresh of module: moves the ops of `ops` tagged
 * `tag` into the new generation. before/before_len: the baseline the
 * refresh compared against (NULL: none); after: the source installed.
 * watch: a list of objects the refresh built and did not install, or NULL.
 * Returns the generation number, 0 when the refresh changed nothing in the
 * module (no generation), or -1 with a Python exception set (the refresh
 * stays applied; it only cannot be rolled back).
 */
long pyhot_history_record(const char *module, const char *file,
			  struct pyhot_ops *ops, int tag,
			  const char *before, size_t before_len,
			  const char *after, size_t after_len,
			  const struct pyhot_change *ch, size_t nch,
			  PyObject *watch);

#endif /* PYHOT_PATCH_HISTORY_H */
