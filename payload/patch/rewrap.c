/*
 * rewrap.c: a changed decorated def whose decorator changed too. Moving
 * the new body into the live function and the new wrapper code into the
 * live wrapper would leave the wrapper's old free variable values (a tag,
 * an option the decorator computed) around the new body: a mix no version
 * of the source ever ran. The decorated statement runs again instead, on
 * throwaway objects, and its wrapper's values reach the live one.
 */
#include "rewrap.h"

#include "attr.h"
#include "baseline.h"
#include "functions.h"
#include "stmts.h"

#include <stdio.h>
#include <string.h>

/* Containers deeper than module globals -> container are not looked in. */
#define REBIND_MAX_ITEMS 10000

/* The codemap pair of live's code, when live is a function made by a
 * function this refresh changes and not patched already (borrowed), or
 * NULL (an error stays set). */
static PyObject *stale_wrapper(struct engine *e, PyObject *live)
{
	PyObject *code;   /* owned */
	PyObject *cid;   /* owned */
	PyObject *fid;   /* owned */
	PyObject *pair;   /* borrowed */
	int done;

	if (!is_a(live, e->t_function)) {
		return NULL;
	}
	code = pyhot_patch_get_attr(live, "__code__");
	cid = code ? id_of(code) : NULL;
	fid = cid ? id_of(live) : NULL;
	pair = fid ? PyDict_GetItemWithError(e->codemap, cid) : NULL;
	done = pair ? PySet_Contains(e->patched, fid) : 0;
	Py_XDECREF(code);
	Py_XDECREF(cid);
	Py_XDECREF(fid);
	return done == 0 ? pair : NULL;
}

/* Run the decorated statement st again into a scratch namespace: the new
 * decorator (bound earlier in this refresh) wraps a new function. The
 * object it binds (new reference), or NULL with an exception. */
static PyObject *rerun_decorated(struct engine *e, PyObject *st, PyObject *name)
{
	PyObject *code = compile_stmt(e, st);   /* owned */
	PyObject *ns = code ? scratch_ns(e) : NULL;   /* owned */
	PyObject *res = NULL;   /* owned */
	PyObject *w2 = NULL;   /* owned */

	if (ns) {
		e->cur_line = node_line(st);
		res = PyEval_EvalCode(code, e->G, ns);
	}
	if (res) {
		w2 = PyObject_GetItem(ns, name);
	}
	Py_XDECREF(code);
	Py_XDECREF(ns);
	Py_XDECREF(res);
	return w2;
}

/* A cell's contents (new reference), or NULL when it is empty (no
 * error). */
static PyObject *cell_get(PyObject *cell)
{
	PyObject *v = getattr_opt(cell, "cell_contents");   /* owned */

	PyErr_Clear();   /* an empty cell raises ValueError */
	return v;
}

/* Queue cell = the contents of cell2 when they differ (the function the
 * new wrapper wraps, inner2, excepted: the live wrapper keeps its live
 * function, patched in place). 1 queued, 0 kept, -1 error. */
static int update_cell(struct engine *e, PyObject *cell, PyObject *cell2,
		       PyObject *inner2)
{
	PyObject *v = cell_get(cell);   /* owned */
	PyObject *v2 = cell_get(cell2);   /* owned */
	int eq = 0, rc;

	if (v && v2 && v != v2 && Py_TYPE(v) == Py_TYPE(v2)) {
		eq = PyObject_RichCompareBool(v, v2, Py_EQ) == 1;
		PyErr_Clear();
	}
	if (v2 == inner2 || v == v2 || eq) {
		rc = 0;
	} else {
		rc = pyhot_ops_add_attr(&e->ops, v2 ? PYHOT_OP_SETATTR : PYHOT_OP_DELATTR,
					cell, "cell_contents", v2) < 0 ? -1 : 1;
	}
	Py_XDECREF(v);
	Py_XDECREF(v2);
	return rc;
}

/* The live wrapper w gets the cell values of the new wrapper w2, when w2
 * runs the code w will follow (pair[1]) with the same free variables;
 * note gets the names of the cells that changed. 1 done, 0 does not fit,
 * -1 error. */
static int update_cells(struct engine *e, PyObject *w, PyObject *w2,
			PyObject *pair, PyObject *inner2, char *note, size_t nsize)
{
	PyObject *c2 = pyhot_patch_get_attr(w2, "__code__");   /* owned */
	PyObject *fv = NULL;   /* owned */
	PyObject *cl = NULL;   /* owned */
	PyObject *cl2 = NULL;   /* owned */
	Py_ssize_t i, n;
	size_t used = 0;
	int rc = -1, r;

	fv = c2 ? pyhot_patch_get_attr(c2, "co_freevars") : NULL;
	cl = fv ? pyhot_patch_get_attr(w, "__closure__") : NULL;
	cl2 = cl ? pyhot_patch_get_attr(w2, "__closure__") : NULL;
	if (!cl2) {
		goto out;
	}
	rc = 0;
	r = c2 == PyTuple_GetItem(pair, 1) ? attr_equal(PyTuple_GetItem(pair, 0), c2,
							"co_freevars") : 0;
	if (r <= 0 || !PyTuple_Check(cl) || !PyTuple_Check(cl2) ||
	    (n = PyTuple_Size(cl)) != PyTuple_Size(cl2) || n != PyTuple_Size(fv)) {
		rc = r < 0 ? -1 : 0;
		goto out;
	}
	note[0] = '\0';
	for (i = 0; i < n; i++) {
		r = update_cell(e, PyTuple_GetItem(cl, i), PyTuple_GetItem(cl2, i), inner2);
		if (r < 0) {
			rc = -1;
			goto out;
		}
		if (r && used < nsize && pyhot_patch_utf8(PyTuple_GetItem(fv, i),
							  note + used, nsize - used) == 0) {
			used = strlen(note);
			used += (size_t)snprintf(note + used, nsize - used, " ");
		}
		PyErr_Clear();
	}
	rc = 1;
out:
	Py_XDECREF(c2);
	Py_XDECREF(fv);
	Py_XDECREF(cl);
	Py_XDECREF(cl2);
	return rc;
}

/* Queue c[key] = new for each item of container c (a dict or a list) that
 * is old; with depth > 0, the dicts and lists it holds too. *n counts. */
static int rebind_in(struct engine *e, PyObject *c, PyObject *old,
		     PyObject *new, int depth, long *n)
{
	PyObject *k;   /* borrowed */
	PyObject *v;   /* borrowed */
	Py_ssize_t pos = 0, i;
	int rc = 0;

	if (PyDict_Check(c) && PyDict_Size(c) <= REBIND_MAX_ITEMS) {
		while (rc == 0 && PyDict_Next(c, &pos, &k, &v)) {
			if (v == old) {
				rc = pyhot_ops_add(&e->ops, PYHOT_OP_SETITEM, c, k, new);
				(*n)++;
			} else if (depth > 0 && (PyDict_Check(v) || PyList_Check(v))) {
				rc = rebind_in(e, v, old, new, depth - 1, n);
			}
		}
	} else if (PyList_Check(c) && PyList_Size(c) <= REBIND_MAX_ITEMS) {
		for (i = 0; rc == 0 && i < PyList_Size(c); i++) {
			if (PyList_GetItem(c, i) == old) {
				PyObject *ix = PyLong_FromSsize_t(i);   /* owned */

				rc = ix ? pyhot_ops_add(&e->ops, PYHOT_OP_SETITEM, c, ix, new) : -1;
				Py_XDECREF(ix);
				(*n)++;
			}
		}
	}
	return rc;
}

/* Bind new wherever old is found: this module's and every other user
 * module's globals (those with a baseline), and the dicts and lists they
 * hold. *n counts the places. 0, or -1 error. */
static int rebind_everywhere(struct engine *e, PyObject *old, PyObject *new,
			     long *n)
{
	struct pyhot_baseline *b;
	PyObject *mods = PyImport_GetModuleDict();   /* borrowed */

	if (rebind_in(e, e->G, old, new, 1, n) < 0) {
		return -1;
	}
	for (b = pyhot_baseline_find_first(); b && mods; b = b->next) {
		PyObject *mod = PyDict_GetItemString(mods, b->module);   /* borrowed */
		PyObject *d;   /* borrowed */

		if (!b->user || !mod || !PyObject_TypeCheck(mod, &PyModule_Type) ||
		    strcmp(b->module, e->mp->module) == 0) {
			continue;
		}
		d = PyModule_GetDict(mod);
		if (d && rebind_in(e, d, old, new, 1, n) < 0) {
			return -1;
		}
	}
	return 0;
}

/* The wrapper cannot take the new values: the new wrapper replaces it
 * where it is found; the old one is left whole (its function unpatched,
 * its code not followed), so that what still holds it runs the old
 * version, never a mix. */
static int rebind_wrapper(struct engine *e, PyObject *live, PyObject *w2,
			  char *detail, size_t dsize)
{
	PyObject *fid = id_of(live);   /* owned */
	long n = 0;
	int rc = fid ? PySet_Add(e->patched, fid) : -1;

	Py_XDECREF(fid);
	if (rc == 0) {
		rc = rebind_everywhere(e, live, w2, &n);
	}
	snprintf(detail, dsize, "new object: its decorator changed and the old "
		 "wrapper cannot take the new values; rebound in %ld place%s, "
		 "references made before elsewhere keep the old version", n,
		 n == 1 ? "" : "s");
	return rc < 0 ? -1 : 1;
}

/* The live wrapper runs its new code (as follow_codes() would do): one
 * report line for it, here. 1, or -1 error. */
static int follow_now(struct engine *e, PyObject *live, PyObject *nc)
{
	PyObject *fid = id_of(live);   /* owned */
	int r = fid ? pyhot_ops_add_attr(&e->ops, PYHOT_OP_SETATTR, live,
					 "__code__", nc) : -1;

	if (r == 0) {
		r = PySet_Add(e->patched, fid);
	}
	Py_XDECREF(fid);
	return r < 0 ? -1 : 1;
}

/* live's function gets the new body and live the new wrapper's values.
 * 1 done, 0 the values do not fit, -1 error. */
static int rewrap_in_place(struct engine *e, PyObject *live, PyObject *newf,
			   PyObject *w2, PyObject *pair, PyObject *name,
			   PyObject *old_code, char *detail, size_t dsize)
{
	PyObject *inner2 = NULL;   /* owned */
	char note[256];
	size_t used;
	int r;

	if (find_inner(e, w2, name, NULL, NULL, &inner2) < 0) {
		return -1;
	}
	r = update_cells(e, live, w2, pair, inner2, note, sizeof(note));
	Py_XDECREF(inner2);
	if (r <= 0) {
		return r;
	}
	r = patch_behind(e, live, newf, name, old_code, TP_FULL, detail, dsize);
	if (r == 1) {
		r = follow_now(e, live, PyTuple_GetItem(pair, 1));
	}
	used = strlen(detail);
	if (r == 1 && note[0] && used + 8 < dsize) {
		note[strlen(note) - 1] = '\0';
		snprintf(detail + used, dsize - used, "; wrapper rebuilt by its "
			 "new decorator: its code and %s updated in place (same object)", note);
	}
	return r < 0 ? -1 : 1;
}

/* The statement ran the live decorator, not the new one (the decorator
 * is itself decorated, so the refresh could not bind its new version for
 * the statement to use): its wrapper tells nothing new. The function is
 * patched behind the live wrapper, and the report says the wrapper keeps
 * the values the old decorator gave it. 1 that case (patch_behind()'s
 * result in *res), 0 not that case, -1 error. */
static int old_decorator(struct engine *e, PyObject *live, PyObject *newf,
			 PyObject *w2, PyObject *pair, PyObject *name,
			 PyObject *old_code, char *detail, size_t dsize, int *res)
{
	PyObject *c2 = pyhot_patch_get_attr(w2, "__code__");   /* owned */
	size_t used;
	int r;

	if (!c2 || c2 != PyTuple_GetItem(pair, 0)) {
		Py_XDECREF(c2);
		return c2 ? 0 : -1;
	}
	Py_DECREF(c2);
	r = patch_behind(e, live, newf, name, old_code, TP_FULL, detail, dsize);
	used = strlen(detail);
	if (r == 1 && used + 8 < dsize) {
		snprintf(detail + used, dsize - used, "; its wrapper keeps the values "
			 "its old decorator gave it");
	}
	*res = r;
	return r < 0 ? -1 : 1;
}

int patch_decorated(struct engine *e, PyObject *st, PyObject *live,
		    PyObject *newf, PyObject *name, PyObject *old_code,
		    char *detail, size_t dsize)
{
	PyObject *pair = stale_wrapper(e, live);   /* borrowed */
	PyObject *w2;   /* owned */
	int r, res = 0;

	if (!pair) {
		return PyErr_Occurred() ? -1 :
		       patch_behind(e, live, newf, name, old_code, TP_FULL,
				    detail, dsize);
	}
	Py_INCREF(pair);   /* the codemap may change while Python runs */
	w2 = rerun_decorated(e, st, name);
	r = w2 ? old_decorator(e, live, newf, w2, pair, name, old_code, detail,
			       dsize, &res) : -1;
	if (r == 1) {
		r = res;
	} else if (r == 0) {
		r = rewrap_in_place(e, live, newf, w2, pair, name, old_code,
				    detail, dsize);
		if (r == 0) {
			r = rebind_wrapper(e, live, w2, detail, dsize);
		} else if (r == 1 && PyList_Append(e->built, w2) < 0) {
			r = -1;   /* w2 was built only to be taken apart */
		}
	}
	Py_XDECREF(w2);
	Py_DECREF(pair);
	return r;
}
