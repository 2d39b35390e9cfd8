/*
 * stmt_table.h: statement tables of module sources and the changed region
 * between a baseline and a new source (stmt_table.c). GIL held.
 */
#ifndef PYHOT_PATCH_STMT_TABLE_H
#define PYHOT_PATCH_STMT_TABLE_H

#include "plan.h"

/* Line starts of a source: off[i] is where line i+1 starts, off[n] = len. */
struct lines {
	size_t *off;
	int n;
};

/* Whether line numbers of a region parsed alone match the file's: no lone
 * CR line ends, no coding cookie (it only counts on lines 1-2). 1 or 0. */
int chunkable(const char *src, size_t len);

/* The statement table of a list of top-level statements, into *out (owned
 * by the caller, pyhot_stmt_recs_free()). 0; 1 when no table can be made
 * (statements sharing a line); -1 with an exception. */
int build_recs(struct engine *e, PyObject *stmts, struct pyhot_stmt_rec **out,
	       size_t *nout);

/* Where a new source differs from a baseline with a statement table: the
 * lines common to the start and the end of both texts delimit it, widened
 * to whole statements of the baseline's table. */
struct region {
	struct lines lo, ln;   /* line starts of the old and the new text */
	size_t ip, js;         /* records [ip, js) are in the region */
	int first;             /* first line of the region, in both texts */
	int olast, nlast;      /* its last line in the old and the new text */
	int delta;             /* lines the new text has more than the old */
};

/* Find the region; 0, or -1 out of memory (no exception set). Release g
 * either way. */
int region_find(const struct pyhot_baseline *b, const char *newsrc,
		size_t newlen, struct region *g);

/* Free what region_find() allocated. */
void region_release(struct region *g);

/* The new source's table: b's records before the region, the nmid records
 * of mid (the region's new statements; mid is consumed), then b's records
 * after it, moved by delta lines. 0, or -1 out of memory (mid is then left
 * to the caller). */
int recs_splice(const struct pyhot_baseline *b, const struct region *g,
		struct pyhot_stmt_rec *mid, size_t nmid,
		struct pyhot_stmt_rec **out, size_t *nout);

/* Parse lines first..last of src alone, with the file's line numbers (the
 * region is padded with newlines). A list of statements (new reference),
 * or NULL with an exception. */
PyObject *parse_region(struct engine *e, const char *src,
		       const struct lines *l, int first, int last);

/* Add the names of a record's bound string to set: 0, or -1 with an
 * exception. */
int add_bound_names(PyObject *set, const char *bound);

#endif /* PYHOT_PATCH_STMT_TABLE_H */
