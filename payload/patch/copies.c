/*
 * copies.c: copies that frameworks made of what a class computed at
 * creation. When a refresh re-runs a class's hooks (recompute.c), the class
 * is right, but a copy taken from it before is not. This is the one place
 * that knows such frameworks; each is a find step (plan: where are the
 * copies of this class?) and an update step (after the hooks: queue what
 * makes them equal again). To support another framework, add a pair.
 *
 * Flask (class-based views): View.as_view() makes a view function that
 * carries view_class (the class) and a copy of its `methods`; add_url_rule()
 * then copied those methods into the werkzeug Rule, upper-cased, with HEAD
 * added for GET. The views are found in the view_functions of the apps
 * that module globals hold.
 */
#include "copies.h"

#include "attr.h"

#include <stdio.h>
#include <string.h>

/* An attribute found without running __getattr__ (module globals hold
 * lazy proxies). New reference, or NULL (no error). */
static PyObject *generic_attr(PyObject *o, const char *name)
{
	PyObject *key = pyhot_patch_name(name);   /* owned */
	PyObject *v = key ? PyObject_GenericGetAttr(o, key) : NULL;   /* owned */

	Py_XDECREF(key);
	if (!v) {
		PyErr_Clear();
	}
	return v;
}

/* The views of app (a Flask app: view_functions and url_map) made from
 * live: (app, endpoint, view, report line) appended to out. */
static int flask_views_find(struct engine *e, PyObject *app, PyObject *live,
			    const char *where, const char *qual, PyObject *out)
{
	PyObject *vf = generic_attr(app, "view_functions");   /* owned */
	PyObject *k;   /* borrowed */
	PyObject *view;   /* borrowed */
	Py_ssize_t pos = 0;
	char ep[256];
	int rc = 0;

	while (rc == 0 && vf && PyDict_Check(vf) && PyDict_Next(vf, &pos, &k, &view)) {
		PyObject *vc = generic_attr(view, "view_class");   /* owned */
		PyObject *t;   /* owned */

		if (vc == live && pyhot_patch_utf8(k, ep, sizeof(ep)) == 0) {
			t = Py_BuildValue("(OOOn)", app, k, view, (Py_ssize_t)e->mp->report.n);
			rc = t ? PyList_Append(out, t) : -1;
			Py_XDECREF(t);
			if (rc == 0) {
				rc = change_add(e, "changed", "value", where, "view '%s': "
						"methods and URL rules follow %s.methods", ep, qual);
			}
		}
		PyErr_Clear();
		Py_XDECREF(vc);
	}
	Py_XDECREF(vf);
	return rc;
}

/* Whether o is a Flask app (it has view_functions and url_map). */
static int is_flask_app(PyObject *o)
{
	PyObject *vf;   /* owned */
	PyObject *um;   /* owned */
	int r;

	if (PyType_Check(o) || PyModule_Check(o)) {
		return 0;
	}
	vf = generic_attr(o, "view_functions");
	um = vf ? generic_attr(o, "url_map") : NULL;
	r = vf && um && PyDict_Check(vf);
	Py_XDECREF(vf);
	Py_XDECREF(um);
	return r;
}

/* Every app module globals hold (once each), searched for live's views. */
static int flask_find(struct engine *e, PyObject *live, const char *qual,
		      PyObject *out)
{
	PyObject *mods = PyImport_GetModuleDict();   /* borrowed */
	PyObject *snap = mods ? PyDict_Items(mods) : NULL;   /* owned */
	PyObject *seen = PySet_New(NULL);   /* owned */
	Py_ssize_t i, n = snap ? PyList_Size(snap) : 0;
	int rc = snap && seen ? 0 : -1;

	for (i = 0; rc == 0 && i < n; i++) {
		PyObject *mod = PyTuple_GetItem(PyList_GetItem(snap, i), 1);   /* borrowed */
		PyObject *k;   /* borrowed */
		PyObject *v;   /* borrowed */
		Py_ssize_t pos = 0;
		char where[1024], mn[512], vn[256];

		if (!PyModule_Check(mod)) {
			continue;
		}
		while (rc == 0 && PyDict_Next(PyModule_GetDict(mod), &pos, &k, &v)) {
			PyObject *id;   /* owned */

			if (!is_flask_app(v) || !(id = id_of(v))) {
				continue;
			}
			rc = PySet_Contains(seen, id);
			if (rc == 0 && (rc = PySet_Add(seen, id)) == 0 &&
			    pyhot_patch_utf8(PyTuple_GetItem(PyList_GetItem(snap, i), 0),
					     mn, sizeof(mn)) == 0 &&
			    pyhot_patch_utf8(k, vn, sizeof(vn)) == 0) {
				snprintf(where, sizeof(where), "%s.%s", mn, vn);
				rc = flask_views_find(e, v, live, where, qual, out);
			}
			rc = rc < 0 ? -1 : 0;
			PyErr_Clear();
			Py_DECREF(id);
		}
	}
	Py_XDECREF(snap);
	Py_XDECREF(seen);
	return rc;
}

int copies_find(struct engine *e, PyObject *live, const char *qual,
		PyObject *out)
{
	/* Flask: only a class with as_view() makes views */
	if (has_attr(live, "as_view")) {
		return flask_find(e, live, qual, out);
	}
	return 0;
}

/* {m.upper() for m in methods} (None: empty). New set, or NULL. */
static PyObject *upper_set(PyObject *methods)
{
	PyObject *s = PySet_New(NULL);   /* owned */
	PyObject *it = s && methods != Py_None ? PyObject_GetIter(methods) : NULL;   /* owned */
	PyObject *m;   /* owned */

	while (it && (m = PyIter_Next(it)) != NULL) {
		PyObject *u = call_method(m, "upper", NULL);   /* owned */

		if (!u || PySet_Add(s, u) < 0) {
			Py_XDECREF(u);
			Py_DECREF(m);
			break;
		}
		Py_DECREF(u);
		Py_DECREF(m);
	}
	Py_XDECREF(it);
	if (PyErr_Occurred()) {
		Py_XDECREF(s);
		return NULL;
	}
	return s;
}

/* The methods of a rule made for a view whose methods were oldm, now
 * newm: the others it had stay (OPTIONS), HEAD goes with GET. */
static PyObject *rule_methods(PyObject *rm, PyObject *oldm, PyObject *newm)
{
	PyObject *o = upper_set(oldm);   /* owned */
	PyObject *n = o ? upper_set(newm) : NULL;   /* owned */
	PyObject *kept = n ? PyNumber_Subtract(rm, o) : NULL;   /* owned */
	PyObject *res = kept ? PyNumber_Or(kept, n) : NULL;   /* owned */
	PyObject *get = PyUnicode_FromString("GET");   /* owned */
	PyObject *head = PyUnicode_FromString("HEAD");   /* owned */
	int r = res && get && head ? PySet_Contains(res, get) : -1;

	if (r < 0 || (r == 1 && PySet_Add(res, head) < 0)) {
		Py_CLEAR(res);
	}
	Py_XDECREF(o);
	Py_XDECREF(n);
	Py_XDECREF(kept);
	Py_XDECREF(get);
	Py_XDECREF(head);
	return res;
}

/* The URL rules of endpoint in app follow the view's new methods; the
 * map rebuilds its matcher before the next match. */
static int flask_rules_update(PyObject *app, PyObject *endpoint, PyObject *oldm,
			      PyObject *newm, struct pyhot_ops *rec)
{
	PyObject *um = generic_attr(app, "url_map");   /* owned */
	PyObject *rules = um ? call_method(um, "iter_rules", "O", endpoint) : NULL;   /* owned */
	PyObject *it = rules ? PyObject_GetIter(rules) : NULL;   /* owned */
	PyObject *rule;   /* owned */
	int rc = it ? 0 : -1;

	while (rc == 0 && (rule = PyIter_Next(it)) != NULL) {
		PyObject *rm = pyhot_patch_get_attr(rule, "methods");   /* owned */
		PyObject *nrm = rm && PyAnySet_Check(rm) ? rule_methods(rm, oldm, newm) : NULL;   /* owned */

		if (nrm) {
			rc = pyhot_ops_add_attr(rec, PYHOT_OP_SETATTR, rule, "methods", nrm);
		} else if (PyErr_Occurred()) {
			rc = -1;
		}
		Py_XDECREF(rm);
		Py_XDECREF(nrm);
		Py_DECREF(rule);
	}
	if (rc == 0 && !PyErr_Occurred()) {
		rc = pyhot_ops_add_attr(rec, PYHOT_OP_SETATTR, um, "_remap", Py_True);
	}
	Py_XDECREF(um);
	Py_XDECREF(rules);
	Py_XDECREF(it);
	return rc < 0 || PyErr_Occurred() ? -1 : 0;
}

int copies_update(PyObject *live, PyObject *copies, struct pyhot_ops *rec,
		  struct modplan *mp)
{
	PyObject *newm = getattr_opt(live, "methods");   /* owned */
	Py_ssize_t i, n = PyList_Size(copies);
	int rc = 0, same;

	PyErr_Clear();
	for (i = 0; rc == 0 && newm && i < n; i++) {
		PyObject *t = PyList_GetItem(copies, i);   /* borrowed */
		PyObject *view = PyTuple_GetItem(t, 2);   /* borrowed */
		PyObject *oldm = getattr_opt(view, "methods");   /* owned */
		size_t line = (size_t)PyLong_AsSsize_t(PyTuple_GetItem(t, 3));

		same = oldm ? PyObject_RichCompareBool(oldm, newm, Py_EQ) : -1;
		if (same == 1 && line < mp->report.n) {
			mp->report.v[line].action = "kept";
			rc = pyhot_change_set_detail(&mp->report.v[line], "methods unchanged");
		} else if (same == 0) {
			rc = pyhot_ops_add_attr(rec, PYHOT_OP_SETATTR, view, "methods", newm);
			if (rc == 0) {
				rc = flask_rules_update(PyTuple_GetItem(t, 0), PyTuple_GetItem(t, 1),
							oldm, newm, rec);
			}
		} else {
			rc = -1;
		}
		Py_XDECREF(oldm);
	}
	Py_XDECREF(newm);
	return rc;
}
