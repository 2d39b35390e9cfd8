/* pythreads.c: the target's Python threads and frames, as the verbs read
 * them (see pythreads.h). */
#include "pythreads.h"

#include <stdio.h>

#include "pyutil.h"
#include "safepoint.h"

PyObject *pyhot_threading_attr(const char *name)
{
	PyObject *modules;        /* borrowed */
	PyObject *threading;      /* borrowed */
	PyObject *v;              /* owned */

	modules = PyImport_GetModuleDict();
	threading = modules ? PyDict_GetItemString(modules, "threading") : NULL;
	if (!threading) {
		return NULL;
	}
	v = PyObject_GetAttrString(threading, name);
	if (!v) {
		PyErr_Clear();
	}
	return v;
}

unsigned long pyhot_main_thread_ident(void)
{
	PyObject *main;           /* owned */
	PyObject *ident = NULL;   /* owned */
	unsigned long id = 0;

	/* Pending calls run on the main thread only. */
	if (pyhot_sp_current_via() == PYHOT_SP_PENDING_CALL) {
		return PyThread_get_thread_ident();
	}
	main = pyhot_threading_attr("_main_thread");
	if (main) {
		ident = PyObject_GetAttrString(main, "ident");
	}
	if (ident && PyLong_Check(ident)) {
		id = PyLong_AsUnsignedLong(ident);
	}
	Py_XDECREF(ident);
	Py_XDECREF(main);
	PyErr_Clear();
	return id ? id : pyhot_sp_main_ident();
}

PyObject *pyhot_current_frames(char *why, size_t size)
{
	PyObject *fn;             /* borrowed */
	PyObject *frames = NULL;  /* owned */

	why[0] = '\0';
	fn = PySys_GetObject("_current_frames");
	if (fn) {
		frames = PyObject_CallObject(fn, NULL);
	}
	if (frames && PyDict_Check(frames)) {
		return frames;
	}
	Py_XDECREF(frames);
	pyhot_py_exc_take(why, size);
	if (!why[0]) {
		snprintf(why, size, "not a dict");
	}
	return NULL;
}

/* The stripped text of line n of file, or NULL (no error set). */
static PyObject *source_line(PyObject *getline, PyObject *file, long n)
{
	PyObject *src;                 /* owned */
	PyObject *stripped = NULL;     /* owned */

	src = PyObject_CallFunction(getline, "Ol", file, n);
	if (src && PyUnicode_Check(src)) {
		stripped = PyObject_CallMethod(src, "strip", NULL);
	}
	Py_XDECREF(src);
	PyErr_Clear();
	return stripped;
}

void pyhot_frame_write(struct jsonw *out, PyObject *frame,
		       enum pyhot_frame_fields fields, PyObject *getline)
{
	PyObject *code = NULL;    /* owned */
	PyObject *file = NULL;    /* owned */
	PyObject *func = NULL;    /* owned */
	PyObject *line = NULL;    /* owned */
	PyObject *src = NULL;     /* owned */
	long n = -1;

	code = PyObject_GetAttrString(frame, "f_code");
	if (code) {
		file = PyObject_GetAttrString(code, "co_filename");
		func = PyObject_GetAttrString(code, "co_name");
	}
	PyErr_Clear();
	line = PyObject_GetAttrString(frame, "f_lineno");
	if (line && PyLong_Check(line)) {
		n = PyLong_AsLong(line);
	}
	PyErr_Clear();
	if (fields == PYHOT_FRAME_WITH_SOURCE && getline && file && n > 0) {
		src = source_line(getline, file, n);
	}
	jsonw_object_begin(out);
	pyhot_json_key_pystr(out, "file", file);
	jsonw_key(out, "line");
	if (n < 0) {
		jsonw_null(out);
	} else {
		jsonw_int(out, n);
	}
	pyhot_json_key_pystr(out, "function", func);
	if (fields == PYHOT_FRAME_WITH_SOURCE) {
		pyhot_json_key_pystr(out, "source", src);
	}
	jsonw_object_end(out);
	Py_XDECREF(src);
	Py_XDECREF(line);
	Py_XDECREF(func);
	Py_XDECREF(file);
	Py_XDECREF(code);
	PyErr_Clear();
}
