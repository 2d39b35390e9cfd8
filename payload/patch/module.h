/*
 * module.h: the plan of one module (module.c). GIL held.
 */
#ifndef PYHOT_PATCH_MODULE_H
#define PYHOT_PATCH_MODULE_H

#include "plan.h"

/* Plan module (held by the caller) against its baseline b (NULL: none)
 * into e->ops and e->mp's report: everything that runs Python, nothing
 * live changed. e->mp, e->modname and e->fileobj name the module and its
 * file, whose new source is in e->mp. 0, or -1 with a Python exception. */
int plan_module(struct engine *e, PyObject *module, struct pyhot_baseline *b);

#endif /* PYHOT_PATCH_MODULE_H */
