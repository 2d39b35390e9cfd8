/*
 * baseline.h: the source each user module had when pyhot first saw it, and
 * the table of its top-level statements (baseline.c). Private to
 * payload/patch; GIL held, which also serialises access to the list.
 */
#ifndef PYHOT_PATCH_BASELINE_H
#define PYHOT_PATCH_BASELINE_H

#include <stddef.h>

/* What a top-level statement is, as far as the statement table cares. */
enum pyhot_stmt_kind {
	PYHOT_STMT_OTHER,   /* anything but a def or a class */
	PYHOT_STMT_DEF,     /* def or async def */
	PYHOT_STMT_CLASS,
};

/* A top-level statement of a recorded source: its lines (decorators
 * included), its kind and the names it binds. Lets the next refresh parse
 * only the region of the file that changed. */
struct pyhot_stmt_rec {
	int start, end;              /* 1-based, inclusive */
	enum pyhot_stmt_kind kind;
	char *name;                  /* def/class name, or NULL */
	char *bound;                 /* bound names, each followed by '\n' */
};

/* Free a table of n records (recs may be NULL). */
void pyhot_stmt_recs_free(struct pyhot_stmt_rec *recs, size_t n);

/* One module's recorded source. */
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

#endif /* PYHOT_PATCH_BASELINE_H */
