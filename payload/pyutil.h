/*
 * pyutil.h: small helpers for payload code that holds the GIL. Private to
 * the payload. Stable ABI only (Py_LIMITED_API=0x03080000).
 */
#ifndef PYHOT_PYUTIL_H
#define PYHOT_PYUTIL_H

#include <Python.h>
#include <stddef.h>

#include "jsonw.h"

/* Describe the Python exception that is set ("TypeName: message") into buf
 * and clear it. buf gets "" when none is set. GIL held. */
void pyhot_py_exc_take(char *buf, size_t size);

/* Write str(o) as a JSON string (null when o is NULL or str() fails; the
 * failure is cleared). Invalid UTF-8 (surrogate escapes) becomes U+FFFD.
 * o is borrowed. GIL held. */
void pyhot_json_pystr(struct jsonw *w, PyObject *o);

/* jsonw_key() then pyhot_json_pystr(). */
void pyhot_json_key_pystr(struct jsonw *w, const char *key, PyObject *o);

#endif /* PYHOT_PYUTIL_H */
