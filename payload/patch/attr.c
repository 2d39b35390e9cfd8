/*
 * attr.c: attribute access and small object helpers for the patch engine,
 * every attribute name interned (why: attr.h).
 */
#include "attr.h"

#include <stdarg.h>
#include <string.h>

/*
 * The interned names, kept. PyUnicode_InternFromString() makes a string
 * and looks it up in the interpreter's interned dict on every call: 11% of
 * the CPU of a refresh's plan in the target, where a few dozen names
 * ("body", "lineno", "__dict__") are asked for thousands of times. A
 * table by content, probed a few slots deep; a name too long for a slot,
 * or one that finds its slots taken, is interned as before. The table's
 * references keep its names alive (they are immortal from 3.12 on).
 */
#define NAME_SLOTS 512          /* a power of two */
#define NAME_PROBES 8
#define NAME_LEN 48

static struct name_slot {
	char s[NAME_LEN];
	PyObject *o;                /* owned; NULL: free */
} names[NAME_SLOTS];

PyObject *pyhot_patch_name(const char *name)
{
	size_t len = strlen(name), h = 2166136261u, i, k;
	PyObject *n;   /* owned */

	if (len >= NAME_LEN) {
		return PyUnicode_InternFromString(name);
	}
	for (i = 0; i < len; i++) {   /* FNV-1a */
		h = (h ^ (unsigned char)name[i]) * 16777619u;
	}
	for (k = 0; k < NAME_PROBES; k++) {
		struct name_slot *slot = &names[(h + k) & (NAME_SLOTS - 1)];

		if (slot->o && strcmp(slot->s, name) == 0) {
			Py_INCREF(slot->o);
			return slot->o;
		}
		if (!slot->o) {
			n = PyUnicode_InternFromString(name);
			if (!n) {
				return NULL;
			}
			memcpy(slot->s, name, len + 1);
			Py_INCREF(n);
			slot->o = n;
			return n;
		}
	}
	return PyUnicode_InternFromString(name);
}

PyObject *pyhot_patch_get_attr(PyObject *o, const char *name)
{
	PyObject *n = pyhot_patch_name(name);   /* owned */
	PyObject *v;   /* owned */

	if (!n) {
		return NULL;
	}
	v = PyObject_GetAttr(o, n);
	Py_DECREF(n);
	return v;
}

int set_attr(PyObject *o, const char *name, PyObject *v)
{
	PyObject *n = pyhot_patch_name(name);   /* owned */
	int rc;

	if (!n) {
		return -1;
	}
	rc = PyObject_SetAttr(o, n, v);
	Py_DECREF(n);
	return rc;
}

int has_attr(PyObject *o, const char *name)
{
	PyObject *v = pyhot_patch_get_attr(o, name);   /* owned */

	if (!v) {
		PyErr_Clear();
		return 0;
	}
	Py_DECREF(v);
	return 1;
}

PyObject *call_method(PyObject *o, const char *name, const char *fmt, ...)
{
	PyObject *m = pyhot_patch_get_attr(o, name);   /* owned */
	PyObject *args;   /* owned */
	PyObject *r;   /* owned */
	va_list ap;

	if (!m) {
		return NULL;
	}
	if (fmt && *fmt) {
		va_start(ap, fmt);
		args = Py_VaBuildValue(fmt, ap);
		va_end(ap);
		if (args && !PyTuple_Check(args)) {
			PyObject *one = PyTuple_Pack(1, args);   /* owned */

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

/* Whether m is still running its body (another thread imports it): its
 * __spec__._initializing, as the import system asks. No hook runs. */
static int module_initializing(PyObject *m)
{
	PyObject *spec = plain_attr(m, "__spec__");   /* owned */
	PyObject *init = spec ? plain_attr(spec, "_initializing") : NULL;   /* owned */
	int r = init ? PyObject_IsTrue(init) : 0;

	Py_XDECREF(init);
	Py_XDECREF(spec);
	if (r < 0) {
		PyErr_Clear();
		r = 1;   /* cannot tell: let the import system decide */
	}
	return r;
}

PyObject *pyhot_patch_module(const char *name)
{
	PyObject *mods = PyImport_GetModuleDict();   /* borrowed */
	PyObject *m = mods ? PyDict_GetItemString(mods, name) : NULL;   /* borrowed */

	/* A module half imported goes to the import system, which waits for
	 * the import under way (or gives it to us when it is our own). */
	if (m && PyModule_Check(m) && !module_initializing(m)) {
		Py_INCREF(m);
		return m;
	}
	return PyImport_ImportModule(name);
}

PyObject *getattr_opt(PyObject *o, const char *name)
{
	PyObject *v = pyhot_patch_get_attr(o, name);   /* owned */

	if (!v && PyErr_ExceptionMatches(PyExc_AttributeError)) {
		PyErr_Clear();
	}
	return v;
}

PyObject *plain_attr(PyObject *o, const char *name)
{
	PyObject *n = pyhot_patch_name(name);   /* owned */
	PyObject *v;   /* owned */

	if (!n) {
		PyErr_Clear();
		return NULL;
	}
	v = PyObject_GenericGetAttr(o, n);
	Py_DECREF(n);
	if (!v) {
		PyErr_Clear();
	}
	return v;
}

int has_plain_attr(PyObject *o, const char *name)
{
	PyObject *v = plain_attr(o, name);   /* owned */

	Py_XDECREF(v);
	return v != NULL;
}

PyObject *own_attr(PyObject *cls, PyObject *name)
{
	PyObject *d = pyhot_patch_get_attr(cls, "__dict__");   /* owned */
	PyObject *v;   /* owned */

	if (!d) {
		return NULL;
	}
	v = PyObject_GetItem(d, name);
	Py_DECREF(d);
	if (!v && PyErr_ExceptionMatches(PyExc_KeyError)) {
		PyErr_Clear();
	}
	return v;
}


int attr_equal(PyObject *a, PyObject *b, const char *name)
{
	PyObject *x = pyhot_patch_get_attr(a, name);   /* owned */
	PyObject *y;   /* owned */
	int rc;

	if (!x) {
		return -1;
	}
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

int set_update(PyObject *dst, PyObject *src)
{
	PyObject *it = PyObject_GetIter(src);   /* owned */
	PyObject *x;   /* owned */

	if (!it) {
		return -1;
	}
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

int pyhot_patch_utf8(PyObject *s, char *buf, size_t size)
{
	PyObject *b;   /* owned */
	char *p;
	Py_ssize_t n;

	if (!s || !PyUnicode_Check(s)) {
		return -1;
	}
	b = PyUnicode_AsUTF8String(s);
	if (!b) {
		return -1;
	}
	if (PyBytes_AsStringAndSize(b, &p, &n) < 0) {
		Py_DECREF(b);
		return -1;
	}
	if ((size_t)n >= size) {
		n = (Py_ssize_t)size - 1;
	}
	memcpy(buf, p, (size_t)n);
	buf[n] = '\0';
	Py_DECREF(b);
	return 0;
}
