/* verb_exec.c: the "exec" verb, which runs Python source in the target or
 * lists its modules (see verb_exec.h). */
#include <Python.h>

#include "verb_exec.h"

#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "pyhot_proto.h"
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

/* name: file, both borrowed str. A key needs a C string: a name that has
 * a NUL in it is left out. */
static void module_write(struct jsonw *out, PyObject *name, PyObject *file)
{
	PyObject *b;              /* owned */
	char *s;
	Py_ssize_t n;

	b = PyUnicode_AsEncodedString(name, "utf-8", "surrogateescape");
	if (b && PyBytes_AsStringAndSize(b, &s, &n) == 0 && strlen(s) == (size_t)n) {
		jsonw_key(out, s);
		pyhot_json_pystr(out, file);
	}
	Py_XDECREF(b);
	PyErr_Clear();
}

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
		module_write(out, name, file);
	}
	jsonw_object_end(out);
	Py_DECREF(mods);
	PyErr_Clear();
	return 0;
}

/* The text an exec answer may carry: its frame (PYHOT_FRAME_MAX) less room
 * for the rest of it (proto, ok, an error message). */
#define EXEC_TEXT_MAX (PYHOT_FRAME_MAX - (64u << 10))

/* The items of the driver's result, in its order, and their keys. */
#define EXEC_NITEMS 5
static const char *const exec_keys[EXEC_NITEMS] = {
	"stdout", "stderr", "value", "traceback", "exception"
};
/* "traceback": the items from here on are written only when it is set. */
#define EXEC_FIRST_ERROR_ITEM 3

/* Bytes of the well-formed UTF-8 sequence at s (n left), 0 when there is
 * none: jsonw writes those as they are, any other byte as a 6-byte escape. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len, i;
	unsigned char lo = 0x80, hi = 0xBF;

	if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		lo = c == 0xE0 ? 0xA0 : 0x80;
		hi = c == 0xED ? 0x9F : 0xBF;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		lo = c == 0xF0 ? 0x90 : 0x80;
		hi = c == 0xF4 ? 0x8F : 0xBF;
	} else {
		return 0;
	}
	if (n < len || s[1] < lo || s[1] > hi) {
		return 0;
	}
	for (i = 2; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80) {
			return 0;
		}
	}
	return len;
}

/*
 * The longest prefix of s (n bytes) that jsonw writes as a JSON string in
 * at most *budget bytes (an upper bound of what it writes), whole
 * characters only; *budget loses what the prefix takes.
 */
static size_t json_prefix(const char *str, size_t n, size_t *budget)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, used = 2, seq, w;

	while (i < n) {
		seq = s[i] >= 0x80 ? utf8_len(s + i, n - i) : 0;
		if (seq) {
			w = seq;
		} else {
			seq = 1;
			w = s[i] < 0x20 || s[i] >= 0x80 ? 6 :
			    (s[i] == '"' || s[i] == '\\') ? 2 : 1;
		}
		if (used + w > *budget) {
			break;
		}
		used += w;
		i += seq;
	}
	*budget = used > *budget ? 0 : *budget - used;
	return i;
}

/*
 * Write the driver's items as strings (null for None). What the code
 * printed can be larger than one answer carries: then the items get the
 * room in the order of exec_fill (the exception and its traceback first,
 * what was printed last), and "output_cut" says how much there was, so
 * that the CLI can say that the code ran and its output did not fit.
 */
static void items_write(struct jsonw *out, PyObject *result)
{
	static const int exec_fill[EXEC_NITEMS] = { 4, 3, 2, 1, 0 };
	PyObject *b[EXEC_NITEMS] = { NULL };   /* owned: UTF-8 of each item */
	char *data[EXEC_NITEMS] = { NULL };
	Py_ssize_t len[EXEC_NITEMS] = { 0 };
	size_t keep[EXEC_NITEMS] = { 0 };
	size_t total = 0, kept = 0, room = SIZE_MAX, all = SIZE_MAX;
	PyObject *v;              /* borrowed */
	int i, k;

	for (i = 0; i < EXEC_NITEMS; i++) {
		v = PyTuple_GetItem(result, i);
		b[i] = v && v != Py_None ?
			PyUnicode_AsEncodedString(v, "utf-8", "surrogateescape") : NULL;
		if (!b[i] || PyBytes_AsStringAndSize(b[i], &data[i], &len[i]) < 0) {
			Py_CLEAR(b[i]);
			data[i] = NULL;
			continue;
		}
		total += (size_t)len[i];
		keep[i] = json_prefix(data[i], (size_t)len[i], &all);
	}
	PyErr_Clear();
	if (SIZE_MAX - all > EXEC_TEXT_MAX) {
		room = EXEC_TEXT_MAX;
		for (k = 0; k < EXEC_NITEMS; k++) {
			i = exec_fill[k];
			keep[i] = data[i] ? json_prefix(data[i], (size_t)len[i], &room) : 0;
		}
	}
	for (i = 0; i < EXEC_NITEMS; i++) {
		if (i >= EXEC_FIRST_ERROR_ITEM && !b[EXEC_FIRST_ERROR_ITEM]) {
			break;   /* the code did not raise */
		}
		jsonw_key(out, exec_keys[i]);
		if (!data[i]) {
			jsonw_null(out);
			continue;
		}
		kept += keep[i];
		jsonw_strn(out, data[i], keep[i]);
	}
	if (room != SIZE_MAX) {
		jsonw_key(out, "output_cut");
		jsonw_object_begin(out);
		jsonw_key_int(out, "total_bytes", (long long)total);
		jsonw_key_int(out, "kept_bytes", (long long)kept);
		jsonw_object_end(out);
	}
	for (i = 0; i < EXEC_NITEMS; i++) {
		Py_XDECREF(b[i]);
	}
}

/* d[key] = text as a str (invalid UTF-8 kept as surrogate escapes). 0, or
 * -1 with the error set. */
static int dict_set_text(PyObject *d, const char *key, const char *text)
{
	PyObject *v;              /* owned */
	int rc;

	v = PyUnicode_DecodeUTF8(text, (Py_ssize_t)strlen(text), "surrogateescape");
	rc = v ? PyDict_SetItemString(d, key, v) : -1;
	Py_XDECREF(v);
	return rc;
}

/* The driver's globals: code, filename, and ns, the code's fresh namespace
 * {"__name__": "__pyhot_exec__", "__builtins__": builtins}. A new
 * reference, or NULL with the error set. */
static PyObject *driver_globals(const char *code, const char *filename)
{
	PyObject *g = PyDict_New();    /* owned */
	PyObject *ns = PyDict_New();   /* owned */
	int ok;

	ok = g && ns &&
	     PyDict_SetItemString(g, "__builtins__", PyEval_GetBuiltins()) == 0 &&
	     PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins()) == 0 &&
	     dict_set_text(ns, "__name__", "__pyhot_exec__") == 0 &&
	     dict_set_text(g, "code", code) == 0 &&
	     dict_set_text(g, "filename", filename) == 0 &&
	     PyDict_SetItemString(g, "ns", ns) == 0;
	Py_XDECREF(ns);
	if (!ok) {
		Py_CLEAR(g);
	}
	return g;
}

/* Write what the driver left (result, borrowed: stdout, stderr, value,
 * traceback, "Type: message") into out. Fails when the code raised. */
static int result_write(struct jsonw *out, PyObject *result, struct pyhot_err *err)
{
	PyObject *what;           /* borrowed */
	PyObject *b;              /* owned */
	char *s = NULL;
	Py_ssize_t n = 0;
	int r;

	if (!result || !PyTuple_Check(result) || PyTuple_Size(result) != 5) {
		return pyhot_err_set(err, PYHOT_ERR_FAILED, 0, getpid(), "exec",
				     "the exec driver left no result");
	}
	items_write(out, result);
	if (PyTuple_GetItem(result, 3) == Py_None) {
		return 0;
	}
	what = PyTuple_GetItem(result, 4);
	b = what ? PyUnicode_AsEncodedString(what, "utf-8", "replace") : NULL;
	if (!b || PyBytes_AsStringAndSize(b, &s, &n) < 0) {
		s = NULL;
	}
	r = pyhot_err_set(err, PYHOT_ERR_FAILED, 0, getpid(), "exec", "%.*s",
			  s ? (int)(n > 400 ? 400 : n) : 9, s ? s : "exception");
	Py_XDECREF(b);
	return r;
}

int pyhot_verb_exec(const struct pyhot_req *req, struct jsonw *out,
		    struct pyhot_err *err)
{
	const char *list = pyhot_req_get(req, "list");
	const char *code = pyhot_req_get(req, "code");
	const char *filename = pyhot_req_get(req, "filename");
	PyObject *g;              /* owned: the driver's globals */
	PyObject *driver = NULL;  /* owned */
	PyObject *res = NULL;     /* owned */
	char what[1024];
	int r;

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
	g = driver_globals(code, filename);
	if (g) {
		driver = Py_CompileString(exec_driver, "<pyhot-driver>", Py_file_input);
	}
	if (driver) {
		res = PyEval_EvalCode(driver, g, g);
	}
	if (res) {
		r = result_write(out, PyDict_GetItemString(g, "result"), err);
	} else {
		pyhot_py_exc_take(what, sizeof(what));
		r = pyhot_err_set(err, PYHOT_ERR_FAILED, 0, getpid(), "exec",
				  "the exec driver failed: %s", what);
	}
	/* _run's globals are g itself: break the cycle now. */
	if (g) {
		PyDict_Clear(g);
	}
	Py_XDECREF(res);
	Py_XDECREF(driver);
	Py_XDECREF(g);
	PyErr_Clear();
	return r;
}
