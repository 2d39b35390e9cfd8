/*
 * livecmp.h: the plan of a module whose baseline is untrusted: what runs
 * compared with the file's compiled code (livecmp.c). GIL held.
 */
#ifndef PYHOT_PATCH_LIVECMP_H
#define PYHOT_PATCH_LIVECMP_H

#include "plan.h"

/*
 * A stand-in for the baseline's statements, to plan nbody (the new
 * source's) against, made from what runs in e->G: the new statements known
 * to need nothing (a def or class whose live code equals the file's, line
 * numbers ignored; a statement whose bound names are all live, unless
 * rerun, and, when ubody (the untrusted text's statements, or NULL) is
 * given, that is in it), and ubody's statements binding names nbody does
 * not (so they are removed). New reference, or NULL with an exception.
 */
PyObject *livecmp_stand_in(struct engine *e, PyObject *nbody, PyObject *ubody,
			   int rerun);

/* The detail of a statement not re-run for want of a trusted baseline. */
#define LIVECMP_SKIPPED \
	"not re-run: no baseline (the file changed before pyhot read it, so " \
	"what ran is not known); pyhot refresh --rerun-statements runs it"

#endif /* PYHOT_PATCH_LIVECMP_H */
