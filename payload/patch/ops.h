/*
 * ops.h: the queued mutations of a refresh, applied in one go and undone
 * in reverse order when one of them fails. GIL held throughout.
 */
#ifndef PYHOT_PATCH_OPS_H
#define PYHOT_PATCH_OPS_H

#include <Python.h>
#include <stddef.h>

/*
 * Outside the limited API, but exported under this name and with this
 * signature by every CPython from 3.8 to 3.13 (shared and static builds).
 * The __closure__ attribute is read-only and the __code__ setter insists on
 * a closure of the same size, so giving a method a __class__ cell it did
 * not have needs this call. It does not check sizes: the caller sets a
 * closure that fits the code it sets right after.
 */
extern int PyFunction_SetClosure(PyObject *op, PyObject *closure);

enum pyhot_op_kind {
	PYHOT_OP_SETATTR,     /* target.key = value */
	PYHOT_OP_DELATTR,     /* del target.key (nothing when absent) */
	PYHOT_OP_SETITEM,     /* target[key] = value */
	PYHOT_OP_DELITEM,     /* del target[key] (nothing when absent) */
	PYHOT_OP_SETCLOSURE,  /* PyFunction_SetClosure(target, value) */
	PYHOT_OP_REPLACE,     /* list/dict/set target gets value's contents */
	PYHOT_OP_APPEND,      /* list target.append(value) */
	PYHOT_OP_CLEARCACHE,  /* target.cache_clear(), after all the others */
	PYHOT_OP_REMOVE,      /* list target loses its last item that is value */
};

struct pyhot_op {
	enum pyhot_op_kind kind;
	PyObject *target, *key, *value;   /* owned */
	PyObject *old;                    /* owned: what the op replaced */
	int tag;                          /* the ops' tag when it was queued */
};

/* tag: stamped on each op as it is queued; a refresh of several modules
 * sets it to the module's index, so that each module's ops can be taken
 * apart into its own generation afterwards. */
struct pyhot_ops {
	struct pyhot_op *v;
	size_t n, cap;
	int tag;
};

void pyhot_ops_init(struct pyhot_ops *o);
void pyhot_ops_release(struct pyhot_ops *o);

/* Queue an op; the references are taken (incremented). 0, or -1 with a
 * Python exception set. */
int pyhot_ops_add(struct pyhot_ops *o, enum pyhot_op_kind kind,
		  PyObject *target, PyObject *key, PyObject *value);
int pyhot_ops_add_attr(struct pyhot_ops *o, enum pyhot_op_kind kind,
		       PyObject *target, const char *name, PyObject *value);

/* Perform every op in order. On failure, undo the ones done and return -1
 * with the failure's exception set. */
int pyhot_ops_apply(struct pyhot_ops *o);

#ifdef PYHOT_TEST_HOOKS
/* Test builds only (build/tests/pyhot-engine-test.so; the payload never
 * has it): when >= 0, the next pyhot_ops_apply() fails with RuntimeError
 * once it has done this many ops (after all of them when it has fewer),
 * as a __setattr__ that raises would, and the hook goes back to -1. The
 * tests check the undo of every op kind with it. */
extern long pyhot_ops_test_fail_after;
#endif

/* Move the ops of `from` whose tag is `tag` to the end of `to`, keeping
 * their order and references. */
int pyhot_ops_take(struct pyhot_ops *from, int tag, struct pyhot_ops *to);

/* Queue on `inv` the ops that undo the applied ops of `done` (newest
 * first; closures first, as a __code__ setter wants the closure that fits
 * it already in place). 0, or -1 with a Python exception set. */
int pyhot_ops_invert(const struct pyhot_ops *done, struct pyhot_ops *inv);

/* Objects an applied op installed or replaced, for the generation tracker's
 * bookkeeping: calls fn(obj, arg) on each value (what=0) or each old
 * (what=1) that is not NULL. */
void pyhot_ops_each(const struct pyhot_ops *o, int what,
		    void (*fn)(PyObject *obj, void *arg), void *arg);

#endif /* PYHOT_PATCH_OPS_H */
