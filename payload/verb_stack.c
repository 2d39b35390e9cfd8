/* verb_stack.c: the "stack" verb, the Python stack of every thread (see
 * verb_stack.h). */
#include <Python.h>

#include "verb_stack.h"

#include <unistd.h>

#include "asyncio_tasks.h"
#include "pythreads.h"
#include "pyutil.h"
#include "safepoint.h"

#define STACK_MAX_FRAMES 512

/* key: getattr(o, attr) as a string, or null. */
static void key_attr_str(struct jsonw *out, const char *key, PyObject *o,
			 const char *attr)
{
	PyObject *v = o ? PyObject_GetAttrString(o, attr) : NULL;   /* owned */

	PyErr_Clear();
	pyhot_json_key_pystr(out, key, v && v != Py_None ? v : NULL);
	Py_XDECREF(v);
}

/* key: getattr(o, attr) as an integer (or bool), or null. */
static void key_attr_int(struct jsonw *out, const char *key, PyObject *o,
			 const char *attr, int as_bool)
{
	PyObject *v = o ? PyObject_GetAttrString(o, attr) : NULL;   /* owned */
	long long n;

	jsonw_key(out, key);
	if (!v || !PyLong_Check(v)) {
		jsonw_null(out);
	} else {
		n = PyLong_AsLongLong(v);
		if (n == -1 && PyErr_Occurred()) {
			jsonw_null(out);
		} else if (as_bool) {
			jsonw_bool(out, n != 0);
		} else {
			jsonw_int(out, n);
		}
	}
	Py_XDECREF(v);
	PyErr_Clear();
}

/* The frames of one thread, oldest first. frame borrowed. */
static void frames_write(struct jsonw *out, PyObject *frame, PyObject *getline)
{
	PyObject *stack;          /* owned: innermost first */
	PyObject *f;              /* owned */
	PyObject *back;           /* owned */
	Py_ssize_t i, n;
	int truncated = 0;

	stack = PyList_New(0);
	if (!stack) {
		PyErr_Clear();
		jsonw_key(out, "frames");
		jsonw_array_begin(out);
		jsonw_array_end(out);
		jsonw_key_bool(out, "truncated", 1);
		return;
	}
	Py_INCREF(frame);
	f = frame;
	while (f && f != Py_None) {
		if (PyList_Size(stack) >= STACK_MAX_FRAMES) {
			truncated = 1;
			break;
		}
		if (PyList_Append(stack, f) < 0) {
			truncated = 1;
			break;
		}
		back = PyObject_GetAttrString(f, "f_back");
		Py_DECREF(f);
		f = back;
	}
	Py_XDECREF(f);
	PyErr_Clear();
	jsonw_key(out, "frames");
	jsonw_array_begin(out);
	n = PyList_Size(stack);
	for (i = n - 1; i >= 0; i--) {
		pyhot_frame_write(out, PyList_GetItem(stack, i),
				  PYHOT_FRAME_WITH_SOURCE, getline);
	}
	jsonw_array_end(out);
	jsonw_key_bool(out, "truncated", truncated);
	Py_DECREF(stack);
	PyErr_Clear();
}

/* One thread: ident is a borrowed int, frame borrowed, thread (the
 * threading.Thread, borrowed) may be NULL. */
static void thread_write(struct jsonw *out, PyObject *ident, PyObject *frame,
			 PyObject *thread, int is_main, PyObject *getline)
{
	jsonw_object_begin(out);
	jsonw_key(out, "ident");
	jsonw_int(out, (long long)PyLong_AsUnsignedLongLong(ident));
	PyErr_Clear();
	if (thread) {
		key_attr_int(out, "tid", thread, "native_id", 0);
		key_attr_str(out, "name", thread, "name");
		key_attr_int(out, "daemon", thread, "daemon", 1);
	} else {
		jsonw_key(out, "tid");
		if (is_main) {
			jsonw_int(out, getpid());
		} else {
			jsonw_null(out);
		}
		jsonw_key(out, "name");
		jsonw_null(out);
		jsonw_key(out, "daemon");
		jsonw_null(out);
	}
	jsonw_key_bool(out, "main", is_main);
	frames_write(out, frame, getline);
	jsonw_object_end(out);
}

/* "threads": the main thread first, when it has a frame, then the others.
 * frames ({ident: frame}) borrowed; active (threading._active, a copy) and
 * getline borrowed, may be NULL. */
static void threads_write(struct jsonw *out, PyObject *frames, PyObject *active,
			  PyObject *getline)
{
	PyObject *key, *frame;        /* borrowed */
	PyObject *main_key = NULL;    /* owned */
	PyObject *main_frame = NULL;  /* borrowed */
	unsigned long mid = pyhot_main_thread_ident();
	Py_ssize_t pos = 0;

	jsonw_key(out, "threads");
	jsonw_array_begin(out);
	if (mid && (main_key = PyLong_FromUnsignedLong(mid))) {
		main_frame = PyDict_GetItem(frames, main_key);
	}
	PyErr_Clear();
	if (main_frame) {
		thread_write(out, main_key, main_frame,
			     active ? PyDict_GetItem(active, main_key) : NULL, 1, getline);
	}
	while (PyDict_Next(frames, &pos, &key, &frame)) {
		if (main_frame && PyObject_RichCompareBool(key, main_key, Py_EQ) == 1) {
			continue;
		}
		PyErr_Clear();
		if (!PyLong_Check(key) || frame == Py_None) {
			continue;
		}
		thread_write(out, key, frame, active ? PyDict_GetItem(active, key) : NULL,
			     0, getline);
	}
	jsonw_array_end(out);
	Py_XDECREF(main_key);
	PyErr_Clear();
}

int pyhot_verb_stack(const struct pyhot_req *req, struct jsonw *out,
		     struct pyhot_err *err)
{
	PyObject *frames;             /* owned: {ident: frame} */
	PyObject *active_live = NULL; /* owned: threading._active */
	PyObject *active = NULL;      /* owned: a copy of it */
	PyObject *linecache = NULL;   /* owned */
	PyObject *getline = NULL;     /* owned */
	char why[512];

	frames = pyhot_current_frames(why, sizeof(why));
	if (!frames) {
		return pyhot_err_set(err, PYHOT_ERR_FAILED, 0, getpid(), "stack",
				     "sys._current_frames() failed: %s", why);
	}
	/* A copy: the dict of live threads changes as threads start and end. */
	active_live = pyhot_threading_attr("_active");
	if (active_live && PyDict_Check(active_live)) {
		active = PyDict_Copy(active_live);
	}
	PyErr_Clear();
	linecache = PyImport_ImportModule("linecache");
	if (linecache) {
		getline = PyObject_GetAttrString(linecache, "getline");
	}
	PyErr_Clear();

	jsonw_key_str(out, "via", pyhot_sp_via_name(pyhot_sp_current_via()));
	threads_write(out, frames, active, getline);
	pyhot_asyncio_write(out, getline);
	Py_XDECREF(getline);
	Py_XDECREF(linecache);
	Py_XDECREF(active);
	Py_XDECREF(active_live);
	Py_DECREF(frames);
	PyErr_Clear();
	return 0;
}
