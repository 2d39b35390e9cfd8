/*
 * livecmp.c: the plan of a module whose baseline is untrusted (the file
 * may have changed before pyhot read it): what runs is compared with the
 * file's compiled code, and a stand-in baseline is built from that.
 *
 * The stand-in holds each new statement that is known not to need running
 * again: a def whose live function has the same code (line numbers
 * ignored) and defaults, a class whose every method has; the other
 * statements when every name they bind is live (their old text is
 * unknown: reported "skipped", not re-run, unless asked). A class with
 * changed methods gets a copy without those methods (so they are patched
 * in place), with a dummy for each live method the file no longer has
 * (so it is removed). The module plan then runs as with a baseline.
 */
#include "livecmp.h"

#include "attr.h"
#include "stmts.h"

#include <string.h>

/* Whether two code objects are the same code, line numbers aside: the
 * bytecode, names, variables, flags, and constants (code recursively). 1,
 * 0, or -1. */
static int code_equal(PyObject *a, PyObject *b);

static int consts_equal(PyObject *a, PyObject *b)
{
	Py_ssize_t i, n = PyTuple_Size(a);
	int r = 1;

	if (n != PyTuple_Size(b)) {
		return 0;
	}
	for (i = 0; r == 1 && i < n; i++) {
		PyObject *x = PyTuple_GetItem(a, i);   /* borrowed */
		PyObject *y = PyTuple_GetItem(b, i);   /* borrowed */

		if (Py_TYPE(x) != Py_TYPE(y)) {
			r = 0;
		} else if (PyTuple_Check(x)) {
			r = consts_equal(x, y);
		} else if (PyObject_HasAttrString(x, "co_code")) {
			r = code_equal(x, y);
		} else {
			r = PyObject_RichCompareBool(x, y, Py_EQ);
		}
	}
	return r;
}

static int code_equal(PyObject *a, PyObject *b)
{
	static const char *const fields[] = {
		"co_code", "co_names", "co_varnames", "co_freevars", "co_cellvars",
		"co_flags", "co_argcount", "co_kwonlyargcount", "co_posonlyargcount",
		"co_name", "co_exceptiontable", NULL
	};
	PyObject *x, *y;   /* owned */
	int k, r = 1;

	for (k = 0; r == 1 && fields[k]; k++) {
		x = getattr_opt(a, fields[k]);
		y = x ? getattr_opt(b, fields[k]) : NULL;
		if (x && y) {
			r = PyObject_RichCompareBool(x, y, Py_EQ);
		} else if (x || PyErr_Occurred()) {
			r = PyErr_Occurred() ? -1 : 0;
		}
		Py_XDECREF(x);
		Py_XDECREF(y);
	}
	x = r == 1 ? getattr_opt(a, "co_consts") : NULL;
	y = x ? getattr_opt(b, "co_consts") : NULL;
	if (r == 1) {
		r = x && y && PyTuple_Check(x) && PyTuple_Check(y) ? consts_equal(x, y) :
		    PyErr_Occurred() ? -1 : 0;
	}
	Py_XDECREF(x);
	Py_XDECREF(y);
	return r;
}

/* The functions behind a live object (itself, __func__, __wrapped__,
 * a property's accessors), a few levels deep, appended to out. */
static int live_funcs(struct engine *e, PyObject *o, PyObject *out, int depth)
{
	static const char *const links[] = { "__func__", "__wrapped__", "fget",
					     "fset", "fdel", NULL };
	PyObject *v;   /* owned */
	int k, r = 0;

	if (!o || o == Py_None || depth > 8) {
		return 0;
	}
	if (is_a(o, e->t_function) && PyList_Append(out, o) < 0) {
		return -1;
	}
	for (k = 0; r == 0 && links[k]; k++) {
		v = plain_attr(o, links[k]);
		r = live_funcs(e, v, out, depth + 1);
		Py_XDECREF(v);
	}
	return r;
}

/* Whether one of the live functions runs code (and, newf given, has its
 * defaults). 1, 0, or -1. */
static int runs_code(struct engine *e, PyObject *live, PyObject *code,
		     PyObject *newf)
{
	static const char *const dflt[] = { "__defaults__", "__kwdefaults__", NULL };
	PyObject *funcs = PyList_New(0);   /* owned */
	Py_ssize_t i;
	int k, r = funcs ? live_funcs(e, live, funcs, 0) : -1;

	for (i = 0; r == 0 && i < PyList_Size(funcs); i++) {
		PyObject *f = PyList_GetItem(funcs, i);   /* borrowed */
		PyObject *c = pyhot_patch_get_attr(f, "__code__");   /* owned */

		r = c ? code_equal(c, code) : -1;
		Py_XDECREF(c);
		for (k = 0; r == 1 && newf && dflt[k]; k++) {
			PyObject *x = pyhot_patch_get_attr(f, dflt[k]);   /* owned */
			PyObject *y = x ? pyhot_patch_get_attr(newf, dflt[k]) : NULL;   /* owned */

			r = y ? PyObject_RichCompareBool(x, y, Py_EQ) : -1;
			Py_XDECREF(x);
			Py_XDECREF(y);
		}
	}
	Py_XDECREF(funcs);
	return r;
}

/* The code constant of body code made by statement st (by name and first
 * line), or NULL (new reference). */
static PyObject *member_code(PyObject *body_code, PyObject *name, long line)
{
	PyObject *consts = getattr_opt(body_code, "co_consts");   /* owned */
	Py_ssize_t i, n = consts ? PyTuple_Size(consts) : 0;
	PyObject *found = NULL;   /* owned */

	for (i = 0; !found && i < n; i++) {
		PyObject *c = PyTuple_GetItem(consts, i);   /* borrowed */
		PyObject *cn = getattr_opt(c, "co_name");   /* owned */
		PyObject *cl = cn ? getattr_opt(c, "co_firstlineno") : NULL;   /* owned */

		if (cl && PyObject_RichCompareBool(cn, name, Py_EQ) == 1 &&
		    PyLong_AsLong(cl) == line) {
			found = c;
			Py_INCREF(found);
		}
		Py_XDECREF(cn);
		Py_XDECREF(cl);
		PyErr_Clear();
	}
	Py_XDECREF(consts);
	return found;
}

/* A top-level def compared with what runs under its name: its code as
 * the whole file compiles it (a statement compiled alone may differ: 3.11
 * compiles a call on an imported module's attribute differently), its
 * defaults from the def run bare (decorators not). 1 same, 0, -1. */
static int def_same(struct engine *e, PyObject *st, PyObject *live,
		    PyObject *name, PyObject *modcode)
{
	PyObject *nc = member_code(modcode, name, stmt_first_line(st));   /* owned */
	PyObject *bare = nc ? node_stripped(e, st, strip_decorators) : NULL;   /* owned */
	PyObject *code = bare ? compile_stmt(e, bare) : NULL;   /* owned */
	PyObject *ns = code ? scratch_ns(e) : NULL;   /* owned */
	PyObject *res = ns ? PyEval_EvalCode(code, e->G, ns) : NULL;   /* owned */
	PyObject *newf = res ? PyDict_GetItemWithError(ns, name) : NULL;   /* borrowed */
	int r = newf ? runs_code(e, live, nc, newf) : PyErr_Occurred() ? -1 : 0;

	Py_XDECREF(nc);
	Py_XDECREF(bare);
	Py_XDECREF(code);
	Py_XDECREF(ns);
	Py_XDECREF(res);
	return r;
}

/* What a class's own __dict__ holds under name (new reference), or NULL. */
static PyObject *own_member(PyObject *cls, PyObject *name)
{
	PyObject *d = plain_attr(cls, "__dict__");   /* owned */
	PyObject *v = d ? PyObject_GetItem(d, name) : NULL;   /* owned */

	Py_XDECREF(d);
	PyErr_Clear();
	return v;
}

static int trim_class(struct engine *e, PyObject *st, PyObject *live,
		      PyObject *outer_code, PyObject **out);

/* One statement of a class body, into the stand-in body (or not). */
static int trim_member(struct engine *e, PyObject *st, PyObject *live,
		       PyObject *body_code, PyObject *body, int *differs)
{
	PyObject *name = NULL;   /* owned */
	PyObject *lv = NULL;   /* owned */
	PyObject *code = NULL;   /* owned */
	PyObject *keep = NULL;   /* owned: what the stand-in holds */
	int r = 0;

	if (is_def(e, st) || is_a(st, e->t_ClassDef)) {
		name = pyhot_patch_get_attr(st, "name");
		lv = name ? own_member(live, name) : NULL;
	}
	if (is_def(e, st)) {
		code = lv ? member_code(body_code, name, stmt_first_line(st)) : NULL;
		r = code ? runs_code(e, lv, code, NULL) : 0;
		keep = r == 1 ? (Py_INCREF(st), st) : NULL;
	} else if (is_a(st, e->t_ClassDef)) {
		r = lv && PyType_Check(lv) ? trim_class(e, st, lv, body_code, &keep) : 0;
	} else {
		keep = (Py_INCREF(st), st);
	}
	if (r >= 0 && keep && PyList_Append(body, keep) < 0) {
		r = -1;
	}
	*differs |= keep != st;
	Py_XDECREF(keep);
	Py_XDECREF(name);
	Py_XDECREF(lv);
	Py_XDECREF(code);
	return r < 0 ? -1 : 0;
}

/* Whether the first of funcs was defined in the module's file (not made
 * by a decorator such as dataclass, nor inherited machinery). 1 or 0. */
static int from_file(struct engine *e, PyObject *funcs)
{
	PyObject *code;   /* owned */
	PyObject *fn;   /* owned */
	int r;

	if (PyList_Size(funcs) < 1) {
		return 0;
	}
	code = pyhot_patch_get_attr(PyList_GetItem(funcs, 0), "__code__");
	fn = code ? getattr_opt(code, "co_filename") : NULL;
	r = fn && PyObject_RichCompareBool(fn, e->fileobj, Py_EQ) == 1;
	Py_XDECREF(code);
	Py_XDECREF(fn);
	PyErr_Clear();
	return r;
}

/* `name = None` statements in body for every function of the live class
 * (defined in this file) that the new class body does not bind: the
 * stand-in binds them, so they are removed. */
static int add_gone_members(struct engine *e, PyObject *st, PyObject *live,
			    PyObject *body, int *differs)
{
	PyObject *d = plain_attr(live, "__dict__");   /* owned */
	PyObject *keys = d ? PyMapping_Keys(d) : NULL;   /* owned */
	PyObject *nb = pyhot_patch_get_attr(st, "body");   /* owned */
	PyObject *bound = PySet_New(NULL);   /* owned */
	Py_ssize_t i, n = keys ? PyList_Size(keys) : -1;
	int r = nb && bound && n >= 0 ? 0 : -1;

	for (i = 0; r == 0 && i < PyList_Size(nb); i++) {
		PyObject *names = bound_names(e, PyList_GetItem(nb, i));   /* owned */

		r = names && set_update(bound, names) == 0 ? 0 : -1;
		Py_XDECREF(names);
	}
	for (i = 0; r == 0 && i < n; i++) {
		PyObject *k = PyList_GetItem(keys, i);   /* borrowed */
		PyObject *v = PyObject_GetItem(d, k);   /* owned */
		PyObject *f = PyList_New(0);   /* owned */
		PyObject *src = NULL;   /* owned */
		PyObject *tree = NULL;   /* owned */
		PyObject *stmts = NULL;   /* owned */

		r = v && f ? live_funcs(e, v, f, 0) : -1;
		if (r == 0 && from_file(e, f) && PySet_Contains(bound, k) == 0) {
			src = PyUnicode_FromFormat("%U = None\n", k);
			tree = src ? PyObject_CallFunctionObjArgs(e->parse, src, NULL) : NULL;
			stmts = tree ? pyhot_patch_get_attr(tree, "body") : NULL;
			r = stmts ? PyList_SetSlice(body, PyList_Size(body),
						    PyList_Size(body), stmts) : -1;
			*differs = 1;
		}
		Py_XDECREF(v);
		Py_XDECREF(f);
		Py_XDECREF(src);
		Py_XDECREF(tree);
		Py_XDECREF(stmts);
	}
	Py_XDECREF(d);
	Py_XDECREF(keys);
	Py_XDECREF(nb);
	Py_XDECREF(bound);
	return r;
}

/* The stand-in of class statement st against its live class: st itself
 * when every method runs the file's code, else a copy without the methods
 * that differ (*out, new reference). outer_code: the code st is compiled
 * in. 0, or -1. */
static int trim_class(struct engine *e, PyObject *st, PyObject *live,
		      PyObject *outer_code, PyObject **out)
{
	PyObject *nb = pyhot_patch_get_attr(st, "body");   /* owned */
	PyObject *name = nb ? pyhot_patch_get_attr(st, "name") : NULL;   /* owned */
	PyObject *bc = name ? member_code(outer_code, name, stmt_first_line(st)) : NULL;   /* owned */
	PyObject *body = bc ? PyList_New(0) : NULL;   /* owned */
	Py_ssize_t i;
	int differs = 0, r = body ? 0 : PyErr_Occurred() ? -1 : 1;

	*out = NULL;
	if (r == 1) {
		return 0;   /* its code not found: planned as changed */
	}
	for (i = 0; r == 0 && i < PyList_Size(nb); i++) {
		r = trim_member(e, PyList_GetItem(nb, i), live, bc, body, &differs);
	}
	if (r == 0) {
		r = add_gone_members(e, st, live, body, &differs);
	}
	if (r == 0 && !differs) {
		Py_INCREF(st);
		*out = st;
	} else if (r == 0) {
		*out = node_copy(st);
		r = *out && set_attr(*out, "body", body) == 0 ? 0 : -1;
	}
	Py_XDECREF(nb);
	Py_XDECREF(name);
	Py_XDECREF(bc);
	Py_XDECREF(body);
	return r;
}

/* Whether every name st binds is live (1; also when it binds none), 0,
 * or -1. */
static int names_live(struct engine *e, PyObject *st)
{
	PyObject *names = bound_names(e, st);   /* owned */
	PyObject *it = names ? PyObject_GetIter(names) : NULL;   /* owned */
	PyObject *y;   /* owned */
	int r = it ? 1 : -1;

	while (it && (y = PyIter_Next(it)) != NULL) {
		if (!PyDict_GetItemWithError(e->G, y)) {
			r = 0;
		}
		Py_DECREF(y);
	}
	Py_XDECREF(it);
	Py_XDECREF(names);
	return PyErr_Occurred() ? -1 : r;
}

/* The stand-in of one new top-level statement, appended to obody (or
 * not: it is then planned as changed). */
static int stand_in(struct engine *e, PyObject *st, PyObject *modcode,
		    PyObject *uinfo_dumps, int rerun, PyObject *obody)
{
	PyObject *name = NULL;   /* owned */
	PyObject *live = NULL;   /* owned */
	PyObject *keep = NULL;   /* owned */
	int r = 0;

	if (is_def(e, st) || is_a(st, e->t_ClassDef)) {
		name = pyhot_patch_get_attr(st, "name");
		live = name ? PyDict_GetItemWithError(e->G, name) : NULL;
		Py_XINCREF(live);
	}
	if (PyErr_Occurred()) {
		r = -1;
	} else if (name && !live) {
		r = 0;   /* new: runs */
	} else if (is_def(e, st)) {
		r = def_same(e, st, live, name, modcode);
		keep = r == 1 ? (Py_INCREF(st), st) : NULL;
	} else if (name) {
		r = PyType_Check(live) ? trim_class(e, st, live, modcode, &keep) : 0;
	} else if (!rerun) {
		r = names_live(e, st);
		if (r == 1 && uinfo_dumps) {
			/* changed since the attach: the user's edit, re-run */
			PyObject *d = PyObject_CallFunctionObjArgs(e->dump, st, NULL);   /* owned */

			r = d ? PySequence_Contains(uinfo_dumps, d) : -1;
			Py_XDECREF(d);
		}
		keep = r == 1 ? (Py_INCREF(st), st) : NULL;
	}
	if (r >= 0 && keep && PyList_Append(obody, keep) < 0) {
		r = -1;
	}
	Py_XDECREF(keep);
	Py_XDECREF(name);
	Py_XDECREF(live);
	return r < 0 ? -1 : 0;
}

/* The baseline's statements that no longer exist and bind names the new
 * source does not: in the stand-in, so that their names are removed. */
static int add_gone(struct engine *e, PyObject *nbody, PyObject *ubody,
		    PyObject *obody)
{
	PyObject *nbound = PySet_New(NULL);   /* owned */
	Py_ssize_t i;
	int r = nbound ? 0 : -1;

	for (i = 0; r == 0 && i < PyList_Size(nbody); i++) {
		PyObject *names = bound_names(e, PyList_GetItem(nbody, i));   /* owned */

		r = names && set_update(nbound, names) == 0 ? 0 : -1;
		Py_XDECREF(names);
	}
	for (i = 0; r == 0 && i < PyList_Size(ubody); i++) {
		PyObject *st = PyList_GetItem(ubody, i);   /* borrowed */
		PyObject *names = bound_names(e, st);   /* owned */
		PyObject *extra = names ? PyNumber_Subtract(names, nbound) : NULL;   /* owned */

		r = extra ? 0 : -1;
		if (extra && PySet_Size(extra) > 0) {
			r = PyList_Append(obody, st);
		}
		Py_XDECREF(names);
		Py_XDECREF(extra);
	}
	Py_XDECREF(nbound);
	return r;
}

/* The ast.dump() of each statement of body, as a list. */
static PyObject *dumps_of(struct engine *e, PyObject *body)
{
	PyObject *out = PyList_New(0);   /* owned */
	Py_ssize_t i;

	for (i = 0; out && i < PyList_Size(body); i++) {
		PyObject *d = PyObject_CallFunctionObjArgs(e->dump, PyList_GetItem(body, i),
							   NULL);   /* owned */

		if (!d || PyList_Append(out, d) < 0) {
			Py_CLEAR(out);
		}
		Py_XDECREF(d);
	}
	return out;
}

/* The new source compiled whole, as the import would (new reference). */
static PyObject *compile_file(struct engine *e)
{
	PyObject *src = PyBytes_FromStringAndSize(e->mp->newsrc, (Py_ssize_t)e->mp->newlen);   /* owned */
	PyObject *code;   /* owned */

	code = src ? PyObject_CallFunction(e->compile, "OOsii", src, e->fileobj, "exec",
					   0, 1) : NULL;
	Py_XDECREF(src);
	return code;
}

PyObject *livecmp_stand_in(struct engine *e, PyObject *nbody, PyObject *ubody,
			   int rerun)
{
	PyObject *obody = PyList_New(0);   /* owned */
	PyObject *udumps = ubody ? dumps_of(e, ubody) : NULL;   /* owned */
	PyObject *modcode = compile_file(e);   /* owned */
	Py_ssize_t i;

	if (!obody || !modcode || (ubody && !udumps)) {
		goto error;
	}
	for (i = 0; i < PyList_Size(nbody); i++) {
		if (stand_in(e, PyList_GetItem(nbody, i), modcode, udumps, rerun,
			     obody) < 0) {
			goto error;
		}
	}
	if (ubody && add_gone(e, nbody, ubody, obody) < 0) {
		goto error;
	}
	Py_XDECREF(udumps);
	Py_DECREF(modcode);
	return obody;
error:
	Py_XDECREF(obody);
	Py_XDECREF(udumps);
	Py_XDECREF(modcode);
	return NULL;
}
