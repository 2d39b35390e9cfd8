/*
 * report.h: the report of a refresh or a rollback: its change lines, the
 * JSON it writes, and the error report of a failed refresh. GIL held.
 */
#ifndef PYHOT_PATCH_REPORT_H
#define PYHOT_PATCH_REPORT_H

#include <Python.h>
#include <stddef.h>

#include "pyhot_err.h"

struct engine;
struct jsonw;
struct modplan;

/* One line of a report. */
struct pyhot_change {
	const char *action;   /* static string: changed|added|removed|kept|failed */
	const char *kind;     /* static string */
	char *name;
	char *detail;
	char *label;          /* "running" lines: the thread or task name, or NULL */
	long line;            /* "running" lines: the line the frame is at */
};

/* A growing list of report lines (all zero: empty). */
struct pyhot_changes {
	struct pyhot_change *v;
	size_t n, cap;
};

/* Append a line; name and detail are copied. 0, or -1 out of memory (no
 * Python exception set). */
int pyhot_changes_add(struct pyhot_changes *c, const char *action,
		      const char *kind, const char *name, const char *detail);

/*
 * A "running" line: a frame that runs a changed function's old code and
 * keeps it until it returns. kind is "thread", "task" or "generator";
 * label the thread's or task's name (NULL for a generator); line where the
 * frame is. These lines are written apart from the changes (a module's
 * "running" list) and count in no summary. 0, or -1 out of memory.
 */
int pyhot_changes_add_running(struct pyhot_changes *c, const char *kind,
			      const char *name, const char *label, long line,
			      const char *detail);

/* Replace a line's detail (copied). 0, or -1 with a Python exception (out
 * of memory). */
int pyhot_change_set_detail(struct pyhot_change *ch, const char *detail);

/* Free n lines and the array that holds them (ch may be NULL). */
void pyhot_changes_free(struct pyhot_change *ch, size_t n);

/* Append a line to the report of the module being planned (e->mp); detail
 * is printf-formatted (fmt NULL: empty). 0, or -1 with a Python exception
 * (out of memory). */
int change_add(struct engine *e, const char *action, const char *kind,
	       const char *name, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* The kind word of a report line for value v: function, class, import
 * or value. */
const char *value_kind(struct engine *e, PyObject *v);

/* "<module>.<qual>.<name>" (or "<module>.<name>" when qual is NULL or
 * empty) into buf; returns buf. Never fails: an unprintable name is "?". */
const char *qname(struct engine *e, const char *qual, PyObject *name,
		  char *buf, size_t size);

/* Turn the pending Python exception into err ("<what><file>:<line>: <type>:
 * <message>", the line taken from a SyntaxError, the innermost frame in
 * mp's file, or the statement being run) and a "traceback" field written
 * into out; clears the exception. mp may be NULL. Returns err's code. */
int fail_py(struct engine *e, struct modplan *mp, struct jsonw *out,
	    struct pyhot_err *err, const char *what);

/* Write "changes": [{"action", "kind", "name", "detail"}...] and
 * "summary": {"changed", "added", "removed", "kept", "failed"}; "running"
 * lines are left out of both. */
void pyhot_patch_write_changes(struct jsonw *out, const struct pyhot_change *ch,
			       size_t nch);

/* Write one module's report object: {"module", "file", "warning"?,
 * "changes": [...], "summary": {...}, "running": [...]?, "generation":
 * N|null}. generation 0
 * writes null (nothing was recorded). */
void pyhot_patch_write_module(struct jsonw *out, const char *module,
			      const char *file, const char *warning,
			      const struct pyhot_change *ch, size_t nch,
			      long generation);

#endif /* PYHOT_PATCH_REPORT_H */
