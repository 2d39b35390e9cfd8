/*
 * stmts.h: what the engine asks of ast nodes and statements (stmts.c).
 * All take the engine for its ast callables and node types; GIL held.
 * "1, 0, or -1" means yes, no, or an error with a Python exception set.
 */
#ifndef PYHOT_PATCH_STMTS_H
#define PYHOT_PATCH_STMTS_H

#include "plan.h"

/* Whether two nodes have the same ast.dump() (positions ignored); None
 * equals only None. 1, 0, or -1. */
int dump_equal(struct engine *e, PyObject *a, PyObject *b);

/* Whether attribute attr (a list of nodes, or a node) of a and b dump the
 * same. 1, 0, or -1. */
int field_equal(struct engine *e, PyObject *a, PyObject *b, const char *attr);

/* A node's lineno, or -1 (no error left set). */
long node_line(PyObject *node);

/* The first line of a def or class, decorators included (no error left
 * set). */
long stmt_first_line(PyObject *st);

/* The set of names a statement binds in its scope: def/class names, import
 * names, assignment targets; not names local to lambdas and comprehensions.
 * New reference, or NULL with an exception. */
PyObject *bound_names(struct engine *e, PyObject *stmt);

/* Compile one statement as a module of the new source's file, with its
 * __future__ flags. New reference, or NULL with an exception. */
PyObject *compile_stmt(struct engine *e, PyObject *stmt);

/* The code constant of code named name (new reference), or NULL (with an
 * exception only when one was raised). */
PyObject *code_const(struct engine *e, PyObject *code, PyObject *name);

/* Field lists node_stripped() empties: a def without its decorators, a
 * class without its header (decorators, bases, keywords). */
extern const char *const strip_decorators[];
extern const char *const strip_class[];

/* copy.copy() of an ast node without the copy module's Python code: a
 * node of its type made without __init__, given its __dict__ (its fields
 * and positions: what copy.copy() takes from the node's __reduce__). New
 * reference, or NULL with an exception. */
PyObject *node_copy(PyObject *node);

/* A shallow copy of an ast node with the list fields named in fields (NULL
 * terminated) emptied. New reference, or NULL with an exception. */
PyObject *node_stripped(struct engine *e, PyObject *node,
			const char *const *fields);

/* The body code of a class statement, compiled without its header (bases,
 * keywords and decorators are not evaluated); body, when not NULL, stands
 * for the statement's own. New reference, or NULL with an exception. */
PyObject *class_body_code(struct engine *e, PyObject *cd, PyObject *body);

/*
 * A namespace for code that runs with the live module dict as globals
 * (class bodies, default values, throwaway classes): a dict whose misses
 * are looked up in the overlay, so that names bound earlier in the same
 * refresh (a new import, a changed constant) are seen, then the globals.
 * New reference, or NULL with an exception.
 */
PyObject *scratch_ns(struct engine *e);

/* Statement info of a body: dump -> list of statements (a multiset to
 * match against), name -> last def/class node, all bound names. */
struct body_info {
	PyObject *dumps;   /* owned dict */
	PyObject *defs;    /* owned dict */
	PyObject *bound;   /* owned set */
};

/* Fill b from a list of statements: 0, or -1 with an exception (b is to be
 * released either way). */
int body_info_make(struct engine *e, PyObject *body, struct body_info *b);

/* Release what b holds and zero it. */
void body_info_release(struct body_info *b);

/* The old statement that dumps like st (new reference), taken out of the
 * multiset; NULL without error when st is new or changed. */
PyObject *body_take(struct engine *e, struct body_info *b, PyObject *st);

/* Whether st is a def or an async def (1 or 0). */
int is_def(struct engine *e, PyObject *st);

/* The __future__ compiler flags the statements of body import, into
 * *flags. 1 when body has a __future__ import, 0 when not, -1 error. */
int future_flags_body(struct engine *e, PyObject *body, int *flags);

/* Whether st is `if __name__ == "__main__": ...`. 1, 0, or -1. */
int main_guard(struct engine *e, PyObject *st);

#endif /* PYHOT_PATCH_STMTS_H */
