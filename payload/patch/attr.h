/*
 * attr.h: attribute access by a C name for the patch engine, and small
 * object helpers. GIL held.
 *
 * Every name is interned. CPython's type attribute cache (4096 entries)
 * keeps a reference to the name of every lookup it caches, while
 * PyObject_GetAttrString() and PyObject_CallMethod() make a fresh string on
 * each call: every refresh would leave more dead names alive there, until
 * the cache is full (a class the refresh modified gets a new version tag,
 * hence new slots; on 3.10 and later the slot also follows the name's
 * address, so any lookup does). An interned name is one object, alive
 * anyway. The engine uses these, never PyObject_*AttrString() or
 * PyObject_CallMethod().
 */
#ifndef PYHOT_PATCH_ATTR_H
#define PYHOT_PATCH_ATTR_H

#include <Python.h>
#include <stddef.h>

/* The interned string name (new reference), or NULL with an exception.
 * Kept in a table after the first call: asking again costs a hash and a
 * strcmp(). */
PyObject *pyhot_patch_name(const char *name);

/* getattr(o, name): new reference, or NULL with an exception. */
PyObject *pyhot_patch_get_attr(PyObject *o, const char *name);

/* setattr(o, name, v): 0, or -1 with an exception. */
int set_attr(PyObject *o, const char *name, PyObject *v);

/* As PyObject_HasAttrString(): 1 or 0; an error counts as "no" and is
 * cleared. */
int has_attr(PyObject *o, const char *name);

/* As PyObject_CallMethod(): fmt NULL calls with no arguments; a format
 * that builds one tuple gives the arguments, anything else one argument.
 * New reference, or NULL with an exception. */
PyObject *call_method(PyObject *o, const char *name, const char *fmt, ...);

/* The module called name: the one in sys.modules when it is a module
 * object there whose body has run (no import machinery:
 * PyImport_ImportModule() costs tens of microseconds through __import__),
 * else imported. New reference, or NULL with an exception. */
PyObject *pyhot_patch_module(const char *name);

/* getattr that treats a missing attribute as NULL without an error; other
 * errors stay set (new reference, or NULL). */
PyObject *getattr_opt(PyObject *o, const char *name);

/*
 * Attribute lookup that runs no __getattr__ hook: wrappers keep __wrapped__
 * and __func__ in their __dict__ or type, while a lazy proxy's
 * __getattr__ (Django settings, werkzeug proxies) could run arbitrary code.
 * New reference, or NULL without an error.
 */
PyObject *plain_attr(PyObject *o, const char *name);

/* Whether plain_attr() finds name on o (1 or 0, no error). */
int has_plain_attr(PyObject *o, const char *name);

/* A class's own __dict__ entry (new reference), or NULL: without an error
 * when the class has no such entry. */
PyObject *own_attr(PyObject *cls, PyObject *name);

/* Compare a named attribute of two objects: 1 equal, 0 not, -1 error. */
int attr_equal(PyObject *a, PyObject *b, const char *name);

/* dst |= set(iterable src): 0, or -1 with an exception. */
int set_update(PyObject *dst, PyObject *src);

/* Copy the UTF-8 text of a str into buf (truncated to fit): 0, or -1 with
 * an exception set (also when s is not a str). */
int pyhot_patch_utf8(PyObject *s, char *buf, size_t size);

/* Whether o's type is exactly type (never a subclass); type may be NULL
 * (a type this interpreter lacks). */
static inline int is_a(PyObject *o, PyObject *type)
{
	return type && (PyObject *)Py_TYPE(o) == type;
}

/* id(o) as a Python int (new reference, or NULL with an exception). */
static inline PyObject *id_of(PyObject *o)
{
	return PyLong_FromVoidPtr(o);
}

#endif /* PYHOT_PATCH_ATTR_H */
