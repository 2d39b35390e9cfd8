/*
 * stmt_table.c: the statement table of a module's source (which lines each
 * top-level statement spans, what it is, what it binds), and the changed
 * region between a baseline and a new source that lets a refresh parse only
 * the lines that differ.
 */
#include "stmt_table.h"

#include "attr.h"
#include "stmts.h"

#include <stdlib.h>
#include <string.h>

static int lines_index(const char *src, size_t len, struct lines *l)
{
	size_t i;
	int n = 0, k = 0;

	for (i = 0; i < len; i++) {
		n += src[i] == '\n';
	}
	if (len > 0 && src[len - 1] != '\n') {
		n++;
	}
	l->off = malloc(((size_t)n + 1) * sizeof(*l->off));
	if (!l->off) {
		return -1;
	}
	l->n = n;
	l->off[k++] = 0;
	for (i = 0; i < len && k <= n; i++) {
		if (src[i] == '\n' && k <= n) {
			l->off[k++] = i + 1;
		}
	}
	l->off[n] = len;
	return 0;
}

static int line_eq(const char *a, const struct lines *la, int ia,
		   const char *b, const struct lines *lb, int ib)
{
	size_t na = la->off[ia] - la->off[ia - 1], nb = lb->off[ib] - lb->off[ib - 1];

	return na == nb && memcmp(a + la->off[ia - 1], b + lb->off[ib - 1], na) == 0;
}

int chunkable(const char *src, size_t len)
{
	size_t i, nl = 0;

	for (i = 0; i < len; i++) {
		if (src[i] == '\r' && (i + 1 >= len || src[i + 1] != '\n')) {
			return 0;
		}
		if (src[i] == '\n' && ++nl == 2) {
			break;
		}
	}
	for (i = 0; i + 6 <= len && nl; i++) {
		if (src[i] == '\n' && --nl == 0) {
			break;
		}
		if (memcmp(src + i, "coding", 6) == 0) {
			return 0;
		}
	}
	return 1;
}

/* A def's or class's record: its first line (decorators included), its
 * kind and its name. 0, or -1 with an exception. */
static int rec_fill_def(struct engine *e, PyObject *st,
			struct pyhot_stmt_rec *r)
{
	PyObject *decos = pyhot_patch_get_attr(st, "decorator_list");   /* owned */
	PyObject *nmo = pyhot_patch_get_attr(st, "name");   /* owned */
	char nm[256];
	Py_ssize_t j;
	int rc = -1;

	if (!decos || !nmo || pyhot_patch_utf8(nmo, nm, sizeof(nm)) < 0) {
		goto out;
	}
	for (j = 0; j < PyList_Size(decos); j++) {
		long dl = node_line(PyList_GetItem(decos, j));

		if (dl > 0 && dl < r->start) {
			r->start = (int)dl;
		}
	}
	r->kind = is_a(st, e->t_ClassDef) ? PYHOT_STMT_CLASS : PYHOT_STMT_DEF;
	r->name = strdup(nm);
	if (!r->name) {
		PyErr_NoMemory();
		goto out;
	}
	rc = 0;
out:
	Py_XDECREF(decos);
	Py_XDECREF(nmo);
	return rc;
}

/* Append "name\n" to a growing string. 0, or -1 out of memory. */
static int bound_append(char **s, size_t *used, size_t *cap, const char *nm)
{
	size_t k = strlen(nm);
	char *nb;

	if (*used + k + 2 > *cap) {
		*cap = (*used + k + 2) * 2;
		nb = realloc(*s, *cap);
		if (!nb) {
			return -1;
		}
		*s = nb;
	}
	memcpy(*s + *used, nm, k);
	*used += k;
	(*s)[(*used)++] = '\n';
	(*s)[*used] = '\0';
	return 0;
}

/* The names st binds, each followed by '\n', into r->bound. 0, or -1 with
 * an exception. */
static int rec_fill_bound(struct engine *e, PyObject *st,
			  struct pyhot_stmt_rec *r)
{
	PyObject *names = bound_names(e, st);   /* owned */
	PyObject *it;   /* owned */
	PyObject *x;   /* owned */
	size_t used = 0, cap = 64;
	char nm[256];

	if (!names) {
		return -1;
	}
	r->bound = malloc(cap);
	if (!r->bound) {
		Py_DECREF(names);
		PyErr_NoMemory();
		return -1;
	}
	r->bound[0] = '\0';
	it = PyObject_GetIter(names);
	Py_DECREF(names);
	while (it && (x = PyIter_Next(it)) != NULL) {
		int r2 = 0;

		if (pyhot_patch_utf8(x, nm, sizeof(nm)) == 0) {
			r2 = bound_append(&r->bound, &used, &cap, nm);
		}
		Py_DECREF(x);
		if (r2 < 0) {
			Py_DECREF(it);
			PyErr_NoMemory();
			return -1;
		}
	}
	Py_XDECREF(it);
	return PyErr_Occurred() ? -1 : 0;
}

int build_recs(struct engine *e, PyObject *stmts, struct pyhot_stmt_rec **out,
	       size_t *nout)
{
	Py_ssize_t i, n = PyList_Size(stmts);
	struct pyhot_stmt_rec *recs = calloc((size_t)n + 1, sizeof(*recs));
	int prev_end = 0, rc = -1;

	*out = NULL;
	*nout = 0;
	if (!recs) {
		PyErr_NoMemory();
		return -1;
	}
	for (i = 0; i < n; i++) {
		PyObject *st = PyList_GetItem(stmts, i);   /* borrowed */
		PyObject *el = getattr_opt(st, "end_lineno");   /* owned */
		struct pyhot_stmt_rec *r = &recs[i];

		r->start = (int)node_line(st);
		r->end = el && el != Py_None ? (int)PyLong_AsLong(el) : -1;
		Py_XDECREF(el);
		PyErr_Clear();
		if ((is_def(e, st) || is_a(st, e->t_ClassDef)) &&
		    rec_fill_def(e, st, r) < 0) {
			goto out;
		}
		if (r->start <= prev_end || r->end < r->start) {
			rc = 1;
			goto out;
		}
		prev_end = r->end;
		if (rec_fill_bound(e, st, r) < 0) {
			goto out;
		}
	}
	*out = recs;
	*nout = (size_t)n;
	recs = NULL;
	rc = 0;
out:
	if (recs) {
		pyhot_stmt_recs_free(recs, (size_t)n);
	}
	return rc;
}

int region_find(const struct pyhot_baseline *b, const char *newsrc,
		size_t newlen, struct region *g)
{
	const struct pyhot_stmt_rec *recs = b->recs;
	size_t nrecs = b->nrecs;
	int P = 0, S = 0;

	memset(g, 0, sizeof(*g));
	if (lines_index(b->src, b->len, &g->lo) < 0 ||
	    lines_index(newsrc, newlen, &g->ln) < 0) {
		return -1;
	}
	while (P < g->lo.n && P < g->ln.n &&
	       line_eq(b->src, &g->lo, P + 1, newsrc, &g->ln, P + 1)) {
		P++;
	}
	while (S < g->lo.n - P && S < g->ln.n - P &&
	       line_eq(b->src, &g->lo, g->lo.n - S, newsrc, &g->ln, g->ln.n - S)) {
		S++;
	}
	g->delta = g->ln.n - g->lo.n;
	for (g->ip = 0; g->ip < nrecs && recs[g->ip].end <= P; g->ip++) {
		;
	}
	for (g->js = nrecs; g->js > g->ip && recs[g->js - 1].start > g->lo.n - S; g->js--) {
		;
	}
	g->first = g->ip > 0 ? recs[g->ip - 1].end + 1 : 1;
	g->olast = g->js < nrecs ? recs[g->js].start - 1 : g->lo.n;
	g->nlast = g->js < nrecs ? recs[g->js].start - 1 + g->delta : g->ln.n;
	return 0;
}

void region_release(struct region *g)
{
	free(g->lo.off);
	free(g->ln.off);
	memset(g, 0, sizeof(*g));
}

/* Move the nmid records of mid to dst[*t...]. */
static void recs_move(struct pyhot_stmt_rec *dst, size_t *t,
		      const struct pyhot_stmt_rec *mid, size_t nmid)
{
	size_t m;

	for (m = 0; m < nmid; m++) {
		dst[(*t)++] = mid[m];
	}
}

int recs_splice(const struct pyhot_baseline *b, const struct region *g,
		struct pyhot_stmt_rec *mid, size_t nmid,
		struct pyhot_stmt_rec **out, size_t *nout)
{
	const struct pyhot_stmt_rec *recs = b->recs;
	size_t nrecs = b->nrecs, k, t = 0;
	struct pyhot_stmt_rec *nr;

	nr = calloc(g->ip + nmid + (nrecs - g->js) + 1, sizeof(*nr));
	if (!nr) {
		return -1;
	}
	for (k = 0; k < nrecs; k++) {
		if (k == g->js) {
			recs_move(nr, &t, mid, nmid);
		}
		if (k >= g->ip && k < g->js) {
			continue;
		}
		nr[t] = recs[k];
		nr[t].name = recs[k].name ? strdup(recs[k].name) : NULL;
		nr[t].bound = strdup(recs[k].bound ? recs[k].bound : "");
		if (k >= g->js) {
			nr[t].start += g->delta;
			nr[t].end += g->delta;
		}
		t++;
	}
	if (g->js == nrecs) {
		recs_move(nr, &t, mid, nmid);
	}
	free(mid);   /* its strings moved into nr */
	*out = nr;
	*nout = t;
	return 0;
}

PyObject *parse_region(struct engine *e, const char *src,
		       const struct lines *l, int first, int last)
{
	PyObject *bytes;   /* owned */
	PyObject *tree;   /* owned */
	PyObject *body;   /* owned */
	size_t pad, len;
	char *p;

	if (first > last) {
		return PyList_New(0);
	}
	pad = (size_t)first - 1;
	len = l->off[last] - l->off[first - 1];
	bytes = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(pad + len));
	if (!bytes) {
		return NULL;
	}
	p = PyBytes_AsString(bytes);
	memset(p, '\n', pad);
	memcpy(p + pad, src + l->off[first - 1], len);
	tree = PyObject_CallFunction(e->parse, "OO", bytes, e->fileobj);
	Py_DECREF(bytes);
	if (!tree) {
		return NULL;
	}
	body = pyhot_patch_get_attr(tree, "body");
	Py_DECREF(tree);
	return body;
}

int add_bound_names(PyObject *set, const char *bound)
{
	const char *p = bound, *nl;

	while (p && (nl = strchr(p, '\n')) != NULL) {
		PyObject *s = PyUnicode_FromStringAndSize(p, nl - p);   /* owned */

		if (!s || PySet_Add(set, s) < 0) {
			Py_XDECREF(s);
			return -1;
		}
		Py_DECREF(s);
		p = nl + 1;
	}
	return 0;
}
