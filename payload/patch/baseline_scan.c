/*
 * baseline_scan.c: the baselines taken at attach (every module loaded from
 * a .py file, standard library and site-packages included) and the scan
 * for modules whose file changed since.
 *
 * The attach baseline is taken in four steps so that the target's GIL is
 * held only to list the modules and `pyhot attach` waits only for the
 * user's own files (docs/engine.md, "Baselines"): list (GIL held: the
 * modules and their files; the import watch starts), pin (no GIL: each
 * file's identity), read (no GIL: the text, kept as trusted only when the
 * file still has its pinned identity; the user's files first, then the
 * standard library and site-packages), keep (GIL held: the texts become
 * baselines). The attach returns once the user's files are read: an edit
 * of another file after that changes its identity, so the text read later
 * cannot be taken for the one the module was loaded from.
 */
#include "attr.h"
#include "baseline.h"
#include "import_watch.h"
#include "pyhot_patch.h"

#include <errno.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* What tells one version of a file from another without reading it: a
 * write changes mtime and ctime (ctime cannot be set back by the user), a
 * replacement (an editor's rename) the inode. */
struct file_id {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
};

/* One file to read without the GIL. */
struct scan_item {
	char *module;
	char *file;
	char *src;                 /* what was read, or NULL */
	size_t len;
	size_t blen;               /* the baseline's length (changed scan) */
	unsigned long long hash;   /* the baseline's (changed scan) */
	int trusted;               /* the baseline's (changed scan); the
				    * text's (attach scan) */
	int r;                     /* the read's result */
	int pinned;                /* attach scan: id holds the file's identity */
	int user;                  /* attach scan: outside stdlib and site-packages */
	int done;                  /* attach scan: read */
	struct file_id id;
};

struct scan {
	struct scan_item *v;
	size_t n, cap;
};

static void scan_release(struct scan *s)
{
	size_t i;

	for (i = 0; i < s->n; i++) {
		free(s->v[i].module);
		free(s->v[i].file);
		free(s->v[i].src);
	}
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* Append (module, file); the last item, or NULL out of memory. */
static struct scan_item *scan_add(struct scan *s, const char *module,
				  const char *file)
{
	struct scan_item *it;

	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 64;
		struct scan_item *v = realloc(s->v, cap * sizeof(*v));

		if (!v) {
			return NULL;
		}
		s->v = v;
		s->cap = cap;
	}
	it = &s->v[s->n];
	memset(it, 0, sizeof(*it));
	it->module = strdup(module);
	it->file = strdup(file);
	if (!it->module || !it->file) {
		free(it->module);
		free(it->file);
		return NULL;
	}
	s->n++;
	return it;
}

/* Read every item's file with the GIL released (GIL held on entry). */
static void scan_read(struct scan *s)
{
	size_t i;

	Py_BEGIN_ALLOW_THREADS
	for (i = 0; i < s->n; i++) {
		s->v[i].r = pyhot_patch_read_file(s->v[i].file, &s->v[i].src,
						  &s->v[i].len);
	}
	Py_END_ALLOW_THREADS
}

/*
 * When this process started, in CLOCK_REALTIME: /proc/self/stat's
 * starttime (clock ticks since boot, rounded down) plus the boot time
 * (realtime minus boottime, to the nanosecond). Never later than the true
 * start, so "mtime before it" cannot trust a file written after it. 0, or
 * -1.
 */
static int process_start(struct timespec *out)
{
	struct timespec rt, bt;
	char buf[1024], *p;
	unsigned long long ticks;
	long hz = sysconf(_SC_CLK_TCK);
	double boot, start;
	FILE *f = fopen("/proc/self/stat", "re");
	size_t n;
	int field;

	if (!f) {
		return -1;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');   /* the command name may hold spaces */
	for (field = 2; p && field < 22; field++) {
		p = strchr(p + 1, ' ');
	}
	if (!p || hz <= 0 || sscanf(p + 1, "%llu", &ticks) != 1 ||
	    clock_gettime(CLOCK_REALTIME, &rt) < 0 ||
	    clock_gettime(CLOCK_BOOTTIME, &bt) < 0) {
		return -1;
	}
	boot = (double)(rt.tv_sec - bt.tv_sec) + (rt.tv_nsec - bt.tv_nsec) / 1e9;
	start = boot + (double)ticks / (double)hz;
	out->tv_sec = (time_t)start;
	out->tv_nsec = (long)((start - (double)out->tv_sec) * 1e9);
	return 0;
}

/* The .py file of a module, into file; 0, or -1 when it has none. */
static int module_py_file(PyObject *mod, char *file, size_t size)
{
	PyObject *f = plain_attr(mod, "__file__");   /* owned */
	size_t n;
	int r;

	r = f && f != Py_None && pyhot_patch_utf8(f, file, size) == 0 ? 0 : -1;
	Py_XDECREF(f);
	PyErr_Clear();
	if (r == 0 && ((n = strlen(file)) < 3 || strcmp(file + n - 3, ".py") != 0)) {
		r = -1;
	}
	return r;
}

/* The modules of sys.modules with a .py file and no baseline. 0, or -1
 * (no exception left set). */
static int scan_modules(struct scan *s)
{
	char name[1024], file[4096];
	PyObject *modules = PyImport_GetModuleDict();   /* borrowed */
	PyObject *items;   /* owned: a snapshot, __file__ may run Python */
	Py_ssize_t i, n;

	items = modules ? PyMapping_Items(modules) : NULL;
	if (!items) {
		PyErr_Clear();
		return -1;
	}
	n = PyList_Size(items);
	for (i = 0; i < n; i++) {
		PyObject *it = PyList_GetItem(items, i);   /* borrowed */
		PyObject *key = PyTuple_GetItem(it, 0);   /* borrowed */
		PyObject *mod = PyTuple_GetItem(it, 1);   /* borrowed */

		if (!PyObject_TypeCheck(mod, &PyModule_Type) ||
		    pyhot_patch_utf8(key, name, sizeof(name)) < 0) {
			PyErr_Clear();
			continue;
		}
		if (pyhot_baseline_find(name) ||
		    module_py_file(mod, file, sizeof(file)) < 0) {
			continue;
		}
		if (!scan_add(s, name, file)) {
			Py_DECREF(items);
			return -1;
		}
	}
	Py_DECREF(items);
	return 0;
}

static void file_id_of(const struct stat *st, struct file_id *id)
{
	id->dev = st->st_dev;
	id->ino = st->st_ino;
	id->size = st->st_size;
	id->mtime = st->st_mtim;
	id->ctime = st->st_ctim;
}

static int file_id_same(const struct file_id *a, const struct file_id *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec &&
	       a->mtime.tv_nsec == b->mtime.tv_nsec &&
	       a->ctime.tv_sec == b->ctime.tv_sec &&
	       a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* An attach scan between its steps. */
struct pyhot_baseline_pass {
	struct scan s;
	struct timespec start;   /* the process's */
	int have_start;
};

struct pyhot_baseline_pass *pyhot_patch_baseline_list(struct pyhot_err *err)
{
	struct pyhot_baseline_pass *p = calloc(1, sizeof(*p));

	if (!p) {
		pyhot_err_set(err, PYHOT_ERR_FAILED, ENOMEM, getpid(), "baseline",
			      "out of memory");
		return NULL;
	}
	pyhot_baseline_learn_stdlib();
	pyhot_import_watch_start();
	p->have_start = process_start(&p->start) == 0;
	if (scan_modules(&p->s) < 0) {
		scan_release(&p->s);
		free(p);
		pyhot_err_set(err, PYHOT_ERR_FAILED, 0, getpid(), "baseline",
			      "cannot list sys.modules");
		return NULL;
	}
	return p;
}

void pyhot_patch_baseline_pin(struct pyhot_baseline_pass *p)
{
	struct stat st;
	size_t i;

	for (i = 0; i < p->s.n; i++) {
		struct scan_item *it = &p->s.v[i];

		/* stat(), not open(): a FIFO put in the file's place must not
		 * block; the read checks the type. */
		it->user = pyhot_baseline_file_is_user(it->file);
		it->pinned = stat(it->file, &st) == 0;
		if (it->pinned) {
			file_id_of(&st, &it->id);
		}
	}
}

/* Read one pinned file: trusted when the file still has its pinned
 * identity after the read (any write since the pin changed its ctime, a
 * replacement its inode) and is older than the process (the module was
 * loaded from this text). */
static void read_pinned(struct pyhot_baseline_pass *p, struct scan_item *it)
{
	struct file_id now;
	struct stat st;
	int same = 0;

	free(it->src);   /* read again in a child forked during the read */
	it->src = NULL;
	it->r = pyhot_patch_read_file(it->file, &it->src, &it->len);
	if (it->r < 0) {
		return;
	}
	if (it->pinned && stat(it->file, &st) == 0) {
		file_id_of(&st, &now);
		same = file_id_same(&now, &it->id) && it->len == (size_t)now.size;
	}
	it->trusted = same && p->have_start &&
		      pyhot_patch_ts_before(&it->id.mtime, &p->start);
	it->hash = pyhot_patch_hash(it->src, it->len);
}

void pyhot_patch_baseline_read(struct pyhot_baseline_pass *p, int user_only)
{
	size_t i;

	for (i = 0; i < p->s.n; i++) {
		struct scan_item *it = &p->s.v[i];

		if (!it->done && (it->user || !user_only)) {
			read_pinned(p, it);
			it->done = 1;
		}
	}
}

int pyhot_patch_baseline_keep(struct pyhot_baseline_pass *p, struct pyhot_err *err)
{
	size_t i;
	int r, rc = 0;

	for (i = 0; i < p->s.n && rc == 0; i++) {
		struct scan_item *it = &p->s.v[i];

		/* an import recorded it since the list, from the exact bytes */
		if (it->r < 0 || pyhot_baseline_find(it->module)) {
			continue;
		}
		r = pyhot_baseline_adopt_hashed(it->module, it->file, it->src, it->len,
						it->hash, it->trusted);
		it->src = NULL;   /* the baseline's now, or freed */
		if (r < 0) {
			rc = pyhot_err_set(err, PYHOT_ERR_FAILED, ENOMEM, getpid(),
					   "baseline", "out of memory");
		}
	}
	scan_release(&p->s);
	free(p);
	return rc;
}

int pyhot_patch_baseline_take(struct pyhot_err *err)
{
	struct pyhot_baseline_pass *p = pyhot_patch_baseline_list(err);

	if (!p) {
		return -(int)err->kind;
	}
	Py_BEGIN_ALLOW_THREADS
	pyhot_patch_baseline_pin(p);
	pyhot_patch_baseline_read(p, 0);
	Py_END_ALLOW_THREADS
	return pyhot_patch_baseline_keep(p, err);
}

void pyhot_baseline_names_free(char **names, size_t n)
{
	size_t i;

	for (i = 0; names && i < n; i++) {
		free(names[i]);
	}
	free(names);
}

/* The baselines, as items to compare (no text: the list may change while
 * the GIL is free). 0, or -1 out of memory. */
static int scan_baselines(struct scan *s)
{
	struct pyhot_baseline *b;
	struct scan_item *it;

	for (b = pyhot_baseline_find_first(); b; b = b->next) {
		it = scan_add(s, b->module, b->file);
		if (!it) {
			return -1;
		}
		it->hash = b->hash;
		it->trusted = b->trusted;
		it->blen = b->len;
	}
	return 0;
}

int pyhot_baseline_changed(char ***names, size_t *n)
{
	struct scan s = { NULL, 0, 0 };
	size_t i;

	*names = NULL;
	*n = 0;
	if (scan_baselines(&s) < 0) {
		goto oom;
	}
	scan_read(&s);
	*names = calloc(s.n ? s.n : 1, sizeof(**names));
	if (!*names) {
		goto oom;
	}
	for (i = 0; i < s.n; i++) {
		struct scan_item *it = &s.v[i];
		int differs = it->r == 0 &&
			      (it->len != it->blen ||
			       pyhot_patch_hash(it->src, it->len) != it->hash);

		if (it->r == 0 && (differs || !it->trusted)) {
			(*names)[(*n)++] = it->module;
			it->module = NULL;
		}
	}
	scan_release(&s);
	return 0;
oom:
	scan_release(&s);
	pyhot_baseline_names_free(*names, *n);
	*names = NULL;
	*n = 0;
	return -1;
}

void pyhot_patch_baseline_write(struct jsonw *out)
{
	struct pyhot_baseline *b;
	size_t count, bytes, untrusted = 0;

	pyhot_baseline_stats(&count, &bytes);
	for (b = pyhot_baseline_find_first(); b; b = b->next) {
		untrusted += !b->trusted;
	}
	jsonw_key(out, "baselines");
	jsonw_object_begin(out);
	jsonw_key_int(out, "modules", (long long)count);
	jsonw_key_int(out, "bytes", (long long)bytes);
	jsonw_key_int(out, "untrusted", (long long)untrusted);
	jsonw_object_end(out);
}
