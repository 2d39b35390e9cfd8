/*
 * baseline.c: the source each module had when pyhot first saw it, and
 * how the engine reads source files (never blocking on a FIFO).
 *
 * Kept in C memory: the target's Python heap does not grow, and nothing in
 * the target can change it. Every function that touches the list runs
 * with the GIL held, which serialises access to it.
 */
#include "attr.h"
#include "baseline.h"
#include "pyhot_patch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct pyhot_baseline *baselines;

struct pyhot_baseline *pyhot_baseline_find(const char *module)
{
	struct pyhot_baseline *b;

	for (b = baselines; b; b = b->next) {
		if (strcmp(b->module, module) == 0) {
			return b;
		}
	}
	return NULL;
}

struct pyhot_baseline *pyhot_baseline_find_first(void)
{
	return baselines;
}

void pyhot_stmt_recs_free(struct pyhot_stmt_rec *recs, size_t n)
{
	size_t i;

	for (i = 0; recs && i < n; i++) {
		free(recs[i].name);
		free(recs[i].bound);
	}
	free(recs);
}

void pyhot_baseline_set_table(struct pyhot_baseline *b,
			      struct pyhot_stmt_rec *recs, size_t n, int flags)
{
	pyhot_stmt_recs_free(b->recs, b->nrecs);
	b->recs = recs;
	b->nrecs = n;
	b->flags = flags;
	b->has_table = 1;
}

void pyhot_baseline_drop(const char *module)
{
	struct pyhot_baseline **pp, *b;

	for (pp = &baselines; (b = *pp) != NULL; pp = &b->next) {
		if (strcmp(b->module, module) == 0) {
			*pp = b->next;
			pyhot_stmt_recs_free(b->recs, b->nrecs);
			free(b->module);
			free(b->file);
			free(b->src);
			free(b);
			return;
		}
	}
}

/* The directory of the standard library, learnt once; "" unknown. */
static char stdlib_path[4096];

int pyhot_baseline_file_is_user(const char *file)
{
	return pyhot_patch_is_user_file(file, stdlib_path[0] ? stdlib_path : NULL);
}

/* A new entry for module at the head of the list, or NULL. */
static struct pyhot_baseline *baseline_new(const char *module)
{
	struct pyhot_baseline *b = calloc(1, sizeof(*b));

	if (!b || !(b->module = strdup(module))) {
		free(b);
		return NULL;
	}
	b->next = baselines;
	baselines = b;
	return b;
}

int pyhot_baseline_adopt(const char *module, const char *file, char *src,
			 size_t len, int trusted)
{
	return pyhot_baseline_adopt_hashed(module, file, src, len,
					   pyhot_patch_hash(src, len), trusted);
}

int pyhot_baseline_adopt_hashed(const char *module, const char *file, char *src,
				size_t len, unsigned long long hash, int trusted)
{
	struct pyhot_baseline *b = pyhot_baseline_find(module);
	char *fcopy = strdup(file);

	if (!fcopy || (!b && !(b = baseline_new(module)))) {
		free(fcopy);
		free(src);
		return -1;
	}
	free(b->src);
	free(b->file);
	pyhot_stmt_recs_free(b->recs, b->nrecs);
	b->recs = NULL;
	b->nrecs = 0;
	b->has_table = 0;
	b->src = src;
	b->file = fcopy;
	b->len = len;
	b->hash = hash;
	b->trusted = trusted;
	b->user = pyhot_baseline_file_is_user(file);
	return 0;
}

int pyhot_baseline_put_ex(const char *module, const char *file,
			  const char *src, size_t len, int trusted)
{
	char *copy = malloc(len + 1);

	if (!copy) {
		return -1;
	}
	memcpy(copy, src, len);
	copy[len] = '\0';
	return pyhot_baseline_adopt(module, file, copy, len, trusted);
}

int pyhot_baseline_put(const char *module, const char *file, const char *src,
		       size_t len)
{
	return pyhot_baseline_put_ex(module, file, src, len, 1);
}

void pyhot_baseline_stats(size_t *count, size_t *bytes)
{
	struct pyhot_baseline *b;

	*count = 0;
	*bytes = 0;
	for (b = baselines; b; b = b->next) {
		(*count)++;
		*bytes += b->len;
	}
}

unsigned long long pyhot_patch_hash(const char *src, size_t len)
{
	unsigned long long h = 1469598103934665603ULL ^ len, w;
	size_t i = 0;

	/* FNV-1a a word at a time, folded so that every bit of a word reaches
	 * the low bits: 8 times fewer multiplies than byte-wise FNV-1a (the
	 * changed-file scan hashes every module's file at each refresh). */
	for (; i + sizeof(w) <= len; i += sizeof(w)) {
		memcpy(&w, src + i, sizeof(w));
		h = (h ^ w) * 1099511628211ULL;
		h ^= h >> 32;
	}
	for (; i < len; i++) {
		h = (h ^ (unsigned char)src[i]) * 1099511628211ULL;
	}
	return h;
}

/* Read exactly st_size bytes (or fewer, at end of file) from fd. */
static int read_all(int fd, char *buf, size_t want, size_t *got)
{
	ssize_t r;

	*got = 0;
	while (*got < want) {
		r = read(fd, buf + *got, want - *got);
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r < 0) {
			return -errno;
		}
		if (r == 0) {
			break;
		}
		*got += (size_t)r;
	}
	return 0;
}

int pyhot_patch_read_file_mtime(const char *path, char **out, size_t *len,
				struct timespec *mtime)
{
	struct stat st;
	char *buf;
	int fd, r;

	*out = NULL;
	*len = 0;
	/* O_NONBLOCK: opening a FIFO with no writer must not wait for one */
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		return -errno;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
	} else if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
	} else if ((unsigned long long)st.st_size > PYHOT_PATCH_MAX_SOURCE) {
		r = -EFBIG;
	} else if (!(buf = malloc((size_t)st.st_size + 1))) {
		r = -ENOMEM;
	} else if ((r = read_all(fd, buf, (size_t)st.st_size, len)) < 0) {
		free(buf);
	} else {
		buf[*len] = '\0';
		*out = buf;
		if (mtime) {
			*mtime = st.st_mtim;
		}
	}
	close(fd);
	return r;
}

int pyhot_patch_read_file(const char *path, char **out, size_t *len)
{
	return pyhot_patch_read_file_mtime(path, out, len, NULL);
}

int pyhot_patch_ts_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec ||
	       (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

int pyhot_patch_read_file_nogil(const char *path, char **out, size_t *len,
				struct timespec *mtime)
{
	int r;

	Py_BEGIN_ALLOW_THREADS
	r = pyhot_patch_read_file_mtime(path, out, len, mtime);
	Py_END_ALLOW_THREADS
	return r;
}

int pyhot_patch_is_user_file(const char *file, const char *stdlib_dir)
{
	size_t n = strlen(file), sl;

	if (n < 3 || strcmp(file + n - 3, ".py") != 0) {
		return 0;
	}
	if (strstr(file, "/site-packages/") || strstr(file, "/dist-packages/")) {
		return 0;
	}
	if (stdlib_dir && (sl = strlen(stdlib_dir)) > 0 &&
	    strncmp(file, stdlib_dir, sl) == 0 && file[sl] == '/') {
		return 0;
	}
	return 1;
}

/* The directory holding os.py: the standard library. */
static int stdlib_dir(char *buf, size_t size)
{
	PyObject *os;   /* owned */
	PyObject *f;   /* owned */
	char *slash;
	int rc = -1;

	os = PyImport_ImportModule("os");
	if (!os) {
		return -1;
	}
	f = pyhot_patch_get_attr(os, "__file__");
	Py_DECREF(os);
	if (f && pyhot_patch_utf8(f, buf, size) == 0 &&
	    (slash = strrchr(buf, '/')) != NULL) {
		*slash = '\0';
		rc = 0;
	}
	Py_XDECREF(f);
	return rc;
}

void pyhot_baseline_learn_stdlib(void)
{
	if (!stdlib_path[0] && stdlib_dir(stdlib_path, sizeof(stdlib_path)) < 0) {
		stdlib_path[0] = '\0';
	}
	PyErr_Clear();
}
