/*
 * recompute.c: what a class computed from its body at creation (its
 * parent's __init_subclass__, its class decorators) computed again on the
 * live class once a refresh has set its new members. This is the one step
 * of a refresh that runs Python after the apply: docs/engine.md says why
 * and what it promises.
 */
#include "recompute.h"

#include "attr.h"
#include "copies.h"
#include "stmts.h"

#include <stdio.h>
#include <string.h>

/* One class scheduled by recompute_plan(): the fields of its tuple. */
enum rc_field {
	RC_CLASS,      /* the live class */
	RC_KWARGS,     /* dict: class keywords for __init_subclass__, or None */
	RC_DECOS,      /* tuple: the decorators, outermost first */
	RC_BOUND,      /* frozenset: names the class body binds */
	RC_TAG,        /* int: the module's index in the request */
	RC_LINE,       /* int: the class's line in the module's report */
	RC_COPIES,     /* list: framework copies (copies.c) */
	RC_NFIELDS
};

/* Turns a ClassDef into the expression "(decorators, class keywords but
 * metaclass)", so that both are evaluated as the statement would. */
static const char header_src[] =
	"def header(ast, cd):\n"
	"    kw = [k for k in cd.keywords if k.arg != 'metaclass']\n"
	"    t = ast.Tuple(elts=[ast.Tuple(elts=list(cd.decorator_list), ctx=ast.Load()),\n"
	"                        ast.Dict(keys=[k.arg and ast.Constant(k.arg) for k in kw],\n"
	"                                 values=[k.value for k in kw])], ctx=ast.Load())\n"
	"    return ast.fix_missing_locations(ast.Expression(body=ast.copy_location(t, cd)))\n";

/* The header expression of class statement ncd (new reference). */
static PyObject *header_expr(PyObject *ncd)
{
	PyObject *code = Py_CompileString(header_src, "<pyhot recompute>", Py_file_input);   /* owned */
	PyObject *ns = code ? PyDict_New() : NULL;   /* owned */
	PyObject *res = NULL;   /* owned */
	PyObject *fn;   /* borrowed */
	PyObject *ast = NULL;   /* owned */
	PyObject *expr = NULL;   /* owned */

	if (ns && PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins()) == 0) {
		res = PyEval_EvalCode(code, ns, ns);
	}
	fn = res ? PyDict_GetItemString(ns, "header") : NULL;
	ast = fn ? pyhot_patch_module("ast") : NULL;
	expr = ast ? PyObject_CallFunctionObjArgs(fn, ast, ncd, NULL) : NULL;
	Py_XDECREF(code);
	Py_XDECREF(ns);
	Py_XDECREF(res);
	Py_XDECREF(ast);
	return expr;
}

/* (decorators, keywords) of class statement ncd, evaluated like the
 * statement's header. New reference, or NULL. */
static PyObject *header_eval(struct engine *e, PyObject *ncd)
{
	PyObject *expr = header_expr(ncd);   /* owned */
	PyObject *code = expr ? PyObject_CallFunction(e->compile, "OOsii", expr, e->fileobj,
						      "eval", e->flags, 1) : NULL;   /* owned */
	PyObject *ns = code ? scratch_ns(e) : NULL;   /* owned */
	PyObject *res = ns ? PyEval_EvalCode(code, e->G, ns) : NULL;   /* owned */

	Py_XDECREF(expr);
	Py_XDECREF(code);
	Py_XDECREF(ns);
	return res;
}

/* Whether a base of live defines __init_subclass__ (object's aside). 1, 0,
 * or -1. */
static int has_parent_hook(PyObject *live)
{
	PyObject *mro = pyhot_patch_get_attr(live, "__mro__");   /* owned */
	Py_ssize_t i, n = mro && PyTuple_Check(mro) ? PyTuple_Size(mro) : 0;
	int r = mro ? 0 : -1;

	for (i = 1; r == 0 && i < n; i++) {
		PyObject *base = PyTuple_GetItem(mro, i);   /* borrowed */
		PyObject *name = pyhot_patch_name("__init_subclass__");   /* owned */
		PyObject *own = name ? own_attr(base, name) : NULL;   /* owned */

		if (own) {
			r = base == (PyObject *)&PyBaseObject_Type ? 2 : 1;
		} else if (PyErr_Occurred()) {
			r = -1;
		}
		Py_XDECREF(own);
		Py_XDECREF(name);
	}
	Py_XDECREF(mro);
	return r == 2 ? 0 : r;
}

/* The decorators that re-run, outermost first: all but the dataclass
 * machinery (the dataclass path renews what it generates; run again on
 * its own class it would lose fields with a default_factory). New tuple. */
static PyObject *decorators_kept(PyObject *decos)
{
	PyObject *out = PyList_New(0);   /* owned */
	PyObject *t;   /* owned */
	Py_ssize_t i, n = PyTuple_Size(decos);

	for (i = 0; out && i < n; i++) {
		PyObject *d = PyTuple_GetItem(decos, i);   /* borrowed */
		PyObject *m = getattr_opt(d, "__module__");   /* owned */
		int skip = m && PyUnicode_Check(m) &&
			   PyUnicode_CompareWithASCIIString(m, "dataclasses") == 0;

		PyErr_Clear();
		Py_XDECREF(m);
		if (!skip && PyList_Append(out, d) < 0) {
			Py_CLEAR(out);
		}
	}
	t = out ? PyList_AsTuple(out) : NULL;
	Py_XDECREF(out);
	return t;
}

/* "__init_subclass__, decorator x, decorator y" into buf. */
static void hooks_describe(int hook, PyObject *decos, char *buf, size_t size)
{
	Py_ssize_t i, n = PyTuple_Size(decos);
	size_t len;
	char nm[128];

	snprintf(buf, size, "%s", hook ? "__init_subclass__" : "");
	for (i = n; i-- > 0;) {
		PyObject *q = getattr_opt(PyTuple_GetItem(decos, i), "__qualname__");   /* owned */

		if (!q || pyhot_patch_utf8(q, nm, sizeof(nm)) < 0) {
			snprintf(nm, sizeof(nm), "?");
		}
		PyErr_Clear();
		Py_XDECREF(q);
		len = strlen(buf);
		snprintf(buf + len, size - len, "%s@%s", len ? ", " : "", nm);
	}
}

/* Queue the entry and say in the class's report line what re-runs. */
static int recompute_schedule(struct engine *e, PyObject *live, PyObject *kw,
			      PyObject *decos, PyObject *bound, size_t line)
{
	struct pyhot_change *ch = &e->mp->report.v[line];
	PyObject *copies = PyList_New(0);   /* owned */
	PyObject *fb = copies ? PyFrozenSet_New(bound) : NULL;   /* owned */
	PyObject *t = NULL;   /* owned */
	char hooks[512], detail[768];
	int rc = -1;

	if (!fb || copies_find(e, live, ch->name, copies) < 0) {
		goto out;
	}
	ch = &e->mp->report.v[line];   /* copies_find() may have grown the report */
	t = Py_BuildValue("(OOOOinO)", live, kw ? kw : Py_None, decos, fb,
			  e->ops.tag, (Py_ssize_t)line, copies);
	if (!t || PyList_Append(e->recompute, t) < 0) {
		goto out;
	}
	hooks_describe(kw != NULL, decos, hooks, sizeof(hooks));
	snprintf(detail, sizeof(detail), "in place; then re-run on it: %s", hooks);
	rc = pyhot_change_set_detail(ch, detail);
out:
	Py_XDECREF(copies);
	Py_XDECREF(fb);
	Py_XDECREF(t);
	return rc;
}

int recompute_plan(struct engine *e, PyObject *live, PyObject *ncd,
		   PyObject *bound, size_t line)
{
	PyObject *hdr = NULL;   /* owned */
	PyObject *decos = NULL;   /* owned */
	PyObject *kw;   /* borrowed */
	int hook, rc = -1;

	if (e->enummeta && PyObject_IsInstance(live, e->enummeta) != 0) {
		return PyErr_Occurred() ? -1 : 0;   /* enums: classes.c */
	}
	hook = has_parent_hook(live);
	hdr = hook >= 0 ? header_eval(e, ncd) : NULL;
	if (!hdr || !PyTuple_Check(hdr) || PyTuple_Size(hdr) != 2) {
		goto out;
	}
	decos = decorators_kept(PyTuple_GetItem(hdr, 0));
	kw = PyTuple_GetItem(hdr, 1);
	if (!decos) {
		goto out;
	}
	rc = 0;
	if (hook || PyTuple_Size(decos) > 0) {
		rc = recompute_schedule(e, live, hook ? kw : NULL, decos, bound, line);
	}
out:
	Py_XDECREF(hdr);
	Py_XDECREF(decos);
	return rc;
}

/* A plain dict copy of cls.__dict__ (new reference). */
static PyObject *class_dict_copy(PyObject *cls)
{
	PyObject *proxy = pyhot_patch_get_attr(cls, "__dict__");   /* owned */
	PyObject *d = proxy ? PyObject_CallFunctionObjArgs((PyObject *)&PyDict_Type,
							  proxy, NULL) : NULL;   /* owned */

	Py_XDECREF(proxy);
	return d;
}

/*
 * Bring cls.__dict__ back to snap. With rec, each difference is first
 * queued on rec as the op that makes it again (and its name appended to
 * changed), so that it is done through the undo log. 0, or -1 error.
 */
static int class_dict_sync(PyObject *cls, PyObject *snap, struct pyhot_ops *rec,
			   PyObject *changed)
{
	PyObject *now = class_dict_copy(cls);   /* owned */
	PyObject *k;   /* borrowed */
	PyObject *v;   /* borrowed */
	Py_ssize_t pos = 0;
	int rc = now ? 0 : -1;

	while (rc == 0 && PyDict_Next(now, &pos, &k, &v)) {
		PyObject *was = PyDict_GetItemWithError(snap, k);   /* borrowed */

		if (was == v || PyErr_Occurred()) {
			rc = PyErr_Occurred() ? -1 : 0;
			continue;
		}
		if (rec && (pyhot_ops_add(rec, PYHOT_OP_SETATTR, cls, k, v) < 0 ||
			    PyList_Append(changed, k) < 0)) {
			rc = -1;
		} else {
			rc = PyObject_SetAttr(cls, k, was);   /* was NULL: deleted */
		}
	}
	pos = 0;
	while (rc == 0 && PyDict_Next(snap, &pos, &k, &v)) {
		if (PyDict_GetItemWithError(now, k) || PyErr_Occurred()) {
			rc = PyErr_Occurred() ? -1 : 0;
			continue;
		}
		if (rec && (pyhot_ops_add(rec, PYHOT_OP_DELATTR, cls, k, NULL) < 0 ||
			    PyList_Append(changed, k) < 0)) {
			rc = -1;
		} else {
			rc = PyObject_SetAttr(cls, k, v);
		}
	}
	Py_XDECREF(now);
	return rc;
}

/*
 * What the hooks computed last time, hidden while they run again (a hook
 * that leaves a name it finds alone, as Flask's MethodView does with
 * `methods`, would keep the old value): the public names (no leading
 * underscore) of cls.__dict__ that the class body does not bind. Dunders
 * and private names stay: instances need them at every moment. The names
 * hidden are appended to hidden.
 */
static int hide_derived(PyObject *cls, PyObject *snap, PyObject *bound,
			PyObject *hidden)
{
	PyObject *k;   /* borrowed */
	PyObject *v;   /* borrowed */
	Py_ssize_t pos = 0;
	int r, rc = 0;

	while (rc == 0 && PyDict_Next(snap, &pos, &k, &v)) {
		if (!PyUnicode_Check(k) || PyUnicode_GetLength(k) == 0 ||
		    PyUnicode_ReadChar(k, 0) == '_') {
			continue;
		}
		r = PySet_Contains(bound, k);
		if (r == 0 && (PyList_Append(hidden, k) < 0 ||
			       PyObject_SetAttr(cls, k, NULL) < 0)) {
			r = -1;
		}
		rc = r < 0 ? -1 : 0;
	}
	return rc;
}

/* Hidden names the hooks did not set again come back. */
static void unhide(PyObject *cls, PyObject *snap, PyObject *hidden)
{
	Py_ssize_t i, n = PyList_Size(hidden);

	for (i = 0; i < n; i++) {
		PyObject *k = PyList_GetItem(hidden, i);   /* borrowed */
		PyObject *own = own_attr(cls, k);   /* owned */

		if (!own && !PyErr_Occurred()) {
			(void)PyObject_SetAttr(cls, k, PyDict_GetItem(snap, k));
		}
		Py_XDECREF(own);
		PyErr_Clear();
	}
}

/* The parent's __init_subclass__ with the class keywords, then the
 * decorators, innermost first. A decorator that returns another object
 * stops the chain: its name goes to *odd (borrowed from decos). 0, or -1
 * with the hook's exception. */
static int hooks_run(PyObject *cls, PyObject *kw, PyObject *decos, PyObject **odd)
{
	PyObject *sup;   /* owned */
	PyObject *f;   /* owned */
	PyObject *r;   /* owned */
	PyObject *noargs;   /* owned */
	Py_ssize_t i;

	*odd = NULL;
	if (kw != Py_None) {
		sup = PyObject_CallFunctionObjArgs((PyObject *)&PySuper_Type, cls, cls, NULL);
		f = sup ? pyhot_patch_get_attr(sup, "__init_subclass__") : NULL;
		noargs = f ? PyTuple_New(0) : NULL;
		r = noargs ? PyObject_Call(f, noargs, kw) : NULL;
		Py_XDECREF(sup);
		Py_XDECREF(f);
		Py_XDECREF(noargs);
		if (!r) {
			return -1;
		}
		Py_DECREF(r);
	}
	for (i = PyTuple_Size(decos); i-- > 0;) {
		r = PyObject_CallFunctionObjArgs(PyTuple_GetItem(decos, i), cls, NULL);
		if (!r) {
			return -1;
		}
		Py_DECREF(r);
		if (r != cls) {
			*odd = PyTuple_GetItem(decos, i);
			break;
		}
	}
	return 0;
}

/* The report line of one class after its hooks ran. */
static int class_line_update(struct pyhot_change *ch, PyObject *changed,
			     PyObject *odd)
{
	char names[512], nm[128], detail[1024];
	Py_ssize_t i, n = PyList_Size(changed);
	size_t len;

	names[0] = '\0';
	for (i = 0; i < n; i++) {
		if (pyhot_patch_utf8(PyList_GetItem(changed, i), nm, sizeof(nm)) < 0) {
			PyErr_Clear();
			continue;
		}
		len = strlen(names);
		snprintf(names + len, sizeof(names) - len, "%s%s", len ? ", " : "", nm);
	}
	snprintf(detail, sizeof(detail), "%s: %s%s", ch->detail,
		 n ? "recomputed " : "nothing recomputed", names);
	if (odd) {
		ch->action = "failed";
		snprintf(detail + strlen(detail), sizeof(detail) - strlen(detail),
			 "; a class decorator returned another object: its result "
			 "is not used, the decorators outside it did not run");
	}
	return pyhot_change_set_detail(ch, detail);
}

/* Re-run one class's hooks; queue on rec what they changed. */
static int class_rerun(PyObject *t, struct pyhot_ops *rec, struct modplan *mp)
{
	PyObject *cls = PyTuple_GetItem(t, RC_CLASS);   /* borrowed */
	PyObject *snap = class_dict_copy(cls);   /* owned */
	PyObject *hidden = PyList_New(0);   /* owned */
	PyObject *changed = PyList_New(0);   /* owned */
	PyObject *odd = NULL;   /* borrowed */
	size_t line = (size_t)PyLong_AsSsize_t(PyTuple_GetItem(t, RC_LINE));
	int rc = -1;

	if (!snap || !hidden || !changed ||
	    hide_derived(cls, snap, PyTuple_GetItem(t, RC_BOUND), hidden) < 0 ||
	    hooks_run(cls, PyTuple_GetItem(t, RC_KWARGS), PyTuple_GetItem(t, RC_DECOS),
		      &odd) < 0) {
		goto out;
	}
	unhide(cls, snap, hidden);
	if (copies_update(cls, PyTuple_GetItem(t, RC_COPIES), rec, mp) < 0 ||
	    class_dict_sync(cls, snap, rec, changed) < 0) {
		goto out;
	}
	rc = line < mp->report.n ? class_line_update(&mp->report.v[line], changed, odd) : 0;
out:
	if (rc < 0 && snap) {
		PyObject *et, *ev, *etb;   /* owned */

		PyErr_Fetch(&et, &ev, &etb);
		unhide(cls, snap, hidden);
		(void)class_dict_sync(cls, snap, NULL, NULL);
		PyErr_Clear();
		PyErr_Restore(et, ev, etb);
	}
	Py_XDECREF(snap);
	Py_XDECREF(hidden);
	Py_XDECREF(changed);
	return rc;
}

int recompute_run(struct engine *e, struct modplan *plans, size_t nmods)
{
	struct pyhot_ops rec;
	Py_ssize_t i, n = e->recompute ? PyList_Size(e->recompute) : 0;
	size_t m;
	int rc = 0;

	pyhot_ops_init(&rec);
	for (i = 0; rc == 0 && i < n; i++) {
		PyObject *t = PyList_GetItem(e->recompute, i);   /* borrowed */
		long tag = PyLong_AsLong(PyTuple_GetItem(t, RC_TAG));

		rec.tag = (int)tag;
		rc = tag >= 0 && (size_t)tag < nmods ? class_rerun(t, &rec, &plans[tag]) : 0;
	}
	/* every class is as after the apply again: what the hooks changed is
	 * done now, through the undo log */
	if (rc == 0 && pyhot_ops_apply(&rec) < 0) {
		rc = -1;
	}
	for (m = 0; rc == 0 && m < nmods; m++) {
		rc = pyhot_ops_take(&rec, (int)m, &e->ops);
	}
	pyhot_ops_release(&rec);
	return rc;
}
