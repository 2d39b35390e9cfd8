/*
 * baseline.c: the source each user module had when pyhot first saw it.
 *
 * Kept in C memory: the target's Python heap does not grow, and nothing in
 * the target can change it. Every function runs with the GIL held, which
 * also serialises access to the list.
 */
#include "attr.h"
#include "baseline.h"
#include "pyhot_patch.h"

#include <errno.h>
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

int pyhot_baseline_put(const char *module, const char *file, const char *src,
		       size_t len)
{
	struct pyhot_baseline *b = pyhot_baseline_find(module);
	char *copy, *fcopy;

	copy = malloc(len + 1);
	fcopy = strdup(file);
	if (!copy || !fcopy) {
		free(copy);
		free(fcopy);
		return -1;
	}
	memcpy(copy, src, len);
	copy[len] = '\0';
	if (!b) {
		b = calloc(1, sizeof(*b));
		if (!b || !(b->module = strdup(module))) {
			free(b);
			free(copy);
			free(fcopy);
			return -1;
		}
		b->next = baselines;
		baselines = b;
	}
	free(b->src);
	free(b->file);
	pyhot_stmt_recs_free(b->recs, b->nrecs);
	b->recs = NULL;
	b->nrecs = 0;
	b->has_table = 0;
	b->src = copy;
	b->file = fcopy;
	b->len = len;
	return 0;
}

int pyhot_patch_read_file(const char *path, char **out, size_t *len)
{
	struct stat st;
	FILE *f;
	char *buf;
	size_t n;
	int saved;

	*out = NULL;
	*len = 0;
	f = fopen(path, "rb");
	if (!f) {
		return -errno;
	}
	if (fstat(fileno(f), &st) < 0) {
		saved = errno;
		fclose(f);
		return -saved;
	}
	if (!S_ISREG(st.st_mode)) {
		fclose(f);
		return -EINVAL;
	}
	if ((unsigned long long)st.st_size > PYHOT_PATCH_MAX_SOURCE) {
		fclose(f);
		return -EFBIG;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		fclose(f);
		return -ENOMEM;
	}
	n = fread(buf, 1, (size_t)st.st_size, f);
	if (ferror(f)) {
		saved = errno ? errno : EIO;
		free(buf);
		fclose(f);
		return -saved;
	}
	fclose(f);
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
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

int pyhot_patch_baseline_take(struct pyhot_err *err)
{
	char sdir[4096], name[1024], file[4096];
	PyObject *modules;   /* borrowed */
	PyObject *items = NULL;   /* owned */
	Py_ssize_t i, n;
	int have_sdir;

	have_sdir = stdlib_dir(sdir, sizeof(sdir)) == 0;
	PyErr_Clear();
	modules = PyImport_GetModuleDict();   /* borrowed */
	if (!modules) {
		goto error;
	}
	/* A copy: reading files below may not run Python, but a module's
	 * __file__ could be a property; iterate a snapshot. */
	items = PyMapping_Items(modules);
	if (!items) {
		goto error;
	}
	n = PyList_Size(items);
	for (i = 0; i < n; i++) {
		PyObject *it = PyList_GetItem(items, i);   /* borrowed */
		PyObject *key = PyTuple_GetItem(it, 0);   /* borrowed */
		PyObject *mod = PyTuple_GetItem(it, 1);   /* borrowed */
		PyObject *f;   /* owned */
		char *src;
		size_t len;

		if (!PyObject_TypeCheck(mod, &PyModule_Type) ||
		    pyhot_patch_utf8(key, name, sizeof(name)) < 0) {
			PyErr_Clear();
			continue;
		}
		if (pyhot_baseline_find(name)) {
			continue;
		}
		f = pyhot_patch_get_attr(mod, "__file__");
		if (!f || pyhot_patch_utf8(f, file, sizeof(file)) < 0) {
			Py_XDECREF(f);
			PyErr_Clear();
			continue;
		}
		Py_DECREF(f);
		if (!pyhot_patch_is_user_file(file, have_sdir ? sdir : NULL)) {
			continue;
		}
		if (pyhot_patch_read_file(file, &src, &len) < 0) {
			continue;
		}
		if (pyhot_baseline_put(name, file, src, len) < 0) {
			free(src);
			Py_DECREF(items);
			return pyhot_err_set(err, PYHOT_ERR_FAILED, ENOMEM, getpid(),
					     "baseline", "out of memory");
		}
		free(src);
	}
	Py_DECREF(items);
	return 0;
error:
	Py_XDECREF(items);
	PyErr_Clear();
	return pyhot_err_set(err, PYHOT_ERR_FAILED, 0, getpid(), "baseline",
			     "cannot list sys.modules");
}
