/*
 * stmts.c: what the engine asks of ast nodes and statements: comparing
 * them, the names they bind, matching a body against the baseline's, and
 * compiling them as code of the module's file.
 */
#include "stmts.h"

#include "attr.h"

#include <string.h>

int dump_equal(struct engine *e, PyObject *a, PyObject *b)
{
	PyObject *da = NULL;   /* owned */
	PyObject *db = NULL;   /* owned */
	int rc = -1;

	if (a == Py_None || b == Py_None) {
		return a == b;
	}
	da = PyObject_CallFunctionObjArgs(e->dump, a, NULL);
	if (!da) {
		goto out;
	}
	db = PyObject_CallFunctionObjArgs(e->dump, b, NULL);
	if (!db) {
		goto out;
	}
	rc = PyObject_RichCompareBool(da, db, Py_EQ);
out:
	Py_XDECREF(da);
	Py_XDECREF(db);
	return rc;
}

int field_equal(struct engine *e, PyObject *a, PyObject *b,
		const char *attr)
{
	PyObject *la = NULL;   /* owned */
	PyObject *lb = NULL;   /* owned */
	Py_ssize_t i, n;
	int rc = -1;

	la = getattr_opt(a, attr);
	lb = getattr_opt(b, attr);
	if (PyErr_Occurred()) {
		goto out;
	}
	if (!la || !lb) {
		rc = !la && !lb;
		goto out;
	}
	if (!PyList_Check(la) || !PyList_Check(lb)) {
		rc = dump_equal(e, la, lb);
		goto out;
	}
	n = PyList_Size(la);
	if (n != PyList_Size(lb)) {
		rc = 0;
		goto out;
	}
	rc = 1;
	for (i = 0; i < n && rc == 1; i++) {
		rc = dump_equal(e, PyList_GetItem(la, i), PyList_GetItem(lb, i));
	}
out:
	Py_XDECREF(la);
	Py_XDECREF(lb);
	return rc;
}

long node_line(PyObject *node)
{
	PyObject *l = getattr_opt(node, "lineno");   /* owned */
	long v = -1;

	if (l) {
		v = PyLong_AsLong(l);
		Py_DECREF(l);
	}
	PyErr_Clear();
	return v;
}

long stmt_first_line(PyObject *st)
{
	PyObject *decos = getattr_opt(st, "decorator_list");   /* owned */
	long first = node_line(st);
	Py_ssize_t i;

	if (decos && PyList_Check(decos)) {
		for (i = 0; i < PyList_Size(decos); i++) {
			long l = node_line(PyList_GetItem(decos, i));

			if (l > 0 && l < first) {
				first = l;
			}
		}
	}
	Py_XDECREF(decos);
	PyErr_Clear();
	return first;
}

static int collect_bound(struct engine *e, PyObject *node, PyObject *set,
			 int depth);

/* Names the targets of an assignment bind (its value is not walked: large
 * literals bind nothing). */
static int bound_by_assign(struct engine *e, PyObject *node, PyObject *set,
			   int depth)
{
	int is_assign = is_a(node, e->t_Assign);
	PyObject *v = pyhot_patch_get_attr(node, is_assign ? "targets" : "target");   /* owned */
	Py_ssize_t i, n;
	int rc = 0;

	if (!v) {
		return -1;
	}
	if (PyList_Check(v)) {
		n = PyList_Size(v);
		for (i = 0; i < n && rc == 0; i++) {
			rc = collect_bound(e, PyList_GetItem(v, i), set, depth + 1);
		}
	} else {
		rc = collect_bound(e, v, set, depth + 1);
	}
	Py_DECREF(v);
	return rc;
}

/* The name one import alias binds (new reference): its asname, or the
 * first part of its dotted name for `import a.b`. */
static PyObject *alias_bound(PyObject *alias, int plain_import)
{
	PyObject *nm = pyhot_patch_get_attr(alias, "asname");   /* owned */
	PyObject *part;   /* owned */

	if (nm != Py_None) {
		return nm;
	}
	Py_DECREF(nm);
	nm = pyhot_patch_get_attr(alias, "name");
	if (nm && plain_import) {
		part = call_method(nm, "partition", "s", ".");
		Py_DECREF(nm);
		nm = part ? PySequence_GetItem(part, 0) : NULL;
		Py_XDECREF(part);
	}
	return nm;
}

/* Names an import binds (a star import binds nothing we can name). */
static int bound_by_import(struct engine *e, PyObject *node, PyObject *set)
{
	PyObject *v = pyhot_patch_get_attr(node, "names");   /* owned */
	Py_ssize_t i, n;
	int rc = 0;

	if (!v) {
		return -1;
	}
	n = PyList_Size(v);
	for (i = 0; i < n && rc == 0; i++) {
		PyObject *nm = alias_bound(PyList_GetItem(v, i), is_a(node, e->t_Import));   /* owned */

		if (!nm) {
			rc = -1;
		} else if (PyUnicode_CompareWithASCIIString(nm, "*") != 0 &&
			   PySet_Add(set, nm) < 0) {
			rc = -1;
		}
		Py_XDECREF(nm);
	}
	Py_DECREF(v);
	return rc;
}

/* The name a Name node binds, when it is a store. */
static int bound_by_name(struct engine *e, PyObject *node, PyObject *set)
{
	PyObject *ctx = pyhot_patch_get_attr(node, "ctx");   /* owned */
	PyObject *id;   /* owned */
	int rc = 0;

	if (!ctx) {
		return -1;
	}
	if (is_a(ctx, e->t_Store)) {
		id = pyhot_patch_get_attr(node, "id");
		rc = id ? PySet_Add(set, id) : -1;
		Py_XDECREF(id);
	}
	Py_DECREF(ctx);
	return rc;
}

/* One field of a node: a node or a list of nodes, walked for names. */
static int bound_in_field(struct engine *e, PyObject *f, PyObject *set,
			  int depth)
{
	Py_ssize_t i, n;

	if (PyList_Check(f)) {
		n = PyList_Size(f);
		for (i = 0; i < n; i++) {
			PyObject *x = PyList_GetItem(f, i);   /* borrowed */

			if (has_attr(x, "_fields") &&
			    collect_bound(e, x, set, depth + 1) < 0) {
				return -1;
			}
		}
		return 0;
	}
	if (f != Py_None && has_attr(f, "_fields") && !PyUnicode_Check(f)) {
		return collect_bound(e, f, set, depth + 1);
	}
	return 0;
}

/* Names bound anywhere in a node's fields (compound statements). */
static int bound_in_fields(struct engine *e, PyObject *node, PyObject *set,
			   int depth)
{
	PyObject *fields = pyhot_patch_get_attr(node, "_fields");   /* owned */
	PyObject *it = fields ? PyObject_GetIter(fields) : NULL;   /* owned */
	PyObject *child;   /* owned */
	int rc = 0;

	Py_XDECREF(fields);
	if (!it) {
		return -1;
	}
	while (rc == 0 && (child = PyIter_Next(it)) != NULL) {
		PyObject *f = PyObject_GetAttr(node, child);   /* owned */

		Py_DECREF(child);
		if (!f) {
			PyErr_Clear();
			continue;
		}
		rc = bound_in_field(e, f, set, depth);
		Py_DECREF(f);
	}
	Py_DECREF(it);
	return rc < 0 || PyErr_Occurred() ? -1 : 0;
}

/* Names a statement binds in its scope: def/class names, import names,
 * assignment targets; not names local to lambdas and comprehensions. */
static int collect_bound(struct engine *e, PyObject *node, PyObject *set,
			 int depth)
{
	PyObject *t = (PyObject *)Py_TYPE(node);   /* borrowed */
	PyObject *name;   /* owned */
	int rc;

	/* deep expression trees bind nothing worth the C stack */
	if (depth > 100) {
		return 0;
	}
	if (t == e->t_Expr) {
		return 0;   /* a bare expression binds nothing (bar a walrus) */
	}
	if (t == e->t_Assign || t == e->t_AugAssign || t == e->t_AnnAssign) {
		return bound_by_assign(e, node, set, depth);
	}
	if (t == e->t_FunctionDef || t == e->t_AsyncFunctionDef ||
	    t == e->t_ClassDef) {
		name = pyhot_patch_get_attr(node, "name");
		rc = name ? PySet_Add(set, name) : -1;
		Py_XDECREF(name);
		return rc;
	}
	if (t == e->t_Import || t == e->t_ImportFrom) {
		return bound_by_import(e, node, set);
	}
	if (t == e->t_Name) {
		return bound_by_name(e, node, set);
	}
	if (t == e->t_Lambda || t == e->t_ListComp || t == e->t_SetComp ||
	    t == e->t_DictComp || t == e->t_GeneratorExp) {
		return 0;
	}
	return bound_in_fields(e, node, set, depth);
}

PyObject *bound_names(struct engine *e, PyObject *stmt)
{
	PyObject *s = PySet_New(NULL);   /* owned */

	if (s && collect_bound(e, stmt, s, 0) < 0) {
		Py_DECREF(s);
		return NULL;
	}
	return s;
}

/* Compile a list of statements as a module of the new source's file. */
static PyObject *compile_stmts(struct engine *e, PyObject *body)
{
	PyObject *kw = NULL;   /* owned */
	PyObject *args = NULL;   /* owned */
	PyObject *mod = NULL;   /* owned */
	PyObject *empty = NULL;   /* owned */
	PyObject *code = NULL;   /* owned */

	empty = PyList_New(0);
	kw = PyDict_New();
	if (!empty || !kw || PyDict_SetItemString(kw, "body", body) < 0 ||
	    PyDict_SetItemString(kw, "type_ignores", empty) < 0) {
		goto out;
	}
	args = PyTuple_New(0);
	if (!args) {
		goto out;
	}
	mod = PyObject_Call(e->Module, args, kw);
	if (!mod) {
		goto out;
	}
	code = PyObject_CallFunction(e->compile, "OOsii", mod, e->fileobj, "exec",
				     e->flags, 1);
out:
	Py_XDECREF(empty);
	Py_XDECREF(kw);
	Py_XDECREF(args);
	Py_XDECREF(mod);
	return code;
}

PyObject *compile_stmt(struct engine *e, PyObject *stmt)
{
	PyObject *body = PyList_New(1);   /* owned */
	PyObject *code;   /* owned */

	if (!body) {
		return NULL;
	}
	Py_INCREF(stmt);
	PyList_SetItem(body, 0, stmt);
	code = compile_stmts(e, body);
	Py_DECREF(body);
	return code;
}

PyObject *code_const(struct engine *e, PyObject *code, PyObject *name)
{
	PyObject *consts = pyhot_patch_get_attr(code, "co_consts");   /* owned */
	Py_ssize_t i, n;

	if (!consts) {
		return NULL;
	}
	n = PyTuple_Size(consts);
	for (i = 0; i < n; i++) {
		PyObject *c = PyTuple_GetItem(consts, i);   /* borrowed */
		PyObject *cn;   /* owned */
		int eq;

		if (!is_a(c, e->t_code)) {
			continue;
		}
		cn = pyhot_patch_get_attr(c, "co_name");
		eq = cn ? PyObject_RichCompareBool(cn, name, Py_EQ) : -1;
		Py_XDECREF(cn);
		if (eq < 0) {
			Py_DECREF(consts);
			return NULL;
		}
		if (eq) {
			Py_INCREF(c);
			Py_DECREF(consts);
			return c;
		}
	}
	Py_DECREF(consts);
	return NULL;
}

PyObject *node_copy(PyObject *node)
{
	PyObject *type = (PyObject *)Py_TYPE(node);   /* borrowed */
	PyObject *make = pyhot_patch_get_attr(type, "__new__");   /* owned */
	PyObject *c = make ? PyObject_CallFunctionObjArgs(make, type, NULL) : NULL;   /* owned */
	PyObject *from = c ? plain_attr(node, "__dict__") : NULL;   /* owned */
	PyObject *to = from ? plain_attr(c, "__dict__") : NULL;   /* owned */
	int ok = to && PyDict_Check(from) && PyDict_Check(to) && PyDict_Update(to, from) == 0;

	if (c && !ok && !PyErr_Occurred()) {
		PyErr_SetString(PyExc_TypeError, "pyhot: an ast node without a __dict__");
	}
	Py_XDECREF(make);
	Py_XDECREF(from);
	Py_XDECREF(to);
	if (!ok) {
		Py_XDECREF(c);
		return NULL;
	}
	return c;
}

PyObject *node_stripped(struct engine *e, PyObject *node,
			const char *const *fields)
{
	PyObject *c = node_copy(node);   /* owned */

	for (; c && *fields; fields++) {
		PyObject *empty = PyList_New(0);   /* owned */

		if (!empty || set_attr(c, *fields, empty) < 0) {
			Py_XDECREF(empty);
			Py_DECREF(c);
			return NULL;
		}
		Py_DECREF(empty);
	}
	return c;
}

const char *const strip_decorators[] = { "decorator_list", NULL };
const char *const strip_class[] = { "decorator_list", "bases", "keywords",
				    NULL };

PyObject *class_body_code(struct engine *e, PyObject *cd, PyObject *body)
{
	PyObject *cd2 = node_stripped(e, cd, strip_class);   /* owned */
	PyObject *code = NULL;   /* owned */
	PyObject *name = NULL;   /* owned */
	PyObject *bc = NULL;   /* owned */

	if (!cd2) {
		return NULL;
	}
	if (body && set_attr(cd2, "body", body) < 0) {
		goto out;
	}
	code = compile_stmt(e, cd2);
	name = code ? pyhot_patch_get_attr(cd, "name") : NULL;
	if (!name) {
		goto out;
	}
	bc = code_const(e, code, name);
	if (!bc && !PyErr_Occurred()) {
		PyErr_SetString(PyExc_RuntimeError, "class body code not found");
	}
out:
	Py_XDECREF(cd2);
	Py_XDECREF(code);
	Py_XDECREF(name);
	return bc;
}

PyObject *scratch_ns(struct engine *e)
{
	PyObject *getitem = NULL;   /* owned */
	PyObject *sm = NULL;   /* owned */
	PyObject *attrs = NULL;   /* owned */
	PyObject *bases = NULL;   /* owned */

	if (PyDict_Size(e->L) == 0) {
		return PyDict_New();
	}
	if (!e->nscls) {
		getitem = pyhot_patch_get_attr(e->L, "__getitem__");
		sm = getitem ? PyObject_CallFunctionObjArgs(e->t_staticmethod, getitem, NULL) : NULL;
		attrs = sm ? PyDict_New() : NULL;
		bases = attrs ? PyTuple_Pack(1, (PyObject *)&PyDict_Type) : NULL;
		if (bases && PyDict_SetItemString(attrs, "__missing__", sm) == 0) {
			e->nscls = PyObject_CallFunction((PyObject *)&PyType_Type, "sOO",
							 "pyhot_scratch", bases, attrs);
		}
		Py_XDECREF(getitem);
		Py_XDECREF(sm);
		Py_XDECREF(attrs);
		Py_XDECREF(bases);
		if (!e->nscls) {
			return NULL;
		}
	}
	return PyObject_CallFunctionObjArgs(e->nscls, NULL);
}

void body_info_release(struct body_info *b)
{
	Py_XDECREF(b->dumps);
	Py_XDECREF(b->defs);
	Py_XDECREF(b->bound);
	memset(b, 0, sizeof(*b));
}

int body_info_make(struct engine *e, PyObject *body, struct body_info *b)
{
	Py_ssize_t i, n = PyList_Size(body);

	memset(b, 0, sizeof(*b));
	b->dumps = PyDict_New();
	b->defs = PyDict_New();
	b->bound = PySet_New(NULL);
	if (!b->dumps || !b->defs || !b->bound) {
		return -1;
	}
	for (i = 0; i < n; i++) {
		PyObject *st = PyList_GetItem(body, i);   /* borrowed */
		PyObject *d = PyObject_CallFunctionObjArgs(e->dump, st, NULL);   /* owned */
		PyObject *lst;   /* borrowed */
		PyObject *names;   /* owned */
		int r;

		if (!d) {
			return -1;
		}
		lst = PyDict_GetItemWithError(b->dumps, d);   /* borrowed */
		if (!lst) {
			if (PyErr_Occurred() || !(lst = PyList_New(0)) ||
			    PyDict_SetItem(b->dumps, d, lst) < 0) {
				Py_XDECREF(lst);
				Py_DECREF(d);
				return -1;
			}
			Py_DECREF(lst);
		}
		Py_DECREF(d);
		if (PyList_Append(lst, st) < 0) {
			return -1;
		}
		if (is_a(st, e->t_FunctionDef) || is_a(st, e->t_AsyncFunctionDef) ||
		    is_a(st, e->t_ClassDef)) {
			PyObject *nm = pyhot_patch_get_attr(st, "name");   /* owned */

			if (!nm) {
				return -1;
			}
			r = PyDict_SetItem(b->defs, nm, st);
			Py_DECREF(nm);
			if (r < 0) {
				return -1;
			}
		}
		names = bound_names(e, st);
		if (!names) {
			return -1;
		}
		r = set_update(b->bound, names);
		Py_DECREF(names);
		if (r < 0) {
			return -1;
		}
	}
	return 0;
}

PyObject *body_take(struct engine *e, struct body_info *b, PyObject *st)
{
	PyObject *d;   /* owned */
	PyObject *lst;   /* borrowed */
	PyObject *old;   /* borrowed */

	if (!b->dumps) {
		return NULL;
	}
	d = PyObject_CallFunctionObjArgs(e->dump, st, NULL);
	if (!d) {
		return NULL;
	}
	lst = PyDict_GetItemWithError(b->dumps, d);   /* borrowed */
	Py_DECREF(d);
	if (!lst || PyList_Size(lst) == 0) {
		return NULL;
	}
	old = PyList_GetItem(lst, 0);
	Py_INCREF(old);
	if (PySequence_DelItem(lst, 0) < 0) {
		Py_DECREF(old);
		return NULL;
	}
	return old;
}

int is_def(struct engine *e, PyObject *st)
{
	return is_a(st, e->t_FunctionDef) || is_a(st, e->t_AsyncFunctionDef);
}

int future_flags_body(struct engine *e, PyObject *body, int *flags)
{
	PyObject *fut = NULL;   /* owned: the __future__ module */
	Py_ssize_t i, n;
	int has = 0;

	*flags = 0;
	n = PyList_Size(body);
	for (i = 0; i < n; i++) {
		PyObject *st = PyList_GetItem(body, i);   /* borrowed */
		PyObject *m;   /* owned */
		PyObject *names;   /* owned */
		Py_ssize_t j, nn;

		if (!is_a(st, e->t_ImportFrom)) {
			continue;
		}
		m = pyhot_patch_get_attr(st, "module");
		if (!m || m == Py_None ||
		    PyUnicode_CompareWithASCIIString(m, "__future__") != 0) {
			Py_XDECREF(m);
			PyErr_Clear();
			continue;
		}
		Py_DECREF(m);
		has = 1;
		if (!fut && !(fut = PyImport_ImportModule("__future__"))) {
			goto error;
		}
		names = pyhot_patch_get_attr(st, "names");
		if (!names) {
			goto error;
		}
		nn = PyList_Size(names);
		for (j = 0; j < nn; j++) {
			PyObject *an = pyhot_patch_get_attr(PyList_GetItem(names, j), "name");   /* owned */
			PyObject *feat = an ? PyObject_GetAttr(fut, an) : NULL;   /* owned */
			PyObject *fl = feat ? pyhot_patch_get_attr(feat, "compiler_flag") : NULL;   /* owned */

			if (fl) {
				*flags |= (int)PyLong_AsLong(fl);
			}
			Py_XDECREF(an);
			Py_XDECREF(feat);
			Py_XDECREF(fl);
			PyErr_Clear();   /* an unknown feature fails at compile time */
		}
		Py_DECREF(names);
	}
	Py_XDECREF(fut);
	return has;
error:
	Py_XDECREF(fut);
	return -1;
}

int main_guard(struct engine *e, PyObject *st)
{
	PyObject *test;   /* owned */
	PyObject *d = NULL;   /* owned */
	int rc = 0;

	if (!is_a(st, e->t_If)) {
		return 0;
	}
	test = pyhot_patch_get_attr(st, "test");
	if (!test) {
		return -1;
	}
	d = PyObject_CallFunctionObjArgs(e->dump, test, NULL);
	Py_DECREF(test);
	if (!d) {
		return -1;
	}
	/* ast.dump of both spellings contains exactly these names */
	{
		char buf[512];

		if (pyhot_patch_utf8(d, buf, sizeof(buf)) == 0 &&
		    strstr(buf, "Compare(") == buf && strstr(buf, "'__name__'") &&
		    strstr(buf, "'__main__'") && strstr(buf, "Eq()") &&
		    !strstr(buf, "BoolOp")) {
			rc = 1;
		}
		PyErr_Clear();
	}
	Py_DECREF(d);
	return rc;
}
