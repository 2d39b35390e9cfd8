/*
 * running.c: after a module's refresh is planned, the frames that will go
 * on running old code (a thread inside a changed function, an asyncio task
 * or a generator suspended in one), each named in the report.
 *
 * A frame runs the code it started with: setting __code__ changes what the
 * next call runs, never a call in progress. Such a frame keeps the old code
 * until it returns; what it calls from then on runs the new code.
 */
#include "running.h"

#include "attr.h"

#include <stdio.h>
#include <string.h>

/* Report lines per module: enough to be told, bounded when a changed
 * function runs in thousands of generators. */
#define MAX_RUNNING 64

/* Frames deeper than this in one thread are not looked at. */
#define MAX_DEPTH 512

/* What the scan looks for: id(old code) -> (old code, "module.qualname"),
 * plain functions apart from those whose calls make generators. */
struct old_codes {
	PyObject *plain;   /* owned dict */
	PyObject *gens;    /* owned dict */
	int lines;         /* running lines added so far */
};

int is_comprehension_code(PyObject *code)
{
	static const char *const names[] = { "<listcomp>", "<setcomp>",
					     "<dictcomp>", "<genexpr>", NULL };
	PyObject *n = pyhot_patch_get_attr(code, "co_name");   /* owned */
	int k, r = 0;

	for (k = 0; n && PyUnicode_Check(n) && names[k] && !r; k++) {
		r = PyUnicode_CompareWithASCIIString(n, names[k]) == 0;
	}
	Py_XDECREF(n);
	PyErr_Clear();
	return r;
}

PyObject *code_referrers(PyObject *pairs, int skip_comprehensions)
{
	PyObject *codes = PyList_New(0);   /* owned */
	PyObject *args = NULL;   /* owned */
	PyObject *gc = NULL;   /* owned */
	PyObject *refs = NULL;   /* owned */
	PyObject *pair;   /* borrowed */
	Py_ssize_t pos = 0;

	while (codes && PyDict_Next(pairs, &pos, NULL, &pair)) {
		PyObject *code = PyTuple_GetItem(pair, 0);   /* borrowed */

		if ((!skip_comprehensions || !is_comprehension_code(code)) &&
		    PyList_Append(codes, code) < 0) {
			Py_CLEAR(codes);
		}
	}
	if (codes && PyList_Size(codes) == 0) {
		return codes;   /* nothing to ask the heap about */
	}
	args = codes ? PyList_AsTuple(codes) : NULL;
	gc = args ? pyhot_patch_module("gc") : NULL;
	if (gc) {
		PyObject *gr = pyhot_patch_get_attr(gc, "get_referrers");   /* owned */

		refs = gr ? PyObject_CallObject(gr, args) : NULL;
		Py_XDECREF(gr);
	}
	Py_XDECREF(codes);
	Py_XDECREF(args);
	Py_XDECREF(gc);
	return refs;
}

/* "<module>.<qualname>" of function f: a new str, or NULL with an
 * exception. */
static PyObject *function_name(PyObject *f)
{
	PyObject *m = pyhot_patch_get_attr(f, "__module__");   /* owned */
	PyObject *q = m ? pyhot_patch_get_attr(f, "__qualname__") : NULL;   /* owned */
	PyObject *r = NULL;   /* owned */

	if (q && PyUnicode_Check(m)) {
		r = PyUnicode_FromFormat("%U.%S", m, q);
	} else if (q) {
		r = PyObject_Str(q);
	}
	Py_XDECREF(m);
	Py_XDECREF(q);
	return r;
}

/* Function fn is to run newc: when that changes more than line numbers,
 * its old code goes into oc. 0, or -1 error. */
static int add_old(struct old_codes *oc, PyObject *fn, PyObject *newc)
{
	PyObject *old = pyhot_patch_get_attr(fn, "__code__");   /* owned */
	PyObject *fl = NULL;   /* owned */
	PyObject *name = NULL;   /* owned */
	PyObject *id = NULL;   /* owned */
	PyObject *pair = NULL;   /* owned */
	int same, rc = -1;

	if (!old || old == newc) {
		Py_XDECREF(old);
		return old ? 0 : -1;
	}
	same = attr_equal(old, newc, "co_code");
	if (same == 1) {
		same = attr_equal(old, newc, "co_consts");
	}
	fl = same == 0 ? pyhot_patch_get_attr(old, "co_flags") : NULL;
	name = fl ? function_name(fn) : NULL;
	id = name ? id_of(old) : NULL;
	pair = id ? PyTuple_Pack(2, old, name) : NULL;
	if (same == 1) {
		rc = 0;   /* only its lines moved */
	} else if (pair) {
		rc = PyDict_SetItem((PyLong_AsLong(fl) & CO_KIND_FLAGS) ?
				    oc->gens : oc->plain, id, pair);
	}
	Py_DECREF(old);
	Py_XDECREF(fl);
	Py_XDECREF(name);
	Py_XDECREF(id);
	Py_XDECREF(pair);
	return rc;
}

/* One queued op: a function given a new __code__, or a module name bound
 * to a new function (a def re-bound rather than moved). 0, or -1 error. */
static int collect_op(struct engine *e, struct old_codes *oc,
		      const struct pyhot_op *op)
{
	PyObject *cur;   /* borrowed */
	PyObject *nc;   /* owned */
	int r;

	if (op->kind == PYHOT_OP_SETATTR && is_a(op->target, e->t_function) &&
	    PyUnicode_Check(op->key) &&
	    PyUnicode_CompareWithASCIIString(op->key, "__code__") == 0) {
		return add_old(oc, op->target, op->value);
	}
	if (op->kind != PYHOT_OP_SETITEM || op->target != e->G ||
	    !is_a(op->value, e->t_function)) {
		return 0;
	}
	cur = PyDict_GetItemWithError(e->G, op->key);
	if (!cur || cur == op->value || !is_a(cur, e->t_function)) {
		return PyErr_Occurred() ? -1 : 0;
	}
	Py_INCREF(cur);
	nc = pyhot_patch_get_attr(op->value, "__code__");
	r = nc ? add_old(oc, cur, nc) : -1;
	Py_XDECREF(nc);
	Py_DECREF(cur);
	return r;
}

/* The old codes of the functions this module's ops change. 0, or -1. */
static int collect(struct engine *e, struct old_codes *oc)
{
	size_t i;

	for (i = 0; i < e->ops.n; i++) {
		if (e->ops.v[i].tag == e->ops.tag &&
		    collect_op(e, oc, &e->ops.v[i]) < 0) {
			return -1;
		}
	}
	return 0;
}

/* Add a running line: the frame of pair's function runs at line. kind is
 * "thread", "task" or "generator"; label the thread's or task's name. */
static int add_line(struct engine *e, struct old_codes *oc, const char *kind,
		    PyObject *pair, const char *label, long line)
{
	char name[512], detail[768];

	if (oc->lines >= MAX_RUNNING) {
		return 0;
	}
	if (pyhot_patch_utf8(PyTuple_GetItem(pair, 1), name, sizeof(name)) < 0) {
		PyErr_Clear();
		snprintf(name, sizeof(name), "?");
	}
	if (label) {
		snprintf(detail, sizeof(detail),
			 "%s %s is in it at line %ld: keeps the old code until it "
			 "returns; what it calls runs the new code; restart the "
			 "%s to run the new code there", kind, label, line, kind);
	} else {
		snprintf(detail, sizeof(detail),
			 "a generator suspended at line %ld keeps the old code until "
			 "it returns (is exhausted or closed); new generators run the "
			 "new code", line);
	}
	if (pyhot_changes_add_running(&e->mp->report, kind, name, label, line,
				      detail) < 0) {
		PyErr_NoMemory();
		return -1;
	}
	oc->lines++;
	return 0;
}

/* frame.f_lineno, or 0. */
static long frame_line(PyObject *frame)
{
	PyObject *ln = pyhot_patch_get_attr(frame, "f_lineno");   /* owned */
	long line = ln ? PyLong_AsLong(ln) : 0;

	Py_XDECREF(ln);
	PyErr_Clear();
	return line;
}

/* The pair of codes whose id is that of obj's attribute attr (a frame's
 * f_code, a generator's gi_code), or NULL: borrowed from map. */
static PyObject *lookup_code(PyObject *map, PyObject *obj, const char *attr)
{
	PyObject *code = pyhot_patch_get_attr(obj, attr);   /* owned */
	PyObject *id = code ? id_of(code) : NULL;   /* owned */
	PyObject *pair = id ? PyDict_GetItemWithError(map, id) : NULL;   /* borrowed */

	Py_XDECREF(code);
	Py_XDECREF(id);
	PyErr_Clear();
	return pair;
}

/* threading's names of the running threads: a new dict ident -> name
 * (empty when threading is not imported). Read from threading._active
 * without its lock: the engine never waits on a lock of its host. */
static PyObject *thread_names(void)
{
	PyObject *mods = PyImport_GetModuleDict();   /* borrowed */
	PyObject *th = mods ? PyDict_GetItemString(mods, "threading") : NULL;   /* borrowed */
	PyObject *act = th ? getattr_opt(th, "_active") : NULL;   /* owned */
	PyObject *copy = act && PyDict_Check(act) ? PyDict_Copy(act) : NULL;   /* owned */
	PyObject *names = PyDict_New();   /* owned */
	PyObject *k;   /* borrowed */
	PyObject *t;   /* borrowed */
	Py_ssize_t pos = 0;

	while (names && copy && PyDict_Next(copy, &pos, &k, &t)) {
		PyObject *n = getattr_opt(t, "name");   /* owned */

		if (n && PyUnicode_Check(n) && PyDict_SetItem(names, k, n) < 0) {
			Py_CLEAR(names);
		}
		Py_XDECREF(n);
	}
	Py_XDECREF(act);
	Py_XDECREF(copy);
	PyErr_Clear();
	return names;
}

/* One thread's stack, innermost first: a frame that runs old code of a
 * plain function gets a line. 0, or -1 error. */
static int scan_stack(struct engine *e, struct old_codes *oc, PyObject *top,
		      const char *label)
{
	PyObject *f = top;   /* owned */
	int depth, rc = 0;

	Py_INCREF(f);
	for (depth = 0; f && f != Py_None && depth < MAX_DEPTH && rc == 0; depth++) {
		PyObject *pair = lookup_code(oc->plain, f, "f_code");   /* borrowed */
		PyObject *next;   /* owned */

		if (pair) {
			rc = add_line(e, oc, "thread", pair, label, frame_line(f));
		}
		next = pyhot_patch_get_attr(f, "f_back");
		Py_DECREF(f);
		f = next;
	}
	Py_XDECREF(f);
	PyErr_Clear();
	return rc;
}

/* Every thread's stack (sys._current_frames()). 0, or -1 error. */
static int scan_threads(struct engine *e, struct old_codes *oc)
{
	PyObject *sys = pyhot_patch_module("sys");   /* owned */
	PyObject *frames = sys ? call_method(sys, "_current_frames", NULL) : NULL;   /* owned */
	PyObject *names = frames ? thread_names() : NULL;   /* owned */
	PyObject *tid;   /* borrowed */
	PyObject *fr;   /* borrowed */
	Py_ssize_t pos = 0;
	int rc = names ? 0 : -1;

	while (rc == 0 && PyDict_Next(frames, &pos, &tid, &fr)) {
		PyObject *n = PyDict_GetItem(names, tid);   /* borrowed */
		char label[256];

		if (!n || pyhot_patch_utf8(n, label, sizeof(label)) < 0) {
			PyErr_Clear();
			snprintf(label, sizeof(label), "%ld", PyLong_AsLong(tid));
		}
		rc = scan_stack(e, oc, fr, label);
	}
	Py_XDECREF(sys);
	Py_XDECREF(frames);
	Py_XDECREF(names);
	return rc;
}

/* list(s) for a WeakSet another thread may change while it is listed
 * (asyncio.all_tasks() retries the same way). New list, or NULL. */
static PyObject *list_retry(PyObject *s)
{
	PyObject *l = NULL;   /* owned */
	int k;

	for (k = 0; k < 8 && !l; k++) {
		l = PySequence_List(s);
		if (!l && !PyErr_ExceptionMatches(PyExc_RuntimeError)) {
			break;
		}
		PyErr_Clear();
	}
	PyErr_Clear();
	return l;
}

/* Task t's coroutine and what it awaits, down the chain, each mapped
 * id -> the task's name. Errors are cleared: a task that cannot tell is
 * left out. */
static void map_task(PyObject *map, PyObject *t)
{
	static const char *const awaits[] = { "cr_await", "gi_yieldfrom",
					      "ag_await", NULL };
	PyObject *name = call_method(t, "get_name", NULL);   /* owned */
	PyObject *link = name ? call_method(t, "get_coro", NULL) : NULL;   /* owned */
	int depth, k;

	for (depth = 0; link && link != Py_None && depth < 64; depth++) {
		PyObject *id = id_of(link);   /* owned */
		PyObject *next = NULL;   /* owned */

		if (!id || PyDict_SetItem(map, id, name) < 0) {
			Py_XDECREF(id);
			break;
		}
		Py_DECREF(id);
		for (k = 0; awaits[k] && !next; k++) {
			next = plain_attr(link, awaits[k]);
		}
		Py_DECREF(link);
		link = next;
	}
	Py_XDECREF(link);
	Py_XDECREF(name);
	PyErr_Clear();
}

/* The asyncio tasks of every loop, found without gc: the sets asyncio
 * registers them in (_all_tasks up to 3.11; _scheduled_tasks and
 * _eager_tasks from 3.12). A new dict id(coroutine) -> task name (empty
 * when asyncio is not imported), or NULL out of memory. */
static PyObject *task_names(void)
{
	static const char *const sets[] = { "_all_tasks", "_scheduled_tasks",
					    "_eager_tasks", NULL };
	PyObject *mods = PyImport_GetModuleDict();   /* borrowed */
	PyObject *tm = mods ? PyDict_GetItemString(mods, "asyncio.tasks") : NULL;   /* borrowed */
	PyObject *map = PyDict_New();   /* owned */
	Py_ssize_t i;
	int k;

	for (k = 0; map && tm && sets[k]; k++) {
		PyObject *s = getattr_opt(tm, sets[k]);   /* owned */
		PyObject *l = s ? list_retry(s) : NULL;   /* owned */

		for (i = 0; l && i < PyList_Size(l); i++) {
			map_task(map, PyList_GetItem(l, i));
		}
		Py_XDECREF(s);
		Py_XDECREF(l);
	}
	PyErr_Clear();
	return map;
}

/* One object that refers to an old code: a generator, coroutine or async
 * generator still able to run gets a line (a coroutine a task awaits is
 * named after the task). 0, or -1 error. */
static int scan_gen(struct engine *e, struct old_codes *oc, PyObject *o,
		    PyObject *tasks)
{
	static const char *const kinds[][2] = { { "gi_code", "gi_frame" },
						{ "cr_code", "cr_frame" },
						{ "ag_code", "ag_frame" } };
	PyObject *pair = NULL;   /* borrowed */
	PyObject *frame;   /* owned */
	PyObject *id;   /* owned */
	PyObject *task;   /* borrowed */
	char label[256];
	int k, rc;

	for (k = 0; k < 3 && !pair; k++) {
		if (has_plain_attr(o, kinds[k][0])) {
			pair = lookup_code(oc->gens, o, kinds[k][0]);
			break;
		}
	}
	frame = pair ? plain_attr(o, kinds[k][1]) : NULL;
	if (!frame || frame == Py_None) {
		Py_XDECREF(frame);
		return 0;   /* not a generator of old code, or finished */
	}
	id = id_of(o);
	task = id ? PyDict_GetItem(tasks, id) : NULL;
	if (!task || pyhot_patch_utf8(task, label, sizeof(label)) < 0) {
		task = NULL;
	}
	PyErr_Clear();
	rc = add_line(e, oc, task ? "task" : "generator", pair,
		      task ? label : NULL, frame_line(frame));
	Py_XDECREF(id);
	Py_DECREF(frame);
	return rc;
}

/* The generators, coroutines and async generators of old code: among the
 * objects that refer to it (one gc.get_referrers() pass over the heap,
 * asked only when such a function changed). 0, or -1 error. */
static int scan_generators(struct engine *e, struct old_codes *oc)
{
	PyObject *refs = NULL;   /* owned */
	PyObject *tasks = NULL;   /* owned */
	Py_ssize_t i;
	int rc = -1;

	if (PyDict_Size(oc->gens) == 0) {
		return 0;
	}
	refs = code_referrers(oc->gens, 0);
	tasks = refs ? task_names() : NULL;
	for (i = 0; tasks && i < PyList_Size(refs); i++) {
		if (scan_gen(e, oc, PyList_GetItem(refs, i), tasks) < 0) {
			goto out;
		}
	}
	rc = tasks ? 0 : -1;
out:
	Py_XDECREF(refs);
	Py_XDECREF(tasks);
	return rc;
}

int running_report(struct engine *e)
{
	struct old_codes oc;
	int rc = -1;

	oc.plain = PyDict_New();
	oc.gens = PyDict_New();
	oc.lines = 0;
	if (oc.plain && oc.gens && collect(e, &oc) == 0 &&
	    (PyDict_Size(oc.plain) == 0 || scan_threads(e, &oc) == 0)) {
		rc = scan_generators(e, &oc);
	}
	Py_XDECREF(oc.plain);
	Py_XDECREF(oc.gens);
	return rc;
}
