/*
 * patch_priv.h: declarations shared by the patch engine's sources.
 * Everything here runs with the GIL held.
 */
#ifndef PYHOT_PATCH_PRIV_H
#define PYHOT_PATCH_PRIV_H

#include <Python.h>
#include <stddef.h>

/*
 * Outside the limited API, but exported under this name and with this
 * signature by every CPython from 3.8 to 3.13 (shared and static builds).
 * The __closure__ attribute is read-only and the __code__ setter insists on
 * a closure of the same size, so giving a method a __class__ cell it did
 * not have needs this call. It does not check sizes: the caller sets a
 * closure that fits the code it sets right after.
 */
extern int PyFunction_SetClosure(PyObject *op, PyObject *closure);

/* getattr(o, name) with the name interned (new reference, or NULL with an
 * exception). CPython's type attribute cache keeps a reference to the name
 * of every lookup it caches, so a fresh string per call (as
 * PyObject_GetAttrString() makes) would leave dead names alive there after
 * every refresh. The engine uses this, not PyObject_*AttrString(). */
PyObject *pyhot_patch_get_attr(PyObject *o, const char *name);

/* One line of a refresh's report. */
struct pyhot_change {
	const char *action;   /* static string: changed|added|removed|kept|failed */
	const char *kind;     /* static string */
	char *name;
	char *detail;
};

/* Write "changes": [{"action", "kind", "name", "detail"}...] and
 * "summary": {"changed", "added", "removed", "kept", "failed"}. */
struct jsonw;
void pyhot_patch_write_changes(struct jsonw *out, const struct pyhot_change *ch,
			       size_t nch);

/* Write one module's report object: {"module", "file", "warning"?,
 * "changes": [...], "summary": {...}, "generation": N|null}. generation 0
 * writes null (nothing was recorded). */
void pyhot_patch_write_module(struct jsonw *out, const char *module,
			      const char *file, const char *warning,
			      const struct pyhot_change *ch, size_t nch,
			      long generation);

/* A top-level statement of a recorded source: its lines (decorators
 * included), its kind and the names it binds. Lets the next refresh parse
 * only the region of the file that changed. */
struct pyhot_stmt_rec {
	int start, end;    /* 1-based, inclusive */
	int kind;          /* 0 other, 1 def, 2 class */
	char *name;        /* def/class name, or NULL */
	char *bound;       /* bound names, each followed by '\n' */
};

void pyhot_stmt_recs_free(struct pyhot_stmt_rec *recs, size_t n);

/* One module's recorded source (baseline.c). */
struct pyhot_baseline {
	char *module;
	char *file;
	char *src;
	size_t len;
	struct pyhot_stmt_rec *recs;   /* valid when has_table */
	size_t nrecs;
	int flags;                     /* its __future__ compiler flags */
	int has_table;
	struct pyhot_baseline *next;
};

/* Attach a statement table to b (ownership of recs passes to b). */
void pyhot_baseline_set_table(struct pyhot_baseline *b,
			      struct pyhot_stmt_rec *recs, size_t n, int flags);

/* The entry for module, or NULL. */
struct pyhot_baseline *pyhot_baseline_find(const char *module);

/* The first entry (walk with ->next), or NULL. */
struct pyhot_baseline *pyhot_baseline_find_first(void);

/* Forget module's baseline (a rollback to before its first refresh, when
 * it had none). */
void pyhot_baseline_drop(const char *module);

/* Record (or replace) module's baseline; 0, or -1 out of memory. */
int pyhot_baseline_put(const char *module, const char *file, const char *src,
		       size_t len);

/* Read a whole file into malloc'd memory (NUL-terminated); 0, or -errno
 * (-EFBIG past PYHOT_PATCH_MAX_SOURCE). */
#define PYHOT_PATCH_MAX_SOURCE (16u << 20)
int pyhot_patch_read_file(const char *path, char **out, size_t *len);

/* Whether a module file is the user's (outside stdlib and site-packages).
 * stdlib_dir is the directory of os.py, or NULL. */
int pyhot_patch_is_user_file(const char *file, const char *stdlib_dir);

/* Copy the UTF-8 text of a str into buf; 0, or -1 (error set, or not a str). */
int pyhot_patch_utf8(PyObject *s, char *buf, size_t size);

#endif /* PYHOT_PATCH_PRIV_H */
