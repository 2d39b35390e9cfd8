/* asyncio_tasks.c: asyncio tasks per event loop, read from asyncio's own
 * registry (see asyncio_tasks.h). */
#include "asyncio_tasks.h"

#include <string.h>

#include "pythreads.h"
#include "pyutil.h"

#define ASYNCIO_MAX_TASKS 1000
#define ASYNCIO_MAX_AWAITS 64
#define ASYNCIO_REPR_MAX 300

/* Append every item of the iterable attribute attr of mod to list. */
static void collect(PyObject *mod, const char *attr, PyObject *list)
{
	PyObject *s, *it, *item;      /* owned */

	s = PyObject_GetAttrString(mod, attr);
	it = s ? PyObject_GetIter(s) : NULL;
	while (it && (item = PyIter_Next(it)) != NULL) {
		PyList_Append(list, item);
		Py_DECREF(item);
	}
	Py_XDECREF(it);
	Py_XDECREF(s);
	PyErr_Clear();
}

/* repr(o), cut to ASYNCIO_REPR_MAX characters. o borrowed. */
static void key_repr(struct jsonw *out, const char *key, PyObject *o)
{
	PyObject *r = o ? PyObject_Repr(o) : NULL;     /* owned */
	PyObject *cut = NULL;                          /* owned */

	if (r && PyUnicode_GetLength(r) > ASYNCIO_REPR_MAX)
		cut = PyUnicode_Substring(r, 0, ASYNCIO_REPR_MAX);
	PyErr_Clear();
	pyhot_json_key_pystr(out, key, cut ? cut : r);
	Py_XDECREF(cut);
	Py_XDECREF(r);
}

/* getattr that clears its error: a new reference or NULL. */
static PyObject *attr(PyObject *o, const char *name)
{
	PyObject *v = o ? PyObject_GetAttrString(o, name) : NULL;

	if (!v)
		PyErr_Clear();
	return v;
}

/* call o.name() with no argument: a new reference or NULL. */
static PyObject *call0(PyObject *o, const char *name)
{
	PyObject *v = o ? PyObject_CallMethod(o, name, NULL) : NULL;

	if (!v)
		PyErr_Clear();
	return v;
}

/* The frame and the next awaitable of a coroutine, generator or async
 * generator; 0 when aw is none of them (a future, a C iterator). */
static int step(PyObject *aw, PyObject **frame, PyObject **next)
{
	static const char *const kinds[][2] = {
		{ "cr_frame", "cr_await" }, { "gi_frame", "gi_yieldfrom" },
		{ "ag_frame", "ag_await" },
	};
	size_t i;

	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		*frame = attr(aw, kinds[i][0]);
		if (*frame) {
			*next = attr(aw, kinds[i][1]);
			return 1;
		}
	}
	return 0;
}

/* "awaits" and "waiting_on" of one task. */
static void awaits_write(struct jsonw *out, PyObject *task, PyObject *coro,
			 PyObject *getline)
{
	PyObject *aw, *frame, *next, *waiter;    /* owned */
	int n = 0;

	jsonw_key(out, "awaits");
	jsonw_array_begin(out);
	Py_XINCREF(coro);
	aw = coro;
	while (aw && aw != Py_None && n++ < ASYNCIO_MAX_AWAITS && step(aw, &frame, &next)) {
		if (frame != Py_None)
			pyhot_frame_write(out, frame, PYHOT_FRAME_WITH_SOURCE, getline);
		Py_DECREF(frame);
		Py_DECREF(aw);
		aw = next;
	}
	jsonw_array_end(out);
	/* What the task waits on: its future when it has one (the end of the
	 * chain may be a C iterator over it), else the end of the chain. */
	waiter = attr(task, "_fut_waiter");
	key_repr(out, "waiting_on", waiter && waiter != Py_None ? waiter :
		 aw && aw != Py_None ? aw : NULL);
	Py_XDECREF(waiter);
	Py_XDECREF(aw);
}

static void task_write(struct jsonw *out, PyObject *task, PyObject *current,
		       PyObject *getline)
{
	PyObject *name = call0(task, "get_name");     /* owned */
	PyObject *coro = call0(task, "get_coro");     /* owned */
	PyObject *qual = attr(coro, "__qualname__");  /* owned */

	jsonw_object_begin(out);
	pyhot_json_key_pystr(out, "name", name);
	pyhot_json_key_pystr(out, "coroutine", qual);
	jsonw_key_bool(out, "current", task == current);
	awaits_write(out, task, coro, getline);
	jsonw_object_end(out);
	Py_XDECREF(qual);
	Py_XDECREF(coro);
	Py_XDECREF(name);
}

/* Whether a task is done (a failed call counts as not done: show it). */
static int task_done(PyObject *task)
{
	PyObject *d = call0(task, "done");   /* owned */
	int done = d == Py_True;

	Py_XDECREF(d);
	return done;
}

/* The loop of a task, a new reference or NULL. */
static PyObject *task_loop(PyObject *task)
{
	PyObject *loop = call0(task, "get_loop");

	return loop ? loop : attr(task, "_loop");
}

/* One event loop and its tasks (the items of tasks whose loop is loop). */
static void loop_write(struct jsonw *out, PyObject *loop, PyObject *tasks,
		       PyObject *current_tasks, PyObject *getline)
{
	PyObject *tid = attr(loop, "_thread_id");      /* owned */
	PyObject *running = call0(loop, "is_running"); /* owned */
	PyObject *current = NULL;                      /* borrowed */
	PyObject *tl;                                  /* owned */
	Py_ssize_t i, n = PyList_Size(tasks);
	int shown = 0, cut = 0;

	if (current_tasks && PyDict_Check(current_tasks))
		current = PyDict_GetItem(current_tasks, loop);
	PyErr_Clear();
	jsonw_object_begin(out);
	key_repr(out, "loop", loop);
	jsonw_key(out, "thread");
	if (tid && PyLong_Check(tid))
		jsonw_int(out, (long long)PyLong_AsUnsignedLongLong(tid));
	else
		jsonw_null(out);
	PyErr_Clear();
	jsonw_key_bool(out, "running", running == Py_True);
	jsonw_key(out, "tasks");
	jsonw_array_begin(out);
	for (i = 0; i < n; i++) {
		PyObject *task = PyList_GetItem(tasks, i);   /* borrowed */

		tl = task_loop(task);
		if (tl == loop && !task_done(task)) {
			if (shown++ < ASYNCIO_MAX_TASKS)
				task_write(out, task, current, getline);
			else
				cut = 1;
		}
		Py_XDECREF(tl);
	}
	jsonw_array_end(out);
	jsonw_key_bool(out, "tasks_cut", cut);
	jsonw_object_end(out);
	Py_XDECREF(running);
	Py_XDECREF(tid);
	PyErr_Clear();
}

void pyhot_asyncio_write(struct jsonw *out, PyObject *getline)
{
	PyObject *modules = PyImport_GetModuleDict();    /* borrowed */
	PyObject *mod;                                   /* borrowed */
	PyObject *tasks, *loops, *current;               /* owned */
	PyObject *loop;                                  /* owned */
	Py_ssize_t i, n;

	jsonw_key(out, "asyncio");
	mod = modules ? PyDict_GetItemString(modules, "asyncio.tasks") : NULL;
	tasks = mod ? PyList_New(0) : NULL;
	loops = mod ? PyList_New(0) : NULL;
	if (!tasks || !loops) {
		Py_XDECREF(tasks);
		Py_XDECREF(loops);
		PyErr_Clear();
		jsonw_null(out);
		return;
	}
	collect(mod, "_all_tasks", tasks);           /* 3.8 to 3.11 */
	collect(mod, "_scheduled_tasks", tasks);     /* 3.12, 3.13 */
	collect(mod, "_eager_tasks", tasks);
	current = attr(mod, "_current_tasks");
	/* The loops, in the order their first task came. */
	n = PyList_Size(tasks);
	for (i = 0; i < n; i++) {
		loop = task_loop(PyList_GetItem(tasks, i));
		if (loop && loop != Py_None && PySequence_Contains(loops, loop) == 0)
			PyList_Append(loops, loop);
		Py_XDECREF(loop);
		PyErr_Clear();
	}
	jsonw_array_begin(out);
	for (i = 0; i < PyList_Size(loops); i++)
		loop_write(out, PyList_GetItem(loops, i), tasks, current, getline);
	jsonw_array_end(out);
	Py_XDECREF(current);
	Py_DECREF(loops);
	Py_DECREF(tasks);
	PyErr_Clear();
}
