/*
 * report.c: the report lines of a refresh or a rollback, the JSON the
 * engine writes from them, and the error report of a failed refresh.
 */
#include "report.h"

#include "attr.h"
#include "jsonw.h"
#include "plan.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STEP "refresh"

int pyhot_changes_add(struct pyhot_changes *c, const char *action,
		      const char *kind, const char *name, const char *detail)
{
	struct pyhot_change *line;

	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		struct pyhot_change *v = realloc(c->v, cap * sizeof(*v));

		if (!v) {
			return -1;
		}
		c->v = v;
		c->cap = cap;
	}
	line = &c->v[c->n];
	line->action = action;
	line->kind = kind;
	line->name = strdup(name);
	line->detail = strdup(detail);
	line->label = NULL;
	line->line = 0;
	if (!line->name || !line->detail) {
		free(line->name);
		free(line->detail);
		return -1;
	}
	c->n++;
	return 0;
}

int pyhot_changes_add_running(struct pyhot_changes *c, const char *kind,
			      const char *name, const char *label, long line,
			      const char *detail)
{
	struct pyhot_change *l;

	if (pyhot_changes_add(c, "running", kind, name, detail) < 0) {
		return -1;
	}
	l = &c->v[c->n - 1];
	l->line = line;
	if (label && !(l->label = strdup(label))) {
		return -1;   /* the line stays, without its label */
	}
	return 0;
}

static int is_running(const struct pyhot_change *c)
{
	return strcmp(c->action, "running") == 0;
}

int pyhot_change_set_detail(struct pyhot_change *ch, const char *detail)
{
	char *d = strdup(detail);

	if (!d) {
		PyErr_NoMemory();
		return -1;
	}
	free(ch->detail);
	ch->detail = d;
	return 0;
}

void pyhot_changes_free(struct pyhot_change *ch, size_t n)
{
	size_t i;

	for (i = 0; ch && i < n; i++) {
		free(ch[i].name);
		free(ch[i].detail);
		free(ch[i].label);
	}
	free(ch);
}

const char *value_kind(struct engine *e, PyObject *v)
{
	if (is_a(v, e->t_function) || has_plain_attr(v, "__wrapped__")) {
		return "function";
	}
	if (PyType_Check(v)) {
		return "class";
	}
	if (PyObject_TypeCheck(v, &PyModule_Type)) {
		return "import";
	}
	return "value";
}

int change_add(struct engine *e, const char *action, const char *kind,
	       const char *name, const char *fmt, ...)
{
	char detail[512];
	va_list ap;

	detail[0] = '\0';
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(detail, sizeof(detail), fmt, ap);
		va_end(ap);
	}
	if (pyhot_changes_add(&e->mp->report, action, kind, name, detail) < 0) {
		PyErr_NoMemory();
		return -1;
	}
	return 0;
}

const char *qname(struct engine *e, const char *qual, PyObject *name,
		  char *buf, size_t size)
{
	char n[256];

	if (pyhot_patch_utf8(name, n, sizeof(n)) < 0) {
		PyErr_Clear();
		snprintf(n, sizeof(n), "?");
	}
	if (qual && *qual) {
		snprintf(buf, size, "%s.%s.%s", e->mp->module, qual, n);
	} else {
		snprintf(buf, size, "%s.%s", e->mp->module, n);
	}
	return buf;
}

/* The __name__ of an exception type into buf (unchanged when it has
 * none). Clears what it raises. */
static void exc_type_name(PyObject *t, char *buf, size_t size)
{
	PyObject *n;   /* owned */

	if (!t) {
		return;
	}
	n = pyhot_patch_get_attr(t, "__name__");
	if (n) {
		pyhot_patch_utf8(n, buf, size);
	}
	Py_XDECREF(n);
	PyErr_Clear();
}

/* An exception's message into buf: a SyntaxError's msg, or str(v); a
 * SyntaxError's lineno into *line. Clears what it raises. */
static void exc_text(PyObject *t, PyObject *v, char *buf, size_t size,
		     long *line)
{
	PyObject *msg;   /* owned */
	PyObject *ln;   /* owned */

	if (!v) {
		return;
	}
	msg = pyhot_patch_get_attr(v, "msg");   /* SyntaxError */
	if (!msg || !PyUnicode_Check(msg)) {
		PyErr_Clear();
		Py_XDECREF(msg);
		msg = PyObject_Str(v);
	}
	if (msg) {
		pyhot_patch_utf8(msg, buf, size);
	}
	Py_XDECREF(msg);
	PyErr_Clear();
	if (PyObject_IsSubclass(t, PyExc_SyntaxError) == 1) {
		ln = getattr_opt(v, "lineno");
		if (ln && ln != Py_None) {
			*line = PyLong_AsLong(ln);
		}
		Py_XDECREF(ln);
		PyErr_Clear();
	}
}

/* The line of the innermost frame of tb that runs file, into *line (left
 * alone when none does). Clears what it raises. */
static void traceback_line(PyObject *tb, const char *file, long *line)
{
	PyObject *cur = tb;   /* owned */

	Py_INCREF(cur);
	while (cur && cur != Py_None) {
		PyObject *fr = pyhot_patch_get_attr(cur, "tb_frame");   /* owned */
		PyObject *co = fr ? pyhot_patch_get_attr(fr, "f_code") : NULL;   /* owned */
		PyObject *fn = co ? pyhot_patch_get_attr(co, "co_filename") : NULL;   /* owned */
		PyObject *nx;   /* owned */

		if (fn && PyUnicode_CompareWithASCIIString(fn, file) == 0) {
			PyObject *ln = pyhot_patch_get_attr(cur, "tb_lineno");   /* owned */

			if (ln) {
				*line = PyLong_AsLong(ln);
			}
			Py_XDECREF(ln);
		}
		Py_XDECREF(fr);
		Py_XDECREF(co);
		Py_XDECREF(fn);
		nx = pyhot_patch_get_attr(cur, "tb_next");
		Py_DECREF(cur);
		cur = nx;
	}
	Py_XDECREF(cur);
	PyErr_Clear();
}

/* Write the formatted exception as a "traceback" field. A SyntaxError gets
 * its caret only: its frames would be ast.parse's. Clears what it raises. */
static void write_traceback(struct jsonw *out, PyObject *t, PyObject *v,
			    PyObject *tb)
{
	PyObject *tbm = PyImport_ImportModule("traceback");   /* owned */
	PyObject *lines = NULL;   /* owned */
	PyObject *sep = NULL;   /* owned */
	PyObject *text = NULL;   /* owned */
	char *tbuf = malloc(65536);   /* not on the stack: any thread runs this */

	if (tbm && t && PyObject_IsSubclass(t, PyExc_SyntaxError) == 1) {
		lines = call_method(tbm, "format_exception_only", "OO",
				    t, v ? v : Py_None);
	} else if (tbm) {
		lines = call_method(tbm, "format_exception", "OOO",
				    t ? t : Py_None, v ? v : Py_None,
				    tb ? tb : Py_None);
	}
	sep = lines ? PyUnicode_FromString("") : NULL;
	text = sep ? PyUnicode_Join(sep, lines) : NULL;
	if (text && tbuf && pyhot_patch_utf8(text, tbuf, 65536) == 0) {
		jsonw_key_str(out, "traceback", tbuf);
	}
	free(tbuf);
	PyErr_Clear();
	Py_XDECREF(tbm);
	Py_XDECREF(lines);
	Py_XDECREF(sep);
	Py_XDECREF(text);
}

int fail_py(struct engine *e, struct modplan *mp, struct jsonw *out,
	    struct pyhot_err *err, const char *what)
{
	PyObject *t = NULL;   /* owned */
	PyObject *v = NULL;   /* owned */
	PyObject *tb = NULL;   /* owned */
	char tname[128] = "Exception", mtext[256] = "", file[4096];
	long line = e->cur_line;

	snprintf(file, sizeof(file), "%s", mp ? mp->file : "?");
	PyErr_Fetch(&t, &v, &tb);
	PyErr_NormalizeException(&t, &v, &tb);
	if (v && tb) {
		PyException_SetTraceback(v, tb);
	}
	exc_type_name(t, tname, sizeof(tname));
	exc_text(t, v, mtext, sizeof(mtext), &line);
	if (tb && mp) {
		traceback_line(tb, mp->file, &line);
	}
	write_traceback(out, t, v, tb);
	Py_XDECREF(t);
	Py_XDECREF(v);
	Py_XDECREF(tb);
	if (line > 0) {
		return pyhot_err_set(err, PYHOT_ERR_FAILED, 0, getpid(), STEP,
				     "%s%s:%ld: %s: %s", what, file, line, tname, mtext);
	}
	return pyhot_err_set(err, PYHOT_ERR_FAILED, 0, getpid(), STEP,
			     "%s%s: %s: %s", what, file, tname, mtext);
}

void pyhot_patch_write_changes(struct jsonw *out, const struct pyhot_change *ch,
			       size_t nch)
{
	static const char *const actions[] = { "changed", "added", "removed",
					       "kept", "failed" };
	long counts[5] = { 0, 0, 0, 0, 0 };
	size_t i;
	int k;

	jsonw_key(out, "changes");
	jsonw_array_begin(out);
	for (i = 0; i < nch; i++) {
		const struct pyhot_change *c = &ch[i];

		if (is_running(c)) {
			continue;
		}
		jsonw_object_begin(out);
		jsonw_key_str(out, "action", c->action);
		jsonw_key_str(out, "kind", c->kind);
		jsonw_key_str(out, "name", c->name);
		jsonw_key_str(out, "detail", c->detail);
		jsonw_object_end(out);
		for (k = 0; k < 5; k++) {
			if (strcmp(c->action, actions[k]) == 0) {
				counts[k]++;
			}
		}
	}
	jsonw_array_end(out);
	jsonw_key(out, "summary");
	jsonw_object_begin(out);
	for (k = 0; k < 5; k++) {
		jsonw_key_int(out, actions[k], counts[k]);
	}
	jsonw_object_end(out);
}

/* The "running" lines as a "running" list (nothing when there are none):
 * {"action": "running", "name", "kind", "thread"|"task": label, "line",
 * "detail"}. */
static void write_running(struct jsonw *out, const struct pyhot_change *ch,
			  size_t nch)
{
	size_t i, n = 0;

	for (i = 0; i < nch; i++) {
		n += is_running(&ch[i]);
	}
	if (n == 0) {
		return;
	}
	jsonw_key(out, "running");
	jsonw_array_begin(out);
	for (i = 0; i < nch; i++) {
		const struct pyhot_change *c = &ch[i];

		if (!is_running(c)) {
			continue;
		}
		jsonw_object_begin(out);
		jsonw_key_str(out, "action", c->action);
		jsonw_key_str(out, "name", c->name);
		jsonw_key_str(out, "kind", c->kind);
		if (c->label) {
			jsonw_key_str(out, c->kind, c->label);
		}
		jsonw_key_int(out, "line", c->line);
		jsonw_key_str(out, "detail", c->detail);
		jsonw_object_end(out);
	}
	jsonw_array_end(out);
}

void pyhot_patch_write_module(struct jsonw *out, const char *module,
			      const char *file, const char *warning,
			      const struct pyhot_change *ch, size_t nch,
			      long generation)
{
	jsonw_object_begin(out);
	jsonw_key_str(out, "module", module);
	jsonw_key_str(out, "file", file);
	if (warning) {
		jsonw_key_str(out, "warning", warning);
	}
	pyhot_patch_write_changes(out, ch, nch);
	write_running(out, ch, nch);
	if (generation > 0) {
		jsonw_key_int(out, "generation", generation);
	} else {
		jsonw_key_str(out, "generation", NULL);   /* null */
	}
	jsonw_object_end(out);
}
