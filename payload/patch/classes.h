/*
 * classes.h: patching a class in place (classes.c). GIL held; "queue"
 * means adding ops to e->ops.
 */
#ifndef PYHOT_PATCH_CLASSES_H
#define PYHOT_PATCH_CLASSES_H

#include "plan.h"

/* How a changed class statement can be applied to its live class. */
enum class_fit {
	CLASS_NEW,              /* not in place: a new class object is made */
	CLASS_IN_PLACE,         /* members patched on the live class */
	CLASS_IN_PLACE_REGEN,   /* in place, and a dataclass's generated
				 * methods come from a throwaway class */
};

/* Whether the changed class statement ncd (baseline: ocd, NULL when there
 * is none) can be applied to live in place, into *fit; when it cannot,
 * *why says why (a static string). 0, or -1 error. */
int class_in_place(struct engine *e, PyObject *live, PyObject *ncd,
		   PyObject *ocd, enum class_fit *fit, const char **why);

/* Whether queue_replace() keeps livev (NULL: none) and gives it newv's
 * contents: a list, dict or set of the same type. */
int replaced_in_place(PyObject *livev, PyObject *newv);

/* Queue owner.name (is_class) or owner[name] = newv; lists, dicts and sets
 * of the same type as the live value livev keep their identity and get
 * the new contents instead (*in_place set). 0, or -1 error. */
int queue_replace(struct engine *e, PyObject *owner, int is_class,
		  PyObject *name, PyObject *livev, PyObject *newv, int *in_place);

/* Patch live in place from the changed class statement ncd (baseline ocd,
 * or NULL): the body runs into a scratch namespace (no class is made: no
 * metaclass, no __init_subclass__, no registry sees it), and changed,
 * added and removed members are queued on live, nested classes
 * recursively; when members were added or removed, its hooks are scheduled
 * to re-run on it after the apply (recompute.h). qual names the class in
 * the report ("<module>.<qualname>");
 * regen: renew a dataclass's generated methods (CLASS_IN_PLACE_REGEN).
 * 0, or -1 error. */
int patch_class(struct engine *e, PyObject *live, PyObject *ncd,
		PyObject *ocd, const char *qual, int regen);

#endif /* PYHOT_PATCH_CLASSES_H */
