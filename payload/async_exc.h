/*
 * async_exc.h: raise an exception in another Python thread at its next
 * bytecode (PyThreadState_SetAsyncExc), know whether it has been raised
 * yet, and withdraw it when it has not. Private to the payload; GIL held
 * for every call; nothing here leaves a Python exception set.
 *
 * Whether it is still pending is read from the thread state's async_exc
 * field, whose offset is learnt once on our own thread state (a fresh
 * marker class is set there through CPython's own setter and looked for),
 * so no layout of any version is assumed. docs/interrupt.md has the why.
 */
#ifndef PYHOT_ASYNC_EXC_H
#define PYHOT_ASYNC_EXC_H

#include <Python.h>

/* One exception sent to one thread. */
struct pyhot_async_exc {
	unsigned long ident;      /* threading.get_ident() of the thread */
	const void *tstate;       /* its thread state, found at send time */
	PyObject *exc;            /* owned: the class that was sent */
};

/*
 * Set exc (an exception class, borrowed) as the pending async exception of
 * thread ident and fill a. Returns 0, or -1 with why filled (no such
 * thread, the field could not be found): then nothing was set.
 */
int pyhot_async_exc_send(struct pyhot_async_exc *a, unsigned long ident,
			 PyObject *exc, char *why, size_t size);

/* 1 while a's exception is still pending in its thread; 0 once the thread
 * took it (or its thread state is gone: the thread has ended). */
int pyhot_async_exc_pending(const struct pyhot_async_exc *a);

/*
 * Withdraw a's exception if it is still pending. Returns 1 when it was
 * withdrawn (the thread never saw it), 0 when the thread had taken it
 * already. On 3.8 to 3.12 CPython's own withdrawal leaves the
 * interpreter's "async exception" flag set, which sends every thread into
 * the slow path of its eval loop until some thread takes one: we take a
 * marker on our own thread to clear it.
 */
int pyhot_async_exc_withdraw(struct pyhot_async_exc *a);

/* The main thread's ident read from the oldest thread state of the main
 * interpreter (its thread_id field, found next to async_exc on our own
 * thread state): for when neither a pending call nor threading told it.
 * 0 when it cannot be read. The caller checks it names a thread with
 * Python frames. */
unsigned long pyhot_async_exc_main_ident(void);

/* Drop a's reference (after delivery or withdrawal). */
void pyhot_async_exc_release(struct pyhot_async_exc *a);

#endif /* PYHOT_ASYNC_EXC_H */
