/*
 * patch.c: the patch engine (contract in pyhot_patch.h).
 *
 * A refresh has two phases.
 *
 * Plan (runs Python, changes nothing live): parse the baseline and the new
 * source with ast, match top-level statements by their ast.dump(), and for
 * each new statement decide:
 *   - unchanged: not re-run; its names keep their live objects (moved
 *     functions get code with the new line numbers);
 *   - a changed def whose decorators did not change: compile the bare def,
 *     find the live innermost function behind the decorators, and queue its
 *     new code, defaults, annotations, doc and attributes;
 *   - a changed class whose bases, keywords, decorators, __slots__ and
 *     dataclass fields did not change: execute the class body code alone
 *     into a fresh namespace (no class is created: no metaclass, no
 *     __init_subclass__, no registry sees it) and queue the member changes
 *     on the live class, nested classes recursively;
 *   - anything else: execute the statement with the live module dict as
 *     globals (so new functions get the right __globals__) and an overlay
 *     dict as locals (so nothing live is written).
 * Apply (ops.c): the queued sets run in one go and are undone if one fails.
 */
#include "history.h"
#include "ops.h"
#include "pyhot_patch.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STEP "refresh"

#define NO_BASELINE_WARNING \
	"no baseline (module imported after attach?): functions and classes " \
	"were patched in place; statements binding existing names were not re-run"

struct modplan {
	char module[512];
	char file[4096];
	char *newsrc;
	size_t newlen;
	int nobaseline;
	int chunked;                  /* only the changed region was parsed */
	struct pyhot_stmt_rec *recs;  /* the new source's statement table */
	size_t nrecs;
	int has_table;
	int flags;                    /* the new source's __future__ flags */
	struct pyhot_change *ch;
	size_t nch, cap;
	long generation;              /* recorded after apply, or 0 */
};

struct engine {
	/* stdlib callables and types, owned */
	PyObject *parse, *dump, *Module, *Pass, *copy, *compile, *get_docstring,
		 *copy_location, *walk;
	PyObject *t_FunctionDef, *t_AsyncFunctionDef, *t_ClassDef, *t_Name,
		 *t_Store, *t_Import, *t_ImportFrom, *t_AnnAssign, *t_Lambda, *t_If,
		 *t_Expr, *t_Assign, *t_AugAssign,
		 *t_ListComp, *t_SetComp, *t_DictComp, *t_GeneratorExp;
	PyObject *t_function, *t_code, *t_classmethod, *t_staticmethod,
		 *t_property, *t_cell, *t_partial, *enummeta;
	int dry_run;
	struct pyhot_ops ops;

	/* the module being planned */
	struct modplan *mp;
	PyObject *modname;   /* str */
	PyObject *fileobj;   /* str */
	PyObject *G;         /* live module dict */
	PyObject *L;         /* overlay: names bound by re-run statements */
	PyObject *inplace;   /* names patched in place: L entries not applied */
	PyObject *codemap;   /* id(old nested code) -> (old, new) */
	PyObject *patched;   /* ids of functions whose code is already queued */
	PyObject *nscls;     /* dict subclass reading misses from L, or NULL */
	int flags;           /* __future__ compiler flags of the new source */
	long cur_line;       /* statement being run, for error messages */
	PyObject *built;     /* list: objects built only to be taken apart
			      * (their code moved into live functions), which
			      * the generation tracker watches die */
};

/* ---------------------------------------------------------------- report */

static int change_add(struct engine *e, const char *action, const char *kind,
		      const char *name, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static int change_add(struct engine *e, const char *action, const char *kind,
		      const char *name, const char *fmt, ...)
{
	struct modplan *mp = e->mp;
	struct pyhot_change *c;
	char buf[512];
	va_list ap;

	if (mp->nch == mp->cap) {
		size_t cap = mp->cap ? mp->cap * 2 : 16;
		struct pyhot_change *v = realloc(mp->ch, cap * sizeof(*v));

		if (!v) {
			PyErr_NoMemory();
			return -1;
		}
		mp->ch = v;
		mp->cap = cap;
	}
	buf[0] = '\0';
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(buf, sizeof(buf), fmt, ap);
		va_end(ap);
	}
	c = &mp->ch[mp->nch];
	c->action = action;
	c->kind = kind;
	c->name = strdup(name);
	c->detail = strdup(buf);
	if (!c->name || !c->detail) {
		free(c->name);
		free(c->detail);
		PyErr_NoMemory();
		return -1;
	}
	mp->nch++;
	return 0;
}

static void modplan_release(struct modplan *mp)
{
	size_t i;

	for (i = 0; i < mp->nch; i++) {
		free(mp->ch[i].name);
		free(mp->ch[i].detail);
	}
	free(mp->ch);
	free(mp->newsrc);
	pyhot_stmt_recs_free(mp->recs, mp->nrecs);
	memset(mp, 0, sizeof(*mp));
}

/* "<module>.<qual>.<name>" into buf. */
static const char *qname(struct engine *e, const char *qual, PyObject *name,
			 char *buf, size_t size)
{
	char n[256];

	if (pyhot_patch_utf8(name, n, sizeof(n)) < 0) {
		PyErr_Clear();
		snprintf(n, sizeof(n), "?");
	}
	if (qual && *qual)
		snprintf(buf, size, "%s.%s.%s", e->mp->module, qual, n);
	else
		snprintf(buf, size, "%s.%s", e->mp->module, n);
	return buf;
}

/* --------------------------------------------------------------- helpers */

static int is_a(PyObject *o, PyObject *type)
{
	return type && (PyObject *)Py_TYPE(o) == type;
}

/*
 * Attribute access by a C name, the name interned. CPython's type attribute
 * cache (4096 entries) keeps a reference to the name of every lookup it
 * caches, while PyObject_GetAttrString() and PyObject_CallMethod() make a
 * fresh string on each call: every refresh would leave more dead names
 * alive there, until the cache is full (a class the refresh modified gets a
 * new version tag, hence new slots; on 3.10 and later the slot also follows
 * the name's address, so any lookup does). An interned name is one object,
 * alive anyway. Use these, not PyObject_*AttrString() or
 * PyObject_CallMethod(), in the engine.
 */
PyObject *pyhot_patch_get_attr(PyObject *o, const char *name)
{
	PyObject *n = PyUnicode_InternFromString(name), *v;

	if (!n)
		return NULL;
	v = PyObject_GetAttr(o, n);
	Py_DECREF(n);
	return v;
}

static int set_attr(PyObject *o, const char *name, PyObject *v)
{
	PyObject *n = PyUnicode_InternFromString(name);
	int rc;

	if (!n)
		return -1;
	rc = PyObject_SetAttr(o, n, v);
	Py_DECREF(n);
	return rc;
}

/* As PyObject_HasAttrString(): an error counts as "no". */
static int has_attr(PyObject *o, const char *name)
{
	PyObject *v = pyhot_patch_get_attr(o, name);

	if (!v) {
		PyErr_Clear();
		return 0;
	}
	Py_DECREF(v);
	return 1;
}

/* As PyObject_CallMethod(): fmt NULL calls with no arguments; a format
 * that builds one tuple gives the arguments, anything else one argument. */
static PyObject *call_method(PyObject *o, const char *name, const char *fmt, ...)
{
	PyObject *m = pyhot_patch_get_attr(o, name), *args, *r;
	va_list ap;

	if (!m)
		return NULL;
	if (fmt && *fmt) {
		va_start(ap, fmt);
		args = Py_VaBuildValue(fmt, ap);
		va_end(ap);
		if (args && !PyTuple_Check(args)) {
			PyObject *one = PyTuple_Pack(1, args);

			Py_DECREF(args);
			args = one;
		}
	} else {
		args = PyTuple_New(0);
	}
	r = args ? PyObject_Call(m, args, NULL) : NULL;
	Py_XDECREF(args);
	Py_DECREF(m);
	return r;
}

/* getattr that treats a missing attribute as NULL without an error. */
static PyObject *getattr_opt(PyObject *o, const char *name)
{
	PyObject *v = pyhot_patch_get_attr(o, name);

	if (!v && PyErr_ExceptionMatches(PyExc_AttributeError))
		PyErr_Clear();
	return v;
}

/*
 * Attribute lookup that runs no __getattr__ hook: wrappers keep __wrapped__
 * and __func__ in their __dict__ or type, while a lazy proxy's
 * __getattr__ (Django settings, werkzeug proxies) could run arbitrary code.
 * New reference, or NULL without an error.
 */
static PyObject *plain_attr(PyObject *o, const char *name)
{
	PyObject *n = PyUnicode_InternFromString(name), *v;

	if (!n) {
		PyErr_Clear();
		return NULL;
	}
	v = PyObject_GenericGetAttr(o, n);
	Py_DECREF(n);
	if (!v)
		PyErr_Clear();
	return v;
}

static int has_plain_attr(PyObject *o, const char *name)
{
	PyObject *v = plain_attr(o, name);

	Py_XDECREF(v);
	return v != NULL;
}

static PyObject *id_of(PyObject *o)
{
	return PyLong_FromVoidPtr(o);
}

/* A class's own __dict__ entry (new reference), or NULL without error. */
static PyObject *own_attr(PyObject *cls, PyObject *name)
{
	PyObject *d = pyhot_patch_get_attr(cls, "__dict__"), *v;

	if (!d)
		return NULL;
	v = PyObject_GetItem(d, name);
	Py_DECREF(d);
	if (!v && PyErr_ExceptionMatches(PyExc_KeyError))
		PyErr_Clear();
	return v;
}

static int dump_equal(struct engine *e, PyObject *a, PyObject *b)
{
	PyObject *da = NULL, *db = NULL;
	int rc = -1;

	if (a == Py_None || b == Py_None)
		return a == b;
	da = PyObject_CallFunctionObjArgs(e->dump, a, NULL);
	if (!da)
		goto out;
	db = PyObject_CallFunctionObjArgs(e->dump, b, NULL);
	if (!db)
		goto out;
	rc = PyObject_RichCompareBool(da, db, Py_EQ);
out:
	Py_XDECREF(da);
	Py_XDECREF(db);
	return rc;
}

/* Whether attribute attr (a list of nodes, or a node) of a and b dump the
 * same. 1, 0, or -1 with an error. */
static int field_equal(struct engine *e, PyObject *a, PyObject *b,
		       const char *attr)
{
	PyObject *la = NULL, *lb = NULL;
	Py_ssize_t i, n;
	int rc = -1;

	la = getattr_opt(a, attr);
	lb = getattr_opt(b, attr);
	if (PyErr_Occurred())
		goto out;
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
	for (i = 0; i < n && rc == 1; i++)
		rc = dump_equal(e, PyList_GetItem(la, i), PyList_GetItem(lb, i));
out:
	Py_XDECREF(la);
	Py_XDECREF(lb);
	return rc;
}

static long node_line(PyObject *node)
{
	PyObject *l = getattr_opt(node, "lineno");
	long v = -1;

	if (l) {
		v = PyLong_AsLong(l);
		Py_DECREF(l);
	}
	PyErr_Clear();
	return v;
}

/* The first line of a def or class, decorators included. */
static long stmt_first_line(PyObject *st)
{
	PyObject *decos = getattr_opt(st, "decorator_list");
	long first = node_line(st);
	Py_ssize_t i;

	if (decos && PyList_Check(decos)) {
		for (i = 0; i < PyList_Size(decos); i++) {
			long l = node_line(PyList_GetItem(decos, i));

			if (l > 0 && l < first)
				first = l;
		}
	}
	Py_XDECREF(decos);
	PyErr_Clear();
	return first;
}

/* 3.13's inspect finds a class by its __firstlineno__: keep it true. */
static int queue_firstlineno(struct engine *e, PyObject *live, PyObject *st)
{
	PyObject *cur = plain_attr(live, "__firstlineno__"), *v;
	int rc = 0;

	if (!cur)
		return 0;
	v = PyLong_FromLong(stmt_first_line(st));
	if (!v || PyObject_RichCompareBool(cur, v, Py_NE) == 1)
		rc = v ? pyhot_ops_add_attr(&e->ops, PYHOT_OP_SETATTR, live,
					    "__firstlineno__", v) : -1;
	Py_DECREF(cur);
	Py_XDECREF(v);
	return rc;
}

/* Names a statement binds in its scope: def/class names, import names,
 * assignment targets; not names local to lambdas and comprehensions. */
static int collect_bound(struct engine *e, PyObject *node, PyObject *set, int depth)
{
	PyObject *t = (PyObject *)Py_TYPE(node);
	PyObject *v = NULL, *it = NULL, *child;
	int rc = -1;

	/* deep expression trees bind nothing worth the C stack */
	if (depth > 100)
		return 0;
	if (t == e->t_Expr)
		return 0;   /* a bare expression binds nothing (bar a walrus) */
	if (t == e->t_Assign || t == e->t_AugAssign || t == e->t_AnnAssign) {
		/* only the targets bind: large literal values are not walked */
		v = pyhot_patch_get_attr(node, t == e->t_Assign ? "targets" : "target");
		if (!v)
			return -1;
		if (PyList_Check(v)) {
			Py_ssize_t i, n = PyList_Size(v);

			for (i = 0, rc = 0; i < n && rc == 0; i++)
				rc = collect_bound(e, PyList_GetItem(v, i), set, depth + 1);
		} else {
			rc = collect_bound(e, v, set, depth + 1);
		}
		Py_DECREF(v);
		return rc;
	}

	if (t == e->t_FunctionDef || t == e->t_AsyncFunctionDef ||
	    t == e->t_ClassDef) {
		v = pyhot_patch_get_attr(node, "name");
		rc = v ? PySet_Add(set, v) : -1;
		goto out;
	}
	if (t == e->t_Import || t == e->t_ImportFrom) {
		Py_ssize_t i, n;

		v = pyhot_patch_get_attr(node, "names");
		if (!v)
			goto out;
		n = PyList_Size(v);
		for (i = 0; i < n; i++) {
			PyObject *alias = PyList_GetItem(v, i);   /* borrowed */
			PyObject *nm = pyhot_patch_get_attr(alias, "asname");
			PyObject *part;

			if (nm == Py_None) {
				Py_DECREF(nm);
				nm = pyhot_patch_get_attr(alias, "name");
				if (nm && t == e->t_Import) {
					part = call_method(nm, "partition", "s", ".");
					Py_DECREF(nm);
					nm = part ? PySequence_GetItem(part, 0) : NULL;
					Py_XDECREF(part);
				}
			}
			if (!nm)
				goto out;
			if (PyUnicode_CompareWithASCIIString(nm, "*") != 0 &&
			    PySet_Add(set, nm) < 0) {
				Py_DECREF(nm);
				goto out;
			}
			Py_DECREF(nm);
		}
		rc = 0;
		goto out;
	}
	if (t == e->t_Name) {
		v = pyhot_patch_get_attr(node, "ctx");
		if (!v)
			goto out;
		if (is_a(v, e->t_Store)) {
			PyObject *id = pyhot_patch_get_attr(node, "id");

			if (!id || PySet_Add(set, id) < 0) {
				Py_XDECREF(id);
				goto out;
			}
			Py_DECREF(id);
		}
		rc = 0;
		goto out;
	}
	if (t == e->t_Lambda || t == e->t_ListComp || t == e->t_SetComp ||
	    t == e->t_DictComp || t == e->t_GeneratorExp)
		return 0;
	v = pyhot_patch_get_attr(node, "_fields");
	if (!v)
		goto out;
	it = PyObject_GetIter(v);
	if (!it)
		goto out;
	while ((child = PyIter_Next(it)) != NULL) {
		PyObject *f = PyObject_GetAttr(node, child);

		Py_DECREF(child);
		if (!f) {
			PyErr_Clear();
			continue;
		}
		if (PyList_Check(f)) {
			Py_ssize_t i, n = PyList_Size(f);

			for (i = 0; i < n; i++) {
				PyObject *x = PyList_GetItem(f, i);
				if (has_attr(x, "_fields") &&
				    collect_bound(e, x, set, depth + 1) < 0) {
					Py_DECREF(f);
					goto out;
				}
			}
		} else if (f != Py_None && has_attr(f, "_fields") &&
			   !PyUnicode_Check(f)) {
			if (collect_bound(e, f, set, depth + 1) < 0) {
				Py_DECREF(f);
				goto out;
			}
		}
		Py_DECREF(f);
	}
	rc = PyErr_Occurred() ? -1 : 0;
out:
	Py_XDECREF(it);
	Py_XDECREF(v);
	return rc;
}

static PyObject *bound_names(struct engine *e, PyObject *stmt)
{
	PyObject *s = PySet_New(NULL);

	if (s && collect_bound(e, stmt, s, 0) < 0) {
		Py_DECREF(s);
		return NULL;
	}
	return s;
}

/* Compile a list of statements as a module of the new source's file. */
static PyObject *compile_stmts(struct engine *e, PyObject *body)
{
	PyObject *kw = NULL, *args = NULL, *mod = NULL, *empty = NULL, *code = NULL;

	empty = PyList_New(0);
	kw = PyDict_New();
	if (!empty || !kw || PyDict_SetItemString(kw, "body", body) < 0 ||
	    PyDict_SetItemString(kw, "type_ignores", empty) < 0)
		goto out;
	args = PyTuple_New(0);
	if (!args)
		goto out;
	mod = PyObject_Call(e->Module, args, kw);
	if (!mod)
		goto out;
	code = PyObject_CallFunction(e->compile, "OOsii", mod, e->fileobj, "exec",
				     e->flags, 1);
out:
	Py_XDECREF(empty);
	Py_XDECREF(kw);
	Py_XDECREF(args);
	Py_XDECREF(mod);
	return code;
}

static PyObject *compile_stmt(struct engine *e, PyObject *stmt)
{
	PyObject *body = PyList_New(1), *code;

	if (!body)
		return NULL;
	Py_INCREF(stmt);
	PyList_SetItem(body, 0, stmt);
	code = compile_stmts(e, body);
	Py_DECREF(body);
	return code;
}

/* The code constant of code named name (new reference), or NULL. */
static PyObject *code_const(struct engine *e, PyObject *code, PyObject *name)
{
	PyObject *consts = pyhot_patch_get_attr(code, "co_consts");
	Py_ssize_t i, n;

	if (!consts)
		return NULL;
	n = PyTuple_Size(consts);
	for (i = 0; i < n; i++) {
		PyObject *c = PyTuple_GetItem(consts, i);   /* borrowed */
		PyObject *cn;
		int eq;

		if (!is_a(c, e->t_code))
			continue;
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

/* A shallow copy of an ast node with some list fields emptied. */
static PyObject *node_stripped(struct engine *e, PyObject *node,
			       const char *const *fields)
{
	PyObject *c = PyObject_CallFunctionObjArgs(e->copy, node, NULL);

	for (; c && *fields; fields++) {
		PyObject *empty = PyList_New(0);

		if (!empty || set_attr(c, *fields, empty) < 0) {
			Py_XDECREF(empty);
			Py_DECREF(c);
			return NULL;
		}
		Py_DECREF(empty);
	}
	return c;
}

static const char *const strip_decorators[] = { "decorator_list", NULL };
static const char *const strip_class[] = { "decorator_list", "bases",
					   "keywords", NULL };

/* Compare a named attribute of two objects; 1 equal, 0 not, -1 error. */
static int attr_equal(PyObject *a, PyObject *b, const char *name)
{
	PyObject *x = pyhot_patch_get_attr(a, name), *y;
	int rc;

	if (!x)
		return -1;
	y = pyhot_patch_get_attr(b, name);
	if (!y) {
		Py_DECREF(x);
		return -1;
	}
	rc = x == y ? 1 : PyObject_RichCompareBool(x, y, Py_EQ);
	Py_DECREF(x);
	Py_DECREF(y);
	return rc;
}

/*
 * A namespace for code that runs with the live module dict as globals
 * (class bodies, default values, throwaway classes): a dict whose misses
 * are looked up in the overlay, so that names bound earlier in the same
 * refresh (a new import, a changed constant) are seen, then the globals.
 */
static PyObject *scratch_ns(struct engine *e)
{
	PyObject *getitem = NULL, *sm = NULL, *attrs = NULL, *bases = NULL;

	if (PyDict_Size(e->L) == 0)
		return PyDict_New();
	if (!e->nscls) {
		getitem = pyhot_patch_get_attr(e->L, "__getitem__");
		sm = getitem ? PyObject_CallFunctionObjArgs(e->t_staticmethod, getitem, NULL) : NULL;
		attrs = sm ? PyDict_New() : NULL;
		bases = attrs ? PyTuple_Pack(1, (PyObject *)&PyDict_Type) : NULL;
		if (bases && PyDict_SetItemString(attrs, "__missing__", sm) == 0)
			e->nscls = PyObject_CallFunction((PyObject *)&PyType_Type, "sOO",
							 "pyhot_scratch", bases, attrs);
		Py_XDECREF(getitem);
		Py_XDECREF(sm);
		Py_XDECREF(attrs);
		Py_XDECREF(bases);
		if (!e->nscls)
			return NULL;
	}
	return PyObject_CallFunctionObjArgs(e->nscls, NULL);
}

/* ------------------------------------------------ finding live functions */

/*
 * Breadth-first from a decorated object towards the function the def made:
 * through __wrapped__ (functools.wraps, lru_cache), __func__ (classmethod,
 * staticmethod, bound methods), partial.func and the cells of wrapper
 * closures. A candidate is a function whose code has the def's name; with
 * several (a factory's functions in a registry), the one whose code matches
 * the baseline's wins. Wrappers with a cache_clear() are collected.
 */
static int find_inner(struct engine *e, PyObject *root, PyObject *name,
		      PyObject *old_code, PyObject *caches, PyObject **out)
{
	PyObject *queue = NULL, *seen = NULL, *cands = NULL, *old_bytes = NULL;
	Py_ssize_t qi, i, n;
	int rc = -1;

	*out = NULL;
	queue = PyList_New(0);
	seen = PySet_New(NULL);
	cands = PyList_New(0);
	if (!queue || !seen || !cands || PyList_Append(queue, root) < 0)
		goto out;
	for (qi = 0; qi < PyList_Size(queue) && qi < 64; qi++) {
		PyObject *o = PyList_GetItem(queue, qi);   /* borrowed */
		PyObject *id = id_of(o), *nb[4] = { NULL, NULL, NULL, NULL };
		int k, seen_it;

		if (!id)
			goto out;
		seen_it = PySet_Contains(seen, id);
		if (seen_it == 0)
			seen_it = PySet_Add(seen, id) < 0 ? -1 : 0;
		Py_DECREF(id);
		if (seen_it < 0)
			goto out;
		if (seen_it || PyType_Check(o) ||
		    PyObject_TypeCheck(o, &PyModule_Type))
			continue;
		if (is_a(o, e->t_function)) {
			PyObject *code = pyhot_patch_get_attr(o, "__code__");
			PyObject *cn = code ? pyhot_patch_get_attr(code, "co_name") : NULL;
			PyObject *clo;
			int eq = cn ? PyObject_RichCompareBool(cn, name, Py_EQ) : -1;

			Py_XDECREF(code);
			Py_XDECREF(cn);
			if (eq < 0 || (eq && PyList_Append(cands, o) < 0))
				goto out;
			clo = pyhot_patch_get_attr(o, "__closure__");
			if (!clo)
				goto out;
			if (clo != Py_None) {
				n = PyTuple_Size(clo);
				for (i = 0; i < n; i++) {
					PyObject *c = getattr_opt(PyTuple_GetItem(clo, i),
								  "cell_contents");
					if (!c) {
						PyErr_Clear();   /* empty cell */
						continue;
					}
					if (PyCallable_Check(c) && PyList_Append(queue, c) < 0) {
						Py_DECREF(c);
						Py_DECREF(clo);
						goto out;
					}
					Py_DECREF(c);
				}
			}
			Py_DECREF(clo);
			nb[0] = plain_attr(o, "__wrapped__");
		} else {
			nb[0] = plain_attr(o, "__wrapped__");
			nb[1] = plain_attr(o, "__func__");
			/* partial.func, and the function that command/task
			 * objects of common frameworks keep (click's callback) */
			nb[2] = plain_attr(o, "func");
			nb[3] = plain_attr(o, "callback");
			if (nb[0] && caches && has_plain_attr(o, "cache_clear") &&
			    has_plain_attr(o, "cache_info") &&
			    PyList_Append(caches, o) < 0) {
				for (k = 0; k < 4; k++)
					Py_XDECREF(nb[k]);
				goto out;
			}
		}
		if (PyErr_Occurred()) {
			/* a wrapper whose __getattr__ raises: not a way in */
			PyErr_Clear();
		}
		for (k = 0; k < 4; k++) {
			if (nb[k] && PyCallable_Check(nb[k]) &&
			    PyList_Append(queue, nb[k]) < 0) {
				for (; k < 4; k++)
					Py_XDECREF(nb[k]);
				goto out;
			}
			Py_XDECREF(nb[k]);
		}
	}
	n = PyList_Size(cands);
	if (n > 0 && old_code) {
		old_bytes = pyhot_patch_get_attr(old_code, "co_code");
		if (!old_bytes)
			goto out;
		for (i = 0; i < n && !*out; i++) {
			PyObject *f = PyList_GetItem(cands, i);
			PyObject *c = pyhot_patch_get_attr(f, "__code__");
			PyObject *b = c ? pyhot_patch_get_attr(c, "co_code") : NULL;
			int eq = b ? PyObject_RichCompareBool(b, old_bytes, Py_EQ) : -1;

			Py_XDECREF(c);
			Py_XDECREF(b);
			if (eq < 0)
				goto out;
			if (eq) {
				Py_INCREF(f);
				*out = f;
			}
		}
	}
	if (!*out && n > 0) {
		*out = PyList_GetItem(cands, 0);
		Py_INCREF(*out);
	}
	rc = 0;
out:
	Py_XDECREF(queue);
	Py_XDECREF(seen);
	Py_XDECREF(cands);
	Py_XDECREF(old_bytes);
	return rc;
}

/* ----------------------------------------------------------- transplants */

/* Remember that functions running old nested code (closures made by a
 * factory, decorator wrappers) should follow new: pairs the code constants
 * of old and new by name, recursively. */
static int codemap_add(struct engine *e, PyObject *old, PyObject *new, int depth)
{
	PyObject *oc = NULL, *nc = NULL;
	Py_ssize_t i, j, no, nn;
	int rc = -1;

	if (depth > 8)
		return 0;
	oc = pyhot_patch_get_attr(old, "co_consts");
	nc = pyhot_patch_get_attr(new, "co_consts");
	if (!oc || !nc)
		goto out;
	no = PyTuple_Size(oc);
	nn = PyTuple_Size(nc);
	for (i = 0; i < no; i++) {
		PyObject *a = PyTuple_GetItem(oc, i), *an, *match = NULL;
		int count = 0;

		if (!is_a(a, e->t_code))
			continue;
		an = pyhot_patch_get_attr(a, "co_name");
		if (!an)
			goto out;
		for (j = 0; j < nn; j++) {
			PyObject *b = PyTuple_GetItem(nc, j), *bn;
			int eq;

			if (!is_a(b, e->t_code))
				continue;
			bn = pyhot_patch_get_attr(b, "co_name");
			eq = bn ? PyObject_RichCompareBool(an, bn, Py_EQ) : -1;
			Py_XDECREF(bn);
			if (eq < 0) {
				Py_DECREF(an);
				goto out;
			}
			if (eq) {
				match = b;
				count++;
			}
		}
		Py_DECREF(an);
		if (count == 1 && match != a) {
			PyObject *id = id_of(a), *pair = PyTuple_Pack(2, a, match);

			if (!id || !pair || PyDict_SetItem(e->codemap, id, pair) < 0) {
				Py_XDECREF(id);
				Py_XDECREF(pair);
				goto out;
			}
			Py_DECREF(id);
			Py_DECREF(pair);
			if (codemap_add(e, a, match, depth + 1) < 0)
				goto out;
		}
	}
	rc = 0;
out:
	Py_XDECREF(oc);
	Py_XDECREF(nc);
	return rc;
}

enum tp_mode { TP_FULL, TP_CODE_ONLY };

/*
 * Queue what makes live run new's code: the code (with new's closure when
 * the free variables differ, as for a method that starts using super()),
 * and in TP_FULL mode defaults, keyword defaults, annotations, doc and
 * attributes. detail gets a short list of what differs. Returns 1 when
 * queued, 0 when the code cannot be moved (the report says why), -1 on
 * error.
 */
static int transplant(struct engine *e, PyObject *live, PyObject *new,
		      enum tp_mode mode, char *detail, size_t dsize)
{
	static const char *const attrs[] = { "__defaults__", "__kwdefaults__",
					     "__annotations__", "__doc__", NULL };
	PyObject *lc = NULL, *nc = NULL, *lf = NULL, *nf = NULL, *id = NULL;
	PyObject *ndict = NULL, *ldict = NULL;
	int rc = -1, eq, k;
	size_t used = 0;

	detail[0] = '\0';
	lc = pyhot_patch_get_attr(live, "__code__");
	nc = pyhot_patch_get_attr(new, "__code__");
	if (!lc || !nc)
		goto out;
	lf = pyhot_patch_get_attr(lc, "co_freevars");
	nf = pyhot_patch_get_attr(nc, "co_freevars");
	if (!lf || !nf)
		goto out;
	eq = PyObject_RichCompareBool(lf, nf, Py_EQ);
	if (eq < 0)
		goto out;
	if (!eq) {
		/* 3.13 warns (runs Python) inside the __code__ setter when a
		 * generator becomes a plain function; with the closure already
		 * swapped, a thread could then call old code with a closure of
		 * the wrong size. Such a change is re-bound, not moved. */
		PyObject *lfl = pyhot_patch_get_attr(lc, "co_flags");
		PyObject *nfl = lfl ? pyhot_patch_get_attr(nc, "co_flags") : NULL;
		long diff = nfl ? (PyLong_AsLong(lfl) ^ PyLong_AsLong(nfl)) : 0;

		Py_XDECREF(lfl);
		Py_XDECREF(nfl);
		if (PyErr_Occurred())
			goto out;
		if (diff & (0x20 | 0x80 | 0x200)) {   /* GENERATOR, COROUTINE, ASYNC_GENERATOR */
			rc = 0;
			goto out;
		}
	}
	if (!eq) {
		PyObject *clo = pyhot_patch_get_attr(new, "__closure__");
		Py_ssize_t need = PyTuple_Size(nf);

		if (!clo)
			goto out;
		if ((clo == Py_None ? 0 : PyTuple_Size(clo)) != need) {
			Py_DECREF(clo);
			rc = 0;
			goto out;
		}
		if (pyhot_ops_add(&e->ops, PYHOT_OP_SETCLOSURE, live, NULL, clo) < 0) {
			Py_DECREF(clo);
			goto out;
		}
		Py_DECREF(clo);
	}
	if (lc != nc) {
		int same_bytes = attr_equal(lc, nc, "co_code");
		int same_consts = same_bytes == 1 ? attr_equal(lc, nc, "co_consts") : 0;

		if (same_bytes < 0 || same_consts < 0)
			goto out;
		used += (size_t)snprintf(detail + used, dsize - used, "%s",
					 same_bytes && same_consts ? "lines" : "code");
		if (pyhot_ops_add_attr(&e->ops, PYHOT_OP_SETATTR, live, "__code__", nc) < 0)
			goto out;
		if (codemap_add(e, lc, nc, 0) < 0)
			goto out;
	}
	id = id_of(live);
	if (!id || PySet_Add(e->patched, id) < 0)
		goto out;
	if (live != new && PyList_Append(e->built, new) < 0)
		goto out;
	if (mode == TP_FULL) {
		for (k = 0; attrs[k]; k++) {
			PyObject *nv = pyhot_patch_get_attr(new, attrs[k]);
			PyObject *lv = nv ? pyhot_patch_get_attr(live, attrs[k]) : NULL;
			int same = lv ? (lv == nv ? 1 : PyObject_RichCompareBool(lv, nv, Py_EQ)) : -1;

			if (same < 0)
				PyErr_Clear();   /* uncomparable: set it */
			if (same != 1 && pyhot_ops_add_attr(&e->ops, PYHOT_OP_SETATTR,
							    live, attrs[k], nv) < 0) {
				Py_XDECREF(nv);
				Py_XDECREF(lv);
				goto out;
			}
			if (same != 1 && used < dsize)
				used += (size_t)snprintf(detail + used, dsize - used, "%s%s",
							 used ? ", " : "", attrs[k] + 2);
			Py_XDECREF(nv);
			Py_XDECREF(lv);
		}
		if (used >= 2 && detail[used - 2] == '_')
			detail[used - 2] = '\0';
		/* attributes the new def got from its decorators-free run
		 * (rare); existing ones (set by decorators) stay */
		ndict = pyhot_patch_get_attr(new, "__dict__");
		ldict = ndict ? pyhot_patch_get_attr(live, "__dict__") : NULL;
		if (!ldict)
			goto out;
		if (PyDict_Check(ndict) && PyDict_Size(ndict) > 0) {
			PyObject *k2, *v2;
			Py_ssize_t pos = 0;

			while (PyDict_Next(ndict, &pos, &k2, &v2)) {
				if (pyhot_ops_add(&e->ops, PYHOT_OP_SETITEM, ldict, k2, v2) < 0)
					goto out;
			}
		}
	}
	/* "__defaults__" -> "defaults" in the detail list */
	{
		char *p;

		while ((p = strstr(detail, "__")) != NULL)
			memmove(p, p + 2, strlen(p + 2) + 1);
	}
	if (!detail[0])
		snprintf(detail, dsize, "unchanged");
	rc = 1;
out:
	Py_XDECREF(lc);
	Py_XDECREF(nc);
	Py_XDECREF(lf);
	Py_XDECREF(nf);
	Py_XDECREF(id);
	Py_XDECREF(ndict);
	Py_XDECREF(ldict);
	return rc;
}

static int queue_caches(struct engine *e, PyObject *caches)
{
	Py_ssize_t i, n = PyList_Size(caches);

	for (i = 0; i < n; i++) {
		if (pyhot_ops_add(&e->ops, PYHOT_OP_CLEARCACHE,
				  PyList_GetItem(caches, i), NULL, NULL) < 0)
			return -1;
	}
	return 0;
}

/* Patch the function behind live (decorated or not) with the one behind
 * new. 1 done, 0 no function found on one side, -1 error. */
static int patch_behind(struct engine *e, PyObject *live, PyObject *new,
			PyObject *name, PyObject *old_code, enum tp_mode mode,
			char *detail, size_t dsize)
{
	PyObject *caches = PyList_New(0), *li = NULL, *ni = NULL;
	int rc = -1;

	if (!caches)
		return -1;
	if (find_inner(e, live, name, old_code, caches, &li) < 0 ||
	    find_inner(e, new, name, NULL, NULL, &ni) < 0)
		goto out;
	if (!li || !ni) {
		rc = 0;
		goto out;
	}
	rc = transplant(e, li, ni, mode, detail, dsize);
	if (rc == 1 && mode == TP_FULL && queue_caches(e, caches) < 0)
		rc = -1;
	if (rc == 1 && PyList_Size(caches) > 0 && dsize > strlen(detail) + 16)
		strcat(detail, ", cache cleared");
out:
	Py_XDECREF(caches);
	Py_XDECREF(li);
	Py_XDECREF(ni);
	return rc;
}

/* ----------------------------------------------------------- class bodies */

static const char *member_kind(struct engine *e, PyObject *v)
{
	if (is_a(v, e->t_function))
		return "method";
	if (is_a(v, e->t_classmethod))
		return "classmethod";
	if (is_a(v, e->t_staticmethod))
		return "staticmethod";
	if (is_a(v, e->t_property))
		return "property";
	if (PyType_Check(v))
		return "class";
	return "value";
}

static const char *value_kind(struct engine *e, PyObject *v)
{
	if (is_a(v, e->t_function) || has_plain_attr(v, "__wrapped__"))
		return "function";
	if (PyType_Check(v))
		return "class";
	if (PyObject_TypeCheck(v, &PyModule_Type))
		return "import";
	return "value";
}

static int set_update(PyObject *dst, PyObject *src)
{
	PyObject *it = PyObject_GetIter(src), *x;

	if (!it)
		return -1;
	while ((x = PyIter_Next(it)) != NULL) {
		int r = PySet_Add(dst, x);

		Py_DECREF(x);
		if (r < 0) {
			Py_DECREF(it);
			return -1;
		}
	}
	Py_DECREF(it);
	return PyErr_Occurred() ? -1 : 0;
}

/* Statement info of a body: dump -> list of statements (a multiset to
 * match against), name -> last def/class node, all bound names. */
struct body_info {
	PyObject *dumps;   /* dict */
	PyObject *defs;    /* dict */
	PyObject *bound;   /* set */
};

static void body_info_release(struct body_info *b)
{
	Py_XDECREF(b->dumps);
	Py_XDECREF(b->defs);
	Py_XDECREF(b->bound);
	memset(b, 0, sizeof(*b));
}

static int body_info_make(struct engine *e, PyObject *body, struct body_info *b)
{
	Py_ssize_t i, n = PyList_Size(body);

	memset(b, 0, sizeof(*b));
	b->dumps = PyDict_New();
	b->defs = PyDict_New();
	b->bound = PySet_New(NULL);
	if (!b->dumps || !b->defs || !b->bound)
		return -1;
	for (i = 0; i < n; i++) {
		PyObject *st = PyList_GetItem(body, i);
		PyObject *d = PyObject_CallFunctionObjArgs(e->dump, st, NULL);
		PyObject *lst, *names;
		int r;

		if (!d)
			return -1;
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
		if (PyList_Append(lst, st) < 0)
			return -1;
		if (is_a(st, e->t_FunctionDef) || is_a(st, e->t_AsyncFunctionDef) ||
		    is_a(st, e->t_ClassDef)) {
			PyObject *nm = pyhot_patch_get_attr(st, "name");

			if (!nm)
				return -1;
			r = PyDict_SetItem(b->defs, nm, st);
			Py_DECREF(nm);
			if (r < 0)
				return -1;
		}
		names = bound_names(e, st);
		if (!names)
			return -1;
		r = set_update(b->bound, names);
		Py_DECREF(names);
		if (r < 0)
			return -1;
	}
	return 0;
}

/* The old statement that dumps like st (new reference), taken out of the
 * multiset; NULL without error when st is new or changed. */
static PyObject *body_take(struct engine *e, struct body_info *b, PyObject *st)
{
	PyObject *d, *lst, *old;

	if (!b->dumps)
		return NULL;
	d = PyObject_CallFunctionObjArgs(e->dump, st, NULL);
	if (!d)
		return NULL;
	lst = PyDict_GetItemWithError(b->dumps, d);   /* borrowed */
	Py_DECREF(d);
	if (!lst || PyList_Size(lst) == 0)
		return NULL;
	old = PyList_GetItem(lst, 0);
	Py_INCREF(old);
	if (PySequence_DelItem(lst, 0) < 0) {
		Py_DECREF(old);
		return NULL;
	}
	return old;
}

static int is_def(struct engine *e, PyObject *st)
{
	return is_a(st, e->t_FunctionDef) || is_a(st, e->t_AsyncFunctionDef);
}

/* Statements of body that bind __slots__ (what=0) or annotate a field
 * (what=1). New reference. */
static PyObject *select_stmts(struct engine *e, PyObject *body, int what)
{
	PyObject *out = PyList_New(0), *slots = PyUnicode_FromString("__slots__");
	Py_ssize_t i, n = PyList_Size(body);

	if (!out || !slots)
		goto error;
	for (i = 0; i < n; i++) {
		PyObject *st = PyList_GetItem(body, i);
		int take;

		if (what == 1) {
			take = is_a(st, e->t_AnnAssign);
		} else {
			PyObject *names = bound_names(e, st);

			if (!names)
				goto error;
			take = PySet_Contains(names, slots);
			Py_DECREF(names);
			if (take < 0)
				goto error;
		}
		if (take && PyList_Append(out, st) < 0)
			goto error;
	}
	Py_DECREF(slots);
	return out;
error:
	Py_XDECREF(out);
	Py_XDECREF(slots);
	return NULL;
}

static int lists_dump_equal(struct engine *e, PyObject *a, PyObject *b)
{
	Py_ssize_t i, n = PyList_Size(a);
	int rc = 1;

	if (n != PyList_Size(b))
		return 0;
	for (i = 0; i < n && rc == 1; i++)
		rc = dump_equal(e, PyList_GetItem(a, i), PyList_GetItem(b, i));
	return rc;
}

/* Whether a changed class statement can be applied to the live class in
 * place. 1 yes, 0 no (*why says why), -1 error. */
static int class_in_place(struct engine *e, PyObject *live, PyObject *ncd,
			  PyObject *ocd, const char **why)
{
	static const char *const fields[] = { "bases", "keywords", "decorator_list", NULL };
	PyObject *nb = NULL, *ob = NULL, *a = NULL, *b = NULL;
	int k, r, rc = -1;

	*why = "";
	if (!PyType_Check(live)) {
		*why = "the live object is not a class";
		return 0;
	}
	{
		/* the name may be bound to some other class by now */
		PyObject *q = plain_attr(live, "__name__"), *n = getattr_opt(ncd, "name");
		int same = q && n ? PyObject_RichCompareBool(q, n, Py_EQ) : 0;

		Py_XDECREF(q);
		Py_XDECREF(n);
		if (same < 0)
			return -1;
		if (!same) {
			*why = "the name is bound to another class";
			return 0;
		}
	}
	if (!ocd) {
		return 1;   /* no baseline: assume the header did not change */
	}
	for (k = 0; fields[k]; k++) {
		r = field_equal(e, ncd, ocd, fields[k]);
		if (r <= 0) {
			*why = k == 0 ? "bases changed" : k == 1 ? "metaclass or class keywords changed" :
			       "class decorators changed";
			return r;
		}
	}
	nb = pyhot_patch_get_attr(ncd, "body");
	ob = pyhot_patch_get_attr(ocd, "body");
	if (!nb || !ob)
		goto out;
	a = select_stmts(e, nb, 0);
	b = select_stmts(e, ob, 0);
	if (!a || !b)
		goto out;
	r = lists_dump_equal(e, a, b);
	if (r <= 0) {
		*why = "__slots__ layout changed";
		rc = r;
		goto out;
	}
	if (has_attr(live, "__dataclass_fields__")) {
		Py_DECREF(a);
		Py_DECREF(b);
		a = select_stmts(e, nb, 1);
		b = select_stmts(e, ob, 1);
		if (!a || !b)
			goto out;
		r = lists_dump_equal(e, a, b);
		if (r < 0)
			goto out;
		if (r == 0) {
			/* Fields changed: the class stays, the methods the
			 * decorator generates are taken from a throwaway
			 * class (see dataclass_regen()). Not with __slots__:
			 * a new field needs a new layout. */
			*why = "dataclass fields changed on a __slots__ class";
			rc = has_attr(live, "__slots__") ? 0 : 2;
			goto out;
		}
	}
	rc = 1;
out:
	Py_XDECREF(nb);
	Py_XDECREF(ob);
	Py_XDECREF(a);
	Py_XDECREF(b);
	return rc;
}

/* The live functions behind a class member (function, classmethod,
 * staticmethod, property accessors), appended to out. */
static int member_functions(struct engine *e, PyObject *v, PyObject *out)
{
	static const char *const acc[] = { "fget", "fset", "fdel", NULL };
	int k;

	if (is_a(v, e->t_function))
		return PyList_Append(out, v);
	if (is_a(v, e->t_classmethod) || is_a(v, e->t_staticmethod)) {
		PyObject *f = pyhot_patch_get_attr(v, "__func__");
		int r = f ? member_functions(e, f, out) : -1;

		Py_XDECREF(f);
		return r;
	}
	if (is_a(v, e->t_property)) {
		for (k = 0; acc[k]; k++) {
			PyObject *f = pyhot_patch_get_attr(v, acc[k]);
			int r = f ? (f == Py_None ? 0 : member_functions(e, f, out)) : -1;

			Py_XDECREF(f);
			if (r < 0)
				return -1;
		}
	}
	return 0;
}

/* Give the functions of an unchanged class that moved in the file the code
 * compiled at the new lines (same bytecode), so that tracebacks and
 * inspect.getsource stay right. Nested classes recursively. */
static int relocate_class(struct engine *e, PyObject *live, PyObject *body_code,
			  int depth)
{
	PyObject *d = NULL, *items = NULL, *consts = NULL, *fns = NULL;
	Py_ssize_t i, n, j, nc;
	int rc = -1;

	if (depth > 8)
		return 0;
	d = pyhot_patch_get_attr(live, "__dict__");
	consts = pyhot_patch_get_attr(body_code, "co_consts");
	if (!d || !consts)
		goto out;
	items = PyMapping_Items(d);
	if (!items)
		goto out;
	n = PyList_Size(items);
	nc = PyTuple_Size(consts);
	for (i = 0; i < n; i++) {
		PyObject *key = PyTuple_GetItem(PyList_GetItem(items, i), 0);
		PyObject *val = PyTuple_GetItem(PyList_GetItem(items, i), 1);
		Py_ssize_t f, nf;

		if (PyType_Check(val)) {
			PyObject *sub = code_const(e, body_code, key);

			if (!sub && PyErr_Occurred())
				goto out;
			if (sub) {
				int r = relocate_class(e, val, sub, depth + 1);

				Py_DECREF(sub);
				if (r < 0)
					goto out;
			}
			continue;
		}
		Py_XDECREF(fns);
		fns = PyList_New(0);
		if (!fns || member_functions(e, val, fns) < 0)
			goto out;
		nf = PyList_Size(fns);
		for (f = 0; f < nf; f++) {
			PyObject *fn = PyList_GetItem(fns, f);
			PyObject *lc = pyhot_patch_get_attr(fn, "__code__");

			if (!lc)
				goto out;
			for (j = 0; j < nc; j++) {
				PyObject *c = PyTuple_GetItem(consts, j);
				int same;

				if (!is_a(c, e->t_code) || c == lc)
					continue;
				same = attr_equal(lc, c, "co_name");
				if (same == 1)
					same = attr_equal(lc, c, "co_code");
				if (same == 1)
					same = attr_equal(lc, c, "co_freevars");
				if (same == 1)
					same = !attr_equal(lc, c, "co_firstlineno");
				if (same < 0) {
					Py_DECREF(lc);
					goto out;
				}
				if (same) {
					if (pyhot_ops_add_attr(&e->ops, PYHOT_OP_SETATTR, fn,
							       "__code__", c) < 0) {
						Py_DECREF(lc);
						goto out;
					}
					break;
				}
			}
			Py_DECREF(lc);
		}
	}
	rc = 0;
out:
	Py_XDECREF(d);
	Py_XDECREF(items);
	Py_XDECREF(consts);
	Py_XDECREF(fns);
	return rc;
}

/* The body code of a class statement, compiled without its header
 * (bases, keywords and decorators are not evaluated). */
static PyObject *class_body_code(struct engine *e, PyObject *cd, PyObject *body)
{
	PyObject *cd2 = node_stripped(e, cd, strip_class), *code = NULL, *name = NULL;
	PyObject *bc = NULL;

	if (!cd2)
		return NULL;
	if (body && set_attr(cd2, "body", body) < 0)
		goto out;
	code = compile_stmt(e, cd2);
	name = code ? pyhot_patch_get_attr(cd, "name") : NULL;
	if (!name)
		goto out;
	bc = code_const(e, code, name);
	if (!bc && !PyErr_Occurred())
		PyErr_SetString(PyExc_RuntimeError, "class body code not found");
out:
	Py_XDECREF(cd2);
	Py_XDECREF(code);
	Py_XDECREF(name);
	return bc;
}

static int relocate_stmt(struct engine *e, PyObject *st, PyObject *live)
{
	PyObject *name = NULL, *code = NULL, *bare = NULL, *fc = NULL, *inner = NULL;
	int rc = -1;

	if (!live)
		return 0;
	if (is_a(st, e->t_ClassDef)) {
		if (!PyType_Check(live))
			return 0;
		code = class_body_code(e, st, NULL);
		if (!code)
			return -1;
		rc = relocate_class(e, live, code, 0);
		if (rc == 0)
			rc = queue_firstlineno(e, live, st);
		Py_DECREF(code);
		return rc;
	}
	name = pyhot_patch_get_attr(st, "name");
	bare = name ? node_stripped(e, st, strip_decorators) : NULL;
	code = bare ? compile_stmt(e, bare) : NULL;
	fc = code ? code_const(e, code, name) : NULL;
	if (!fc)
		goto out;
	if (find_inner(e, live, name, fc, NULL, &inner) < 0)
		goto out;
	rc = 0;
	if (inner) {
		PyObject *lc = pyhot_patch_get_attr(inner, "__code__");
		int same = lc ? attr_equal(lc, fc, "co_code") : -1;

		if (same == 1)
			same = attr_equal(lc, fc, "co_freevars");
		Py_XDECREF(lc);
		if (same < 0)
			rc = -1;
		else if (same && pyhot_ops_add_attr(&e->ops, PYHOT_OP_SETATTR, inner,
						    "__code__", fc) < 0)
			rc = -1;
	}
out:
	Py_XDECREF(name);
	Py_XDECREF(bare);
	Py_XDECREF(code);
	Py_XDECREF(fc);
	Py_XDECREF(inner);
	if (rc < 0 && !PyErr_Occurred())
		rc = 0;
	return rc;
}

/* The new value replaces the live one; lists, dicts and sets of the same
 * type keep their identity and get the new contents. */
static int queue_replace(struct engine *e, PyObject *owner, int is_class,
			 PyObject *name, PyObject *livev, PyObject *newv, int *in_place)
{
	*in_place = 0;
	if (livev && livev != newv && Py_TYPE(livev) == Py_TYPE(newv) &&
	    (PyList_CheckExact(newv) || PyDict_CheckExact(newv) ||
	     PyObject_TypeCheck(newv, &PySet_Type))) {
		*in_place = 1;
		return pyhot_ops_add(&e->ops, PYHOT_OP_REPLACE, livev, NULL, newv);
	}
	return pyhot_ops_add(&e->ops, is_class ? PYHOT_OP_SETATTR : PYHOT_OP_SETITEM,
			     owner, name, newv);
}

static int enum_add(struct engine *e, PyObject *live, PyObject *ncd,
		    PyObject *name, PyObject **tmpcls, const char *qn)
{
	PyObject *cd = NULL, *code = NULL, *tmp = NULL, *map = NULL, *member = NULL;
	PyObject *value = NULL, *v2m = NULL, *names = NULL, *livemap = NULL;
	int rc = -1;

	if (!*tmpcls) {
		/* A throwaway class made by the real Enum machinery gives the
		 * new member; it is then moved into the live class. */
		cd = node_stripped(e, ncd, strip_decorators);
		code = cd ? compile_stmt(e, cd) : NULL;
		tmp = code ? scratch_ns(e) : NULL;
		if (!tmp)
			goto out;
		value = PyEval_EvalCode(code, e->G, tmp);
		if (!value)
			goto out;
		Py_CLEAR(value);
		{
			PyObject *cn = pyhot_patch_get_attr(ncd, "name");

			*tmpcls = cn ? PyObject_GetItem(tmp, cn) : NULL;
			Py_XDECREF(cn);
		}
		if (!*tmpcls)
			goto out;
	}
	map = pyhot_patch_get_attr(*tmpcls, "_member_map_");
	member = map ? PyObject_GetItem(map, name) : NULL;
	if (!member)
		goto out;
	value = pyhot_patch_get_attr(member, "_value_");
	livemap = pyhot_patch_get_attr(live, "_member_map_");
	v2m = pyhot_patch_get_attr(live, "_value2member_map_");
	names = pyhot_patch_get_attr(live, "_member_names_");
	if (!value || !livemap || !v2m || !names)
		goto out;
	if (pyhot_ops_add_attr(&e->ops, PYHOT_OP_SETATTR, member, "__class__", live) < 0 ||
	    pyhot_ops_add(&e->ops, PYHOT_OP_SETATTR, live, name, member) < 0 ||
	    pyhot_ops_add(&e->ops, PYHOT_OP_SETITEM, livemap, name, member) < 0)
		goto out;
	if (PyObject_Hash(value) == -1)
		PyErr_Clear();   /* unhashable values are looked up linearly */
	else if (pyhot_ops_add(&e->ops, PYHOT_OP_SETITEM, v2m, value, member) < 0)
		goto out;
	if (PyList_Check(names) &&
	    pyhot_ops_add(&e->ops, PYHOT_OP_APPEND, names, NULL, name) < 0)
		goto out;
	rc = change_add(e, "added", "value", qn, "enum member");
out:
	Py_XDECREF(cd);
	Py_XDECREF(code);
	Py_XDECREF(tmp);
	Py_XDECREF(map);
	Py_XDECREF(member);
	Py_XDECREF(value);
	Py_XDECREF(v2m);
	Py_XDECREF(names);
	Py_XDECREF(livemap);
	return rc;
}

static int is_enum_member_candidate(struct engine *e, PyObject *name, PyObject *v)
{
	char n[256];
	size_t len;

	if (pyhot_patch_utf8(name, n, sizeof(n)) < 0) {
		PyErr_Clear();
		return 0;
	}
	len = strlen(n);
	if (len >= 2 && n[0] == '_' && n[len - 1] == '_')
		return 0;   /* _sunder_ and __dunder__ names are not members */
	if (is_a(v, e->t_function) || is_a(v, e->t_classmethod) ||
	    is_a(v, e->t_staticmethod) || is_a(v, e->t_property) || PyType_Check(v))
		return 0;
	return 1;
}

static int patch_class(struct engine *e, PyObject *live, PyObject *ncd,
		       PyObject *ocd, const char *qual, int regen);

/* A changed member of a class. */
static int patch_member(struct engine *e, PyObject *live, PyObject *name,
			PyObject *livev, PyObject *newv, PyObject *st,
			PyObject *odef, const char *qn)
{
	static const char *const acc[] = { "fget", "fset", "fdel", NULL };
	char detail[256];
	int same = 0, r, k, in_place;

	if (odef && is_def(e, st) && Py_TYPE(st) == Py_TYPE(odef)) {
		same = field_equal(e, st, odef, "decorator_list");
		if (same < 0)
			return -1;
	}
	if (same && is_a(livev, e->t_property) && is_a(newv, e->t_property)) {
		PyObject *lp[3] = { NULL, NULL, NULL }, *np[3] = { NULL, NULL, NULL };
		int ok = 1;

		for (k = 0; acc[k]; k++) {
			lp[k] = pyhot_patch_get_attr(livev, acc[k]);
			np[k] = pyhot_patch_get_attr(newv, acc[k]);
			if (!lp[k] || !np[k])
				ok = -1;
			else if ((lp[k] == Py_None) != (np[k] == Py_None))
				ok = ok < 0 ? ok : 0;
		}
		for (k = 0; ok == 1 && acc[k]; k++) {
			if (lp[k] == Py_None)
				continue;
			r = patch_behind(e, lp[k], np[k], name, NULL, TP_FULL,
					 detail, sizeof(detail));
			if (r <= 0)
				ok = r;
		}
		for (k = 0; k < 3; k++) {
			Py_XDECREF(lp[k]);
			Py_XDECREF(np[k]);
		}
		if (ok < 0)
			return -1;
		if (ok == 1)
			return change_add(e, "changed", "property", qn, "accessors");
	} else if (same) {
		r = patch_behind(e, livev, newv, name, NULL, TP_FULL, detail,
				 sizeof(detail));
		if (r < 0)
			return -1;
		if (r == 1)
			return change_add(e, "changed", member_kind(e, newv), qn, "%s", detail);
	}
	if (queue_replace(e, live, 1, name, livev, newv, &in_place) < 0)
		return -1;
	if (strcmp(member_kind(e, livev), member_kind(e, newv)) != 0)
		return change_add(e, "changed", member_kind(e, newv), qn, "was a %s",
				  member_kind(e, livev));
	return change_add(e, "changed", member_kind(e, newv), qn, "%s",
			  in_place ? "updated in place" : "replaced");
}

/*
 * A dataclass whose fields changed: the generated methods (__init__,
 * __repr__, __eq__, ordering, __hash__) and the field tables come from a
 * throwaway class made by the real statement, decorators included. The
 * frozen __setattr__/__delattr__ stay: they name their own class. New
 * fields' defaults are class attributes, so existing instances read them.
 */
static int dataclass_regen(struct engine *e, PyObject *live, PyObject *ncd,
			   const char *qual)
{
	static const char *const gen[] = {
		"__init__", "__repr__", "__eq__", "__hash__", "__lt__", "__le__",
		"__gt__", "__ge__", "__dataclass_fields__", "__dataclass_params__",
		"__match_args__", "__annotations__", NULL };
	PyObject *code = NULL, *tmp = NULL, *res = NULL, *cn = NULL, *t = NULL;
	PyObject *d = NULL;
	int k, rc = -1;

	code = compile_stmt(e, ncd);
	tmp = code ? scratch_ns(e) : NULL;
	if (!tmp)
		goto out;
	res = PyEval_EvalCode(code, e->G, tmp);
	cn = res ? pyhot_patch_get_attr(ncd, "name") : NULL;
	t = cn ? PyObject_GetItem(tmp, cn) : NULL;
	d = t ? pyhot_patch_get_attr(t, "__dict__") : NULL;
	if (!d)
		goto out;
	for (k = 0; gen[k]; k++) {
		PyObject *v = PyMapping_GetItemString(d, gen[k]);

		if (!v) {
			PyErr_Clear();
			continue;
		}
		if (pyhot_ops_add_attr(&e->ops, PYHOT_OP_SETATTR, live, gen[k], v) < 0) {
			Py_DECREF(v);
			goto out;
		}
		Py_DECREF(v);
	}
	rc = change_add(e, "changed", "class", qual,
			"dataclass fields changed: generated methods renewed");
out:
	Py_XDECREF(code);
	Py_XDECREF(tmp);
	Py_XDECREF(res);
	Py_XDECREF(cn);
	Py_XDECREF(t);
	Py_XDECREF(d);
	return rc;
}

static int patch_class(struct engine *e, PyObject *live, PyObject *ncd,
		       PyObject *ocd, const char *qual, int regen)
{
	struct body_info oi = { NULL, NULL, NULL };
	PyObject *nbody = NULL, *obody = NULL, *body2 = NULL, *nested = NULL;
	PyObject *bcode = NULL, *ns = NULL, *res = NULL, *cell = NULL;
	PyObject *newbound = NULL, *tmpcls = NULL, *removed = NULL, *it = NULL, *x;
	PyObject *nd = NULL, *od = NULL, *memmap = NULL;
	Py_ssize_t i, n;
	int rc = -1, is_enum = 0;
	char qn[1024];

	nbody = pyhot_patch_get_attr(ncd, "body");
	obody = ocd ? pyhot_patch_get_attr(ocd, "body") : PyList_New(0);
	if (!nbody || !obody || body_info_make(e, obody, &oi) < 0)
		goto out;
	body2 = PyList_New(0);
	nested = PyList_New(0);
	newbound = PySet_New(NULL);
	if (!body2 || !nested || !newbound)
		goto out;
	/* Nested classes that exist live are patched on their own: their
	 * statement becomes `pass` in the body that runs here. */
	n = PyList_Size(nbody);
	for (i = 0; i < n; i++) {
		PyObject *st = PyList_GetItem(nbody, i);

		if (is_a(st, e->t_ClassDef)) {
			PyObject *nm = pyhot_patch_get_attr(st, "name");
			PyObject *ost = nm ? PyDict_GetItemWithError(oi.defs, nm) : NULL;
			PyObject *ln = NULL;
			const char *why;
			int ok = 0;

			if (!nm || PyErr_Occurred()) {
				Py_XDECREF(nm);
				goto out;
			}
			if ((ost && is_a(ost, e->t_ClassDef)) || !ocd)
				ln = own_attr(live, nm);
			if (PyErr_Occurred()) {
				Py_DECREF(nm);
				goto out;
			}
			if (ln)
				ok = class_in_place(e, ln, st, ocd ? ost : NULL, &why);
			if (ok == 2)
				ok = 0;   /* nested dataclass with new fields: remade */
			if (ok == 1) {
				PyObject *t = PyTuple_Pack(3, st, ost ? ost : Py_None, ln);
				PyObject *p0 = PyObject_CallFunctionObjArgs(e->Pass, NULL);
				PyObject *p = p0 ? PyObject_CallFunctionObjArgs(e->copy_location,
									      p0, st, NULL) : NULL;

				Py_XDECREF(p0);
				ok = t && p && PyList_Append(nested, t) == 0 &&
				     PyList_Append(body2, p) == 0;
				Py_XDECREF(t);
				Py_XDECREF(p);
				Py_XDECREF(ln);
				Py_DECREF(nm);
				if (!ok)
					goto out;
				continue;
			}
			Py_XDECREF(ln);
			Py_DECREF(nm);
			if (ok < 0)
				goto out;
		}
		if (PyList_Append(body2, st) < 0)
			goto out;
	}
	if (PyList_Size(body2) == 0) {
		PyObject *p = PyObject_CallFunctionObjArgs(e->Pass, NULL);

		if (!p || PyList_Append(body2, p) < 0) {
			Py_XDECREF(p);
			goto out;
		}
		Py_DECREF(p);
	}
	bcode = class_body_code(e, ncd, body2);
	if (!bcode)
		goto out;
	/* The body runs with the live module dict as globals, so that the
	 * functions it makes have the right __globals__, and a fresh dict as
	 * its namespace: no class is made. */
	ns = scratch_ns(e);
	if (!ns)
		goto out;
	e->cur_line = node_line(ncd);
	res = PyEval_EvalCode(bcode, e->G, ns);
	if (!res)
		goto out;
	cell = is_a(res, e->t_cell) ? res : PyDict_GetItemString(ns, "__classcell__");
	if (cell && set_attr(cell, "cell_contents", live) < 0)
		goto out;   /* a fresh cell: methods using super() see the live class */
	if (PyDict_GetItemString(ns, "__classcell__") &&
	    PyDict_DelItemString(ns, "__classcell__") < 0)
		goto out;
	if (e->enummeta) {
		is_enum = PyObject_IsInstance(live, e->enummeta);
		if (is_enum < 0)
			goto out;
		if (is_enum && !(memmap = pyhot_patch_get_attr(live, "_member_map_")))
			goto out;
	}
	if (change_add(e, "changed", "class", qual[0] ? qual : "?", "in place") < 0)
		goto out;
	/* the report line above names the class; qual is "<module>.<qual>" */
	for (i = 0; i < n; i++) {
		PyObject *st = PyList_GetItem(nbody, i), *names, *same_old;
		int skip = 0, moved;
		Py_ssize_t j, nn = PyList_Size(nested);

		for (j = 0; j < nn; j++)
			skip |= PyTuple_GetItem(PyList_GetItem(nested, j), 0) == st;
		names = bound_names(e, st);
		if (!names || set_update(newbound, names) < 0) {
			Py_XDECREF(names);
			goto out;
		}
		if (skip) {
			Py_DECREF(names);
			continue;
		}
		same_old = ocd ? body_take(e, &oi, st) : NULL;
		if (PyErr_Occurred()) {
			Py_DECREF(names);
			goto out;
		}
		moved = same_old && node_line(same_old) != node_line(st);
		it = PyObject_GetIter(names);
		Py_DECREF(names);
		if (!it) {
			Py_XDECREF(same_old);
			goto out;
		}
		while ((x = PyIter_Next(it)) != NULL) {
			PyObject *newv = PyDict_GetItemWithError(ns, x);
			PyObject *livev = NULL;
			char nm[256];
			int r = 0;

			if (pyhot_patch_utf8(x, nm, sizeof(nm)) < 0)
				snprintf(nm, sizeof(nm), "?");
			snprintf(qn, sizeof(qn), "%s.%s", qual, nm);
			if (!newv) {
				Py_DECREF(x);
				if (PyErr_Occurred())
					break;
				continue;
			}
			Py_INCREF(newv);
			livev = own_attr(live, x);
			if (PyErr_Occurred()) {
				r = -1;
			} else if (same_old && !ocd) {
				r = 0;
			} else if (same_old) {
				char d[64];

				if (moved && livev && is_def(e, st))
					r = patch_behind(e, livev, newv, x, NULL, TP_CODE_ONLY,
							 d, sizeof(d)) < 0 ? -1 : 0;
			} else if (!livev) {
				if (is_enum && is_enum_member_candidate(e, x, newv)) {
					r = enum_add(e, live, ncd, x, &tmpcls, qn);
				} else {
					r = pyhot_ops_add(&e->ops, PYHOT_OP_SETATTR, live, x, newv);
					if (r == 0)
						r = change_add(e, "added", member_kind(e, newv), qn, NULL);
				}
			} else if (is_enum && PyMapping_HasKey(memmap, x)) {
				r = change_add(e, "failed", "value", qn,
					       "a changed enum member value is not applied");
			} else {
				PyObject *odef = PyDict_GetItemWithError(oi.defs, x);

				r = PyErr_Occurred() ? -1 :
				    patch_member(e, live, x, livev, newv, st, odef, qn);
			}
			Py_XDECREF(livev);
			Py_DECREF(newv);
			Py_DECREF(x);
			if (r < 0)
				break;
		}
		Py_CLEAR(it);
		Py_XDECREF(same_old);
		if (PyErr_Occurred())
			goto out;
	}
	/* Removed members: bound by the old body, not by the new one. */
	if (ocd) {
		removed = PyNumber_Subtract(oi.bound, newbound);
		it = removed ? PyObject_GetIter(removed) : NULL;
		if (!it)
			goto out;
		while ((x = PyIter_Next(it)) != NULL) {
			PyObject *livev = own_attr(live, x);
			char nm[256];
			int r = 0;

			if (livev) {
				if (pyhot_patch_utf8(x, nm, sizeof(nm)) < 0)
					snprintf(nm, sizeof(nm), "?");
				snprintf(qn, sizeof(qn), "%s.%s", qual, nm);
				r = pyhot_ops_add(&e->ops, PYHOT_OP_DELATTR, live, x, NULL);
				if (r == 0)
					r = change_add(e, "removed", member_kind(e, livev), qn, NULL);
				Py_DECREF(livev);
			}
			Py_DECREF(x);
			if (r < 0 || PyErr_Occurred())
				goto out;
		}
		Py_CLEAR(it);
		/* docstring */
		nd = PyObject_CallFunction(e->get_docstring, "Oi", ncd, 0);
		od = nd ? PyObject_CallFunction(e->get_docstring, "Oi", ocd, 0) : NULL;
		if (!od)
			goto out;
		if (PyObject_RichCompareBool(nd, od, Py_NE) == 1 &&
		    pyhot_ops_add_attr(&e->ops, PYHOT_OP_SETATTR, live, "__doc__", nd) < 0)
			goto out;
		PyErr_Clear();
	}
	if (queue_firstlineno(e, live, ncd) < 0)
		goto out;
	/* Nested classes. */
	n = PyList_Size(nested);
	for (i = 0; i < n; i++) {
		PyObject *t = PyList_GetItem(nested, i);
		PyObject *st = PyTuple_GetItem(t, 0), *ost = PyTuple_GetItem(t, 1);
		PyObject *ln = PyTuple_GetItem(t, 2), *nm;
		char sub[1024], name[256];
		int same, r;

		if (ost == Py_None)
			ost = NULL;
		same = ost ? dump_equal(e, st, ost) : 0;
		if (same < 0)
			goto out;
		nm = pyhot_patch_get_attr(st, "name");
		if (!nm || pyhot_patch_utf8(nm, name, sizeof(name)) < 0) {
			Py_XDECREF(nm);
			goto out;
		}
		Py_DECREF(nm);
		snprintf(sub, sizeof(sub), "%s.%s", qual, name);
		if (same)
			r = node_line(st) != node_line(ost) ? relocate_stmt(e, st, ln) : 0;
		else
			r = patch_class(e, ln, st, ost, sub, 0);
		if (r < 0)
			goto out;
	}
	if (regen && dataclass_regen(e, live, ncd, qual) < 0)
		goto out;
	rc = 0;
out:
	body_info_release(&oi);
	Py_XDECREF(nbody);
	Py_XDECREF(obody);
	Py_XDECREF(body2);
	Py_XDECREF(nested);
	Py_XDECREF(bcode);
	Py_XDECREF(ns);
	Py_XDECREF(res);
	Py_XDECREF(newbound);
	Py_XDECREF(tmpcls);
	Py_XDECREF(removed);
	Py_XDECREF(it);
	Py_XDECREF(nd);
	Py_XDECREF(od);
	Py_XDECREF(memmap);
	return rc;
}

/* ---------------------------------------------------------- module level */

/* Functions reachable from the module (globals, its classes, closure cells
 * and __wrapped__ chains, small containers) still running code that a
 * patched function's code contained (a decorator's wrapper, a closure made
 * by a factory) follow the new code when their free variables still fit.
 * Bounded by what the module holds, never by the heap. */
static int follow_codes(struct engine *e)
{
	PyObject *stack = NULL, *seen = NULL, *users = NULL;
	Py_ssize_t visits = 0;
	int rc = -1;

	if (PyDict_Size(e->codemap) == 0)
		return 0;
	stack = PyDict_Values(e->G);
	seen = PySet_New(NULL);
	users = PySet_New(NULL);
	if (!stack || !seen || !users || PySet_Add(users, e->modname) < 0)
		goto out;
	/* A decorator changed here may wrap functions of any user module:
	 * their globals are roots too (user code, never the heap). */
	{
		struct pyhot_baseline *b;
		PyObject *mods = PyImport_GetModuleDict();

		for (b = pyhot_baseline_find_first(); b && mods; b = b->next) {
			PyObject *mod = PyDict_GetItemString(mods, b->module);
			PyObject *nm, *d, *vals, *res;

			if (!mod || !PyObject_TypeCheck(mod, &PyModule_Type) ||
			    strcmp(b->module, e->mp->module) == 0)
				continue;
			nm = PyUnicode_FromString(b->module);
			if (!nm || PySet_Add(users, nm) < 0) {
				Py_XDECREF(nm);
				goto out;
			}
			Py_DECREF(nm);
			d = PyModule_GetDict(mod);   /* borrowed */
			vals = d ? PyDict_Values(d) : NULL;
			if (!vals)
				goto out;
			res = PySequence_InPlaceConcat(stack, vals);   /* stack itself */
			Py_DECREF(vals);
			if (!res)
				goto out;
			Py_DECREF(res);
		}
	}
	while (PyList_Size(stack) > 0 && visits++ < 200000) {
		Py_ssize_t last = PyList_Size(stack) - 1;
		PyObject *o = PyList_GetItem(stack, last), *id, *push = NULL;
		int r;

		Py_INCREF(o);
		if (PySequence_DelItem(stack, last) < 0) {
			Py_DECREF(o);
			goto out;
		}
		id = id_of(o);
		r = id ? PySet_Contains(seen, id) : -1;
		if (r == 0)
			r = PySet_Add(seen, id);
		else if (r == 1)
			r = 2;
		Py_XDECREF(id);
		if (r != 0) {
			Py_DECREF(o);
			if (r < 0)
				goto out;
			continue;
		}
		if (is_a(o, e->t_function)) {
			PyObject *code = pyhot_patch_get_attr(o, "__code__");
			PyObject *cid = code ? id_of(code) : NULL;
			PyObject *fid = cid ? id_of(o) : NULL;
			PyObject *pair = fid ? PyDict_GetItemWithError(e->codemap, cid) : NULL;
			int done = pair ? PySet_Contains(e->patched, fid) : 0;

			Py_XDECREF(code);
			Py_XDECREF(cid);
			if (PyErr_Occurred() || done < 0) {
				Py_XDECREF(fid);
				Py_DECREF(o);
				goto out;
			}
			if (pair && !done) {
				PyObject *nc = PyTuple_GetItem(pair, 1);
				PyObject *oc = PyTuple_GetItem(pair, 0);
				PyObject *qn = pyhot_patch_get_attr(o, "__qualname__");
				char q[512], full[1024];
				int fits = attr_equal(oc, nc, "co_freevars");

				if (!qn || pyhot_patch_utf8(qn, q, sizeof(q)) < 0)
					snprintf(q, sizeof(q), "?");
				PyErr_Clear();
				Py_XDECREF(qn);
				snprintf(full, sizeof(full), "%s.%s", e->mp->module, q);
				if (fits < 0) {
					Py_DECREF(fid);
					Py_DECREF(o);
					goto out;
				}
				if (fits) {
					r = pyhot_ops_add_attr(&e->ops, PYHOT_OP_SETATTR, o,
							       "__code__", nc);
					if (r == 0)
						r = PySet_Add(e->patched, fid);
					if (r == 0)
						r = change_add(e, "changed", "function", full,
							       "follows the new code of its maker");
				} else {
					r = change_add(e, "kept", "function", full,
						       "free variables changed: keeps its code; "
						       "closures made from now on run the new code");
				}
				if (r < 0) {
					Py_DECREF(fid);
					Py_DECREF(o);
					goto out;
				}
			}
			Py_XDECREF(fid);
			push = PyList_New(0);
			if (push) {
				PyObject *clo = pyhot_patch_get_attr(o, "__closure__");
				PyObject *w = plain_attr(o, "__wrapped__");
				Py_ssize_t i, n;

				if (clo && clo != Py_None) {
					n = PyTuple_Size(clo);
					for (i = 0; i < n; i++) {
						PyObject *c = getattr_opt(PyTuple_GetItem(clo, i),
									  "cell_contents");
						if (c) {
							PyList_Append(push, c);
							Py_DECREF(c);
						}
						PyErr_Clear();
					}
				}
				if (w) {
					PyList_Append(push, w);
					Py_DECREF(w);
				}
				Py_XDECREF(clo);
				PyErr_Clear();
			}
		} else if (PyType_Check(o)) {
			PyObject *m = plain_attr(o, "__module__");
			int mine = m && PyUnicode_Check(m) ? PySet_Contains(users, m) : 0;

			Py_XDECREF(m);
			PyErr_Clear();
			if (mine == 1) {
				PyObject *d = pyhot_patch_get_attr(o, "__dict__");

				push = d ? PyMapping_Values(d) : NULL;
				Py_XDECREF(d);
			}
		} else if (is_a(o, e->t_classmethod) || is_a(o, e->t_staticmethod) ||
			   is_a(o, e->t_property)) {
			push = PyList_New(0);
			if (push && member_functions(e, o, push) < 0)
				Py_CLEAR(push);
		} else if (PyObject_TypeCheck(o, &PyModule_Type)) {
			/* other modules are theirs */
		} else if ((PyList_Check(o) || PyTuple_Check(o)) &&
			   PySequence_Size(o) <= 10000) {
			push = PySequence_List(o);
		} else if (PyDict_Check(o) && PyDict_Size(o) <= 10000) {
			push = PyDict_Values(o);
		} else if (!PyUnicode_Check(o) && !PyLong_Check(o) && !PyBytes_Check(o)) {
			PyObject *w = plain_attr(o, "__wrapped__");

			PyErr_Clear();
			if (w) {
				push = PyList_New(0);
				if (push)
					PyList_Append(push, w);
				Py_DECREF(w);
			}
		}
		PyErr_Clear();
		Py_DECREF(o);
		if (push) {
			Py_ssize_t i, n = PyList_Size(push);

			for (i = 0; i < n; i++) {
				if (PyList_Append(stack, PyList_GetItem(push, i)) < 0) {
					Py_DECREF(push);
					goto out;
				}
			}
			Py_DECREF(push);
		}
	}
	rc = 0;
out:
	Py_XDECREF(stack);
	Py_XDECREF(seen);
	Py_XDECREF(users);
	return rc;
}

/* A changed def whose decorators did not change. 1 done, 0 re-run it. */
static int plan_def(struct engine *e, PyObject *st, PyObject *ost,
		    PyObject *live, PyObject *name, const char *qn)
{
	PyObject *bare = NULL, *code = NULL, *tmp = NULL, *res = NULL, *newf;
	PyObject *obare = NULL, *ocode = NULL, *old_code = NULL, *decos = NULL;
	char detail[256];
	int rc = -1, r, undecorated;

	if (ost) {
		r = field_equal(e, st, ost, "decorator_list");
		if (r <= 0)
			return r;
	}
	decos = pyhot_patch_get_attr(st, "decorator_list");
	if (!decos)
		return -1;
	undecorated = PyList_Size(decos) == 0;
	Py_DECREF(decos);
	bare = node_stripped(e, st, strip_decorators);
	code = bare ? compile_stmt(e, bare) : NULL;
	tmp = code ? scratch_ns(e) : NULL;
	if (!tmp)
		goto out;
	e->cur_line = node_line(st);
	res = PyEval_EvalCode(code, e->G, tmp);   /* evaluates defaults only */
	if (!res)
		goto out;
	newf = PyDict_GetItemWithError(tmp, name);   /* borrowed */
	if (!newf)
		goto out;
	if (ost) {
		/* the baseline's code tells same-named functions apart */
		obare = node_stripped(e, ost, strip_decorators);
		ocode = obare ? compile_stmt(e, obare) : NULL;
		old_code = ocode ? code_const(e, ocode, name) : NULL;
		PyErr_Clear();
	}
	r = patch_behind(e, live, newf, name, old_code, TP_FULL, detail, sizeof(detail));
	if (r <= 0) {
		rc = r;
		goto out;
	}
	/* Later statements of this run see the new behaviour; the live name
	 * keeps the live object. */
	if (PySet_Add(e->inplace, name) < 0 ||
	    (undecorated && PyDict_SetItem(e->L, name, newf) < 0))
		goto out;
	rc = change_add(e, "changed", "function", qn, "%s", detail) < 0 ? -1 : 1;
out:
	Py_XDECREF(bare);
	Py_XDECREF(code);
	Py_XDECREF(tmp);
	Py_XDECREF(res);
	Py_XDECREF(obare);
	Py_XDECREF(ocode);
	Py_XDECREF(old_code);
	return rc;
}

static int is_lambda(struct engine *e, PyObject *f)
{
	PyObject *c, *n;
	int r;

	if (!is_a(f, e->t_function))
		return 0;
	c = pyhot_patch_get_attr(f, "__code__");
	n = c ? pyhot_patch_get_attr(c, "co_name") : NULL;
	r = n && PyUnicode_CompareWithASCIIString(n, "<lambda>") == 0;
	Py_XDECREF(c);
	Py_XDECREF(n);
	PyErr_Clear();
	return r;
}

/*
 * Comprehensions (before 3.12) run as functions that read module names as
 * globals, so they would miss a name changed earlier in the same refresh.
 * A statement with comprehensions and nothing that keeps its globals (no
 * def, class or lambda) runs with a merged copy of globals and overlay.
 */
static int wants_merged_globals(struct engine *e, PyObject *st)
{
	PyObject *it, *n;
	int comp = 0, keeps = 0;

	it = PyObject_CallFunctionObjArgs(e->walk, st, NULL);
	if (!it)
		return -1;
	while (!keeps && (n = PyIter_Next(it)) != NULL) {
		if (is_a(n, e->t_ListComp) || is_a(n, e->t_SetComp) ||
		    is_a(n, e->t_DictComp) || is_a(n, e->t_GeneratorExp))
			comp = 1;
		if (is_a(n, e->t_Lambda) || is_a(n, e->t_FunctionDef) ||
		    is_a(n, e->t_AsyncFunctionDef) || is_a(n, e->t_ClassDef))
			keeps = 1;
		Py_DECREF(n);
	}
	Py_DECREF(it);
	if (PyErr_Occurred())
		return -1;
	return comp && !keeps;
}

/* Run a statement: live module dict as globals, the overlay as locals. */
static int run_stmt(struct engine *e, PyObject *st, PyObject *names,
		    const char *why)
{
	PyObject *code, *res, *it, *x;
	int rc = 0;

	e->cur_line = node_line(st);
	code = compile_stmt(e, st);
	if (!code)
		return -1;
	{
		PyObject *globals = e->G, *merged = NULL;
		int m = PyDict_Size(e->L) > 0 ? wants_merged_globals(e, st) : 0;

		if (m < 0) {
			Py_DECREF(code);
			return -1;
		}
		if (m) {
			merged = PyDict_Copy(e->G);
			if (!merged || PyDict_Update(merged, e->L) < 0) {
				Py_XDECREF(merged);
				Py_DECREF(code);
				return -1;
			}
			globals = merged;
		}
		res = PyEval_EvalCode(code, globals, e->L);
		Py_XDECREF(merged);
	}
	Py_DECREF(code);
	if (!res)
		return -1;
	Py_DECREF(res);
	if (PySet_Size(names) == 0) {
		char where[640];

		snprintf(where, sizeof(where), "%s:%ld", e->mp->module, e->cur_line);
		return change_add(e, "changed", "statement", where, "re-run");
	}
	it = PyObject_GetIter(names);
	if (!it)
		return -1;
	while (rc == 0 && (x = PyIter_Next(it)) != NULL) {
		PyObject *v = PyDict_GetItemWithError(e->L, x);
		PyObject *old = v ? PyDict_GetItemWithError(e->G, x) : NULL;
		char qn[1024];

		/* owned: transplant() and the report may run Python */
		Py_XINCREF(v);
		Py_XINCREF(old);

		if (PySet_Discard(e->inplace, x) < 0 || PyErr_Occurred()) {
			rc = -1;
		} else if (v && old && is_lambda(e, v) && is_lambda(e, old)) {
			/* `f = lambda ...` changed: the live lambda keeps its
			 * identity and gets the new code */
			char detail[256];
			int r = transplant(e, old, v, TP_FULL, detail, sizeof(detail));

			qname(e, NULL, x, qn, sizeof(qn));
			if (r < 0 || (r == 1 && PySet_Add(e->inplace, x) < 0))
				rc = -1;
			else
				rc = change_add(e, "changed", "function", qn, "%s",
						r == 1 ? detail : "replaced");
		} else if (v) {
			int inpl = old && old != v && Py_TYPE(old) == Py_TYPE(v) &&
				   (PyList_CheckExact(v) || PyDict_CheckExact(v) ||
				    PyObject_TypeCheck(v, &PySet_Type));

			qname(e, NULL, x, qn, sizeof(qn));
			rc = change_add(e, old ? "changed" : "added", value_kind(e, v), qn,
					"%s", why ? why : inpl ? "updated in place" : "");
		}
		Py_XDECREF(v);
		Py_XDECREF(old);
		Py_DECREF(x);
	}
	Py_DECREF(it);
	return rc < 0 || PyErr_Occurred() ? -1 : 0;
}

static int future_flags_body(struct engine *e, PyObject *body)
{
	PyObject *fut = NULL;
	Py_ssize_t i, n;
	int flags = 0;

	n = PyList_Size(body);
	for (i = 0; i < n; i++) {
		PyObject *st = PyList_GetItem(body, i), *m, *names;
		Py_ssize_t j, nn;

		if (!is_a(st, e->t_ImportFrom))
			continue;
		m = pyhot_patch_get_attr(st, "module");
		if (!m || m == Py_None ||
		    PyUnicode_CompareWithASCIIString(m, "__future__") != 0) {
			Py_XDECREF(m);
			PyErr_Clear();
			continue;
		}
		Py_DECREF(m);
		flags |= 1 << 30;   /* "has a __future__ import"; masked by callers */
		if (!fut && !(fut = PyImport_ImportModule("__future__")))
			goto error;
		names = pyhot_patch_get_attr(st, "names");
		if (!names)
			goto error;
		nn = PyList_Size(names);
		for (j = 0; j < nn; j++) {
			PyObject *an = pyhot_patch_get_attr(PyList_GetItem(names, j), "name");
			PyObject *feat = an ? PyObject_GetAttr(fut, an) : NULL;
			PyObject *fl = feat ? pyhot_patch_get_attr(feat, "compiler_flag") : NULL;

			if (fl)
				flags |= (int)PyLong_AsLong(fl);
			Py_XDECREF(an);
			Py_XDECREF(feat);
			Py_XDECREF(fl);
			PyErr_Clear();   /* an unknown feature fails at compile time */
		}
		Py_DECREF(names);
	}
	Py_XDECREF(fut);
	return flags;
error:
	Py_XDECREF(fut);
	return -1;
}

static int is_dunder(PyObject *name)
{
	char n[256];
	size_t len;

	if (pyhot_patch_utf8(name, n, sizeof(n)) < 0) {
		PyErr_Clear();
		return 0;
	}
	len = strlen(n);
	return len > 4 && n[0] == '_' && n[1] == '_' && n[len - 1] == '_' &&
	       n[len - 2] == '_';
}

static int queue_linecache(struct engine *e)
{
	PyObject *lc = NULL, *cache = NULL, *util = NULL, *text = NULL, *lines = NULL;
	PyObject *src = NULL, *entry = NULL;
	struct stat st;
	double mtime = 0;
	int rc = -1;

	if (stat(e->mp->file, &st) == 0)
		mtime = (double)st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9;
	lc = PyImport_ImportModule("linecache");
	cache = lc ? pyhot_patch_get_attr(lc, "cache") : NULL;
	util = cache ? PyImport_ImportModule("importlib.util") : NULL;
	src = util ? PyBytes_FromStringAndSize(e->mp->newsrc, (Py_ssize_t)e->mp->newlen) : NULL;
	text = src ? call_method(util, "decode_source", "O", src) : NULL;
	lines = text ? call_method(text, "splitlines", "i", 1) : NULL;
	entry = lines ? Py_BuildValue("(ndOO)", (Py_ssize_t)e->mp->newlen, mtime,
				      lines, e->fileobj) : NULL;
	if (!entry)
		goto out;
	rc = pyhot_ops_add(&e->ops, PYHOT_OP_SETITEM, cache, e->fileobj, entry);
out:
	Py_XDECREF(lc);
	Py_XDECREF(cache);
	Py_XDECREF(util);
	Py_XDECREF(text);
	Py_XDECREF(lines);
	Py_XDECREF(src);
	Py_XDECREF(entry);
	return rc;
}


/* ------------------------------------------------ statement tables */

/* Line starts of a source: off[i] is where line i+1 starts, off[n] = len. */
struct lines {
	size_t *off;
	int n;
};

static int lines_index(const char *src, size_t len, struct lines *l)
{
	size_t i;
	int n = 0, k = 0;

	for (i = 0; i < len; i++)
		n += src[i] == '\n';
	if (len > 0 && src[len - 1] != '\n')
		n++;
	l->off = malloc(((size_t)n + 1) * sizeof(*l->off));
	if (!l->off)
		return -1;
	l->n = n;
	l->off[k++] = 0;
	for (i = 0; i < len && k <= n; i++) {
		if (src[i] == '\n' && k <= n)
			l->off[k++] = i + 1;
	}
	l->off[n] = len;
	return 0;
}

static int line_eq(const char *a, const struct lines *la, int ia,
		   const char *b, const struct lines *lb, int ib)
{
	size_t na = la->off[ia] - la->off[ia - 1], nb = lb->off[ib] - lb->off[ib - 1];

	return na == nb && memcmp(a + la->off[ia - 1], b + lb->off[ib - 1], na) == 0;
}

/* Whether line numbers of a region parsed alone match the file's: no
 * lone CR line ends, no coding cookie (it only counts on lines 1-2). */
static int chunkable(const char *src, size_t len)
{
	size_t i, nl = 0;

	for (i = 0; i < len; i++) {
		if (src[i] == '\r' && (i + 1 >= len || src[i + 1] != '\n'))
			return 0;
		if (src[i] == '\n' && ++nl == 2)
			break;
	}
	for (i = 0; i + 6 <= len && nl; i++) {
		if (src[i] == '\n' && --nl == 0)
			break;
		if (memcmp(src + i, "coding", 6) == 0)
			return 0;
	}
	return 1;
}

/* Statement table of a list of top-level statements. 0, 1 when no table
 * can be made (statements sharing a line), -1 error. */
static int build_recs(struct engine *e, PyObject *stmts,
		      struct pyhot_stmt_rec **out, size_t *nout)
{
	Py_ssize_t i, n = PyList_Size(stmts);
	struct pyhot_stmt_rec *recs = calloc((size_t)n + 1, sizeof(*recs));
	int prev_end = 0, rc = -1;

	*out = NULL;
	*nout = 0;
	if (!recs) {
		PyErr_NoMemory();
		return -1;
	}
	for (i = 0; i < n; i++) {
		PyObject *st = PyList_GetItem(stmts, i), *names = NULL, *it, *x;
		struct pyhot_stmt_rec *r = &recs[i];
		PyObject *el = getattr_opt(st, "end_lineno");
		char nm[256];
		size_t used = 0, cap = 64;

		r->start = (int)node_line(st);
		r->end = el && el != Py_None ? (int)PyLong_AsLong(el) : -1;
		Py_XDECREF(el);
		PyErr_Clear();
		if (is_def(e, st) || is_a(st, e->t_ClassDef)) {
			PyObject *decos = pyhot_patch_get_attr(st, "decorator_list");
			PyObject *nmo = pyhot_patch_get_attr(st, "name");
			Py_ssize_t j;

			if (!decos || !nmo || pyhot_patch_utf8(nmo, nm, sizeof(nm)) < 0) {
				Py_XDECREF(decos);
				Py_XDECREF(nmo);
				goto out;
			}
			Py_DECREF(nmo);
			for (j = 0; j < PyList_Size(decos); j++) {
				long dl = node_line(PyList_GetItem(decos, j));

				if (dl > 0 && dl < r->start)
					r->start = (int)dl;
			}
			Py_DECREF(decos);
			r->kind = is_a(st, e->t_ClassDef) ? 2 : 1;
			if (!(r->name = strdup(nm))) {
				PyErr_NoMemory();
				goto out;
			}
		}
		if (r->start <= prev_end || r->end < r->start) {
			rc = 1;
			goto out;
		}
		prev_end = r->end;
		names = bound_names(e, st);
		if (!names)
			goto out;
		r->bound = malloc(cap);
		if (!r->bound) {
			Py_DECREF(names);
			PyErr_NoMemory();
			goto out;
		}
		r->bound[0] = '\0';
		it = PyObject_GetIter(names);
		Py_DECREF(names);
		while (it && (x = PyIter_Next(it)) != NULL) {
			size_t k;

			if (pyhot_patch_utf8(x, nm, sizeof(nm)) == 0) {
				k = strlen(nm);
				if (used + k + 2 > cap) {
					char *nb;

					cap = (used + k + 2) * 2;
					nb = realloc(r->bound, cap);
					if (!nb) {
						Py_DECREF(x);
						Py_DECREF(it);
						PyErr_NoMemory();
						goto out;
					}
					r->bound = nb;
				}
				memcpy(r->bound + used, nm, k);
				used += k;
				r->bound[used++] = '\n';
				r->bound[used] = '\0';
			}
			Py_DECREF(x);
		}
		Py_XDECREF(it);
		if (PyErr_Occurred())
			goto out;
	}
	*out = recs;
	*nout = (size_t)n;
	recs = NULL;
	rc = 0;
out:
	if (recs)
		pyhot_stmt_recs_free(recs, (size_t)n);
	return rc;
}

/* Parse lines first..last of src alone, with the file's line numbers (the
 * region is padded with newlines). A list of statements (new reference). */
static PyObject *parse_region(struct engine *e, const char *src,
			      const struct lines *l, int first, int last)
{
	PyObject *bytes, *tree, *body;
	size_t pad, len;
	char *p;

	if (first > last)
		return PyList_New(0);
	pad = (size_t)first - 1;
	len = l->off[last] - l->off[first - 1];
	bytes = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(pad + len));
	if (!bytes)
		return NULL;
	p = PyBytes_AsString(bytes);
	memset(p, '\n', pad);
	memcpy(p + pad, src + l->off[first - 1], len);
	tree = PyObject_CallFunction(e->parse, "OO", bytes, e->fileobj);
	Py_DECREF(bytes);
	if (!tree)
		return NULL;
	body = pyhot_patch_get_attr(tree, "body");
	Py_DECREF(tree);
	return body;
}

static int add_bound_names(PyObject *set, const char *bound)
{
	const char *p = bound, *nl;

	while (p && (nl = strchr(p, '\n')) != NULL) {
		PyObject *s = PyUnicode_FromStringAndSize(p, nl - p);

		if (!s || PySet_Add(set, s) < 0) {
			Py_XDECREF(s);
			return -1;
		}
		Py_DECREF(s);
		p = nl + 1;
	}
	return 0;
}

static int future_flags_body(struct engine *e, PyObject *body);

/*
 * Only the lines that differ between the baseline and the new source are
 * parsed: statements wholly in the common prefix or suffix are unchanged
 * (those in the suffix may have moved and get relocated code). Fills
 * nbody and obody with the statements of the changed region, new and old,
 * and kept with the names the untouched statements bind. Returns 1 done,
 * 0 when the full parse must decide (the region does not parse alone, or
 * touches __future__ imports), -1 error.
 */
static int plan_chunks(struct engine *e, struct pyhot_baseline *b,
		       PyObject **nbody, PyObject **obody, PyObject *kept)
{
	struct modplan *mp = e->mp;
	struct lines lo = { NULL, 0 }, ln = { NULL, 0 };
	struct pyhot_stmt_rec *recs = b->recs, *mid = NULL, *nr = NULL;
	size_t nrecs = b->nrecs, ip, js, nmid = 0, k, t;
	int P = 0, S = 0, delta, first, olast, nlast, rc = -1, r;

	*nbody = *obody = NULL;
	if (lines_index(b->src, b->len, &lo) < 0 ||
	    lines_index(mp->newsrc, mp->newlen, &ln) < 0) {
		PyErr_NoMemory();
		goto out;
	}
	while (P < lo.n && P < ln.n && line_eq(b->src, &lo, P + 1, mp->newsrc, &ln, P + 1))
		P++;
	while (S < lo.n - P && S < ln.n - P &&
	       line_eq(b->src, &lo, lo.n - S, mp->newsrc, &ln, ln.n - S))
		S++;
	delta = ln.n - lo.n;
	for (ip = 0; ip < nrecs && recs[ip].end <= P; ip++)
		;
	for (js = nrecs; js > ip && recs[js - 1].start > lo.n - S; js--)
		;
	first = ip > 0 ? recs[ip - 1].end + 1 : 1;
	olast = js < nrecs ? recs[js].start - 1 : lo.n;
	nlast = js < nrecs ? recs[js].start - 1 + delta : ln.n;
	*obody = parse_region(e, b->src, &lo, first, olast);
	if (!*obody) {
		rc = 0;
		goto fallback;
	}
	*nbody = parse_region(e, mp->newsrc, &ln, first, nlast);
	if (!*nbody) {
		rc = 0;
		goto fallback;
	}
	if ((r = future_flags_body(e, *nbody)) != 0 ||
	    (r = future_flags_body(e, *obody)) != 0) {
		rc = r < 0 ? -1 : 0;
		goto fallback;
	}
	e->flags = b->flags;
	for (k = 0; k < nrecs; k++) {
		if ((k < ip || k >= js) && add_bound_names(kept, recs[k].bound) < 0)
			goto out;
	}
	/* moved statements: code with the new line numbers */
	for (k = js; delta != 0 && !e->dry_run && k < nrecs; k++) {
		PyObject *one, *name, *live;

		if (!recs[k].kind)
			continue;
		name = PyUnicode_FromString(recs[k].name);
		live = name ? PyDict_GetItemWithError(e->G, name) : NULL;
		Py_XDECREF(name);
		if (!live) {
			if (PyErr_Occurred())
				goto out;
			continue;
		}
		one = parse_region(e, mp->newsrc, &ln, recs[k].start + delta,
				   recs[k].end + delta);
		if (!one) {
			rc = 0;
			goto fallback;
		}
		r = PyList_Size(one) == 1 ? relocate_stmt(e, PyList_GetItem(one, 0), live) : 0;
		Py_DECREF(one);
		if (r < 0)
			goto out;
	}
	/* the new table: prefix, the region's statements, the moved suffix */
	r = build_recs(e, *nbody, &mid, &nmid);
	if (r < 0)
		goto out;
	if (r == 0) {
		nr = calloc(ip + nmid + (nrecs - js) + 1, sizeof(*nr));
		if (!nr) {
			PyErr_NoMemory();
			goto out;
		}
		t = 0;
		for (k = 0; k < nrecs; k++) {
			if (k == js)
				for (size_t m2 = 0; m2 < nmid; m2++)
					nr[t++] = mid[m2];
			if (k >= ip && k < js)
				continue;
			nr[t] = recs[k];
			nr[t].name = recs[k].name ? strdup(recs[k].name) : NULL;
			nr[t].bound = strdup(recs[k].bound ? recs[k].bound : "");
			if (k >= js) {
				nr[t].start += delta;
				nr[t].end += delta;
			}
			t++;
		}
		if (js == nrecs)
			for (size_t m2 = 0; m2 < nmid; m2++)
				nr[t++] = mid[m2];
		free(mid);   /* its strings moved into nr */
		mid = NULL;
		mp->recs = nr;
		mp->nrecs = t;
		mp->has_table = 1;
	}
	mp->chunked = 1;
	rc = 1;
	goto out;
fallback:
	if (rc == 0)
		PyErr_Clear();
	Py_CLEAR(*nbody);
	Py_CLEAR(*obody);
out:
	if (rc < 0) {
		Py_CLEAR(*nbody);
		Py_CLEAR(*obody);
	}
	pyhot_stmt_recs_free(mid, nmid);
	free(lo.off);
	free(ln.off);
	return rc;
}

/* Whether st is `if __name__ == "__main__": ...`. */
static int main_guard(struct engine *e, PyObject *st)
{
	PyObject *test, *d = NULL;
	int rc = 0;

	if (!is_a(st, e->t_If))
		return 0;
	test = pyhot_patch_get_attr(st, "test");
	if (!test)
		return -1;
	d = PyObject_CallFunctionObjArgs(e->dump, test, NULL);
	Py_DECREF(test);
	if (!d)
		return -1;
	/* ast.dump of both spellings contains exactly these names */
	{
		char buf[512];

		if (pyhot_patch_utf8(d, buf, sizeof(buf)) == 0 &&
		    strstr(buf, "Compare(") == buf && strstr(buf, "'__name__'") &&
		    strstr(buf, "'__main__'") && strstr(buf, "Eq()") &&
		    !strstr(buf, "BoolOp"))
			rc = 1;
		PyErr_Clear();
	}
	Py_DECREF(d);
	return rc;
}

/* Plan one module: everything that runs Python, nothing live changed. */
static int plan_module(struct engine *e, PyObject *module, struct pyhot_baseline *b)
{
	struct body_info oi = { NULL, NULL, NULL };
	PyObject *nb = NULL, *ob = NULL, *ntree = NULL, *otree = NULL, *obody = NULL;
	PyObject *nbody = NULL, *newbound = NULL, *removed = NULL, *it = NULL, *x;
	PyObject *kept = NULL;
	Py_ssize_t i, n;
	int rc = -1, fl, r;

	e->G = PyModule_GetDict(module);   /* borrowed; module is held */
	Py_XINCREF(e->G);
	e->L = PyDict_New();
	e->inplace = PySet_New(NULL);
	e->codemap = PyDict_New();
	e->patched = PySet_New(NULL);
	newbound = PySet_New(NULL);
	kept = PySet_New(NULL);
	if (!e->G || !e->L || !e->inplace || !e->codemap || !e->patched ||
	    !newbound || !kept)
		goto out;
	e->cur_line = 0;
	if (b && !b->has_table && chunkable(b->src, b->len)) {
		/* first refresh of this module: one full parse of the baseline
		 * gives its statement table */
		struct pyhot_stmt_rec *recs;
		size_t nrecs;

		ob = PyBytes_FromStringAndSize(b->src, (Py_ssize_t)b->len);
		otree = ob ? PyObject_CallFunction(e->parse, "OO", ob, e->fileobj) : NULL;
		if (otree) {
			obody = pyhot_patch_get_attr(otree, "body");
			r = obody ? build_recs(e, obody, &recs, &nrecs) : -1;
			fl = r == 0 ? future_flags_body(e, obody) : 0;
			if (r < 0 || fl < 0)
				goto out;
			if (r == 0)
				pyhot_baseline_set_table(b, recs, nrecs, fl & ~(1 << 30));
			Py_CLEAR(obody);
		}
		PyErr_Clear();   /* an unparsable baseline is handled below */
	}
	r = 0;
	if (b && b->has_table && chunkable(e->mp->newsrc, e->mp->newlen))
		r = plan_chunks(e, b, &nbody, &obody, kept);
	if (r < 0)
		goto out;
	if (r == 0) {
		/* the whole file: first sight, or a change the region parse
		 * cannot judge (its syntax error is reported from here) */
		nb = PyBytes_FromStringAndSize(e->mp->newsrc, (Py_ssize_t)e->mp->newlen);
		ntree = nb ? PyObject_CallFunction(e->parse, "OO", nb, e->fileobj) : NULL;
		if (!ntree)
			goto out;
		if (b && !otree) {
			ob = PyBytes_FromStringAndSize(b->src, (Py_ssize_t)b->len);
			otree = ob ? PyObject_CallFunction(e->parse, "OO", ob, e->fileobj) : NULL;
		}
		if (!otree) {
			PyErr_Clear();   /* no or an unparsable baseline: none */
			e->mp->nobaseline = 1;
		}
		nbody = pyhot_patch_get_attr(ntree, "body");
		if (!nbody)
			goto out;
		obody = otree ? pyhot_patch_get_attr(otree, "body") : NULL;
		if (otree && !obody)
			goto out;
		fl = future_flags_body(e, nbody);
		if (fl < 0)
			goto out;
		e->flags = fl & ~(1 << 30);
		r = build_recs(e, nbody, &e->mp->recs, &e->mp->nrecs);
		if (r < 0)
			goto out;
		e->mp->has_table = r == 0;
		if (chunkable(e->mp->newsrc, e->mp->newlen) == 0)
			e->mp->has_table = 0;
	}
	if (obody && body_info_make(e, obody, &oi) < 0)
		goto out;
	n = PyList_Size(nbody);
	for (i = 0; i < n; i++) {
		PyObject *st = PyList_GetItem(nbody, i), *names, *same = NULL;
		PyObject *name = NULL, *live = NULL, *ost = NULL;
		char qn[1024];
		int done = 0, all_live = 1;

		names = bound_names(e, st);
		if (!names || set_update(newbound, names) < 0) {
			Py_XDECREF(names);
			goto out;
		}
		if (is_def(e, st) || is_a(st, e->t_ClassDef)) {
			name = pyhot_patch_get_attr(st, "name");
			if (!name) {
				Py_DECREF(names);
				goto out;
			}
			/* owned: Python runs below, and other threads with it,
			 * and may rebind the name */
			live = PyDict_GetItemWithError(e->G, name);
			Py_XINCREF(live);
			ost = oi.defs ? PyDict_GetItemWithError(oi.defs, name) : NULL;
			if (ost && Py_TYPE(ost) != Py_TYPE(st))
				ost = NULL;
			qname(e, NULL, name, qn, sizeof(qn));
		}
		if (!e->mp->nobaseline)
			same = body_take(e, &oi, st);
		if (PyErr_Occurred())
			goto stmt_error;
		if (same) {
			/* unchanged: not re-run, state kept */
			if (node_line(same) != node_line(st) && live && !e->dry_run &&
			    relocate_stmt(e, st, live) < 0)
				goto stmt_error;
			if (!name && PySet_Size(names) > 0 &&
			    !is_a(st, e->t_Import) && !is_a(st, e->t_ImportFrom)) {
				PyObject *it2 = PyObject_GetIter(names), *y;

				while (it2 && (y = PyIter_Next(it2)) != NULL) {
					PyObject *v = PyDict_GetItemWithError(e->G, y);

					Py_XINCREF(v);
					if (v && !PyObject_TypeCheck(v, &PyModule_Type)) {
						qname(e, NULL, y, qn, sizeof(qn));
						change_add(e, "kept", value_kind(e, v), qn,
							   "statement unchanged, not re-run");
					}
					Py_XDECREF(v);
					Py_DECREF(y);
				}
				Py_XDECREF(it2);
				if (PyErr_Occurred())
					goto stmt_error;
			}
			done = 1;
		} else if (e->mp->nobaseline && !live) {
			/* Without a baseline, a statement is re-run only when it
			 * binds names the module lacks: state is never reset. */
			PyObject *it2 = PyObject_GetIter(names), *y;

			while (it2 && (y = PyIter_Next(it2)) != NULL) {
				if (!PyDict_GetItemWithError(e->G, y))
					all_live = 0;
				Py_DECREF(y);
			}
			Py_XDECREF(it2);
			if (PyErr_Occurred())
				goto stmt_error;
			done = all_live;   /* also: binds nothing (side effects) */
		}
		if (!done && live && is_def(e, st)) {
			if (e->dry_run) {
				done = change_add(e, "changed", "function", qn, "plan") < 0 ? -1 : 1;
			} else {
				done = plan_def(e, st, ost, live, name, qn);
			}
		} else if (!done && live && is_a(st, e->t_ClassDef) && (ost || e->mp->nobaseline)) {
			const char *why = "";
			int ok = class_in_place(e, live, st, ost, &why);

			if (ok < 0)
				goto stmt_error;
			if (ok && e->dry_run) {
				done = change_add(e, "changed", "class", qn, "in place") < 0 ? -1 : 1;
			} else if (ok) {
				char qual[1024];

				snprintf(qual, sizeof(qual), "%s", qn);
				done = patch_class(e, live, st, ost, qual, ok == 2) < 0 ? -1 : 1;
				if (done == 1 && PySet_Add(e->inplace, name) < 0)
					done = -1;
			} else {
				char why2[256];

				snprintf(why2, sizeof(why2),
					 "new class object (%s); existing instances keep the old class",
					 why);
				done = e->dry_run ? (change_add(e, "changed", "class", qn, "%s", why2) < 0 ? -1 : 1) :
				       (run_stmt(e, st, names, why2) < 0 ? -1 : 1);
			}
		}
		if (done < 0)
			goto stmt_error;
		if (!done) {
			/* `if __name__ == "__main__":` starts the program: re-running
			 * it inside a refresh would run the program again */
			int guard = main_guard(e, st);

			if (guard < 0)
				goto stmt_error;
			if (guard) {
				char where[640];

				snprintf(where, sizeof(where), "%s:%ld", e->mp->module, node_line(st));
				if (change_add(e, "kept", "statement", where,
					       "the __main__ guard is never re-run") < 0)
					goto stmt_error;
				done = 1;
			}
		}
		if (!done) {
			if (e->dry_run) {
				if (change_add(e, "changed", name ? (is_def(e, st) ? "function" : "class") :
					       "statement", name ? qn : e->mp->module,
					       "line %ld: re-run", node_line(st)) < 0)
					goto stmt_error;
			} else if (run_stmt(e, st, names, NULL) < 0) {
				goto stmt_error;
			}
		}
		Py_XDECREF(same);
		Py_XDECREF(name);
		Py_XDECREF(live);
		Py_DECREF(names);
		continue;
stmt_error:
		Py_XDECREF(same);
		Py_XDECREF(name);
		Py_XDECREF(live);
		Py_DECREF(names);
		goto out;
	}
	e->cur_line = 0;
	/* Names bound by the baseline and by nothing in the new source go. */
	if (oi.bound) {
		removed = PyNumber_Subtract(oi.bound, newbound);
		if (removed) {
			PyObject *r2 = PyNumber_Subtract(removed, kept);

			Py_DECREF(removed);
			removed = r2;
		}
		it = removed ? PyObject_GetIter(removed) : NULL;
		if (!it)
			goto out;
		while ((x = PyIter_Next(it)) != NULL) {
			PyObject *v = PyDict_GetItemWithError(e->G, x);
			char qn[1024];

			Py_XINCREF(v);
			r = 0;
			if (v && !is_dunder(x)) {
				qname(e, NULL, x, qn, sizeof(qn));
				r = pyhot_ops_add(&e->ops, PYHOT_OP_DELITEM, e->G, x, NULL);
				if (r == 0)
					r = change_add(e, "removed", value_kind(e, v), qn, NULL);
			}
			Py_XDECREF(v);
			Py_DECREF(x);
			if (r < 0 || PyErr_Occurred())
				goto out;
		}
		Py_CLEAR(it);
	}
	if (e->dry_run) {
		rc = 0;
		goto out;
	}
	if (follow_codes(e) < 0)
		goto out;
	/* The overlay's names go into the module. */
	{
		PyObject *k, *v;
		Py_ssize_t pos = 0;

		while (PyDict_Next(e->L, &pos, &k, &v)) {
			int skip = PySet_Contains(e->inplace, k), inpl;
			PyObject *old;

			if (skip < 0)
				goto out;
			if (skip)
				continue;
			old = PyDict_GetItemWithError(e->G, k);
			if (PyErr_Occurred() ||
			    queue_replace(e, e->G, 0, k, old, v, &inpl) < 0)
				goto out;
		}
	}
	if (queue_linecache(e) < 0)
		goto out;
	e->mp->flags = e->flags;
	rc = 0;
out:
	body_info_release(&oi);
	Py_XDECREF(nb);
	Py_XDECREF(ob);
	Py_XDECREF(ntree);
	Py_XDECREF(otree);
	Py_XDECREF(nbody);
	Py_XDECREF(obody);
	Py_XDECREF(kept);
	Py_XDECREF(newbound);
	Py_XDECREF(removed);
	Py_XDECREF(it);
	Py_CLEAR(e->G);
	Py_CLEAR(e->L);
	Py_CLEAR(e->inplace);
	Py_CLEAR(e->codemap);
	Py_CLEAR(e->patched);
	Py_CLEAR(e->nscls);
	return rc;
}

/* ---------------------------------------------------------------- engine */

static void engine_release(struct engine *e)
{
	PyObject **objs[] = {
		&e->parse, &e->dump, &e->Module, &e->Pass, &e->copy, &e->compile,
		&e->get_docstring, &e->copy_location, &e->walk,
		&e->t_FunctionDef, &e->t_AsyncFunctionDef, &e->t_ClassDef, &e->t_Name,
		&e->t_Store, &e->t_Import, &e->t_ImportFrom, &e->t_AnnAssign, &e->t_If,
		&e->t_Expr, &e->t_Assign, &e->t_AugAssign,
		&e->t_Lambda, &e->t_ListComp, &e->t_SetComp, &e->t_DictComp,
		&e->t_GeneratorExp, &e->t_function, &e->t_code, &e->t_classmethod,
		&e->t_staticmethod, &e->t_property, &e->t_cell, &e->t_partial, &e->enummeta,
		&e->modname, &e->fileobj, &e->built,
	};
	size_t i;

	for (i = 0; i < sizeof(objs) / sizeof(objs[0]); i++)
		Py_CLEAR(*objs[i]);
	pyhot_ops_release(&e->ops);
}

static int engine_init(struct engine *e, int dry_run)
{
	static const struct { size_t off; const char *mod, *name; } want[] = {
#define W(f, m, n) { offsetof(struct engine, f), m, n }
		W(parse, "ast", "parse"), W(dump, "ast", "dump"),
		W(Module, "ast", "Module"), W(Pass, "ast", "Pass"),
		W(get_docstring, "ast", "get_docstring"),
		W(copy_location, "ast", "copy_location"), W(walk, "ast", "walk"),
		W(t_FunctionDef, "ast", "FunctionDef"),
		W(t_AsyncFunctionDef, "ast", "AsyncFunctionDef"),
		W(t_ClassDef, "ast", "ClassDef"), W(t_Name, "ast", "Name"),
		W(t_Store, "ast", "Store"), W(t_Import, "ast", "Import"),
		W(t_ImportFrom, "ast", "ImportFrom"), W(t_AnnAssign, "ast", "AnnAssign"),
		W(t_If, "ast", "If"), W(t_Expr, "ast", "Expr"),
		W(t_Assign, "ast", "Assign"), W(t_AugAssign, "ast", "AugAssign"),
		W(t_Lambda, "ast", "Lambda"), W(t_ListComp, "ast", "ListComp"),
		W(t_SetComp, "ast", "SetComp"), W(t_DictComp, "ast", "DictComp"),
		W(t_GeneratorExp, "ast", "GeneratorExp"),
		W(copy, "copy", "copy"), W(compile, "builtins", "compile"),
		W(t_function, "types", "FunctionType"), W(t_code, "types", "CodeType"),
		W(t_classmethod, "builtins", "classmethod"),
		W(t_staticmethod, "builtins", "staticmethod"),
		W(t_property, "builtins", "property"),
		W(t_partial, "functools", "partial"),
#undef W
	};
	size_t i;
	PyObject *m, *f, *cell, *mods;

	memset(e, 0, sizeof(*e));
	pyhot_ops_init(&e->ops);
	e->dry_run = dry_run;
	e->built = PyList_New(0);
	if (!e->built)
		return -1;
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		m = PyImport_ImportModule(want[i].mod);
		if (!m)
			return -1;
		f = pyhot_patch_get_attr(m, want[i].name);
		Py_DECREF(m);
		if (!f)
			return -1;
		*(PyObject **)((char *)e + want[i].off) = f;
	}
	/* the cell type has no public name before 3.8's types.CellType in
	 * some builds: take it from a cell */
	m = PyImport_ImportModule("types");
	cell = m ? getattr_opt(m, "CellType") : NULL;
	Py_XDECREF(m);
	if (!cell)
		PyErr_Clear();
	e->t_cell = cell;
	/* Enum classes only matter when enum is already imported. */
	mods = PyImport_GetModuleDict();
	m = mods ? PyDict_GetItemString(mods, "enum") : NULL;   /* borrowed */
	if (m) {
		e->enummeta = getattr_opt(m, "EnumMeta");
		PyErr_Clear();
	}
	return 0;
}

/* Turn the pending Python exception into err (message with file and
 * line) and a "traceback" field; clears it. */
static int fail_py(struct engine *e, struct modplan *mp, struct jsonw *out,
		   struct pyhot_err *err, const char *what)
{
	PyObject *t = NULL, *v = NULL, *tb = NULL, *tbm = NULL, *lines = NULL;
	PyObject *text = NULL, *sep = NULL, *msg = NULL;
	char tname[128] = "Exception", mtext[256] = "", file[4096];
	char *tbuf = malloc(65536);   /* not on the stack: any thread runs this */
	long line = e->cur_line;

	snprintf(file, sizeof(file), "%s", mp ? mp->file : "?");
	PyErr_Fetch(&t, &v, &tb);
	PyErr_NormalizeException(&t, &v, &tb);
	if (v && tb)
		PyException_SetTraceback(v, tb);
	if (t) {
		PyObject *n = pyhot_patch_get_attr(t, "__name__");

		if (n)
			pyhot_patch_utf8(n, tname, sizeof(tname));
		Py_XDECREF(n);
		PyErr_Clear();
	}
	if (v) {
		msg = pyhot_patch_get_attr(v, "msg");   /* SyntaxError */
		if (!msg || !PyUnicode_Check(msg)) {
			PyErr_Clear();
			Py_XDECREF(msg);
			msg = PyObject_Str(v);
		}
		if (msg)
			pyhot_patch_utf8(msg, mtext, sizeof(mtext));
		PyErr_Clear();
		if (PyObject_IsSubclass(t, PyExc_SyntaxError) == 1) {
			PyObject *ln = getattr_opt(v, "lineno");

			if (ln && ln != Py_None)
				line = PyLong_AsLong(ln);
			Py_XDECREF(ln);
			PyErr_Clear();
		}
	}
	/* the innermost frame in the module's file gives the line */
	if (tb && mp) {
		PyObject *cur = tb;

		Py_INCREF(cur);
		while (cur && cur != Py_None) {
			PyObject *fr = pyhot_patch_get_attr(cur, "tb_frame");
			PyObject *co = fr ? pyhot_patch_get_attr(fr, "f_code") : NULL;
			PyObject *fn = co ? pyhot_patch_get_attr(co, "co_filename") : NULL;
			PyObject *nx;

			if (fn && PyUnicode_CompareWithASCIIString(fn, mp->file) == 0) {
				PyObject *ln = pyhot_patch_get_attr(cur, "tb_lineno");

				if (ln)
					line = PyLong_AsLong(ln);
				Py_XDECREF(ln);
			}
			Py_XDECREF(fr);
			Py_XDECREF(co);
			Py_XDECREF(fn);
			nx = pyhot_patch_get_attr(cur, "tb_next");
			Py_DECREF(cur);
			cur = nx;
		}
		Py_XDECREF(cur);
		PyErr_Clear();
	}
	tbm = PyImport_ImportModule("traceback");
	if (tbm && t && PyObject_IsSubclass(t, PyExc_SyntaxError) == 1)
		/* the frames would be ast.parse's: the caret is what helps */
		lines = call_method(tbm, "format_exception_only", "OO",
					    t, v ? v : Py_None);
	else
		lines = tbm ? call_method(tbm, "format_exception", "OOO",
						  t ? t : Py_None, v ? v : Py_None,
						  tb ? tb : Py_None) : NULL;
	sep = lines ? PyUnicode_FromString("") : NULL;
	text = sep ? PyUnicode_Join(sep, lines) : NULL;
	if (text && tbuf && pyhot_patch_utf8(text, tbuf, 65536) == 0)
		jsonw_key_str(out, "traceback", tbuf);
	free(tbuf);
	PyErr_Clear();
	Py_XDECREF(t);
	Py_XDECREF(v);
	Py_XDECREF(tb);
	Py_XDECREF(tbm);
	Py_XDECREF(lines);
	Py_XDECREF(sep);
	Py_XDECREF(text);
	Py_XDECREF(msg);
	if (line > 0)
		return pyhot_err_set(err, PYHOT_ERR_FAILED, 0, getpid(), STEP,
				     "%s%s:%ld: %s: %s", what, file, line, tname, mtext);
	return pyhot_err_set(err, PYHOT_ERR_FAILED, 0, getpid(), STEP,
			     "%s%s: %s: %s", what, file, tname, mtext);
}

void pyhot_patch_write_changes(struct jsonw *out, const struct pyhot_change *ch,
			       size_t nch)
{
	static const char *const actions[] = { "changed", "added", "removed",
					       "kept", "failed" };
	long counts[5] = { 0, 0, 0, 0, 0 };
	size_t i;
	int k;

	jsonw_key(out, "changes");
	jsonw_array_begin(out);
	for (i = 0; i < nch; i++) {
		const struct pyhot_change *c = &ch[i];

		jsonw_object_begin(out);
		jsonw_key_str(out, "action", c->action);
		jsonw_key_str(out, "kind", c->kind);
		jsonw_key_str(out, "name", c->name);
		jsonw_key_str(out, "detail", c->detail);
		jsonw_object_end(out);
		for (k = 0; k < 5; k++) {
			if (strcmp(c->action, actions[k]) == 0)
				counts[k]++;
		}
	}
	jsonw_array_end(out);
	jsonw_key(out, "summary");
	jsonw_object_begin(out);
	for (k = 0; k < 5; k++)
		jsonw_key_int(out, actions[k], counts[k]);
	jsonw_object_end(out);
}

void pyhot_patch_write_module(struct jsonw *out, const char *module,
			      const char *file, const char *warning,
			      const struct pyhot_change *ch, size_t nch,
			      long generation)
{
	jsonw_object_begin(out);
	jsonw_key_str(out, "module", module);
	jsonw_key_str(out, "file", file);
	if (warning)
		jsonw_key_str(out, "warning", warning);
	pyhot_patch_write_changes(out, ch, nch);
	if (generation > 0)
		jsonw_key_int(out, "generation", generation);
	else
		jsonw_key_str(out, "generation", NULL);   /* null */
	jsonw_object_end(out);
}

/* Whether a module's file differs from its baseline. */
static int file_changed(const struct pyhot_baseline *b)
{
	char *src;
	size_t len;
	int changed;

	if (pyhot_patch_read_file(b->file, &src, &len) < 0)
		return 0;
	changed = len != b->len || memcmp(src, b->src, len) != 0;
	free(src);
	return changed;
}

int pyhot_patch_refresh(const struct pyhot_req *req, struct jsonw *out,
			struct pyhot_err *err)
{
	struct engine e;
	struct modplan *plans = NULL;
	PyObject *t0, *v0, *tb0;
	size_t nmods = 0, i;
	const char *dr = pyhot_req_get(req, "dry_run");
	int dry_run = dr && strcmp(dr, "0") != 0 && strcmp(dr, "false") != 0;
	int rc = -PYHOT_ERR_FAILED;

	/* the caller's exception, if any, is not ours to lose */
	PyErr_Fetch(&t0, &v0, &tb0);
	if (engine_init(&e, dry_run) < 0) {
		fail_py(&e, NULL, out, err, "engine: ");
		goto out;
	}
	nmods = pyhot_req_count(req, "module");
	if (nmods == 0) {
		struct pyhot_baseline *b;
		size_t cap = 0;

		for (b = pyhot_baseline_find_first(); b; b = b->next)
			cap++;
		plans = calloc(cap ? cap : 1, sizeof(*plans));
		if (!plans)
			goto oom;
		for (b = pyhot_baseline_find_first(); b; b = b->next) {
			if (file_changed(b))
				snprintf(plans[nmods++].module, sizeof(plans->module), "%s",
					 b->module);
		}
	} else {
		plans = calloc(nmods, sizeof(*plans));
		if (!plans)
			goto oom;
		for (i = 0; i < nmods; i++)
			snprintf(plans[i].module, sizeof(plans->module), "%s",
				 pyhot_req_nth(req, "module", i));
	}
	for (i = 0; i < nmods; i++) {
		struct modplan *mp = &plans[i];
		struct pyhot_baseline *b;
		PyObject *mods = PyImport_GetModuleDict();
		PyObject *mod = mods ? PyDict_GetItemString(mods, mp->module) : NULL;
		PyObject *f;
		int r;

		if (!mod || !PyObject_TypeCheck(mod, &PyModule_Type)) {
			pyhot_err_set(err, PYHOT_ERR_FAILED, 0, getpid(), STEP,
				      "module '%s' is not imported in pid %d", mp->module,
				      (int)getpid());
			goto out;
		}
		f = plain_attr(mod, "__file__");   /* no module __getattr__ */
		if (!f || f == Py_None || pyhot_patch_utf8(f, mp->file, sizeof(mp->file)) < 0 ||
		    strlen(mp->file) < 3 || strcmp(mp->file + strlen(mp->file) - 3, ".py") != 0) {
			Py_XDECREF(f);
			PyErr_Clear();
			pyhot_err_set(err, PYHOT_ERR_FAILED, 0, getpid(), STEP,
				      "module '%s' has no Python source file%s%s%s",
				      mp->module, mp->file[0] ? " (" : "", mp->file,
				      mp->file[0] ? ")" : "");
			goto out;
		}
		Py_DECREF(f);
		r = pyhot_patch_read_file(mp->file, &mp->newsrc, &mp->newlen);
		if (r < 0) {
			pyhot_err_set(err, PYHOT_ERR_FAILED, -r, getpid(), STEP,
				      "cannot read '%s': %s", mp->file,
				      r == -EFBIG ? "file too large" : strerror(-r));
			goto out;
		}
		if (memchr(mp->newsrc, '\0', mp->newlen)) {
			pyhot_err_set(err, PYHOT_ERR_FAILED, 0, getpid(), STEP,
				      "'%s' is not Python source (it contains NUL bytes)",
				      mp->file);
			goto out;
		}
		e.mp = mp;
		Py_CLEAR(e.modname);
		Py_CLEAR(e.fileobj);
		e.modname = PyUnicode_FromString(mp->module);
		e.fileobj = PyUnicode_DecodeFSDefault(mp->file);
		if (!e.modname || !e.fileobj) {
			fail_py(&e, mp, out, err, "");
			goto out;
		}
		b = pyhot_baseline_find(mp->module);
		e.ops.tag = (int)i;   /* each module's ops become its generation */
		Py_INCREF(mod);
		r = plan_module(&e, mod, b);
		Py_DECREF(mod);
		if (r < 0) {
			fail_py(&e, mp, out, err, "");
			goto out;
		}
	}
	if (!dry_run && pyhot_ops_apply(&e.ops) < 0) {
		fail_py(&e, e.mp, out, err, "apply failed, nothing changed: ");
		goto out;
	}
	if (!dry_run) {
		for (i = 0; i < nmods; i++) {
			struct pyhot_baseline *b = pyhot_baseline_find(plans[i].module);
			long gen;

			/* The undo log moves into the module's generation; what
			 * the plan built for nothing is watched by the first. */
			gen = pyhot_history_record(plans[i].module, plans[i].file, &e.ops,
						   (int)i, b ? b->src : NULL, b ? b->len : 0,
						   plans[i].newsrc, plans[i].newlen,
						   plans[i].ch, plans[i].nch, e.built);
			if (gen < 0)
				PyErr_Clear();   /* applied; only not undoable */
			plans[i].generation = gen > 0 ? gen : 0;
			if (gen > 0)
				Py_CLEAR(e.built);
			if (pyhot_baseline_put(plans[i].module, plans[i].file,
					       plans[i].newsrc, plans[i].newlen) < 0)
				goto oom;
			b = pyhot_baseline_find(plans[i].module);
			if (b && plans[i].has_table) {
				pyhot_baseline_set_table(b, plans[i].recs, plans[i].nrecs,
							 plans[i].flags);
				plans[i].recs = NULL;
				plans[i].nrecs = 0;
			}
		}
	}
	jsonw_key(out, "modules");
	jsonw_array_begin(out);
	for (i = 0; i < nmods; i++)
		pyhot_patch_write_module(out, plans[i].module, plans[i].file,
					 plans[i].nobaseline ? NO_BASELINE_WARNING : NULL,
					 plans[i].ch, plans[i].nch, plans[i].generation);
	jsonw_array_end(out);
	jsonw_key_bool(out, "dry_run", dry_run);
	rc = 0;
	goto out;
oom:
	pyhot_err_set(err, PYHOT_ERR_FAILED, ENOMEM, getpid(), STEP, "out of memory");
out:
	PyErr_Clear();
	engine_release(&e);
	for (i = 0; plans && i < nmods; i++)
		modplan_release(&plans[i]);
	free(plans);
	PyErr_Restore(t0, v0, tb0);
	return rc;
}
