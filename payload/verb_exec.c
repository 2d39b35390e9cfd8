/* verb_exec.c: the "exec" verb, which runs Python source in the target or
 * lists its modules (see verb_exec.h). */
#include <Python.h>

#include "verb_exec.h"

#include <string.h>
#include <unistd.h>

#include "pyutil.h"

/*
 * The driver, run in a private dict holding code, filename and ns. It
 * leaves result = (stdout, stderr, value repr or None, traceback or None,
 * "Type: message" or None). Only the last statement, when it is an
 * expression, is evaluated for its value, as the REPL shows it. The frames
 * of the driver itself are cut from the traceback.
 *
 * sys.stdout and sys.stderr are replaced by a switch that sends what this
 * thread writes to a StringIO and what other threads write (the GIL is
 * passed on every few milliseconds) to the streams they would have used.
 */
static const char exec_driver[] =
	"class _Switch(object):\n"
	"    def __init__(self, orig, buf, ident, get_ident):\n"
	"        self._pyhot = (orig, buf, ident, get_ident)\n"
	"    def _target(self):\n"
	"        orig, buf, ident, get_ident = self._pyhot\n"
	"        return buf if get_ident() == ident or orig is None else orig\n"
	"    def write(self, s):\n"
	"        return self._target().write(s)\n"
	"    def writelines(self, lines):\n"
	"        return self._target().writelines(lines)\n"
	"    def flush(self):\n"
	"        return self._target().flush()\n"
	"    def __getattr__(self, name):\n"
	"        return getattr(self._target(), name)\n"
	"def _run(code, filename, ns):\n"
	"    import sys, io, _thread\n"
	"    out, err = io.StringIO(), io.StringIO()\n"
	"    value = tb = what = None\n"
	"    me = _thread.get_ident()\n"
	"    saved = sys.stdout, sys.stderr\n"
	"    sys.stdout = _Switch(saved[0], out, me, _thread.get_ident)\n"
	"    sys.stderr = _Switch(saved[1], err, me, _thread.get_ident)\n"
	"    try:\n"
	"        try:\n"
	"            import ast\n"
	"            tree = ast.parse(code, filename, 'exec')\n"
	"            last = None\n"
	"            if tree.body and isinstance(tree.body[-1], ast.Expr):\n"
	"                last = ast.Expression(tree.body.pop().value)\n"
	"            exec(compile(tree, filename, 'exec'), ns)\n"
	"            if last is not None:\n"
	"                v = eval(compile(last, filename, 'eval'), ns)\n"
	"                if v is not None:\n"
	"                    value = repr(v)\n"
	"        except BaseException as e:\n"
	"            import traceback\n"
	"            what = '%s: %s' % (type(e).__name__, e)\n"
	"            if isinstance(e, SyntaxError):\n"
	"                lines = traceback.format_exception_only(type(e), e)\n"
	"            else:\n"
	"                t = e.__traceback__\n"
	"                while t is not None and t.tb_frame.f_code.co_filename == "
	"'<pyhot-driver>':\n"
	"                    t = t.tb_next\n"
	"                lines = traceback.format_exception(type(e), e, t)\n"
	"            tb = ''.join(lines)\n"
	"            e = None\n"
	"    finally:\n"
	"        sys.stdout, sys.stderr = saved\n"
	"    return out.getvalue(), err.getvalue(), value, tb, what\n"
	"result = _run(code, filename, ns)\n";

/* "modules": {name: __file__}. */
static int list_modules(struct jsonw *out, struct pyhot_err *err)
{
	PyObject *live;           /* borrowed */
	PyObject *mods = NULL;    /* owned: a copy of sys.modules */
	PyObject *name, *mod;     /* borrowed */
	PyObject *d, *file;       /* borrowed */
	Py_ssize_t pos = 0;

	live = PyImport_GetModuleDict();
	mods = live ? PyDict_Copy(live) : NULL;
	if (!mods) {
		char what[512];

		pyhot_py_exc_take(what, sizeof(what));
		return pyhot_err_set(err, PYHOT_ERR_FAILED, 0, getpid(), "exec",
				     "cannot read sys.modules: %s", what);
	}
	jsonw_key(out, "modules");
	jsonw_object_begin(out);
	while (PyDict_Next(mods, &pos, &name, &mod)) {
		if (!PyUnicode_Check(name) || !PyModule_Check(mod)) {
			continue;
		}
		d = PyModule_GetDict(mod);
		file = d ? PyDict_GetItemString(d, "__file__") : NULL;
		if (!file || !PyUnicode_Check(file)) {
			PyErr_Clear();
			continue;
		}
		/* A module name as a key: keys need a C string. */
		{
			PyObject *b = PyUnicode_AsEncodedString(name, "utf-8",
								"surrogateescape");   /* owned */
			char *s;
			Py_ssize_t n;

			if (b && PyBytes_AsStringAndSize(b, &s, &n) == 0 &&
			    strlen(s) == (size_t)n) {
				jsonw_key(out, s);
				pyhot_json_pystr(out, file);
			}
			Py_XDECREF(b);
			PyErr_Clear();
		}
	}
	jsonw_object_end(out);
	Py_DECREF(mods);
	PyErr_Clear();
	return 0;
}

/* key: item i of tuple t (borrowed), as a string or null. */
static void key_item(struct jsonw *out, const char *key, PyObject *t, Py_ssize_t i)
{
	PyObject *v = PyTuple_GetItem(t, i);   /* borrowed */

	PyErr_Clear();
	pyhot_json_key_pystr(out, key, v && v != Py_None ? v : NULL);
}

int pyhot_verb_exec(const struct pyhot_req *req, struct jsonw *out,
		    struct pyhot_err *err)
{
	const char *list = pyhot_req_get(req, "list");
	const char *code = pyhot_req_get(req, "code");
	const char *filename = pyhot_req_get(req, "filename");
	PyObject *g = NULL;       /* owned: the driver's globals */
	PyObject *ns = NULL;      /* owned: the code's namespace */
	PyObject *driver = NULL;  /* owned */
	PyObject *res = NULL;     /* owned */
	PyObject *result;         /* borrowed */
	PyObject *v = NULL;       /* owned */
	char what[1024];
	int r = 0;

	if (list) {
		if (strcmp(list, "modules") != 0) {
			return pyhot_err_set(err, PYHOT_ERR_FAILED, 0, getpid(), "exec",
					     "unknown list '%s'", list);
		}
		return list_modules(out, err);
	}
	if (!code) {
		return pyhot_err_set(err, PYHOT_ERR_FAILED, 0, getpid(), "exec",
				     "the request has no 'code'");
	}
	if (!filename || !*filename) {
		filename = "<pyhot-exec>";
	}
	g = PyDict_New();
	ns = PyDict_New();
	if (!g || !ns) {
		goto error;
	}
	if (PyDict_SetItemString(g, "__builtins__", PyEval_GetBuiltins()) < 0 ||
	    PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins()) < 0) {
		goto error;
	}
	v = PyUnicode_FromString("__pyhot_exec__");
	if (!v || PyDict_SetItemString(ns, "__name__", v) < 0) {
		goto error;
	}
	Py_CLEAR(v);
	v = PyUnicode_DecodeUTF8(code, (Py_ssize_t)strlen(code), "surrogateescape");
	if (!v || PyDict_SetItemString(g, "code", v) < 0) {
		goto error;
	}
	Py_CLEAR(v);
	v = PyUnicode_DecodeUTF8(filename, (Py_ssize_t)strlen(filename), "surrogateescape");
	if (!v || PyDict_SetItemString(g, "filename", v) < 0) {
		goto error;
	}
	Py_CLEAR(v);
	if (PyDict_SetItemString(g, "ns", ns) < 0) {
		goto error;
	}
	driver = Py_CompileString(exec_driver, "<pyhot-driver>", Py_file_input);
	if (!driver) {
		goto error;
	}
	res = PyEval_EvalCode(driver, g, g);
	if (!res) {
		goto error;
	}
	result = PyDict_GetItemString(g, "result");
	if (!result || !PyTuple_Check(result) || PyTuple_Size(result) != 5) {
		r = pyhot_err_set(err, PYHOT_ERR_FAILED, 0, getpid(), "exec",
				  "the exec driver left no result");
		goto out;
	}
	key_item(out, "stdout", result, 0);
	key_item(out, "stderr", result, 1);
	key_item(out, "value", result, 2);
	if (PyTuple_GetItem(result, 3) != Py_None) {
		PyObject *w = PyTuple_GetItem(result, 4);   /* borrowed */
		PyObject *b = w ? PyUnicode_AsEncodedString(w, "utf-8", "replace")
				: NULL;                     /* owned */
		char *s = NULL;
		Py_ssize_t n = 0;

		key_item(out, "traceback", result, 3);
		key_item(out, "exception", result, 4);
		if (!b || PyBytes_AsStringAndSize(b, &s, &n) < 0) {
			s = NULL;
		}
		r = pyhot_err_set(err, PYHOT_ERR_FAILED, 0, getpid(), "exec", "%.*s",
				  s ? (int)(n > 400 ? 400 : n) : 9, s ? s : "exception");
		Py_XDECREF(b);
	}
	goto out;
error:
	pyhot_py_exc_take(what, sizeof(what));
	r = pyhot_err_set(err, PYHOT_ERR_FAILED, 0, getpid(), "exec",
			  "the exec driver failed: %s", what);
out:
	/* _run's globals are g itself: break the cycle now. */
	if (g) {
		PyDict_Clear(g);
	}
	Py_XDECREF(v);
	Py_XDECREF(res);
	Py_XDECREF(driver);
	Py_XDECREF(ns);
	Py_XDECREF(g);
	PyErr_Clear();
	return r;
}
