/*
 * importers.c: the modules that imported names from the module being
 * planned see what the refresh binds: a `from mod import name` whose object
 * was replaced by a new one gets the new one, a `from mod import *` gets
 * the new public names. One pass over sys.modules' dicts, no heap walk.
 */
#include "importers.h"

#include "attr.h"
#include "baseline.h"
#include "classes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the refresh does to the module's names, as the importers see it. */
struct export_change {
	PyObject *rebound;   /* owned list of (name, old, new): new objects */
	PyObject *oldpub;    /* owned set: public names before the refresh */
	PyObject *added;     /* owned dict: public names gained -> value */
};

static void export_change_release(struct export_change *x)
{
	Py_XDECREF(x->rebound);
	Py_XDECREF(x->oldpub);
	Py_XDECREF(x->added);
}

/* The value name has after the refresh: the overlay's, else the live one
 * (borrowed, or NULL). */
static PyObject *value_after(struct engine *e, PyObject *name)
{
	PyObject *v = PyDict_GetItemWithError(e->L, name);   /* borrowed */

	if (!v && !PyErr_Occurred()) {
		v = PyDict_GetItemWithError(e->G, name);
	}
	return v;
}

/* Add to set the names of d (a dict) without a leading underscore. */
static int add_public_keys(PyObject *set, PyObject *d)
{
	PyObject *k;   /* borrowed */
	PyObject *v;   /* borrowed */
	Py_ssize_t pos = 0;

	while (PyDict_Next(d, &pos, &k, &v)) {
		if (PyUnicode_Check(k) && PyUnicode_GetLength(k) > 0 &&
		    PyUnicode_ReadChar(k, 0) != '_' && PySet_Add(set, k) < 0) {
			return -1;
		}
	}
	return 0;
}

/* What `from mod import *` takes: __all__ when there is one, else the
 * names without a leading underscore of the dicts (d2 may be NULL). New
 * set, or NULL with an exception. */
static PyObject *public_names(PyObject *all, PyObject *d1, PyObject *d2)
{
	PyObject *set;   /* owned */

	if (all) {
		return PySet_New(all);
	}
	set = PySet_New(NULL);
	if (set && (add_public_keys(set, d1) < 0 ||
		    (d2 && add_public_keys(set, d2) < 0))) {
		Py_CLEAR(set);
	}
	return set;
}

/* The overlay's names bound to a new object (not patched in place, not a
 * container updated in place: those keep their identity). */
static int collect_rebound(struct engine *e, struct export_change *x)
{
	PyObject *k;   /* borrowed */
	PyObject *v;   /* borrowed */
	PyObject *old;   /* borrowed */
	PyObject *t;   /* owned */
	Py_ssize_t pos = 0;
	int inpl;

	while (PyDict_Next(e->L, &pos, &k, &v)) {
		inpl = PySet_Contains(e->inplace, k);
		old = inpl == 0 ? PyDict_GetItemWithError(e->G, k) : NULL;
		if (inpl < 0 || PyErr_Occurred()) {
			return -1;
		}
		if (!old || old == v || replaced_in_place(old, v)) {
			continue;
		}
		t = PyTuple_Pack(3, k, old, v);
		if (!t || PyList_Append(x->rebound, t) < 0) {
			Py_XDECREF(t);
			return -1;
		}
		Py_DECREF(t);
	}
	return 0;
}

/* The public names before and after; those gained go to x->added. */
static int collect_public(struct engine *e, struct export_change *x)
{
	PyObject *all_name = pyhot_patch_name("__all__");   /* owned */
	PyObject *oldall = NULL;   /* borrowed */
	PyObject *newpub = NULL;   /* owned */
	PyObject *gained = NULL;   /* owned */
	PyObject *it = NULL;   /* owned */
	PyObject *n;   /* owned */
	int rc = -1;

	oldall = all_name ? PyDict_GetItemWithError(e->G, all_name) : NULL;
	if (!all_name || PyErr_Occurred()) {
		goto out;
	}
	x->oldpub = public_names(oldall, e->G, NULL);
	newpub = x->oldpub ? public_names(value_after(e, all_name), e->G, e->L) : NULL;
	gained = newpub ? PyNumber_Subtract(newpub, x->oldpub) : NULL;
	it = gained ? PyObject_GetIter(gained) : NULL;
	while (it && (n = PyIter_Next(it)) != NULL) {
		PyObject *v = value_after(e, n);   /* borrowed */

		if (v && PyDict_SetItem(x->added, n, v) < 0) {
			Py_DECREF(n);
			goto out;
		}
		Py_DECREF(n);
	}
	rc = it && !PyErr_Occurred() ? 0 : -1;
out:
	Py_XDECREF(all_name);
	Py_XDECREF(newpub);
	Py_XDECREF(gained);
	Py_XDECREF(it);
	return rc;
}

/* Whether every old public name of the module is bound to the same object
 * in md: what a star import leaves (a module that took every name one by
 * one looks the same; its source tells them apart). 1, 0, or -1. */
static int holds_all_public(struct engine *e, PyObject *md, PyObject *oldpub)
{
	PyObject *it = PyObject_GetIter(oldpub);   /* owned */
	PyObject *n;   /* owned */
	int all = PySet_Size(oldpub) > 0;

	while (all && it && (n = PyIter_Next(it)) != NULL) {
		PyObject *mine = PyDict_GetItemWithError(md, n);   /* borrowed */

		all = mine && mine == PyDict_GetItemWithError(e->G, n);
		Py_DECREF(n);
	}
	Py_XDECREF(it);
	return PyErr_Occurred() ? -1 : all;
}

/* The source of module impname: its baseline, else its file. New bytes,
 * or NULL (no error) when there is none. */
static PyObject *importer_source(const char *impname, PyObject *md)
{
	struct pyhot_baseline *b = pyhot_baseline_find(impname);
	PyObject *f;   /* borrowed */
	PyObject *src;   /* owned */
	char path[4096], *text;
	size_t len;

	if (b) {
		return PyBytes_FromStringAndSize(b->src, (Py_ssize_t)b->len);
	}
	f = PyDict_GetItemString(md, "__file__");
	if (!f || !PyUnicode_Check(f) || pyhot_patch_utf8(f, path, sizeof(path)) < 0 ||
	    pyhot_patch_read_file(path, &text, &len) < 0) {
		PyErr_Clear();
		return NULL;
	}
	src = PyBytes_FromStringAndSize(text, (Py_ssize_t)len);
	free(text);
	return src;
}

/* Whether node, an ImportFrom in a module of package pkg, imports from
 * this module (relative imports resolved). 1, 0, or -1. */
static int from_this(struct engine *e, PyObject *node, PyObject *pkg)
{
	PyObject *mod = pyhot_patch_get_attr(node, "module");   /* owned */
	PyObject *level = mod ? pyhot_patch_get_attr(node, "level") : NULL;   /* owned */
	PyObject *util = level ? pyhot_patch_module("importlib.util") : NULL;   /* owned */
	PyObject *rel = NULL;   /* owned */
	PyObject *full = NULL;   /* owned */
	long lvl = level ? PyLong_AsLong(level) : -1;
	char dots[32];
	int r;

	if (util && lvl >= 0 && lvl < (long)sizeof(dots)) {
		/* "%.*s" is not understood by PyUnicode_FromFormat before 3.12 */
		memset(dots, '.', (size_t)lvl);
		dots[lvl] = '\0';
		rel = mod == Py_None ? PyUnicode_FromString(dots) :
		      PyUnicode_FromFormat("%s%U", dots, mod);
	}
	full = rel ? call_method(util, "resolve_name", "OO", rel, pkg) : NULL;
	/* not resolvable (a relative import outside a package): not ours */
	r = full ? PyObject_RichCompareBool(full, e->modname, Py_EQ) : 0;
	PyErr_Clear();
	Py_XDECREF(mod);
	Py_XDECREF(level);
	Py_XDECREF(util);
	Py_XDECREF(rel);
	Py_XDECREF(full);
	return r;
}

/* Add the names an ImportFrom node takes ("*" for a star) to names. */
static int add_alias_names(PyObject *node, PyObject *names)
{
	PyObject *aliases = pyhot_patch_get_attr(node, "names");   /* owned */
	Py_ssize_t i, n = aliases && PyList_Check(aliases) ? PyList_Size(aliases) : 0;
	int rc = aliases ? 0 : -1;

	for (i = 0; rc == 0 && i < n; i++) {
		PyObject *a = PyList_GetItem(aliases, i);   /* borrowed */
		PyObject *nm = pyhot_patch_get_attr(a, "name");   /* owned */
		PyObject *as = nm ? pyhot_patch_get_attr(a, "asname") : NULL;   /* owned */

		/* `from m import a as b` binds b to m.a: only a plain name is
		 * the same name in both modules */
		rc = as ? (as == Py_None ? PySet_Add(names, nm) : 0) : -1;
		Py_XDECREF(nm);
		Py_XDECREF(as);
	}
	Py_XDECREF(aliases);
	return rc;
}

/* The names the source of module impname imports from this module, "*"
 * for a star import: a new set, empty when its source is unknown or does
 * not parse. NULL on error. */
static PyObject *imported_names(struct engine *e, const char *impname, PyObject *md)
{
	PyObject *names = PySet_New(NULL);   /* owned */
	PyObject *src = names ? importer_source(impname, md) : NULL;   /* owned */
	PyObject *pkg = PyDict_GetItemString(md, "__package__");   /* borrowed */
	PyObject *tree;   /* owned */
	PyObject *it;   /* owned */
	PyObject *node;   /* owned */
	int r = 0;

	if (!src) {
		return names;
	}
	tree = PyObject_CallFunctionObjArgs(e->parse, src, NULL);
	it = tree ? PyObject_CallFunctionObjArgs(e->walk, tree, NULL) : NULL;
	while (r >= 0 && it && (node = PyIter_Next(it)) != NULL) {
		if (is_a(node, e->t_ImportFrom)) {
			r = from_this(e, node, pkg ? pkg : Py_None);
			r = r > 0 ? add_alias_names(node, names) : r;
		}
		Py_DECREF(node);
	}
	if (!tree || PyErr_Occurred()) {
		PyErr_Clear();   /* an importer that does not parse: left alone */
		PySet_Clear(names);
	}
	Py_DECREF(src);
	Py_XDECREF(tree);
	Py_XDECREF(it);
	return names;
}

/* Whether v's identity says nothing about where it came from: small ints,
 * interned strings and other immutable constants are shared by every
 * module that spells them. */
static int identity_shared(PyObject *v)
{
	return v == Py_None || v == Py_Ellipsis || PyLong_Check(v) ||
	       PyUnicode_Check(v) || PyBytes_Check(v) || PyFloat_Check(v) ||
	       PyComplex_Check(v) || PyTuple_Check(v) || PyFrozenSet_Check(v);
}

/* Queue md[name] = v and report it as "<impname>.<name>". */
static int importer_set(struct engine *e, const char *impname, PyObject *md,
			PyObject *name, PyObject *v, const char *action,
			const char *how)
{
	char nm[256], qn[1024];

	if (pyhot_patch_utf8(name, nm, sizeof(nm)) < 0) {
		PyErr_Clear();
		snprintf(nm, sizeof(nm), "?");
	}
	snprintf(qn, sizeof(qn), "%s.%s", impname, nm);
	if (pyhot_ops_add(&e->ops, PYHOT_OP_SETITEM, md, name, v) < 0) {
		return -1;
	}
	return change_add(e, action, value_kind(e, v), qn, "from %s import %s",
			  e->mp->module, how ? how : nm);
}

/* Whether module impname imported name (or, name NULL, everything) from
 * this module, by its source; *names is parsed on first need. 1, 0, or
 * -1. */
static int source_imports(struct engine *e, const char *impname, PyObject *md,
			  PyObject **names, PyObject *name)
{
	if (!*names && !(*names = imported_names(e, impname, md))) {
		return -1;
	}
	if (!name) {
		PyObject *star = pyhot_patch_name("*");   /* owned */
		int r = star ? PySet_Contains(*names, star) : -1;

		Py_XDECREF(star);
		return r;
	}
	return PySet_Contains(*names, name);
}

/* The entries of md that still hold an object the refresh replaces. */
static int importer_rebind(struct engine *e, struct export_change *x,
			   const char *impname, PyObject *md, PyObject **names)
{
	Py_ssize_t i;
	int r = 0;

	for (i = 0; r >= 0 && i < PyList_Size(x->rebound); i++) {
		PyObject *t = PyList_GetItem(x->rebound, i);   /* borrowed */
		PyObject *k = PyTuple_GetItem(t, 0);   /* borrowed */
		PyObject *old = PyTuple_GetItem(t, 1);   /* borrowed */

		r = PyDict_GetItemWithError(md, k) == old;
		if (r && identity_shared(old)) {
			r = source_imports(e, impname, md, names, k);
			if (r == 0 && (r = PySet_Contains(x->oldpub, k)) > 0) {
				r = source_imports(e, impname, md, names, NULL);
			}
		}
		if (r > 0) {
			r = importer_set(e, impname, md, k, PyTuple_GetItem(t, 2),
					 "changed", NULL);
		}
		r = PyErr_Occurred() ? -1 : r;
	}
	return r < 0 ? -1 : 0;
}

/* One module of sys.modules: its entries that still hold a replaced
 * object, and, when it star-imported this module, the names gained. */
static int importer_fix(struct engine *e, struct export_change *x,
			const char *impname, PyObject *md)
{
	PyObject *names = NULL;   /* owned: what its source imports from us */
	PyObject *k;   /* borrowed */
	PyObject *v;   /* borrowed */
	Py_ssize_t pos = 0;
	int r = importer_rebind(e, x, impname, md, &names);

	if (r == 0 && PyDict_Size(x->added) > 0) {
		r = holds_all_public(e, md, x->oldpub);
		if (r > 0) {
			r = source_imports(e, impname, md, &names, NULL);
		}
	}
	while (r > 0 && PyDict_Next(x->added, &pos, &k, &v)) {
		if (!PyDict_GetItemWithError(md, k) &&
		    (PyErr_Occurred() || importer_set(e, impname, md, k, v, "added", "*") < 0)) {
			r = -1;
		}
	}
	Py_XDECREF(names);
	return r < 0 ? -1 : 0;
}

/* Every module in sys.modules but this one. */
static int importers_scan(struct engine *e, struct export_change *x)
{
	PyObject *mods = PyImport_GetModuleDict();   /* borrowed */
	PyObject *snap = mods ? PyDict_Items(mods) : NULL;   /* owned: the
							      * fixes run Python */
	Py_ssize_t i, n = snap ? PyList_Size(snap) : 0;
	char impname[512];
	int rc = snap ? 0 : -1;

	for (i = 0; rc == 0 && i < n; i++) {
		PyObject *name = PyTuple_GetItem(PyList_GetItem(snap, i), 0);   /* borrowed */
		PyObject *mod = PyTuple_GetItem(PyList_GetItem(snap, i), 1);   /* borrowed */
		PyObject *md;   /* borrowed */

		if (!PyModule_Check(mod) || !PyUnicode_Check(name) ||
		    (md = PyModule_GetDict(mod)) == e->G) {
			continue;
		}
		if (pyhot_patch_utf8(name, impname, sizeof(impname)) < 0) {
			PyErr_Clear();
			continue;
		}
		rc = importer_fix(e, x, impname, md);
	}
	Py_XDECREF(snap);
	return rc;
}

int plan_importers(struct engine *e)
{
	struct export_change x;
	int rc = -1;

	memset(&x, 0, sizeof(x));
	x.rebound = PyList_New(0);
	x.added = PyDict_New();
	if (!x.rebound || !x.added || collect_rebound(e, &x) < 0 ||
	    collect_public(e, &x) < 0) {
		goto out;
	}
	if (PyList_Size(x.rebound) == 0 && PyDict_Size(x.added) == 0) {
		rc = 0;
		goto out;
	}
	rc = importers_scan(e, &x);
out:
	export_change_release(&x);
	return rc;
}
