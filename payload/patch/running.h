/*
 * running.h: naming the frames that keep running a function's old code
 * after a refresh (running.c): threads inside it, asyncio tasks and
 * generators suspended in it. GIL held.
 */
#ifndef PYHOT_PATCH_RUNNING_H
#define PYHOT_PATCH_RUNNING_H

#include "plan.h"

/* CO_GENERATOR, CO_COROUTINE, CO_ASYNC_GENERATOR: the code flags of a
 * function whose calls make frames that outlive the call. */
#define CO_KIND_FLAGS (0x20 | 0x80 | 0x200)

/* gc.get_referrers (new reference, or NULL with an exception): one pass
 * over the heap for the objects that refer to any of its arguments. */
PyObject *gc_get_referrers(void);

/* Co_name of the code objects of comprehensions: no function outlives
 * their run, so no closure is ever made of them to follow. */
int is_comprehension_code(PyObject *code);

/*
 * The functions whose code the queued ops of the module being planned
 * change (not only their line numbers): every live frame that runs their
 * old code gets a "running" line in the module's report. Thread frames
 * come from sys._current_frames(); generators, coroutines and async
 * generators from gc.get_referrers() of their old code, asked only when
 * such a function changed; coroutines are named after the asyncio task
 * that awaits them. 0, or -1 error.
 */
int running_report(struct engine *e);

#endif /* PYHOT_PATCH_RUNNING_H */
