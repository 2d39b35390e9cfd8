/* fork_child.c: the after-fork hook that boots a forked child's agent (see
 * fork_child.h and docs/trees.md). */
#include <Python.h>

#include "fork_child.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agent_state.h"
#include "boot.h"
#include "pyutil.h"

/* Registered in this process or in the parent it was forked from (CPython
 * copies its list of hooks into the child, and we copy this flag). GIL. */
static int registered;

/* True when the Python code that forked is subprocess's own fork+exec
 * (a preexec_fn makes _posixsubprocess run the after-fork hooks before the
 * exec): the child execs at once, an agent there would only cost time and
 * leave a socket file behind. GIL held; clears what it raises. */
static int forked_by_subprocess(void)
{
	PyObject *sys = PyImport_ImportModule("sys"), *frame = NULL;
	PyObject *code = NULL, *name = NULL, *globals = NULL, *modname = NULL;
	int yes = 0;

	if (sys) {
		frame = PyObject_CallMethod(sys, "_getframe", NULL);
	}
	if (frame) {
		code = PyObject_GetAttrString(frame, "f_code");
		globals = PyObject_GetAttrString(frame, "f_globals");
	}
	if (code) {
		name = PyObject_GetAttrString(code, "co_name");
	}
	if (globals && PyDict_Check(globals)) {
		modname = PyDict_GetItemString(globals, "__name__");   /* borrowed */
	}
	yes = name && modname && PyUnicode_Check(name) && PyUnicode_Check(modname) &&
	      PyUnicode_CompareWithASCIIString(name, "_execute_child") == 0 &&
	      PyUnicode_CompareWithASCIIString(modname, "subprocess") == 0;
	Py_XDECREF(name);
	Py_XDECREF(globals);
	Py_XDECREF(code);
	Py_XDECREF(frame);
	Py_XDECREF(sys);
	PyErr_Clear();
	return yes;
}

/* The hook: after_in_child of os.register_at_fork(). Never raises (an
 * exception here would be printed by CPython in the child as "Exception
 * ignored", which is the program's stderr). */
static PyObject *after_in_child(PyObject *self, PyObject *unused)
{
	int saved_errno = errno;

	(void)self;
	(void)unused;
	if (pyhot_boot_forked_wanted() && !forked_by_subprocess()) {
		(void)pyhot_boot_forked();
	}
	errno = saved_errno;
	Py_RETURN_NONE;
}

static PyMethodDef hook_def = {
	"pyhot_after_fork_in_child", after_in_child, METH_NOARGS,
	"pyhot: start this child's agent (the parent had one at the fork)"
};

void pyhot_fork_hook_register(void)
{
	PyObject *os = NULL, *reg = NULL, *fn = NULL, *args = NULL;
	PyObject *kw = NULL, *res = NULL;
	char msg[256], note[PYHOT_ERR_MSG_MAX];

	if (registered) {
		return;
	}
	os = PyImport_ImportModule("os");
	if (os) {
		reg = PyObject_GetAttrString(os, "register_at_fork");
	}
	if (reg) {
		fn = PyCFunction_NewEx(&hook_def, NULL, NULL);
	}
	if (fn) {
		args = PyTuple_New(0);
		kw = Py_BuildValue("{sO}", "after_in_child", fn);
	}
	if (args && kw) {
		res = PyObject_Call(reg, args, kw);
	}
	if (res) {
		registered = 1;
	} else {
		pyhot_py_exc_take(msg, sizeof(msg));
		snprintf(note, sizeof(note), "fork: os.register_at_fork(): %s: forked "
			 "children get no agent of their own", msg[0] ? msg : "failed");
		pyhot_agent_note_error(note);
	}
	Py_XDECREF(res);
	Py_XDECREF(kw);
	Py_XDECREF(args);
	Py_XDECREF(fn);
	Py_XDECREF(reg);
	Py_XDECREF(os);
	PyErr_Clear();
}
