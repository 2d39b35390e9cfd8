/*
 * pymodule.c: the payload as the extension module pyhot._pyhot, so that a
 * program calls the very engine and agent that `pyhot attach` injects. The
 * pyhot package (python/pyhot/) wraps these functions; docs/hooks.md
 * describes what it offers.
 *
 * Every function here is called by Python with the GIL held, which is the
 * engine's safe point: the verbs run at once, on the caller's thread.
 * Engine failures come back as values (the package raises), never as an
 * exception from the engine itself.
 */
#include <Python.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "baseline_import.h"
#include "boot.h"
#include "copies.h"
#include "fork_child.h"
#include "hooks.h"
#include "jsonw.h"
#include "pyhot_patch.h"
#include "pyhot_proto.h"
#include "request.h"

PyMODINIT_FUNC PyInit__pyhot(void) __attribute__((visibility("default")));

typedef int (*verb_fn)(const struct pyhot_req *req, struct jsonw *out,
		       struct pyhot_err *err);

/* A request under construction: its values are the UTF-8 of Python str
 * objects that keep owns until the request is done. */
struct inproc_req {
	struct pyhot_req req;
	PyObject *keep;   /* owned: list of bytes */
};

static int req_init(struct inproc_req *r, const char *verb)
{
	memset(&r->req, 0, sizeof(r->req));
	r->req.verb = verb;
	r->keep = PyList_New(0);
	return r->keep ? 0 : -1;
}

static void req_release(struct inproc_req *r)
{
	Py_CLEAR(r->keep);
}

/* Add key=value, value a C string that outlives the request. 0 or -1. */
static int req_add(struct inproc_req *r, const char *key, const char *val)
{
	if (r->req.nargs >= PYHOT_REQ_MAX_ARGS) {
		PyErr_SetString(PyExc_ValueError, "too many arguments");
		return -1;
	}
	r->req.key[r->req.nargs] = key;
	r->req.val[r->req.nargs++] = val;
	return 0;
}

/* Add key=str(value) (value a str). 0, or -1 with an exception. */
static int req_add_str(struct inproc_req *r, const char *key, PyObject *value)
{
	PyObject *b;   /* owned */
	int rc;

	if (!PyUnicode_Check(value)) {
		PyErr_Format(PyExc_TypeError, "%s must be a str", key);
		return -1;
	}
	b = PyUnicode_AsUTF8String(value);
	if (!b) {
		return -1;
	}
	rc = PyList_Append(r->keep, b);
	if (rc == 0) {
		rc = req_add(r, key, PyBytes_AsString(b));
	}
	Py_DECREF(b);
	return rc;
}

/* Run a verb of the engine here and now: (ok, json text of its fields,
 * error message, error hint). The engine guard keeps a hook from running a
 * second verb inside the first. */
static PyObject *run_verb(verb_fn fn, struct inproc_req *r)
{
	struct pyhot_err err;
	struct jsonw w;
	PyObject *res;   /* owned */
	char *text;
	int rc;

	pyhot_err_init(&err);
	jsonw_init(&w);
	jsonw_object_begin(&w);
	rc = fn(&r->req, &w, &err);
	jsonw_object_end(&w);
	text = jsonw_finish(&w);
	if (!text) {
		return PyErr_NoMemory();
	}
	res = Py_BuildValue("(Oszz)", rc == 0 ? Py_True : Py_False, text,
			    rc == 0 ? NULL : err.msg,
			    rc == 0 || !err.hint[0] ? NULL : err.hint);
	free(text);
	return res;
}

/* rollback and history take the engine's guard here (refresh takes it
 * itself): a hook must not undo what is being applied. */
static int verb_rollback_guarded(const struct pyhot_req *req, struct jsonw *out,
				 struct pyhot_err *err)
{
	int rc;

	if (pyhot_hooks_enter(err) < 0) {
		return -PYHOT_ERR_FAILED;
	}
	rc = pyhot_patch_rollback(req, out, err);
	pyhot_hooks_leave();
	return rc;
}

static int verb_history(const struct pyhot_req *req, struct jsonw *out,
			struct pyhot_err *err)
{
	return pyhot_patch_history_write(out, 0, err);
}

/* refresh(modules: sequence of str or None, dry_run: bool) */
static PyObject *py_refresh(PyObject *self, PyObject *args)
{
	struct inproc_req r;
	PyObject *mods;   /* borrowed */
	PyObject *seq = NULL;   /* owned */
	PyObject *res = NULL;   /* owned */
	Py_ssize_t i, n;
	int dry_run;

	if (!PyArg_ParseTuple(args, "Op", &mods, &dry_run) || req_init(&r, "refresh") < 0) {
		return NULL;
	}
	if (mods != Py_None) {
		seq = PySequence_List(mods);
		if (!seq) {
			goto out_release;
		}
		n = PyList_Size(seq);
		for (i = 0; i < n; i++) {
			if (req_add_str(&r, "module", PyList_GetItem(seq, i)) < 0) {
				goto out_release;
			}
		}
	}
	if (dry_run && req_add(&r, "dry_run", "1") < 0) {
		goto out_release;
	}
	res = run_verb(pyhot_patch_refresh, &r);
out_release:
	Py_XDECREF(seq);
	req_release(&r);
	return res;
}

/* rollback(module: str, to: int (negative: the newest refresh), dry_run) */
static PyObject *py_rollback(PyObject *self, PyObject *args)
{
	struct inproc_req r;
	PyObject *module;   /* borrowed */
	PyObject *res = NULL;   /* owned */
	char to_text[32];
	long to;
	int dry_run;

	if (!PyArg_ParseTuple(args, "Ulp", &module, &to, &dry_run) ||
	    req_init(&r, "rollback") < 0) {
		return NULL;
	}
	snprintf(to_text, sizeof(to_text), "%ld", to);
	if (req_add_str(&r, "module", module) < 0 ||
	    (to >= 0 && req_add(&r, "to", to_text) < 0) ||
	    (dry_run && req_add(&r, "dry_run", "1") < 0)) {
		goto out_release;
	}
	res = run_verb(verb_rollback_guarded, &r);
out_release:
	req_release(&r);
	return res;
}

static PyObject *py_history(PyObject *self, PyObject *unused)
{
	struct inproc_req r;
	PyObject *res;   /* owned */

	if (req_init(&r, "history") < 0) {
		return NULL;
	}
	res = run_verb(verb_history, &r);
	req_release(&r);
	return res;
}

/* baseline_take(): record every loaded user module not recorded yet. */
static PyObject *py_baseline_take(PyObject *self, PyObject *unused)
{
	struct pyhot_err err;

	pyhot_err_init(&err);
	if (pyhot_patch_baseline_take(&err) < 0) {
		PyErr_SetString(PyExc_RuntimeError, err.msg);
		return NULL;
	}
	Py_RETURN_NONE;
}

/* baseline_record(module, file, stdlib_dir): one module, at its import. */
static PyObject *py_baseline_record(PyObject *self, PyObject *args)
{
	const char *module, *file, *sdir;

	if (!PyArg_ParseTuple(args, "sss", &module, &file, &sdir)) {
		return NULL;
	}
	if (pyhot_patch_baseline_record(module, file, sdir) < 0) {
		return PyErr_NoMemory();
	}
	Py_RETURN_NONE;
}

/* The socket path `pyhot` derives for this process (pyhot_proto.h). */
static int sock_path(char *buf, size_t size)
{
	int n = snprintf(buf, size, PYHOT_SOCK_DIR_FMT "/" PYHOT_SOCK_NAME_FMT,
			 (unsigned int)geteuid(), (int)getpid());

	return n > 0 && (size_t)n < size ? 0 : -1;
}

/* start_agent(history: int, 0 for the default) -> (started: bool, socket).
 * The agent `pyhot attach` would start, at the path it would use; the
 * baseline is taken here, before the call returns, and a child forked
 * after it gets an agent of its own. */
static PyObject *py_start_agent(PyObject *self, PyObject *args)
{
	struct pyhot_err err;
	char sock[108], arg[200];
	long history;
	int rc;

	if (!PyArg_ParseTuple(args, "l", &history)) {
		return NULL;
	}
	if (sock_path(sock, sizeof(sock)) < 0) {
		PyErr_SetString(PyExc_OSError, "start_agent: socket path too long");
		return NULL;
	}
	snprintf(arg, sizeof(arg), "sock=%s\nhistory=%ld", sock,
		 history > 0 ? history : 0);
	rc = pyhot_boot(arg);
	if (rc < 0) {
		errno = -rc;
		return PyErr_SetFromErrnoWithFilename(PyExc_OSError, sock);
	}
	pyhot_err_init(&err);
	if (pyhot_patch_baseline_take(&err) < 0) {
		PyErr_SetString(PyExc_RuntimeError, err.msg);
		return NULL;
	}
	/* Now, not at the agent's first safe point: a program that forks its
	 * workers at once (python -m pyhot run) forked some before that. */
	pyhot_fork_hook_register();
	return Py_BuildValue("(Os)", rc == PYHOT_BOOT_STARTED ? Py_True : Py_False, sock);
}

static PyObject *py_set_dispatch(PyObject *self, PyObject *fn)
{
	pyhot_hooks_set_dispatch(fn == Py_None ? NULL : fn);
	Py_RETURN_NONE;
}

static PyObject *py_refreshing(PyObject *self, PyObject *unused)
{
	return PyBool_FromLong(pyhot_hooks_refreshing());
}

static PyMethodDef pyhot_methods[] = {
	{ "refresh", py_refresh, METH_VARARGS,
	  "refresh(modules, dry_run) -> (ok, json, message, hint)" },
	{ "rollback", py_rollback, METH_VARARGS,
	  "rollback(module, to, dry_run) -> (ok, json, message, hint)" },
	{ "history", py_history, METH_NOARGS, "history() -> (ok, json, message, hint)" },
	{ "baseline_take", py_baseline_take, METH_NOARGS,
	  "record the source of every loaded user module not recorded yet" },
	{ "baseline_record", py_baseline_record, METH_VARARGS,
	  "baseline_record(module, file, stdlib_dir): one module, at its import" },
	{ "start_agent", py_start_agent, METH_VARARGS,
	  "start_agent(history) -> (started, socket path)" },
	{ "set_dispatch", py_set_dispatch, METH_O,
	  "set_dispatch(fn): the callback dispatcher of the refresh hooks" },
	{ "refreshing", py_refreshing, METH_NOARGS,
	  "whether a refresh is re-running module statements" },
	{ NULL, NULL, 0, NULL },
};

static struct PyModuleDef pyhot_module = {
	PyModuleDef_HEAD_INIT, "pyhot._pyhot",
	"The pyhot payload: the engine and agent that `pyhot attach` injects.",
	-1, pyhot_methods, NULL, NULL, NULL, NULL,
};

static PyObject *module_create(void)
{
	return PyModule_Create(&pyhot_module);
}

PyMODINIT_FUNC PyInit__pyhot(void)
{
	/* When `pyhot attach` injected the payload before this import, its
	 * copy holds the engine's state: the module is made there. */
	ptrdiff_t delta = pyhot_copies_first_delta();

	return delta ? PYHOT_COPIES_AT(module_create, delta)() : module_create();
}
