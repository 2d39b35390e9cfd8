/* async_exc.c: an exception raised in another thread, and withdrawn when it
 * was not (see async_exc.h). */
#include "async_exc.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

/* The async_exc field lies well inside a thread state in 3.8 to 3.13
 * (about 170 to 250 bytes in): we look no further. */
#define TSTATE_SCAN_MAX 1024

typedef void interp_t;
typedef void tstate_t;

static struct {
	int learnt;               /* 1: ok, -1: failed for good */
	long off;                 /* offset of async_exc in a thread state */
	long id_off;              /* offset of thread_id, or -1 */
	PyObject *marker;         /* owned, kept: a class of ours */
	interp_t *(*interp_head)(void);
	interp_t *(*interp_next)(interp_t *);
	tstate_t *(*thread_head)(interp_t *);
	tstate_t *(*thread_next)(tstate_t *);
} ax;

static PyObject *field(const void *ts)
{
	return *(PyObject *const *)((const char *)ts + ax.off);
}


/* "pass" run on our own thread: the exception it raised (owned), or NULL. */
static PyObject *run_pass(void)
{
	PyObject *code, *globals, *r;     /* owned */
	PyObject *type, *value, *tb;      /* owned, from PyErr_Fetch */

	code = Py_CompileString("pass", "<pyhot>", Py_file_input);
	globals = PyDict_New();
	if (!code || !globals ||
	    PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) < 0) {
		Py_XDECREF(code);
		Py_XDECREF(globals);
		PyErr_Clear();
		return NULL;
	}
	r = PyEval_EvalCode(code, globals, globals);
	Py_XDECREF(r);
	Py_DECREF(code);
	Py_DECREF(globals);
	PyErr_Fetch(&type, &value, &tb);
	Py_XDECREF(value);
	Py_XDECREF(tb);
	return type;
}

/* Run a code object of one statement on our own thread: its first
 * eval-breaker check raises what is pending here. Returns the exception
 * class that came out (owned), or NULL; whatever is still pending on our
 * thread afterwards is withdrawn, so that it never reaches code of the
 * program's (we may be on its main thread). */
static PyObject *take_own_pending(void)
{
	PyObject *type = run_pass();

	if (ax.off && field(PyThreadState_Get()) != NULL)
		PyThreadState_SetAsyncExc(PyThread_get_thread_ident(), NULL);
	return type;
}

/* Learn where async_exc lies: set our marker on our own thread through
 * CPython's setter, find it in our own thread state, then take it back by
 * raising it here (which also clears the interpreter's flag). */
static void learn(void)
{
	unsigned long me = PyThread_get_thread_ident();
	const char *ts = (const char *)PyThreadState_Get();
	PyObject *got;
	long off;

	ax.learnt = -1;
	*(void **)&ax.interp_head = dlsym(RTLD_DEFAULT, "PyInterpreterState_Head");
	*(void **)&ax.interp_next = dlsym(RTLD_DEFAULT, "PyInterpreterState_Next");
	*(void **)&ax.thread_head = dlsym(RTLD_DEFAULT, "PyInterpreterState_ThreadHead");
	*(void **)&ax.thread_next = dlsym(RTLD_DEFAULT, "PyThreadState_Next");
	if (!ax.interp_head || !ax.interp_next || !ax.thread_head || !ax.thread_next)
		return;
	ax.marker = PyErr_NewException("pyhot._Withdrawn", NULL, NULL);
	if (!ax.marker) {
		PyErr_Clear();
		return;
	}
	if (PyThreadState_SetAsyncExc(me, ax.marker) != 1)
		return;
	/* Only async_exc refers to a class made a moment ago: the scan stops
	 * there, inside the structure. */
	for (off = 0; off < TSTATE_SCAN_MAX; off += (long)sizeof(void *)) {
		if (*(PyObject *const *)(ts + off) == ax.marker)
			break;
	}
	if (off == TSTATE_SCAN_MAX) {
		/* Not found (cannot be): raise it here, which also empties
		 * the field and clears the flag. */
		Py_XDECREF(run_pass());
		PyErr_Clear();
		return;
	}
	ax.off = off;
	/* thread_id follows async_exc in 3.8 to 3.13: look a few words on. */
	ax.id_off = -1;
	for (off = ax.off + (long)sizeof(void *); off <= ax.off + 8 * (long)sizeof(void *);
	     off += (long)sizeof(void *)) {
		if (*(const unsigned long *)(ts + off) == me) {
			ax.id_off = off;
			break;
		}
	}
	got = take_own_pending();
	if (got == ax.marker)
		ax.learnt = 1;
	Py_XDECREF(got);
	PyErr_Clear();
}

/* Empty the pending exception of thread ident, then clear the flag
 * CPython leaves set (3.8 to 3.12) by taking our marker on our own thread,
 * unless our own thread has an exception of the program's pending (raising
 * it clears the flag too). */
static void clear_pending(unsigned long ident)
{
	unsigned long me = PyThread_get_thread_ident();
	const void *own = PyThreadState_Get();

	PyThreadState_SetAsyncExc(ident, NULL);
	if (field(own) == NULL && PyThreadState_SetAsyncExc(me, ax.marker) == 1)
		Py_XDECREF(take_own_pending());
	PyErr_Clear();
}

/* The thread state whose async_exc is o, or NULL. */
static const void *tstate_holding(PyObject *o)
{
	interp_t *in;
	tstate_t *ts;

	for (in = ax.interp_head(); in; in = ax.interp_next(in))
		for (ts = ax.thread_head(in); ts; ts = ax.thread_next(ts))
			if (field(ts) == o)
				return ts;
	return NULL;
}

/* Whether ts is still a thread state of some interpreter. */
static int tstate_listed(const void *want)
{
	interp_t *in;
	tstate_t *ts;

	for (in = ax.interp_head(); in; in = ax.interp_next(in))
		for (ts = ax.thread_head(in); ts; ts = ax.thread_next(ts))
			if (ts == want)
				return 1;
	return 0;
}

int pyhot_async_exc_send(struct pyhot_async_exc *a, unsigned long ident,
			 PyObject *exc, char *why, size_t size)
{
	memset(a, 0, sizeof(*a));
	if (!ax.learnt)
		learn();
	if (ax.learnt < 0) {
		snprintf(why, size, "the thread states of this interpreter could not be read");
		return -1;
	}
	/* The marker first, to find the thread's state; the thread cannot run
	 * before we set the real one: we hold the GIL. */
	if (PyThreadState_SetAsyncExc(ident, ax.marker) != 1) {
		PyErr_Clear();
		snprintf(why, size, "no Python thread has ident %lu", ident);
		return -1;
	}
	a->tstate = tstate_holding(ax.marker);
	if (!a->tstate) {
		clear_pending(ident);
		snprintf(why, size, "the state of thread %lu was not found", ident);
		return -1;
	}
	a->ident = ident;
	Py_INCREF(exc);
	a->exc = exc;
	PyThreadState_SetAsyncExc(ident, exc);
	return 0;
}

int pyhot_async_exc_pending(const struct pyhot_async_exc *a)
{
	return a->exc && a->tstate && tstate_listed(a->tstate) && field(a->tstate) == a->exc;
}

int pyhot_async_exc_withdraw(struct pyhot_async_exc *a)
{
	int pending = a->tstate && tstate_listed(a->tstate) &&
		      (field(a->tstate) == a->exc || field(a->tstate) == ax.marker);

	if (!pending)
		return 0;
	clear_pending(a->ident);
	return 1;
}

void pyhot_async_exc_release(struct pyhot_async_exc *a)
{
	Py_CLEAR(a->exc);
	a->tstate = NULL;
	a->ident = 0;
}

unsigned long pyhot_async_exc_main_ident(void)
{
	interp_t *in, *main = NULL;
	tstate_t *ts, *oldest = NULL;

	if (!ax.learnt)
		learn();
	if (ax.learnt < 0 || ax.id_off < 0)
		return 0;
	/* Both lists grow at their head: the oldest interpreter is the main
	 * one, and its oldest thread state the main thread's. */
	for (in = ax.interp_head(); in; in = ax.interp_next(in))
		main = in;
	for (ts = main ? ax.thread_head(main) : NULL; ts; ts = ax.thread_next(ts))
		oldest = ts;
	return oldest ? *(const unsigned long *)((const char *)oldest + ax.id_off) : 0;
}
