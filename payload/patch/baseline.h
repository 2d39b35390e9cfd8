/*
 * baseline.h: the source each user module had when pyhot first saw it, and
 * the table of its top-level statements (baseline.c). Private to
 * payload/patch; GIL held, which also serialises access to the list.
 */
#ifndef PYHOT_PATCH_BASELINE_H
#define PYHOT_PATCH_BASELINE_H

#include <stddef.h>
#include <time.h>

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

/* One module's recorded source. Trusted: the text is what the module
 * runs (exact bytes from the loader, or a file that cannot have changed
 * between the import and the read: docs/engine.md). Untrusted: the file
 * as read at attach, which may differ from what runs. */
struct pyhot_baseline {
	char *module;
	char *file;
	char *src;
	size_t len;
	unsigned long long hash;       /* of src, to spot a changed file */
	int trusted;
	int user;                      /* outside stdlib and site-packages */
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

/* Record (or replace) module's baseline, trusted; 0, or -1 out of
 * memory. */
int pyhot_baseline_put(const char *module, const char *file, const char *src,
		       size_t len);

/* The same, saying whether the text is trusted. */
int pyhot_baseline_put_ex(const char *module, const char *file,
			  const char *src, size_t len, int trusted);

/* The same, taking src (malloc'd, NUL-terminated, freed on failure)
 * instead of copying it. */
int pyhot_baseline_adopt(const char *module, const char *file, char *src,
			 size_t len, int trusted);

/* The same, with src's pyhot_patch_hash() computed by the caller (without
 * the GIL). */
int pyhot_baseline_adopt_hashed(const char *module, const char *file, char *src,
				size_t len, unsigned long long hash, int trusted);

/* How many baselines there are and the bytes of source they hold. */
void pyhot_baseline_stats(size_t *count, size_t *bytes);

/* The modules whose file differs from their baseline, or whose baseline is
 * untrusted (what runs is not known): a malloc'd array of malloc'd names,
 * *n long. Reads the files with the GIL released. 0, or -1 out of memory. */
int pyhot_baseline_changed(char ***names, size_t *n);

/* Free what pyhot_baseline_changed() returned. */
void pyhot_baseline_names_free(char **names, size_t n);

/* Whether file is the user's by pyhot_patch_is_user_file(), with the
 * standard library's directory learnt (no GIL needed once it is). */
int pyhot_baseline_file_is_user(const char *file);

/* Remember the directory of the standard library (GIL held, once). */
void pyhot_baseline_learn_stdlib(void);

/*
 * Read a whole file into malloc'd memory (NUL-terminated); 0, or -errno
 * (-EFBIG past PYHOT_PATCH_MAX_SOURCE, -EINVAL not a regular file). Opened
 * O_NONBLOCK and checked with fstat() before any read: a FIFO or a device
 * never blocks the caller. mtime (may be NULL) gets the file's mtime. No
 * Python: callers may release the GIL around it.
 */
#define PYHOT_PATCH_MAX_SOURCE (16u << 20)
int pyhot_patch_read_file(const char *path, char **out, size_t *len);
int pyhot_patch_read_file_mtime(const char *path, char **out, size_t *len,
				struct timespec *mtime);

/* The same, with the GIL released during the read (GIL held on entry). */
int pyhot_patch_read_file_nogil(const char *path, char **out, size_t *len,
				struct timespec *mtime);

/* Whether a is before b (1 or 0). */
int pyhot_patch_ts_before(const struct timespec *a, const struct timespec *b);

/* A 64-bit hash of a text (FNV-1a over words): equal texts, equal hashes. */
unsigned long long pyhot_patch_hash(const char *src, size_t len);

/* Whether a module file is the user's (outside stdlib and site-packages).
 * stdlib_dir is the directory of os.py, or NULL. */
int pyhot_patch_is_user_file(const char *file, const char *stdlib_dir);

#endif /* PYHOT_PATCH_BASELINE_H */
