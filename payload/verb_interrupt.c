/* verb_interrupt.c: the "interrupt" verb, an exception sent to a thread
 * (see verb_interrupt.h). */
#include <Python.h>

#include "verb_interrupt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "async_exc.h"
#include "pythreads.h"
#include "pyutil.h"
#include "safepoint.h"

/* The exception sent last, until it is known to be raised or withdrawn,
 * and its number: a check or withdrawal names the one it means, so that
 * two commands at once never take each other's. */
static struct pyhot_async_exc sent;
static unsigned long sent_id;

/* The thread a request names. */
struct target {
	unsigned long ident;
	int main;
	long tid;                 /* -1: unknown */
	PyObject *thread;         /* borrowed from the active copy, or NULL */
	PyObject *frame;          /* borrowed from frames, or NULL */
};

/* getattr(o, attr) as a C long, or def. */
static long attr_long(PyObject *o, const char *attr, long def)
{
	PyObject *v = o ? PyObject_GetAttrString(o, attr) : NULL;   /* owned */
	long n = def;

	if (v && PyLong_Check(v))
		n = PyLong_AsLong(v);
	Py_XDECREF(v);
	if (PyErr_Occurred()) {
		PyErr_Clear();
		n = def;
	}
	return n;
}

/* str o (borrowed, may be NULL) as UTF-8 into buf; "?" when it is none. */
static const char *utf8(PyObject *o, char *buf, size_t size)
{
	PyObject *b = o && PyUnicode_Check(o) ?
		      PyUnicode_AsUTF8String(o) : NULL;   /* owned */

	snprintf(buf, size, "%s", b ? PyBytes_AsString(b) : "?");
	Py_XDECREF(b);
	PyErr_Clear();
	return buf;
}

/* Whether thread's name is name. */
static int name_is(PyObject *thread, const char *name)
{
	PyObject *v = PyObject_GetAttrString(thread, "name");   /* owned */
	PyObject *want = PyUnicode_FromString(name);             /* owned */
	int eq = v && want && PyObject_RichCompareBool(v, want, Py_EQ) == 1;

	Py_XDECREF(v);
	Py_XDECREF(want);
	PyErr_Clear();
	return eq;
}

/* The names of the threads that run Python, for a message. */
static void list_names(PyObject *active, PyObject *frames, char *buf, size_t size)
{
	PyObject *key, *th, *name;    /* borrowed; name owned */
	Py_ssize_t pos = 0;
	size_t off = 0;
	char s[128];

	buf[0] = '\0';
	while (active && PyDict_Next(active, &pos, &key, &th)) {
		if (!PyDict_GetItem(frames, key))
			continue;
		name = PyObject_GetAttrString(th, "name");
		utf8(name, s, sizeof(s));
		if (off < size)
			off += (size_t)snprintf(buf + off, size - off, "%s'%s'",
						off ? ", " : "", s);
		Py_XDECREF(name);
		PyErr_Clear();
	}
}

/* The main thread's ident: as the other verbs know it, else from its
 * thread state (a program that never imported threading, whose main
 * thread is blocked). */
static unsigned long main_ident(void)
{
	unsigned long id = pyhot_main_thread_ident();

	return id ? id : pyhot_async_exc_main_ident();
}

/* Find the thread by name (threading's), by native id, or by ident. */
static int resolve_spec(const char *spec, PyObject *frames, PyObject *active,
			unsigned long *ident, char *why, size_t size)
{
	PyObject *key, *th;           /* borrowed */
	Py_ssize_t pos = 0;
	unsigned long long v;
	char *end, names[512];
	int n = 0;

	v = strtoull(spec, &end, 10);
	if (*spec && !*end) {
		if (v == (unsigned long long)getpid()) {
			*ident = main_ident();
			return *ident ? 0 : -1;
		}
		while (active && PyDict_Next(active, &pos, &key, &th)) {
			if ((unsigned long long)attr_long(th, "native_id", -1) == v) {
				*ident = PyLong_AsUnsignedLong(key);
				PyErr_Clear();
				return 0;
			}
		}
		*ident = (unsigned long)v;
		key = PyLong_FromUnsignedLongLong(v);
		n = key && PyDict_GetItem(frames, key) != NULL;
		Py_XDECREF(key);
		PyErr_Clear();
		if (n)
			return 0;
		snprintf(why, size, "no Python thread has the thread id or ident %s", spec);
		return -1;
	}
	while (active && PyDict_Next(active, &pos, &key, &th)) {
		if (name_is(th, spec)) {
			*ident = PyLong_AsUnsignedLong(key);
			n++;
		}
	}
	PyErr_Clear();
	if (n == 1)
		return 0;
	list_names(active, frames, names, sizeof(names));
	if (n == 0)
		snprintf(why, size, "no thread is named '%s' (threads running Python: %s)",
			 spec, names[0] ? names : "none known to threading");
	else
		snprintf(why, size, "%d threads are named '%s': give the thread id "
			 "(pyhot stack shows it)", n, spec);
	return -1;
}

static int resolve(const char *spec, PyObject *frames, PyObject *active,
		   struct target *t, char *why, size_t size)
{
	PyObject *key;            /* owned */
	unsigned long main = main_ident();

	memset(t, 0, sizeof(*t));
	t->tid = -1;
	if (!spec || !*spec) {
		t->ident = main;
		if (!main) {
			snprintf(why, size, "the main thread is not known");
			return -1;
		}
	} else if (resolve_spec(spec, frames, active, &t->ident, why, size) < 0) {
		return -1;
	}
	t->main = main && t->ident == main;
	key = PyLong_FromUnsignedLong(t->ident);
	if (key) {
		t->frame = PyDict_GetItem(frames, key);
		t->thread = active ? PyDict_GetItem(active, key) : NULL;
	}
	Py_XDECREF(key);
	PyErr_Clear();
	t->tid = t->thread ? attr_long(t->thread, "native_id", -1) : -1;
	if (t->tid < 0 && t->main)
		t->tid = getpid();
	return 0;
}

/* "default", "ignored", "default-action", "none" or module.qualname of the
 * program's SIGINT handler. */
static void sigint_handler_write(struct jsonw *out)
{
	PyObject *sig, *h = NULL, *dflt = NULL, *mod = NULL, *qual = NULL;   /* owned */
	char buf[512], m[200], q[200];

	jsonw_key(out, "sigint_handler");
	sig = PyImport_ImportModule("_signal");
	if (sig) {
		h = PyObject_CallMethod(sig, "getsignal", "i", 2);
		dflt = PyObject_GetAttrString(sig, "default_int_handler");
	}
	if (!h) {
		jsonw_null(out);
	} else if (h == dflt) {
		jsonw_str(out, "default");
	} else if (h == Py_None) {
		jsonw_str(out, "none");
	} else if (PyLong_Check(h)) {
		jsonw_str(out, PyLong_AsLong(h) == 1 ? "ignored" : "default-action");
	} else {
		mod = PyObject_GetAttrString(h, "__module__");
		PyErr_Clear();
		qual = PyObject_GetAttrString(h, "__qualname__");
		PyErr_Clear();
		snprintf(buf, sizeof(buf), "%s.%s", utf8(mod, m, sizeof(m)),
			 utf8(qual, q, sizeof(q)));
		jsonw_str(out, buf);
	}
	Py_XDECREF(qual);
	Py_XDECREF(mod);
	Py_XDECREF(dflt);
	Py_XDECREF(h);
	Py_XDECREF(sig);
	PyErr_Clear();
}

static void thread_write(struct jsonw *out, const struct target *t)
{
	PyObject *name = t->thread ? PyObject_GetAttrString(t->thread, "name") : NULL;

	PyErr_Clear();
	jsonw_key(out, "thread");
	jsonw_object_begin(out);
	jsonw_key(out, "ident");
	jsonw_int(out, (long long)t->ident);
	jsonw_key(out, "tid");
	if (t->tid < 0)
		jsonw_null(out);
	else
		jsonw_int(out, t->tid);
	pyhot_json_key_pystr(out, "name", name);
	jsonw_key_bool(out, "main", t->main);
	jsonw_key_bool(out, "alive", t->frame != NULL);
	jsonw_key(out, "frame");
	if (t->frame)
		pyhot_frame_write(out, t->frame, PYHOT_FRAME_PLACE, NULL);
	else
		jsonw_null(out);
	jsonw_object_end(out);
	jsonw_key_bool(out, "on_thread", PyThread_get_thread_ident() == t->ident);
	if (t->main)
		sigint_handler_write(out);
	Py_XDECREF(name);
}

/* The builtin exception class called name, which must be raisable without
 * arguments (as an async exception is). Borrowed, or NULL with why. */
static PyObject *exception_class(const char *name, char *why, size_t size)
{
	PyObject *cls, *inst;     /* borrowed; owned */

	cls = name ? PyDict_GetItemString(PyEval_GetBuiltins(), name) : NULL;
	if (!cls || !PyExceptionClass_Check(cls)) {
		snprintf(why, size, "'%s' is not a builtin exception class of Python %.*s",
			 name ? name : "", (int)strcspn(Py_GetVersion(), " "), Py_GetVersion());
		return NULL;
	}
	inst = PyObject_CallObject(cls, NULL);
	if (!inst) {
		PyErr_Clear();
		snprintf(why, size, "%s cannot be raised without arguments", name);
		return NULL;
	}
	Py_DECREF(inst);
	return cls;
}

/* op=send, with the thread resolved. */
static int op_send(const struct pyhot_req *req, const struct target *t,
		   struct jsonw *out, struct pyhot_err *err)
{
	const char *name = pyhot_req_get(req, "exception");
	PyObject *cls;            /* borrowed */
	char why[512];
	int earlier = 0;

	cls = exception_class(name, why, sizeof(why));
	if (!cls)
		return pyhot_err_set(err, PYHOT_ERR_FAILED, 0, getpid(), "interrupt", "%s", why);
	if (!t->frame)
		return pyhot_err_set(err, PYHOT_ERR_FAILED, 0, getpid(), "interrupt",
				     "thread %lu runs no Python code", t->ident);
	if (sent.exc) {
		earlier = pyhot_async_exc_withdraw(&sent);
		pyhot_async_exc_release(&sent);
	}
	if (pyhot_async_exc_send(&sent, t->ident, cls, why, sizeof(why)) < 0)
		return pyhot_err_set(err, PYHOT_ERR_FAILED, 0, getpid(), "interrupt",
				     "cannot send %s: %s", name, why);
	jsonw_key_int(out, "id", (long long)++sent_id);
	jsonw_key_str(out, "exception", name);
	jsonw_key_bool(out, "withdrew_earlier", earlier);
	return 0;
}

int pyhot_verb_interrupt(const struct pyhot_req *req, struct jsonw *out,
			 struct pyhot_err *err)
{
	const char *op = pyhot_req_get(req, "op");
	PyObject *frames;             /* owned: {ident: frame} */
	PyObject *active_live;        /* owned: threading._active */
	PyObject *active = NULL;      /* owned: a copy of it */
	struct target t;
	char why[512], spec[32];
	int r = 0, pending;

	frames = pyhot_current_frames(why, sizeof(why));
	if (!frames)
		return pyhot_err_set(err, PYHOT_ERR_FAILED, 0, getpid(), "interrupt",
				     "sys._current_frames() failed: %s", why);
	/* A copy, read without threading's lock (the thread may hold it). */
	active_live = pyhot_threading_attr("_active");
	if (active_live && PyDict_Check(active_live))
		active = PyDict_Copy(active_live);
	Py_XDECREF(active_live);
	PyErr_Clear();

	op = op ? op : "";
	if ((strcmp(op, "check") == 0 || strcmp(op, "withdraw") == 0)) {
		if (!sent.exc || pyhot_req_get_ulong(req, "id", 0) != (long)sent_id) {
			r = pyhot_err_set(err, PYHOT_ERR_UNCERTAIN, 0, getpid(), "interrupt",
					  "the exception is no longer followed here: a later "
					  "pyhot interrupt withdrew or replaced it");
			goto out;
		}
		snprintf(spec, sizeof(spec), "%lu", sent.ident);
		resolve(spec, frames, active, &t, why, sizeof(why));
		t.ident = sent.ident;
		pending = pyhot_async_exc_pending(&sent);
		if (strcmp(op, "withdraw") == 0) {
			jsonw_key_bool(out, "withdrawn", pyhot_async_exc_withdraw(&sent));
			pending = 0;
		}
		jsonw_key_bool(out, "pending", pending);
		if (!pending)
			pyhot_async_exc_release(&sent);
	} else if (strcmp(op, "send") == 0 || strcmp(op, "where") == 0) {
		if (resolve(pyhot_req_get(req, "thread"), frames, active, &t, why,
			    sizeof(why)) < 0) {
			r = pyhot_err_set(err, PYHOT_ERR_FAILED, 0, getpid(), "interrupt",
					  "%s", why);
			goto out;
		}
		if (strcmp(op, "send") == 0 && (r = op_send(req, &t, out, err)) < 0)
			goto out;
	} else {
		r = pyhot_err_set(err, PYHOT_ERR_FAILED, 0, getpid(), "interrupt",
				  "unknown op '%s'", op);
		goto out;
	}
	thread_write(out, &t);
	jsonw_key_str(out, "via", pyhot_sp_via_name(pyhot_sp_current_via()));
out:
	Py_XDECREF(active);
	Py_DECREF(frames);
	PyErr_Clear();
	return r;
}
