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

/* Co_name of the code objects of comprehensions: no function outlives
 * their run, so no closure is ever made of them to follow. */
int is_comprehension_code(PyObject *code);

/* The objects that refer to the codes first in the tuples that are pairs'
 * values (comprehensions left out when asked): one gc.get_referrers()
 * pass over the heap, none when there is no code. A new list, or NULL
 * with an exception. */
PyObject *code_referrers(PyObject *pairs, int skip_comprehensions);

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
