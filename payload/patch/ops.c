/*
 * ops.c: the apply phase of a refresh.
 *
 * The planning phase (module.c and the rooms it uses) runs all the Python a refresh needs and
 * queues the mutations here; pyhot_ops_apply() then performs them in one
 * go. Each mutation records what it replaced, so that when one fails (a
 * metaclass __setattr__ that raises, a __code__ setter that refuses) the
 * ones already done are undone in reverse order: a refresh never stays
 * half applied.
 */
#include "ops.h"

#include "attr.h"

#include <stdlib.h>
#include <string.h>

void pyhot_ops_init(struct pyhot_ops *o)
{
	memset(o, 0, sizeof(*o));
}

void pyhot_ops_release(struct pyhot_ops *o)
{
	size_t i;

	for (i = 0; i < o->n; i++) {
		Py_XDECREF(o->v[i].target);
		Py_XDECREF(o->v[i].key);
		Py_XDECREF(o->v[i].value);
		Py_XDECREF(o->v[i].old);
	}
	free(o->v);
	memset(o, 0, sizeof(*o));
}

int pyhot_ops_add(struct pyhot_ops *o, enum pyhot_op_kind kind,
		  PyObject *target, PyObject *key, PyObject *value)
{
	struct pyhot_op *op;

	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 64;
		struct pyhot_op *v = realloc(o->v, cap * sizeof(*v));

		if (!v) {
			PyErr_NoMemory();
			return -1;
		}
		o->v = v;
		o->cap = cap;
	}
	op = &o->v[o->n++];
	memset(op, 0, sizeof(*op));
	op->kind = kind;
	op->tag = o->tag;
	Py_XINCREF(target);
	Py_XINCREF(key);
	Py_XINCREF(value);
	op->target = target;
	op->key = key;
	op->value = value;
	return 0;
}

int pyhot_ops_add_attr(struct pyhot_ops *o, enum pyhot_op_kind kind,
		       PyObject *target, const char *name, PyObject *value)
{
	PyObject *key = pyhot_patch_name(name);   /* owned */
	int rc;

	if (!key) {
		return -1;
	}
	rc = pyhot_ops_add(o, kind, target, key, value);
	Py_DECREF(key);
	return rc;
}

/* The value an attribute set will replace: for a class, its own __dict__
 * entry only (an inherited value is undone by deleting). New reference, or
 * NULL with no error when there is none. */
static PyObject *old_attr(PyObject *target, PyObject *key)
{
	PyObject *d;   /* owned */
	PyObject *v;   /* owned */

	if (PyType_Check(target)) {
		d = pyhot_patch_get_attr(target, "__dict__");
		if (!d) {
			return NULL;
		}
		v = PyObject_GetItem(d, key);
		Py_DECREF(d);
	} else {
		v = PyObject_GetAttr(target, key);
	}
	if (!v) {
		PyErr_Clear();
	}
	return v;
}

static PyObject *copy_contents(PyObject *c)
{
	if (PyList_Check(c)) {
		return PySequence_List(c);
	}
	if (PyDict_Check(c)) {
		return PyDict_Copy(c);
	}
	return PySet_New(c);
}

static int replace_contents(PyObject *c, PyObject *with)
{
	PyObject *it;   /* owned */
	PyObject *x;   /* owned */

	if (PyList_Check(c)) {
		return PySequence_SetSlice(c, 0, PY_SSIZE_T_MAX, with);
	}
	if (PyDict_Check(c)) {
		PyDict_Clear(c);
		return PyDict_Update(c, with);
	}
	if (PySet_Clear(c) < 0) {
		return -1;
	}
	it = PyObject_GetIter(with);
	if (!it) {
		return -1;
	}
	while ((x = PyIter_Next(it)) != NULL) {
		if (PySet_Add(c, x) < 0) {
			Py_DECREF(x);
			Py_DECREF(it);
			return -1;
		}
		Py_DECREF(x);
	}
	Py_DECREF(it);
	return PyErr_Occurred() ? -1 : 0;
}

/* PYHOT_OP_REMOVE: old is the index the item had (for the undo). */
static int list_remove_last(struct pyhot_op *op)
{
	Py_ssize_t i;

	for (i = PyList_Size(op->target); i-- > 0;) {
		if (PyList_GetItem(op->target, i) == op->value) {
			op->old = PyLong_FromSsize_t(i);
			if (!op->old) {
				return -1;
			}
			return PySequence_DelItem(op->target, i);
		}
	}
	return 0;   /* already gone */
}

static int do_op(struct pyhot_op *op)
{
	switch (op->kind) {
	case PYHOT_OP_SETATTR:
	case PYHOT_OP_DELATTR:
		op->old = old_attr(op->target, op->key);
		if (op->kind == PYHOT_OP_DELATTR && !op->old) {
			return 0;   /* already gone */
		}
		return PyObject_SetAttr(op->target, op->key,
					op->kind == PYHOT_OP_SETATTR ? op->value : NULL);
	case PYHOT_OP_SETITEM:
	case PYHOT_OP_DELITEM:
		op->old = PyObject_GetItem(op->target, op->key);
		if (!op->old) {
			PyErr_Clear();
		}
		if (op->kind == PYHOT_OP_DELITEM) {
			if (!op->old) {
				return 0;
			}
			return PyObject_DelItem(op->target, op->key);
		}
		return PyObject_SetItem(op->target, op->key, op->value);
	case PYHOT_OP_SETCLOSURE:
		op->old = pyhot_patch_get_attr(op->target, "__closure__");
		if (!op->old) {
			return -1;
		}
		return PyFunction_SetClosure(op->target, op->value);
	case PYHOT_OP_REPLACE:
		op->old = copy_contents(op->target);
		if (!op->old) {
			return -1;
		}
		return replace_contents(op->target, op->value);
	case PYHOT_OP_APPEND:
		return PyList_Append(op->target, op->value);
	case PYHOT_OP_CLEARCACHE:
		return 0;   /* second pass, see pyhot_ops_apply() */
	case PYHOT_OP_REMOVE:
		return list_remove_last(op);
	}
	return 0;
}

static void undo_op(struct pyhot_op *op)
{
	switch (op->kind) {
	case PYHOT_OP_SETATTR:
	case PYHOT_OP_DELATTR:
		(void)PyObject_SetAttr(op->target, op->key, op->old);
		break;
	case PYHOT_OP_SETITEM:
	case PYHOT_OP_DELITEM:
		if (op->old) {
			(void)PyObject_SetItem(op->target, op->key, op->old);
		} else {
			(void)PyObject_DelItem(op->target, op->key);
		}
		break;
	case PYHOT_OP_SETCLOSURE:
		(void)PyFunction_SetClosure(op->target, op->old);
		break;
	case PYHOT_OP_REPLACE:
		(void)replace_contents(op->target, op->old);
		break;
	case PYHOT_OP_APPEND:
		(void)PySequence_DelItem(op->target, PyList_Size(op->target) - 1);
		break;
	case PYHOT_OP_CLEARCACHE:
		break;
	case PYHOT_OP_REMOVE:
		if (op->old) {
			(void)PyList_Insert(op->target, PyLong_AsSsize_t(op->old),
					    op->value);
		}
		break;
	}
	PyErr_Clear();
}

/* Undo the first n ops of o: closures first (a __code__ setter refuses a
 * code whose free variables do not fit the closure in place), then the
 * others newest first. */
static void undo_ops(struct pyhot_ops *o, size_t n)
{
	size_t j;

	for (j = n; j-- > 0;) {
		if (o->v[j].kind == PYHOT_OP_SETCLOSURE) {
			undo_op(&o->v[j]);
		}
	}
	for (j = n; j-- > 0;) {
		if (o->v[j].kind != PYHOT_OP_SETCLOSURE) {
			undo_op(&o->v[j]);
		}
	}
}

#ifdef PYHOT_TEST_HOOKS
long pyhot_ops_test_fail_after = -1;
#endif

/* The test hook (ops.h): 1, with RuntimeError set, when the apply is to
 * fail now, with `done` of its n ops done. */
static int test_fail_now(size_t done, size_t n)
{
#ifdef PYHOT_TEST_HOOKS
	if (pyhot_ops_test_fail_after >= 0 &&
	    (done >= (size_t)pyhot_ops_test_fail_after || done == n)) {
		pyhot_ops_test_fail_after = -1;
		PyErr_Format(PyExc_RuntimeError, "test hook: the apply fails after %zu "
			     "of %zu ops", done, n);
		return 1;
	}
#endif
	return 0;
}

int pyhot_ops_apply(struct pyhot_ops *o)
{
	PyObject *t;   /* owned */
	PyObject *v;   /* owned */
	PyObject *tb;   /* owned */
	PyObject *r;   /* owned */
	PyObject *m;   /* owned */
	size_t i;

	for (i = 0; i < o->n; i++) {
		if (test_fail_now(i, o->n) || do_op(&o->v[i]) < 0) {
			goto undo;
		}
	}
	if (test_fail_now(i, o->n)) {
		goto undo;
	}
	/* Dropping lru_cache entries cannot be undone and needs no undo:
	 * done last, once everything else holds. A failure is ignored (the
	 * cache only keeps stale results, which the report cannot fix). */
	for (i = 0; i < o->n; i++) {
		if (o->v[i].kind != PYHOT_OP_CLEARCACHE) {
			continue;
		}
		m = pyhot_patch_get_attr(o->v[i].target, "cache_clear");
		r = m ? PyObject_CallObject(m, NULL) : NULL;
		Py_XDECREF(m);
		Py_XDECREF(r);
		PyErr_Clear();
	}
	return 0;
undo:
	PyErr_Fetch(&t, &v, &tb);
	undo_ops(o, i);
	PyErr_Restore(t, v, tb);
	return -1;
}

int pyhot_ops_take(struct pyhot_ops *from, int tag, struct pyhot_ops *to)
{
	size_t i, kept = 0;

	for (i = 0; i < from->n; i++) {
		struct pyhot_op *op = &from->v[i];

		if (op->tag != tag) {
			from->v[kept++] = *op;
			continue;
		}
		if (to->n == to->cap) {
			size_t cap = to->cap ? to->cap * 2 : 64;
			struct pyhot_op *v = realloc(to->v, cap * sizeof(*v));

			if (!v) {
				/* keep the rest in `from`, in order */
				memmove(&from->v[kept], op, (from->n - i) * sizeof(*op));
				from->n = kept + (from->n - i);
				PyErr_NoMemory();
				return -1;
			}
			to->v = v;
			to->cap = cap;
		}
		to->v[to->n++] = *op;   /* the references move with it */
	}
	from->n = kept;
	return 0;
}

/* Queue the op that undoes op (applied) on inv. */
static int invert_one(const struct pyhot_op *op, struct pyhot_ops *inv)
{
	switch (op->kind) {
	case PYHOT_OP_SETATTR:
	case PYHOT_OP_DELATTR:
		if (op->old) {
			return pyhot_ops_add(inv, PYHOT_OP_SETATTR, op->target, op->key,
					     op->old);
		}
		if (op->kind == PYHOT_OP_DELATTR) {
			return 0;   /* deleted nothing */
		}
		return pyhot_ops_add(inv, PYHOT_OP_DELATTR, op->target, op->key, NULL);
	case PYHOT_OP_SETITEM:
	case PYHOT_OP_DELITEM:
		if (op->old) {
			return pyhot_ops_add(inv, PYHOT_OP_SETITEM, op->target, op->key,
					     op->old);
		}
		if (op->kind == PYHOT_OP_DELITEM) {
			return 0;
		}
		return pyhot_ops_add(inv, PYHOT_OP_DELITEM, op->target, op->key, NULL);
	case PYHOT_OP_SETCLOSURE:
		return pyhot_ops_add(inv, PYHOT_OP_SETCLOSURE, op->target, NULL, op->old);
	case PYHOT_OP_REPLACE:
		return pyhot_ops_add(inv, PYHOT_OP_REPLACE, op->target, NULL, op->old);
	case PYHOT_OP_APPEND:
		return pyhot_ops_add(inv, PYHOT_OP_REMOVE, op->target, NULL, op->value);
	case PYHOT_OP_REMOVE:
		if (!op->old) {
			return 0;
		}
		return pyhot_ops_add(inv, PYHOT_OP_APPEND, op->target, NULL, op->value);
	case PYHOT_OP_CLEARCACHE:
		/* results computed by the code being undone are stale too */
		return pyhot_ops_add(inv, PYHOT_OP_CLEARCACHE, op->target, NULL, NULL);
	}
	return 0;
}

int pyhot_ops_invert(const struct pyhot_ops *done, struct pyhot_ops *inv)
{
	size_t j;

	for (j = done->n; j-- > 0;) {
		if (done->v[j].kind == PYHOT_OP_SETCLOSURE &&
		    invert_one(&done->v[j], inv) < 0) {
			return -1;
		}
	}
	for (j = done->n; j-- > 0;) {
		if (done->v[j].kind != PYHOT_OP_SETCLOSURE &&
		    invert_one(&done->v[j], inv) < 0) {
			return -1;
		}
	}
	return 0;
}

void pyhot_ops_each(const struct pyhot_ops *o, int what,
		    void (*fn)(PyObject *obj, void *arg), void *arg)
{
	size_t i;

	for (i = 0; i < o->n; i++) {
		PyObject *x = what ? o->v[i].old : o->v[i].value;   /* borrowed */

		if (x && !(what && o->v[i].kind == PYHOT_OP_REMOVE)) {
			fn(x, arg);
		}
	}
}
