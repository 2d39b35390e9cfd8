/*
 * verb_interrupt.h: the "interrupt" verb, behind `pyhot interrupt`.
 * Private to the payload; a row of pyhot_verbs[] (verbs.c). A
 * PYHOT_VERB_PYTHON handler: GIL held at a safe point, no Python exception
 * left set (the one it sends is pending in another thread's state, raised
 * there at its next bytecode, never here).
 *
 * Request keys: "op" and, for "send" and "where", "thread" (a name, a
 * native thread id or an ident; absent: the main thread) and, for "send",
 * "exception" (the name of a builtin exception class).
 *   op=send      check the thread and the class, then send: the class
 *                becomes the thread's pending async exception. An earlier
 *                send still pending is withdrawn first ("withdrew_earlier").
 *                The answer's "id" numbers it.
 *   op=check     is the exception sent last ("id" given back) still pending?
 *   op=withdraw  withdraw it when it is still pending ("withdrawn").
 *                Both fail ("uncertain") when a later send replaced it.
 *   op=where     only describe the thread.
 * Answer: "thread": {"ident", "tid", "name", "main", "alive", "frame"
 * ({"file","line","function"} of its innermost Python frame, or null)},
 * "on_thread": true when this safe point runs on that very thread (it runs
 * Python: a pending exception is raised as soon as we return), "via",
 * "sigint_handler" (main thread: "default", "ignored", "default-action",
 * "none" or the handler's module.qualname), and per op "exception",
 * "pending", "withdrawn", "withdrew_earlier". Errors: "failed" with the
 * reason (unknown thread or class, a thread without Python frames);
 * nothing was sent then.
 */
#ifndef PYHOT_VERB_INTERRUPT_H
#define PYHOT_VERB_INTERRUPT_H

#include "jsonw.h"
#include "pyhot_err.h"
#include "request.h"

int pyhot_verb_interrupt(const struct pyhot_req *req, struct jsonw *out,
			 struct pyhot_err *err);

#endif /* PYHOT_VERB_INTERRUPT_H */
