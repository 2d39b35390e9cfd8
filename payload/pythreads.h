/*
 * pythreads.h: what the verbs read about the target's Python threads and
 * their frames. Private to the payload. GIL held, at a safe point; nothing
 * here leaves a Python exception set. Stable ABI only.
 */
#ifndef PYHOT_PYTHREADS_H
#define PYHOT_PYTHREADS_H

#include <Python.h>
#include <stddef.h>

#include "jsonw.h"

/* A new reference to threading.<name>, or NULL (no error set). threading
 * is only looked at when the program imported it: importing it here, maybe
 * from a thread of ours, would change what it thinks the main thread is. */
PyObject *pyhot_threading_attr(const char *name);

/* The main thread's ident: where we stand when we came by pending call,
 * else threading's idea of it, else what an earlier pending call saw.
 * 0 when unknown. */
unsigned long pyhot_main_thread_ident(void);

/* sys._current_frames(): {ident: frame}, a new reference. NULL when it
 * fails or is not a dict: why then says so ("Type: message" or "not a
 * dict"), and the error is cleared. */
PyObject *pyhot_current_frames(char *why, size_t size);

enum pyhot_frame_fields {
	PYHOT_FRAME_PLACE,         /* "file", "line", "function" */
	PYHOT_FRAME_WITH_SOURCE,   /* ... and "source" */
};

/* One frame (borrowed) as a JSON object, nulls for what cannot be read.
 * "source" is the line's text, stripped, from getline (linecache.getline,
 * borrowed; NULL: the source is null). */
void pyhot_frame_write(struct jsonw *out, PyObject *frame,
		       enum pyhot_frame_fields fields, PyObject *getline);

#endif /* PYHOT_PYTHREADS_H */
