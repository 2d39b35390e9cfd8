/*
 * copies.h: copies that frameworks made of what a class computed at
 * creation, which must follow when the class's hooks re-run (copies.c).
 * The one framework-aware room of the engine. GIL held.
 */
#ifndef PYHOT_PATCH_COPIES_H
#define PYHOT_PATCH_COPIES_H

#include "plan.h"

/* Plan: find the copies made from class live (reported "<qual>" names the
 * class) and append them to out (a list), each with a report line of the
 * module being planned. 0, or -1 error. */
int copies_find(struct engine *e, PyObject *live, const char *qual,
		PyObject *out);

/* After live's hooks re-ran (live holds their results): queue on rec what
 * brings each copy of copies (from copies_find()) up to date; a copy that
 * is already right turns its report line of mp into "kept". 0, or -1
 * error. */
int copies_update(PyObject *live, PyObject *copies, struct pyhot_ops *rec,
		  struct modplan *mp);

#endif /* PYHOT_PATCH_COPIES_H */
