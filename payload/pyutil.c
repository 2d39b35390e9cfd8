/* pyutil.c: helpers for payload code that holds the GIL (see pyutil.h). */
#include "pyutil.h"

#include <stdio.h>
#include <string.h>

/* UTF-8 bytes of a str, keeping lone surrogates (file names) as raw bytes
 * that jsonw turns into U+FFFD. Returns a new reference or NULL, error
 * cleared. */
static PyObject *utf8_of(PyObject *o)
{
	PyObject *s = NULL;       /* owned */
	PyObject *b = NULL;       /* owned */

	if (PyUnicode_Check(o)) {
		Py_INCREF(o);
		s = o;
	} else {
		s = PyObject_Str(o);
	}
	if (!s) {
		goto error;
	}
	b = PyUnicode_AsEncodedString(s, "utf-8", "surrogateescape");
	if (!b) {
		goto error;
	}
	Py_DECREF(s);
	return b;
error:
	PyErr_Clear();
	Py_XDECREF(s);
	return NULL;
}

void pyhot_json_pystr(struct jsonw *w, PyObject *o)
{
	PyObject *b;              /* owned */
	char *data;
	Py_ssize_t n;

	if (!o || !(b = utf8_of(o))) {
		jsonw_null(w);
		return;
	}
	if (PyBytes_AsStringAndSize(b, &data, &n) < 0) {
		PyErr_Clear();
		jsonw_null(w);
	} else {
		jsonw_strn(w, data, (size_t)n);
	}
	Py_DECREF(b);
}

void pyhot_json_key_pystr(struct jsonw *w, const char *key, PyObject *o)
{
	jsonw_key(w, key);
	pyhot_json_pystr(w, o);
}

/* Copy the UTF-8 of str(o) into buf; "?" when that fails. */
static void copy_str(char *buf, size_t size, PyObject *o)
{
	PyObject *b = o ? utf8_of(o) : NULL;   /* owned */
	char *data;
	Py_ssize_t n;

	if (!b || PyBytes_AsStringAndSize(b, &data, &n) < 0) {
		PyErr_Clear();
		snprintf(buf, size, "?");
	} else {
		snprintf(buf, size, "%.*s", (int)(n > 4096 ? 4096 : n), data);
	}
	Py_XDECREF(b);
}

void pyhot_py_exc_take(char *buf, size_t size)
{
	PyObject *type, *value, *tb;   /* owned, from PyErr_Fetch */
	PyObject *name = NULL;         /* owned */
	char tname[128], msg[1024];

	buf[0] = '\0';
	if (!PyErr_Occurred()) {
		return;
	}
	PyErr_Fetch(&type, &value, &tb);
	PyErr_NormalizeException(&type, &value, &tb);
	/* The fetched exception is out of the thread state now: whatever the
	 * calls below raise is theirs, and is cleared. */
	name = type ? PyObject_GetAttrString(type, "__name__") : NULL;
	copy_str(tname, sizeof(tname), name);
	copy_str(msg, sizeof(msg), value);
	snprintf(buf, size, "%s: %s", tname, msg);
	Py_XDECREF(name);
	Py_XDECREF(type);
	Py_XDECREF(value);
	Py_XDECREF(tb);
	PyErr_Clear();
}
