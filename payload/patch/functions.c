/*
 * functions.c: patching functions in place: finding the live function
 * behind its decorators, moving new code and attributes into it, and making
 * the closures and wrappers that run its old nested code follow.
 */
#include "functions.h"

#include "attr.h"
#include "stmts.h"

#include <stdio.h>
#include <string.h>

/* Whether o was seen already (1), or not and is now marked (0); -1 error.
 * seen is a set of ids. */
static int seen_before(PyObject *seen, PyObject *o)
{
	PyObject *id = id_of(o);   /* owned */
	int r;

	if (!id) {
		return -1;
	}
	r = PySet_Contains(seen, id);
	if (r == 0) {
		r = PySet_Add(seen, id) < 0 ? -1 : 0;
	}
	Py_DECREF(id);
	return r;
}

/* Append the callable contents of f's closure cells to queue. 0, or -1
 * with an exception. */
static int queue_cell_callables(PyObject *f, PyObject *queue)
{
	PyObject *clo = pyhot_patch_get_attr(f, "__closure__");   /* owned */
	Py_ssize_t i, n;
	int rc = 0;

	if (!clo) {
		return -1;
	}
	n = clo == Py_None ? 0 : PyTuple_Size(clo);
	for (i = 0; i < n && rc == 0; i++) {
		PyObject *c = getattr_opt(PyTuple_GetItem(clo, i), "cell_contents");   /* owned */

		if (!c) {
			PyErr_Clear();   /* empty cell */
			continue;
		}
		if (PyCallable_Check(c) && PyList_Append(queue, c) < 0) {
			rc = -1;
		}
		Py_DECREF(c);
	}
	Py_DECREF(clo);
	return rc;
}

/* A function on the way: a candidate when its code has the def's name;
 * its closure cells and __wrapped__ are ways further in (into *next). */
static int inner_visit_function(PyObject *o, PyObject *name, PyObject *cands,
				PyObject *queue, PyObject **next)
{
	PyObject *code = pyhot_patch_get_attr(o, "__code__");   /* owned */
	PyObject *cn = code ? pyhot_patch_get_attr(code, "co_name") : NULL;   /* owned */
	int eq = cn ? PyObject_RichCompareBool(cn, name, Py_EQ) : -1;

	Py_XDECREF(code);
	Py_XDECREF(cn);
	if (eq < 0 || (eq && PyList_Append(cands, o) < 0)) {
		return -1;
	}
	if (queue_cell_callables(o, queue) < 0) {
		return -1;
	}
	next[0] = plain_attr(o, "__wrapped__");
	return 0;
}

/* Any other object on the way: its __wrapped__, __func__, partial.func and
 * the callback that command/task objects of common frameworks keep
 * (click's), into next[0..3]. A wrapper with a cache_clear() is collected
 * into caches (may be NULL). */
static int inner_visit_wrapper(PyObject *o, PyObject *caches, PyObject **next)
{
	next[0] = plain_attr(o, "__wrapped__");
	next[1] = plain_attr(o, "__func__");
	next[2] = plain_attr(o, "func");
	next[3] = plain_attr(o, "callback");
	if (next[0] && caches && has_plain_attr(o, "cache_clear") &&
	    has_plain_attr(o, "cache_info") && PyList_Append(caches, o) < 0) {
		return -1;
	}
	return 0;
}

/* Queue the callables of next[0..3] (only when append) and release all
 * four. 0, or -1 (with an exception, or when not appending). */
static int queue_next(PyObject *queue, PyObject **next, int append)
{
	int k, rc = append ? 0 : -1;

	for (k = 0; k < 4; k++) {
		if (rc == 0 && next[k] && PyCallable_Check(next[k]) &&
		    PyList_Append(queue, next[k]) < 0) {
			rc = -1;
		}
		Py_XDECREF(next[k]);
		next[k] = NULL;
	}
	return rc;
}

/* Of several candidates, the one whose code has old_code's bytecode, else
 * the first (new reference into *out; NULL when there is none). */
static int inner_pick(PyObject *cands, PyObject *old_code, PyObject **out)
{
	Py_ssize_t i, n = PyList_Size(cands);
	PyObject *old_bytes;   /* owned */
	int rc = 0;

	if (n > 0 && old_code) {
		old_bytes = pyhot_patch_get_attr(old_code, "co_code");
		if (!old_bytes) {
			return -1;
		}
		for (i = 0; i < n && !*out && rc == 0; i++) {
			PyObject *f = PyList_GetItem(cands, i);   /* borrowed */
			PyObject *c = pyhot_patch_get_attr(f, "__code__");   /* owned */
			PyObject *b = c ? pyhot_patch_get_attr(c, "co_code") : NULL;   /* owned */
			int eq = b ? PyObject_RichCompareBool(b, old_bytes, Py_EQ) : -1;

			Py_XDECREF(c);
			Py_XDECREF(b);
			if (eq < 0) {
				rc = -1;
			} else if (eq) {
				Py_INCREF(f);
				*out = f;
			}
		}
		Py_DECREF(old_bytes);
	}
	if (rc == 0 && !*out && n > 0) {
		*out = PyList_GetItem(cands, 0);
		Py_INCREF(*out);
	}
	return rc;
}

/*
 * Breadth-first from a decorated object towards the function the def made:
 * through __wrapped__ (functools.wraps, lru_cache), __func__ (classmethod,
 * staticmethod, bound methods), partial.func and the cells of wrapper
 * closures. A candidate is a function whose code has the def's name; with
 * several (a factory's functions in a registry), the one whose code matches
 * the baseline's wins. Wrappers with a cache_clear() are collected. The
 * function found, or NULL, goes to *out (new reference). 0, or -1 error.
 */
static int find_inner(struct engine *e, PyObject *root, PyObject *name,
		      PyObject *old_code, PyObject *caches, PyObject **out)
{
	PyObject *queue = PyList_New(0);   /* owned */
	PyObject *seen = PySet_New(NULL);   /* owned */
	PyObject *cands = PyList_New(0);   /* owned */
	Py_ssize_t qi;
	int rc = -1;

	*out = NULL;
	if (!queue || !seen || !cands || PyList_Append(queue, root) < 0) {
		goto out;
	}
	for (qi = 0; qi < PyList_Size(queue) && qi < 64; qi++) {
		PyObject *o = PyList_GetItem(queue, qi);   /* borrowed */
		PyObject *next[4] = { NULL, NULL, NULL, NULL };   /* owned */
		int r = seen_before(seen, o);

		if (r < 0) {
			goto out;
		}
		if (r || PyType_Check(o) || PyObject_TypeCheck(o, &PyModule_Type)) {
			continue;
		}
		if (is_a(o, e->t_function)) {
			r = inner_visit_function(o, name, cands, queue, next);
		} else {
			r = inner_visit_wrapper(o, caches, next);
		}
		if (r == 0 && PyErr_Occurred()) {
			/* a wrapper whose __getattr__ raises: not a way in */
			PyErr_Clear();
		}
		if (queue_next(queue, next, r == 0) < 0) {
			goto out;
		}
	}
	rc = inner_pick(cands, old_code, out);
out:
	Py_XDECREF(queue);
	Py_XDECREF(seen);
	Py_XDECREF(cands);
	return rc;
}

/* Remember that functions running old nested code (closures made by a
 * factory, decorator wrappers) should follow new: pairs the code constants
 * of old and new by name, recursively. */
static int codemap_add(struct engine *e, PyObject *old, PyObject *new, int depth)
{
	PyObject *oc = NULL;   /* owned */
	PyObject *nc = NULL;   /* owned */
	Py_ssize_t i, j, no, nn;
	int rc = -1;

	if (depth > 8) {
		return 0;
	}
	oc = pyhot_patch_get_attr(old, "co_consts");
	nc = pyhot_patch_get_attr(new, "co_consts");
	if (!oc || !nc) {
		goto out;
	}
	no = PyTuple_Size(oc);
	nn = PyTuple_Size(nc);
	for (i = 0; i < no; i++) {
		PyObject *a = PyTuple_GetItem(oc, i);   /* borrowed */
		PyObject *an;   /* owned */
		PyObject *match = NULL;   /* owned */
		int count = 0;

		if (!is_a(a, e->t_code)) {
			continue;
		}
		an = pyhot_patch_get_attr(a, "co_name");
		if (!an) {
			goto out;
		}
		for (j = 0; j < nn; j++) {
			PyObject *b = PyTuple_GetItem(nc, j);   /* borrowed */
			PyObject *bn;   /* owned */
			int eq;

			if (!is_a(b, e->t_code)) {
				continue;
			}
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
			PyObject *id = id_of(a);   /* owned */
			PyObject *pair = PyTuple_Pack(2, a, match);   /* owned */

			if (!id || !pair || PyDict_SetItem(e->codemap, id, pair) < 0) {
				Py_XDECREF(id);
				Py_XDECREF(pair);
				goto out;
			}
			Py_DECREF(id);
			Py_DECREF(pair);
			if (codemap_add(e, a, match, depth + 1) < 0) {
				goto out;
			}
		}
	}
	rc = 0;
out:
	Py_XDECREF(oc);
	Py_XDECREF(nc);
	return rc;
}

/* CO_GENERATOR, CO_COROUTINE, CO_ASYNC_GENERATOR: code flags a function
 * cannot gain or lose in place (see freevars_fit()). */
#define CO_KIND_FLAGS (0x20 | 0x80 | 0x200)

/* Whether new's code can replace live's when their free variables differ:
 * 3.13 warns (runs Python) inside the __code__ setter when a generator
 * becomes a plain function; with the closure already swapped, a thread
 * could then call old code with a closure of the wrong size. Such a change
 * is re-bound, not moved. 1 it can, 0 not, -1 error. */
static int kind_kept(PyObject *lc, PyObject *nc)
{
	PyObject *lfl = pyhot_patch_get_attr(lc, "co_flags");   /* owned */
	PyObject *nfl = lfl ? pyhot_patch_get_attr(nc, "co_flags") : NULL;   /* owned */
	long diff = nfl ? (PyLong_AsLong(lfl) ^ PyLong_AsLong(nfl)) : 0;

	Py_XDECREF(lfl);
	Py_XDECREF(nfl);
	if (PyErr_Occurred()) {
		return -1;
	}
	return (diff & CO_KIND_FLAGS) ? 0 : 1;
}

/* Free variables changed: queue new's closure on live, when it has the
 * size the new code needs (as for a method that starts using super()).
 * 1 queued, 0 the code cannot be moved, -1 error. */
static int queue_closure(struct engine *e, PyObject *live, PyObject *new,
			 PyObject *lc, PyObject *nc, PyObject *nf)
{
	PyObject *clo;   /* owned */
	int r = kind_kept(lc, nc);

	if (r <= 0) {
		return r;
	}
	clo = pyhot_patch_get_attr(new, "__closure__");
	if (!clo) {
		return -1;
	}
	if ((clo == Py_None ? 0 : PyTuple_Size(clo)) != PyTuple_Size(nf)) {
		r = 0;
	} else if (pyhot_ops_add(&e->ops, PYHOT_OP_SETCLOSURE, live, NULL, clo) < 0) {
		r = -1;
	}
	Py_DECREF(clo);
	return r;
}

/* Queue live.__code__ = nc and remember its nested codes; detail gets
 * "lines" (only line numbers moved) or "code". 0, or -1 error. */
static int queue_code(struct engine *e, PyObject *live, PyObject *lc,
		      PyObject *nc, char *detail, size_t dsize, size_t *used)
{
	int same_bytes = attr_equal(lc, nc, "co_code");
	int same_consts = same_bytes == 1 ? attr_equal(lc, nc, "co_consts") : 0;

	if (same_bytes < 0 || same_consts < 0) {
		return -1;
	}
	*used += (size_t)snprintf(detail + *used, dsize - *used, "%s",
				  same_bytes && same_consts ? "lines" : "code");
	if (pyhot_ops_add_attr(&e->ops, PYHOT_OP_SETATTR, live, "__code__", nc) < 0) {
		return -1;
	}
	return codemap_add(e, lc, nc, 0);
}

/* Queue the defaults, keyword defaults, annotations and doc of new that
 * differ from live's, naming each in detail. 0, or -1 error. */
static int queue_fn_attrs(struct engine *e, PyObject *live, PyObject *new,
			  char *detail, size_t dsize, size_t *used)
{
	static const char *const attrs[] = { "__defaults__", "__kwdefaults__",
					     "__annotations__", "__doc__", NULL };
	int k, rc = 0;

	for (k = 0; attrs[k] && rc == 0; k++) {
		PyObject *nv = pyhot_patch_get_attr(new, attrs[k]);   /* owned */
		PyObject *lv = nv ? pyhot_patch_get_attr(live, attrs[k]) : NULL;   /* owned */
		int same = lv ? (lv == nv ? 1 : PyObject_RichCompareBool(lv, nv, Py_EQ)) : -1;

		if (same < 0) {
			PyErr_Clear();   /* uncomparable: set it */
		}
		if (same != 1 && pyhot_ops_add_attr(&e->ops, PYHOT_OP_SETATTR,
						    live, attrs[k], nv) < 0) {
			rc = -1;
		} else if (same != 1 && *used < dsize) {
			*used += (size_t)snprintf(detail + *used, dsize - *used, "%s%s",
						  *used ? ", " : "", attrs[k] + 2);
		}
		Py_XDECREF(nv);
		Py_XDECREF(lv);
	}
	if (*used >= 2 && detail[*used - 2] == '_') {
		detail[*used - 2] = '\0';
	}
	return rc;
}

/* Attributes the new def got from its decorator-free run (rare) go into
 * live's __dict__; existing ones (set by decorators) stay. */
static int queue_fn_dict(struct engine *e, PyObject *live, PyObject *new)
{
	PyObject *ndict = pyhot_patch_get_attr(new, "__dict__");   /* owned */
	PyObject *ldict = ndict ? pyhot_patch_get_attr(live, "__dict__") : NULL;   /* owned */
	PyObject *k;   /* borrowed */
	PyObject *v;   /* borrowed */
	Py_ssize_t pos = 0;
	int rc = ldict ? 0 : -1;

	if (rc == 0 && PyDict_Check(ndict) && PyDict_Size(ndict) > 0) {
		while (rc == 0 && PyDict_Next(ndict, &pos, &k, &v)) {
			rc = pyhot_ops_add(&e->ops, PYHOT_OP_SETITEM, ldict, k, v);
		}
	}
	Py_XDECREF(ndict);
	Py_XDECREF(ldict);
	return rc;
}

/* "__defaults__" -> "defaults" in the detail list; "unchanged" when it is
 * empty. */
static void detail_tidy(char *detail, size_t dsize)
{
	char *p;

	while ((p = strstr(detail, "__")) != NULL) {
		memmove(p, p + 2, strlen(p + 2) + 1);
	}
	if (!detail[0]) {
		snprintf(detail, dsize, "unchanged");
	}
}

int transplant(struct engine *e, PyObject *live, PyObject *new,
	       enum tp_mode mode, char *detail, size_t dsize)
{
	PyObject *lc = NULL;   /* owned */
	PyObject *nc = NULL;   /* owned */
	PyObject *lf = NULL;   /* owned */
	PyObject *nf = NULL;   /* owned */
	PyObject *id = NULL;   /* owned */
	int rc = -1, eq;
	size_t used = 0;

	detail[0] = '\0';
	lc = pyhot_patch_get_attr(live, "__code__");
	nc = pyhot_patch_get_attr(new, "__code__");
	lf = lc && nc ? pyhot_patch_get_attr(lc, "co_freevars") : NULL;
	nf = lf ? pyhot_patch_get_attr(nc, "co_freevars") : NULL;
	eq = nf ? PyObject_RichCompareBool(lf, nf, Py_EQ) : -1;
	if (eq < 0) {
		goto out;
	}
	if (!eq) {
		rc = queue_closure(e, live, new, lc, nc, nf);
		if (rc <= 0) {
			goto out;
		}
		rc = -1;
	}
	if (lc != nc && queue_code(e, live, lc, nc, detail, dsize, &used) < 0) {
		goto out;
	}
	id = id_of(live);
	if (!id || PySet_Add(e->patched, id) < 0) {
		goto out;
	}
	if (live != new && PyList_Append(e->built, new) < 0) {
		goto out;
	}
	if (mode == TP_FULL &&
	    (queue_fn_attrs(e, live, new, detail, dsize, &used) < 0 ||
	     queue_fn_dict(e, live, new) < 0)) {
		goto out;
	}
	detail_tidy(detail, dsize);
	rc = 1;
out:
	Py_XDECREF(lc);
	Py_XDECREF(nc);
	Py_XDECREF(lf);
	Py_XDECREF(nf);
	Py_XDECREF(id);
	return rc;
}

static int queue_caches(struct engine *e, PyObject *caches)
{
	Py_ssize_t i, n = PyList_Size(caches);

	for (i = 0; i < n; i++) {
		if (pyhot_ops_add(&e->ops, PYHOT_OP_CLEARCACHE,
				  PyList_GetItem(caches, i), NULL, NULL) < 0) {
			return -1;
		}
	}
	return 0;
}

int patch_behind(struct engine *e, PyObject *live, PyObject *new,
		 PyObject *name, PyObject *old_code, enum tp_mode mode,
		 char *detail, size_t dsize)
{
	PyObject *caches = PyList_New(0);   /* owned */
	PyObject *li = NULL;   /* owned */
	PyObject *ni = NULL;   /* owned */
	int rc = -1;

	if (!caches) {
		return -1;
	}
	if (find_inner(e, live, name, old_code, caches, &li) < 0 ||
	    find_inner(e, new, name, NULL, NULL, &ni) < 0) {
		goto out;
	}
	if (!li || !ni) {
		rc = 0;
		goto out;
	}
	rc = transplant(e, li, ni, mode, detail, dsize);
	if (rc == 1 && mode == TP_FULL && queue_caches(e, caches) < 0) {
		rc = -1;
	}
	if (rc == 1 && PyList_Size(caches) > 0 && dsize > strlen(detail) + 16) {
		strcat(detail, ", cache cleared");
	}
out:
	Py_XDECREF(caches);
	Py_XDECREF(li);
	Py_XDECREF(ni);
	return rc;
}

/* The live functions behind a class member (function, classmethod,
 * staticmethod, property accessors), appended to out. */
static int member_functions(struct engine *e, PyObject *v, PyObject *out)
{
	static const char *const acc[] = { "fget", "fset", "fdel", NULL };
	int k;

	if (is_a(v, e->t_function)) {
		return PyList_Append(out, v);
	}
	if (is_a(v, e->t_classmethod) || is_a(v, e->t_staticmethod)) {
		PyObject *f = pyhot_patch_get_attr(v, "__func__");   /* owned */
		int r = f ? member_functions(e, f, out) : -1;

		Py_XDECREF(f);
		return r;
	}
	if (is_a(v, e->t_property)) {
		for (k = 0; acc[k]; k++) {
			PyObject *f = pyhot_patch_get_attr(v, acc[k]);   /* owned */
			int r = f ? (f == Py_None ? 0 : member_functions(e, f, out)) : -1;

			Py_XDECREF(f);
			if (r < 0) {
				return -1;
			}
		}
	}
	return 0;
}

int queue_firstlineno(struct engine *e, PyObject *live, PyObject *st)
{
	PyObject *cur = plain_attr(live, "__firstlineno__");   /* owned */
	PyObject *v;   /* owned */
	int rc = 0;

	if (!cur) {
		return 0;
	}
	v = PyLong_FromLong(stmt_first_line(st));
	if (!v || PyObject_RichCompareBool(cur, v, Py_NE) == 1) {
		rc = v ? pyhot_ops_add_attr(&e->ops, PYHOT_OP_SETATTR, live,
					    "__firstlineno__", v) : -1;
	}
	Py_DECREF(cur);
	Py_XDECREF(v);
	return rc;
}

/* Give the functions of an unchanged class that moved in the file the code
 * compiled at the new lines (same bytecode), so that tracebacks and
 * inspect.getsource stay right. Nested classes recursively. */
static int relocate_class(struct engine *e, PyObject *live, PyObject *body_code,
			  int depth)
{
	PyObject *d = NULL;   /* owned */
	PyObject *items = NULL;   /* owned */
	PyObject *consts = NULL;   /* owned */
	PyObject *fns = NULL;   /* owned */
	Py_ssize_t i, n, j, nc;
	int rc = -1;

	if (depth > 8) {
		return 0;
	}
	d = pyhot_patch_get_attr(live, "__dict__");
	consts = pyhot_patch_get_attr(body_code, "co_consts");
	if (!d || !consts) {
		goto out;
	}
	items = PyMapping_Items(d);
	if (!items) {
		goto out;
	}
	n = PyList_Size(items);
	nc = PyTuple_Size(consts);
	for (i = 0; i < n; i++) {
		PyObject *key = PyTuple_GetItem(PyList_GetItem(items, i), 0);   /* borrowed */
		PyObject *val = PyTuple_GetItem(PyList_GetItem(items, i), 1);   /* borrowed */
		Py_ssize_t f, nf;

		if (PyType_Check(val)) {
			PyObject *sub = code_const(e, body_code, key);   /* owned */

			if (!sub && PyErr_Occurred()) {
				goto out;
			}
			if (sub) {
				int r = relocate_class(e, val, sub, depth + 1);

				Py_DECREF(sub);
				if (r < 0) {
					goto out;
				}
			}
			continue;
		}
		Py_XDECREF(fns);
		fns = PyList_New(0);
		if (!fns || member_functions(e, val, fns) < 0) {
			goto out;
		}
		nf = PyList_Size(fns);
		for (f = 0; f < nf; f++) {
			PyObject *fn = PyList_GetItem(fns, f);   /* borrowed */
			PyObject *lc = pyhot_patch_get_attr(fn, "__code__");   /* owned */

			if (!lc) {
				goto out;
			}
			for (j = 0; j < nc; j++) {
				PyObject *c = PyTuple_GetItem(consts, j);   /* borrowed */
				int same;

				if (!is_a(c, e->t_code) || c == lc) {
					continue;
				}
				same = attr_equal(lc, c, "co_name");
				if (same == 1) {
					same = attr_equal(lc, c, "co_code");
				}
				if (same == 1) {
					same = attr_equal(lc, c, "co_freevars");
				}
				if (same == 1) {
					same = !attr_equal(lc, c, "co_firstlineno");
				}
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

int relocate_stmt(struct engine *e, PyObject *st, PyObject *live)
{
	PyObject *name = NULL;   /* owned */
	PyObject *code = NULL;   /* owned */
	PyObject *bare = NULL;   /* owned */
	PyObject *fc = NULL;   /* owned */
	PyObject *inner = NULL;   /* owned */
	int rc = -1;

	if (!live) {
		return 0;
	}
	if (is_a(st, e->t_ClassDef)) {
		if (!PyType_Check(live)) {
			return 0;
		}
		code = class_body_code(e, st, NULL);
		if (!code) {
			return -1;
		}
		rc = relocate_class(e, live, code, 0);
		if (rc == 0) {
			rc = queue_firstlineno(e, live, st);
		}
		Py_DECREF(code);
		return rc;
	}
	name = pyhot_patch_get_attr(st, "name");
	bare = name ? node_stripped(e, st, strip_decorators) : NULL;
	code = bare ? compile_stmt(e, bare) : NULL;
	fc = code ? code_const(e, code, name) : NULL;
	if (!fc) {
		goto out;
	}
	if (find_inner(e, live, name, fc, NULL, &inner) < 0) {
		goto out;
	}
	rc = 0;
	if (inner) {
		PyObject *lc = pyhot_patch_get_attr(inner, "__code__");   /* owned */
		int same = lc ? attr_equal(lc, fc, "co_code") : -1;

		if (same == 1) {
			same = attr_equal(lc, fc, "co_freevars");
		}
		Py_XDECREF(lc);
		if (same < 0) {
			rc = -1;
		} else if (same && pyhot_ops_add_attr(&e->ops, PYHOT_OP_SETATTR, inner,
						    "__code__", fc) < 0) {
			rc = -1;
		}
	}
out:
	Py_XDECREF(name);
	Py_XDECREF(bare);
	Py_XDECREF(code);
	Py_XDECREF(fc);
	Py_XDECREF(inner);
	if (rc < 0 && !PyErr_Occurred()) {
		rc = 0;
	}
	return rc;
}

/* Roots of the walk besides the module's globals: the globals of every
 * other user module with a baseline (a decorator changed here may wrap
 * their functions; user code, never the heap), pushed on stack; their
 * names go into users. 0, or -1 with an exception. */
static int follow_roots(struct engine *e, PyObject *stack, PyObject *users)
{
	struct pyhot_baseline *b;
	PyObject *mods = PyImport_GetModuleDict();   /* borrowed */

	for (b = pyhot_baseline_find_first(); b && mods; b = b->next) {
		PyObject *mod = PyDict_GetItemString(mods, b->module);   /* borrowed */
		PyObject *nm;   /* owned */
		PyObject *d;   /* borrowed */
		PyObject *vals;   /* owned */
		PyObject *res;   /* owned: stack itself */

		if (!b->user || !mod || !PyObject_TypeCheck(mod, &PyModule_Type) ||
		    strcmp(b->module, e->mp->module) == 0) {
			continue;
		}
		nm = PyUnicode_FromString(b->module);
		if (!nm || PySet_Add(users, nm) < 0) {
			Py_XDECREF(nm);
			return -1;
		}
		Py_DECREF(nm);
		d = PyModule_GetDict(mod);
		vals = d ? PyDict_Values(d) : NULL;
		if (!vals) {
			return -1;
		}
		res = PySequence_InPlaceConcat(stack, vals);
		Py_DECREF(vals);
		if (!res) {
			return -1;
		}
		Py_DECREF(res);
	}
	return 0;
}

/* A function o runs old code whose new version is pair[1]: it follows
 * when its free variables still fit; the report says either way. */
static int follow_one(struct engine *e, PyObject *o, PyObject *fid,
		      PyObject *pair)
{
	PyObject *oc = PyTuple_GetItem(pair, 0);   /* borrowed */
	PyObject *nc = PyTuple_GetItem(pair, 1);   /* borrowed */
	PyObject *qn = pyhot_patch_get_attr(o, "__qualname__");   /* owned */
	char q[512], full[1024];
	int fits = attr_equal(oc, nc, "co_freevars"), r;

	if (!qn || pyhot_patch_utf8(qn, q, sizeof(q)) < 0) {
		snprintf(q, sizeof(q), "?");
	}
	PyErr_Clear();
	Py_XDECREF(qn);
	snprintf(full, sizeof(full), "%s.%s", e->mp->module, q);
	if (fits < 0) {
		return -1;
	}
	if (!fits) {
		return change_add(e, "kept", "function", full,
				  "free variables changed: keeps its code; "
				  "closures made from now on run the new code");
	}
	r = pyhot_ops_add_attr(&e->ops, PYHOT_OP_SETATTR, o, "__code__", nc);
	if (r == 0) {
		r = PySet_Add(e->patched, fid);
	}
	if (r == 0) {
		r = change_add(e, "changed", "function", full,
			       "follows the new code of its maker");
	}
	return r;
}

/* A function met on the walk: when its code is in the codemap and it was
 * not patched already, it follows the new code. 0, or -1 error. */
static int follow_function(struct engine *e, PyObject *o)
{
	PyObject *code = pyhot_patch_get_attr(o, "__code__");   /* owned */
	PyObject *cid = code ? id_of(code) : NULL;   /* owned */
	PyObject *fid = cid ? id_of(o) : NULL;   /* owned */
	PyObject *pair = fid ? PyDict_GetItemWithError(e->codemap, cid) : NULL;   /* borrowed */
	int done = pair ? PySet_Contains(e->patched, fid) : 0, rc = 0;

	Py_XDECREF(code);
	Py_XDECREF(cid);
	if (PyErr_Occurred() || done < 0) {
		rc = -1;
	} else if (pair && !done) {
		rc = follow_one(e, o, fid, pair);
	}
	Py_XDECREF(fid);
	return rc;
}

/* What a function leads to: its closure cells' contents and __wrapped__.
 * A new list, or NULL (errors cleared). */
static PyObject *function_refs(PyObject *o)
{
	PyObject *push = PyList_New(0);   /* owned */
	PyObject *clo;   /* owned */
	PyObject *w;   /* owned */
	Py_ssize_t i, n;

	if (!push) {
		return NULL;
	}
	clo = pyhot_patch_get_attr(o, "__closure__");
	w = plain_attr(o, "__wrapped__");
	n = clo && clo != Py_None ? PyTuple_Size(clo) : 0;
	for (i = 0; i < n; i++) {
		PyObject *c = getattr_opt(PyTuple_GetItem(clo, i), "cell_contents");   /* owned */

		if (c) {
			PyList_Append(push, c);
			Py_DECREF(c);
		}
		PyErr_Clear();
	}
	if (w) {
		PyList_Append(push, w);
		Py_DECREF(w);
	}
	Py_XDECREF(clo);
	PyErr_Clear();
	return push;
}

/* What a class leads to: its members, when a user module defined it. */
static PyObject *class_refs(PyObject *o, PyObject *users)
{
	PyObject *m = plain_attr(o, "__module__");   /* owned */
	PyObject *d;   /* owned */
	PyObject *push = NULL;   /* owned */
	int mine = m && PyUnicode_Check(m) ? PySet_Contains(users, m) : 0;

	Py_XDECREF(m);
	PyErr_Clear();
	if (mine == 1) {
		d = pyhot_patch_get_attr(o, "__dict__");
		push = d ? PyMapping_Values(d) : NULL;
		Py_XDECREF(d);
	}
	return push;
}

/* What anything else leads to: class members' functions, small containers'
 * items, a wrapper's __wrapped__; other modules are theirs. A new list, or
 * NULL (nothing, or an error left for the caller to clear). */
static PyObject *other_refs(struct engine *e, PyObject *o)
{
	PyObject *push = NULL;   /* owned */
	PyObject *w;   /* owned */

	if (is_a(o, e->t_classmethod) || is_a(o, e->t_staticmethod) ||
	    is_a(o, e->t_property)) {
		push = PyList_New(0);
		if (push && member_functions(e, o, push) < 0) {
			Py_CLEAR(push);
		}
	} else if (PyObject_TypeCheck(o, &PyModule_Type)) {
		/* other modules are theirs */
	} else if ((PyList_Check(o) || PyTuple_Check(o)) &&
		   PySequence_Size(o) <= 10000) {
		push = PySequence_List(o);
	} else if (PyDict_Check(o) && PyDict_Size(o) <= 10000) {
		push = PyDict_Values(o);
	} else if (!PyUnicode_Check(o) && !PyLong_Check(o) && !PyBytes_Check(o)) {
		w = plain_attr(o, "__wrapped__");
		PyErr_Clear();
		if (w) {
			push = PyList_New(0);
			if (push) {
				PyList_Append(push, w);
			}
			Py_DECREF(w);
		}
	}
	return push;
}

/* Visit one object of the walk: follow it when it is a function, push what
 * it leads to. 0, or -1 error. */
static int follow_visit(struct engine *e, PyObject *o, PyObject *users,
			PyObject *stack)
{
	PyObject *push;   /* owned */
	Py_ssize_t i, n;
	int rc = 0;

	if (is_a(o, e->t_function)) {
		if (follow_function(e, o) < 0) {
			return -1;
		}
		push = function_refs(o);
	} else if (PyType_Check(o)) {
		push = class_refs(o, users);
	} else {
		push = other_refs(e, o);
	}
	PyErr_Clear();
	if (!push) {
		return 0;
	}
	n = PyList_Size(push);
	for (i = 0; i < n && rc == 0; i++) {
		rc = PyList_Append(stack, PyList_GetItem(push, i));
	}
	Py_DECREF(push);
	return rc;
}

int follow_codes(struct engine *e)
{
	PyObject *stack = NULL;   /* owned */
	PyObject *seen = NULL;   /* owned */
	PyObject *users = NULL;   /* owned */
	Py_ssize_t visits = 0;
	int rc = -1;

	if (PyDict_Size(e->codemap) == 0) {
		return 0;
	}
	stack = PyDict_Values(e->G);
	seen = PySet_New(NULL);
	users = PySet_New(NULL);
	if (!stack || !seen || !users || PySet_Add(users, e->modname) < 0 ||
	    follow_roots(e, stack, users) < 0) {
		goto out;
	}
	while (PyList_Size(stack) > 0 && visits++ < 200000) {
		Py_ssize_t last = PyList_Size(stack) - 1;
		PyObject *o = PyList_GetItem(stack, last);   /* owned below */
		int r;

		Py_INCREF(o);
		r = PySequence_DelItem(stack, last) < 0 ? -1 : seen_before(seen, o);
		if (r == 0) {
			r = follow_visit(e, o, users, stack);
		}
		Py_DECREF(o);
		if (r < 0) {
			goto out;
		}
	}
	rc = 0;
out:
	Py_XDECREF(stack);
	Py_XDECREF(seen);
	Py_XDECREF(users);
	return rc;
}
