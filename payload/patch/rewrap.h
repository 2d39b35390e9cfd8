/*
 * rewrap.h: a changed decorated def whose decorator changed in the same
 * refresh (rewrap.c): the wrapper the decorator made is rebuilt, so that
 * no path runs the old wrapper's values around the new function. GIL held.
 */
#ifndef PYHOT_PATCH_REWRAP_H
#define PYHOT_PATCH_REWRAP_H

#include "plan.h"

/*
 * Patch the changed def st, whose live object is live and whose new bare
 * function is newf (name, old_code as for patch_behind()). When live is a
 * wrapper made by a function this refresh changes (its decorator), the
 * decorated statement is run again on throwaway objects and:
 *  - the live wrapper's cells get the new values, when the new wrapper has
 *    the code the live one will follow and the same free variables (the
 *    object is kept; detail says which cells changed);
 *  - else the new wrapper is bound wherever the engine finds the old one
 *    (user modules' globals, the dicts and lists they hold) and the old one
 *    is left whole; detail says "new object".
 * Otherwise this is patch_behind(). 1 done, 0 nothing found to patch, -1
 * error.
 */
int patch_decorated(struct engine *e, PyObject *st, PyObject *live,
		    PyObject *newf, PyObject *name, PyObject *old_code,
		    char *detail, size_t dsize);

#endif /* PYHOT_PATCH_REWRAP_H */
