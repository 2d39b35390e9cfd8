/*
 * asyncio_tasks.h: the asyncio tasks of every event loop, for the "stack"
 * verb. Private to the payload; GIL held at a safe point; no Python
 * exception left set. Stable ABI only.
 *
 * Found without the program's help: the registry asyncio.tasks keeps of
 * every task (_all_tasks on 3.8 to 3.11; _scheduled_tasks and _eager_tasks
 * on 3.12 and 3.13), grouped by task.get_loop(); the thread that runs a
 * loop is the loop's _thread_id; the task running now is
 * asyncio.tasks._current_tasks[loop]. docs/interrupt.md tells more.
 */
#ifndef PYHOT_ASYNCIO_TASKS_H
#define PYHOT_ASYNCIO_TASKS_H

#include <Python.h>

#include "jsonw.h"

/*
 * "asyncio": null when the program never imported asyncio, else
 * [{"loop": repr, "thread": ident|null, "running": bool,
 *   "tasks": [{"name", "coroutine" (qualname), "current": bool (the task
 *   the loop runs now), "awaits": [{"file","line","function","source"}]
 *   (the task's coroutine first, then each coroutine it awaits, as in a
 *   traceback), "waiting_on": repr of the future at the end, or null}],
 *   "tasks_cut": bool}]. Done tasks are left out.
 * getline (linecache.getline) is borrowed, may be NULL.
 */
void pyhot_asyncio_write(struct jsonw *out, PyObject *getline);

#endif /* PYHOT_ASYNCIO_TASKS_H */
