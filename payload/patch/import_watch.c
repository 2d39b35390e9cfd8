/*
 * import_watch.c: the baseline of every module imported after the attach,
 * taken as its loader loads it.
 *
 * importlib's SourceLoader.get_code (the path of every .py module: it
 * either compiles the source or loads a valid .pyc) and source_to_code (the
 * compile, given the exact bytes read) are replaced by C method
 * descriptors that call the originals. A compile records its bytes: the
 * baseline is exactly what runs, with no second read. A module loaded from
 * a .pyc never compiles: its source is read at once (GIL released) and
 * trusted only when its mtime is older than the start of get_code, so that
 * the file cannot have changed between the loader's check and the read.
 * After a detach the wrappers put the originals back at their next call
 * (the detach runs without the GIL). docs/engine.md has the measurements.
 */
#include "attr.h"
#include "baseline.h"
#include "import_watch.h"
#include "pyhot_patch.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>

static PyObject *loader_cls;       /* owned: SourceLoader */
static PyObject *orig_get_code;    /* owned, kept for ever: a call may be */
static PyObject *orig_s2c;         /* running it when the originals return */
static PyObject *our_get_code;     /* owned: our descriptors */
static PyObject *our_s2c;          /* owned */
static atomic_int watching;

/*
 * The bytes source_to_code compiled within the get_code running on this
 * thread go into a list kept in the thread state's dict under SLOT_KEY
 * while that get_code runs (a nested get_code keeps its own). Not C
 * thread-local storage: __thread in a dlopen()ed object needs
 * __tls_get_addr from ld.so, and the payload links libc only.
 */
#define SLOT_KEY "pyhot.import_watch.slot"

/* This thread's slot (borrowed), or NULL when no get_code of ours runs. */
static PyObject *slot_get(void)
{
	PyObject *d = PyThreadState_GetDict();   /* borrowed */

	return d ? PyDict_GetItemString(d, SLOT_KEY) : NULL;
}

/* Make slot (may be NULL: none) this thread's slot; 0, or -1 with an
 * exception. */
static int slot_set(PyObject *slot)
{
	PyObject *d = PyThreadState_GetDict();   /* borrowed */

	if (!d) {
		return -1;
	}
	if (slot) {
		return PyDict_SetItemString(d, SLOT_KEY, slot);
	}
	if (PyDict_DelItemString(d, SLOT_KEY) < 0) {
		PyErr_Clear();
	}
	return 0;
}

/* orig(self, *args, **kw): a new reference, or NULL with an exception. */
static PyObject *call_orig(PyObject *orig, PyObject *self, PyObject *args,
			   PyObject *kw)
{
	Py_ssize_t i, n = PyTuple_Size(args);
	PyObject *full = PyTuple_New(n + 1);   /* owned */
	PyObject *res;   /* owned */

	if (!full) {
		return NULL;
	}
	Py_INCREF(self);
	PyTuple_SetItem(full, 0, self);
	for (i = 0; i < n; i++) {
		PyObject *a = PyTuple_GetItem(args, i);   /* borrowed */

		Py_INCREF(a);
		PyTuple_SetItem(full, i + 1, a);
	}
	res = PyObject_Call(orig, full, kw);
	Py_DECREF(full);
	return res;
}

/* Put one original back when our descriptor is still the attribute. */
static void restore_one(const char *name, PyObject *ours, PyObject *orig)
{
	PyObject *cur = getattr_opt(loader_cls, name);   /* owned */

	if (cur == ours) {
		PyObject_SetAttrString(loader_cls, name, orig);
	}
	Py_XDECREF(cur);
}

/* Detached: the originals go back (GIL held, the caller's exception kept). */
static void restore(void)
{
	PyObject *t, *v, *tb;   /* owned */

	if (!our_get_code) {
		return;
	}
	PyErr_Fetch(&t, &v, &tb);
	restore_one("get_code", our_get_code, orig_get_code);
	restore_one("source_to_code", our_s2c, orig_s2c);
	PyErr_Clear();
	PyErr_Restore(t, v, tb);
}

static PyObject *watch_s2c(PyObject *self, PyObject *args, PyObject *kw)
{
	PyObject *data = PyTuple_Size(args) > 0 ? PyTuple_GetItem(args, 0) : NULL;   /* borrowed */

	if (!atomic_load(&watching)) {
		restore();
	} else if (data && PyBytes_Check(data)) {
		PyObject *slot = slot_get();   /* borrowed */

		if (slot && PyList_Check(slot) &&
		    PyList_SetSlice(slot, 0, PyList_Size(slot), NULL) == 0 &&
		    PyList_Append(slot, data) < 0) {
			PyErr_Clear();   /* not recorded: the module gets no baseline */
		}
	}
	return call_orig(orig_s2c, self, args, kw);
}

/* Record the baseline of a module get_code loaded: src the bytes it
 * compiled (NULL: it came from a .pyc), t0 when get_code started. */
static void record(PyObject *args, PyObject *code, PyObject *src,
		   const struct timespec *t0)
{
	PyObject *fname = getattr_opt(code, "co_filename");   /* owned */
	char name[1024], path[4096], *text;
	size_t n, len;
	struct timespec mtime;

	if (!fname || PyTuple_Size(args) < 1 ||
	    pyhot_patch_utf8(PyTuple_GetItem(args, 0), name, sizeof(name)) < 0 ||
	    pyhot_patch_utf8(fname, path, sizeof(path)) < 0 ||
	    (n = strlen(path)) < 3 || strcmp(path + n - 3, ".py") != 0) {
		Py_XDECREF(fname);
		PyErr_Clear();
		return;
	}
	Py_DECREF(fname);
	if (src) {
		(void)pyhot_baseline_put_ex(name, path, PyBytes_AsString(src),
					    (size_t)PyBytes_Size(src), 1);
		return;
	}
	if (pyhot_patch_read_file_nogil(path, &text, &len, &mtime) == 0) {
		(void)pyhot_baseline_adopt(name, path, text, len,
					   pyhot_patch_ts_before(&mtime, t0));
	}
}

static PyObject *watch_get_code(PyObject *self, PyObject *args, PyObject *kw)
{
	PyObject *outer;   /* owned: the slot of a get_code this one is nested in */
	PyObject *slot;   /* owned */
	PyObject *code;   /* owned */
	PyObject *t;   /* owned until PyErr_Restore() takes it back */
	PyObject *v;   /* owned, likewise */
	PyObject *tb;   /* owned, likewise */
	struct timespec t0;

	if (!atomic_load(&watching)) {
		restore();
		return call_orig(orig_get_code, self, args, kw);
	}
	clock_gettime(CLOCK_REALTIME, &t0);
	outer = slot_get();
	Py_XINCREF(outer);
	slot = PyList_New(0);
	if (!slot || slot_set(slot) < 0) {
		/* Nothing recorded for this module; the import goes on. */
		PyErr_Clear();
		Py_XDECREF(slot);
		Py_XDECREF(outer);
		return call_orig(orig_get_code, self, args, kw);
	}
	code = call_orig(orig_get_code, self, args, kw);
	PyErr_Fetch(&t, &v, &tb);
	if (slot_set(outer) < 0) {
		PyErr_Clear();
	}
	if (code && code != Py_None) {
		record(args, code, PyList_Size(slot) == 1 ? PyList_GetItem(slot, 0) : NULL,
		       &t0);
	}
	PyErr_Restore(t, v, tb);
	Py_DECREF(slot);
	Py_XDECREF(outer);
	return code;
}

static PyMethodDef get_code_def = {
	"get_code", (PyCFunction)(void (*)(void))watch_get_code,
	METH_VARARGS | METH_KEYWORDS, "pyhot: importlib's get_code, recorded"
};
static PyMethodDef s2c_def = {
	"source_to_code", (PyCFunction)(void (*)(void))watch_s2c,
	METH_VARARGS | METH_KEYWORDS, "pyhot: importlib's source_to_code, recorded"
};

/* Install the two descriptors once per process. 0, or -1. */
static int install(void)
{
	PyObject *m = PyImport_ImportModule("importlib._bootstrap_external");   /* owned */

	loader_cls = m ? getattr_opt(m, "SourceLoader") : NULL;
	Py_XDECREF(m);
	orig_get_code = loader_cls ? getattr_opt(loader_cls, "get_code") : NULL;
	orig_s2c = orig_get_code ? getattr_opt(loader_cls, "source_to_code") : NULL;
	if (orig_s2c && PyType_Check(loader_cls)) {
		our_get_code = PyDescr_NewMethod((PyTypeObject *)loader_cls, &get_code_def);
		our_s2c = PyDescr_NewMethod((PyTypeObject *)loader_cls, &s2c_def);
	}
	if (!our_get_code || !our_s2c ||
	    PyObject_SetAttrString(loader_cls, "source_to_code", our_s2c) < 0 ||
	    PyObject_SetAttrString(loader_cls, "get_code", our_get_code) < 0) {
		restore();
		Py_CLEAR(our_get_code);
		Py_CLEAR(our_s2c);
		PyErr_Clear();
		return -1;
	}
	return 0;
}

/* Whether our descriptors are the attributes now. */
static int installed(void)
{
	PyObject *cur;   /* owned */
	int r;

	if (!our_get_code) {
		return 0;
	}
	cur = getattr_opt(loader_cls, "get_code");
	r = cur == our_get_code;
	Py_XDECREF(cur);
	PyErr_Clear();
	return r;
}

void pyhot_import_watch_start(void)
{
	PyObject *t, *v, *tb;   /* owned */

	PyErr_Fetch(&t, &v, &tb);
	if (installed() || (!our_get_code && install() == 0)) {
		atomic_store(&watching, 1);
	} else if (our_get_code) {
		/* restored after a detach: put ours back */
		if (PyObject_SetAttrString(loader_cls, "source_to_code", our_s2c) == 0 &&
		    PyObject_SetAttrString(loader_cls, "get_code", our_get_code) == 0) {
			atomic_store(&watching, 1);
		}
		PyErr_Clear();
	}
	PyErr_Restore(t, v, tb);
}

void pyhot_patch_watch_stop(void)
{
	atomic_store(&watching, 0);
}
