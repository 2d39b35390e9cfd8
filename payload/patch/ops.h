/*
 * ops.h: the queued mutations of a refresh, applied in one go and undone
 * in reverse order when one of them fails. GIL held throughout.
 */
#ifndef PYHOT_PATCH_OPS_H
#define PYHOT_PATCH_OPS_H

#include "patch_priv.h"

enum pyhot_op_kind {
	PYHOT_OP_SETATTR,     /* target.key = value */
	PYHOT_OP_DELATTR,     /* del target.key (nothing when absent) */
	PYHOT_OP_SETITEM,     /* target[key] = value */
	PYHOT_OP_DELITEM,     /* del target[key] (nothing when absent) */
	PYHOT_OP_SETCLOSURE,  /* PyFunction_SetClosure(target, value) */
	PYHOT_OP_REPLACE,     /* list/dict/set target gets value's contents */
	PYHOT_OP_APPEND,      /* list target.append(value) */
	PYHOT_OP_CLEARCACHE,  /* target.cache_clear(), after all the others */
};

struct pyhot_op {
	enum pyhot_op_kind kind;
	PyObject *target, *key, *value;   /* owned */
	PyObject *old;                    /* owned: what the op replaced */
};

struct pyhot_ops {
	struct pyhot_op *v;
	size_t n, cap;
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

#endif /* PYHOT_PATCH_OPS_H */
