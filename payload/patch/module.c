/*
 * module.c: the plan of one module: which top-level statements are kept,
 * which defs and classes are patched in place, which statements re-run
 * into the overlay, and what the module loses.
 */
#include "module.h"

#include "attr.h"
#include "classes.h"
#include "functions.h"
#include "rewrap.h"
#include "importers.h"
#include "livecmp.h"
#include "stmt_table.h"
#include "stmts.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>


/* A changed def whose decorators did not change. 1 done, 0 re-run it. */
static int plan_def(struct engine *e, PyObject *st, PyObject *ost,
		    PyObject *live, PyObject *name, const char *qn)
{
	PyObject *bare = NULL;   /* owned */
	PyObject *code = NULL;   /* owned */
	PyObject *tmp = NULL;   /* owned */
	PyObject *res = NULL;   /* owned */
	PyObject *newf;   /* borrowed */
	PyObject *obare = NULL;   /* owned */
	PyObject *ocode = NULL;   /* owned */
	PyObject *old_code = NULL;   /* owned */
	PyObject *decos = NULL;   /* owned */
	char detail[256];
	int rc = -1, r, undecorated;

	if (ost) {
		r = field_equal(e, st, ost, "decorator_list");
		if (r <= 0) {
			return r;
		}
	}
	decos = pyhot_patch_get_attr(st, "decorator_list");
	if (!decos) {
		return -1;
	}
	undecorated = PyList_Size(decos) == 0;
	Py_DECREF(decos);
	bare = node_stripped(e, st, strip_decorators);
	code = bare ? compile_stmt(e, bare) : NULL;
	tmp = code ? scratch_ns(e) : NULL;
	if (!tmp) {
		goto out;
	}
	e->cur_line = node_line(st);
	res = PyEval_EvalCode(code, e->G, tmp);   /* evaluates defaults only */
	if (!res) {
		goto out;
	}
	newf = PyDict_GetItemWithError(tmp, name);   /* borrowed */
	if (!newf) {
		goto out;
	}
	if (ost) {
		/* the baseline's code tells same-named functions apart */
		obare = node_stripped(e, ost, strip_decorators);
		ocode = obare ? compile_stmt(e, obare) : NULL;
		old_code = ocode ? code_const(e, ocode, name) : NULL;
		PyErr_Clear();
	}
	r = patch_decorated(e, st, live, newf, name, old_code, detail, sizeof(detail));
	if (r <= 0) {
		rc = r;
		goto out;
	}
	/* Later statements of this run see the new behaviour; the live name
	 * keeps the live object. */
	if (PySet_Add(e->inplace, name) < 0 ||
	    (undecorated && PyDict_SetItem(e->L, name, newf) < 0)) {
		goto out;
	}
	rc = change_add(e, "changed", "function", qn, "%s", detail) < 0 ? -1 : 1;
out:
	Py_XDECREF(bare);
	Py_XDECREF(code);
	Py_XDECREF(tmp);
	Py_XDECREF(res);
	Py_XDECREF(obare);
	Py_XDECREF(ocode);
	Py_XDECREF(old_code);
	return rc;
}

static int is_lambda(struct engine *e, PyObject *f)
{
	PyObject *c;   /* owned */
	PyObject *n;   /* owned */
	int r;

	if (!is_a(f, e->t_function)) {
		return 0;
	}
	c = pyhot_patch_get_attr(f, "__code__");
	n = c ? pyhot_patch_get_attr(c, "co_name") : NULL;
	r = n && PyUnicode_CompareWithASCIIString(n, "<lambda>") == 0;
	Py_XDECREF(c);
	Py_XDECREF(n);
	PyErr_Clear();
	return r;
}

/*
 * Comprehensions (before 3.12) run as functions that read module names as
 * globals, so they would miss a name changed earlier in the same refresh.
 * A statement with comprehensions and nothing that keeps its globals (no
 * def, class or lambda) runs with a merged copy of globals and overlay.
 */
static int wants_merged_globals(struct engine *e, PyObject *st)
{
	PyObject *it;   /* owned */
	PyObject *n;   /* owned */
	int comp = 0, keeps = 0;

	it = PyObject_CallFunctionObjArgs(e->walk, st, NULL);
	if (!it) {
		return -1;
	}
	while (!keeps && (n = PyIter_Next(it)) != NULL) {
		if (is_a(n, e->t_ListComp) || is_a(n, e->t_SetComp) ||
		    is_a(n, e->t_DictComp) || is_a(n, e->t_GeneratorExp)) {
			comp = 1;
		}
		if (is_a(n, e->t_Lambda) || is_a(n, e->t_FunctionDef) ||
		    is_a(n, e->t_AsyncFunctionDef) || is_a(n, e->t_ClassDef)) {
			keeps = 1;
		}
		Py_DECREF(n);
	}
	Py_DECREF(it);
	if (PyErr_Occurred()) {
		return -1;
	}
	return comp && !keeps;
}

/* Execute st's code with the live module dict as globals (a merged copy
 * when wants_merged_globals() says so) and the overlay as locals. 0, or
 * -1 error. */
static int exec_in_overlay(struct engine *e, PyObject *st)
{
	PyObject *code = compile_stmt(e, st);   /* owned */
	PyObject *merged = NULL;   /* owned */
	PyObject *globals = e->G;   /* borrowed */
	PyObject *res = NULL;   /* owned */
	int m;

	if (!code) {
		return -1;
	}
	m = PyDict_Size(e->L) > 0 ? wants_merged_globals(e, st) : 0;
	if (m > 0) {
		merged = PyDict_Copy(e->G);
		if (!merged || PyDict_Update(merged, e->L) < 0) {
			m = -1;
		}
		globals = merged;
	}
	if (m >= 0) {
		res = PyEval_EvalCode(code, globals, e->L);
	}
	Py_XDECREF(merged);
	Py_DECREF(code);
	Py_XDECREF(res);
	return res ? 0 : -1;
}

/* The report line of one name a re-run statement bound: v its new value,
 * old the live one (NULL: none). A changed `f = lambda ...` keeps its live
 * lambda, which gets the new code. */
static int report_rebound(struct engine *e, PyObject *x, PyObject *v,
			  PyObject *old, const char *why)
{
	char qn[1024], detail[256];
	int r, inpl;

	qname(e, NULL, x, qn, sizeof(qn));
	if (old && is_lambda(e, v) && is_lambda(e, old)) {
		r = transplant(e, old, v, TP_FULL, detail, sizeof(detail));
		if (r < 0 || (r == 1 && PySet_Add(e->inplace, x) < 0)) {
			return -1;
		}
		return change_add(e, "changed", "function", qn, "%s",
				  r == 1 ? detail : "replaced");
	}
	inpl = replaced_in_place(old, v);
	return change_add(e, old ? "changed" : "added", value_kind(e, v), qn,
			  "%s", why ? why : inpl ? "updated in place" : "");
}

/* Run a statement: live module dict as globals, the overlay as locals;
 * report each name it bound (why, when not NULL, is the detail). */
static int run_stmt(struct engine *e, PyObject *st, PyObject *names,
		    const char *why)
{
	PyObject *it;   /* owned */
	PyObject *x;   /* owned */
	char where[640];
	int rc = 0;

	e->cur_line = node_line(st);
	if (exec_in_overlay(e, st) < 0) {
		return -1;
	}
	if (PySet_Size(names) == 0) {
		snprintf(where, sizeof(where), "%s:%ld", e->mp->module, e->cur_line);
		return change_add(e, "changed", "statement", where, "re-run");
	}
	it = PyObject_GetIter(names);
	if (!it) {
		return -1;
	}
	while (rc == 0 && (x = PyIter_Next(it)) != NULL) {
		PyObject *v = PyDict_GetItemWithError(e->L, x);   /* owned below */
		PyObject *old = v ? PyDict_GetItemWithError(e->G, x) : NULL;   /* owned below */

		/* owned: transplant() and the report may run Python */
		Py_XINCREF(v);
		Py_XINCREF(old);
		if (PySet_Discard(e->inplace, x) < 0 || PyErr_Occurred()) {
			rc = -1;
		} else if (v) {
			rc = report_rebound(e, x, v, old, why);
		}
		Py_XDECREF(v);
		Py_XDECREF(old);
		Py_DECREF(x);
	}
	Py_DECREF(it);
	return rc < 0 || PyErr_Occurred() ? -1 : 0;
}

static int is_dunder(PyObject *name)
{
	char n[256];
	size_t len;

	if (pyhot_patch_utf8(name, n, sizeof(n)) < 0) {
		PyErr_Clear();
		return 0;
	}
	len = strlen(n);
	return len > 4 && n[0] == '_' && n[1] == '_' && n[len - 1] == '_' &&
	       n[len - 2] == '_';
}

static int queue_linecache(struct engine *e)
{
	PyObject *lc = NULL;   /* owned */
	PyObject *cache = NULL;   /* owned */
	PyObject *util = NULL;   /* owned */
	PyObject *text = NULL;   /* owned */
	PyObject *lines = NULL;   /* owned */
	PyObject *src = NULL;   /* owned */
	PyObject *entry = NULL;   /* owned */
	struct stat st;
	double mtime = 0;
	int rc = -1;

	if (stat(e->mp->file, &st) == 0) {
		mtime = (double)st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9;
	}
	lc = pyhot_patch_module("linecache");
	cache = lc ? pyhot_patch_get_attr(lc, "cache") : NULL;
	util = cache ? pyhot_patch_module("importlib.util") : NULL;
	src = util ? PyBytes_FromStringAndSize(e->mp->newsrc, (Py_ssize_t)e->mp->newlen) : NULL;
	text = src ? call_method(util, "decode_source", "O", src) : NULL;
	lines = text ? call_method(text, "splitlines", "i", 1) : NULL;
	entry = lines ? Py_BuildValue("(ndOO)", (Py_ssize_t)e->mp->newlen, mtime,
				      lines, e->fileobj) : NULL;
	if (!entry) {
		goto out;
	}
	rc = pyhot_ops_add(&e->ops, PYHOT_OP_SETITEM, cache, e->fileobj, entry);
out:
	Py_XDECREF(lc);
	Py_XDECREF(cache);
	Py_XDECREF(util);
	Py_XDECREF(text);
	Py_XDECREF(lines);
	Py_XDECREF(src);
	Py_XDECREF(entry);
	return rc;
}

/* Unchanged statements after the region that moved (delta lines): their
 * defs and classes get code with the new line numbers. 1 done, 0 the full
 * parse must decide, -1 error. */
static int relocate_suffix(struct engine *e, const struct pyhot_baseline *b,
			   const struct region *g)
{
	const struct pyhot_stmt_rec *recs = b->recs;
	size_t k;
	int r;

	for (k = g->js; g->delta != 0 && !e->dry_run && k < b->nrecs; k++) {
		PyObject *name;   /* owned */
		PyObject *live;   /* owned */
		PyObject *one;   /* owned */

		if (recs[k].kind == PYHOT_STMT_OTHER) {
			continue;
		}
		name = PyUnicode_FromString(recs[k].name);
		live = name ? PyDict_GetItemWithError(e->G, name) : NULL;
		Py_XINCREF(live);
		Py_XDECREF(name);
		if (!live) {
			if (PyErr_Occurred()) {
				return -1;
			}
			continue;
		}
		one = parse_region(e, e->mp->newsrc, &g->ln, recs[k].start + g->delta,
				   recs[k].end + g->delta);
		r = one && PyList_Size(one) == 1 ?
		    relocate_stmt(e, PyList_GetItem(one, 0), live) : 0;
		Py_DECREF(live);
		if (!one) {
			return 0;
		}
		Py_DECREF(one);
		if (r < 0) {
			return -1;
		}
	}
	return 1;
}

/*
 * Only the lines that differ between the baseline and the new source are
 * parsed: statements wholly in the common prefix or suffix are unchanged
 * (those in the suffix may have moved and get relocated code). Fills
 * nbody and obody with the statements of the changed region, new and old,
 * kept with the names the untouched statements bind, and later with those
 * of the untouched statements after the region. Returns 1 done,
 * 0 when the full parse must decide (the region does not parse alone, or
 * touches __future__ imports), -1 error.
 */
static int plan_chunks(struct engine *e, struct pyhot_baseline *b,
		       PyObject **nbody, PyObject **obody, PyObject *kept,
		       PyObject *later)
{
	struct modplan *mp = e->mp;
	struct region g;
	struct pyhot_stmt_rec *mid = NULL;
	size_t nmid = 0, k;
	int rc = -1, r, fl;

	*nbody = *obody = NULL;
	if (region_find(b, mp->newsrc, mp->newlen, &g) < 0) {
		PyErr_NoMemory();
		goto out;
	}
	*obody = parse_region(e, b->src, &g.lo, g.first, g.olast);
	*nbody = *obody ? parse_region(e, mp->newsrc, &g.ln, g.first, g.nlast) : NULL;
	if (!*nbody) {
		rc = 0;
		goto out;
	}
	if ((r = future_flags_body(e, *nbody, &fl)) != 0 ||
	    (r = future_flags_body(e, *obody, &fl)) != 0) {
		rc = r < 0 ? -1 : 0;
		goto out;
	}
	e->flags = b->flags;
	for (k = 0; k < b->nrecs; k++) {
		if ((k < g.ip || k >= g.js) && add_bound_names(kept, b->recs[k].bound) < 0) {
			goto out;
		}
		if (k >= g.js && add_bound_names(later, b->recs[k].bound) < 0) {
			goto out;
		}
	}
	rc = relocate_suffix(e, b, &g);
	if (rc <= 0) {
		goto out;
	}
	rc = -1;
	/* the new table: prefix, the region's statements, the moved suffix */
	r = build_recs(e, *nbody, &mid, &nmid);
	if (r < 0) {
		goto out;
	}
	if (r == 0) {
		if (recs_splice(b, &g, mid, nmid, &mp->recs, &mp->nrecs) < 0) {
			PyErr_NoMemory();
			goto out;
		}
		mid = NULL;
		nmid = 0;
		mp->has_table = 1;
	}
	mp->chunked = 1;
	rc = 1;
out:
	if (rc == 0) {
		PyErr_Clear();   /* the full parse reports what is wrong */
	}
	if (rc <= 0) {
		Py_CLEAR(*nbody);
		Py_CLEAR(*obody);
	}
	pyhot_stmt_recs_free(mid, nmid);
	region_release(&g);
	return rc;
}

/* What plan_module()'s steps share. */
struct module_plan {
	struct pyhot_baseline *b;   /* the module's baseline, or NULL */
	PyObject *otree;      /* owned: the baseline's ast, when parsed */
	PyObject *nbody;      /* owned: new statements to plan */
	PyObject *obody;      /* owned: the baseline's, or NULL */
	PyObject *newbound;   /* owned: names the new statements bind */
	PyObject *kept;       /* owned: names untouched statements bind */
	PyObject *later;      /* owned: those of them after the changed region */
	struct body_info oi;  /* the baseline statements, to match against */
};

/* ast.parse(src) with the module's file name (new reference). */
static PyObject *parse_source(struct engine *e, const char *src, size_t len)
{
	PyObject *bytes = PyBytes_FromStringAndSize(src, (Py_ssize_t)len);   /* owned */
	PyObject *tree = bytes ? PyObject_CallFunction(e->parse, "OO", bytes, e->fileobj) : NULL;   /* owned */

	Py_XDECREF(bytes);
	return tree;
}

/* First refresh of a module: one full parse of its baseline gives its
 * statement table (kept in p->otree for the full parse below). An
 * unparsable baseline is left for the full parse to judge. */
static int baseline_table(struct engine *e, struct module_plan *p)
{
	struct pyhot_baseline *b = p->b;
	struct pyhot_stmt_rec *recs;
	PyObject *obody;   /* owned */
	size_t nrecs;
	int r, fl = 0;

	p->otree = parse_source(e, b->src, b->len);
	if (!p->otree) {
		PyErr_Clear();
		return 0;
	}
	obody = pyhot_patch_get_attr(p->otree, "body");
	r = obody ? build_recs(e, obody, &recs, &nrecs) : -1;
	if (r == 0 && future_flags_body(e, obody, &fl) < 0) {
		pyhot_stmt_recs_free(recs, nrecs);
		r = -1;
	}
	Py_XDECREF(obody);
	if (r < 0) {
		return -1;
	}
	if (r == 0) {
		pyhot_baseline_set_table(b, recs, nrecs, fl);
	}
	PyErr_Clear();
	return 0;
}

/* The whole file: first sight, or a change the region parse cannot judge
 * (its syntax error is reported from here). Also the new statement table
 * and __future__ flags. 0, or -1 error. */
static int parse_full(struct engine *e, struct module_plan *p)
{
	struct modplan *mp = e->mp;
	PyObject *ntree = parse_source(e, mp->newsrc, mp->newlen);   /* owned */
	int r, fl, rc = -1;

	if (!ntree) {
		return -1;
	}
	if (p->b && !p->otree) {
		p->otree = parse_source(e, p->b->src, p->b->len);
	}
	if (!p->otree) {
		PyErr_Clear();   /* no or an unparsable baseline: none */
		mp->nobaseline = 1;
	}
	p->nbody = pyhot_patch_get_attr(ntree, "body");
	if (!p->nbody) {
		goto out;
	}
	p->obody = p->otree ? pyhot_patch_get_attr(p->otree, "body") : NULL;
	if ((p->otree && !p->obody) || future_flags_body(e, p->nbody, &fl) < 0) {
		goto out;
	}
	e->flags = fl;
	r = build_recs(e, p->nbody, &mp->recs, &mp->nrecs);
	if (r < 0) {
		goto out;
	}
	mp->has_table = r == 0 && chunkable(mp->newsrc, mp->newlen);
	rc = 0;
out:
	Py_DECREF(ntree);
	return rc;
}

/* One top-level statement of the new source being planned. */
struct stmt_plan {
	PyObject *st;      /* borrowed */
	PyObject *names;   /* owned: the names it binds */
	PyObject *name;    /* owned: a def's or class's name, or NULL */
	PyObject *live;    /* owned: what that name is bound to now, or NULL */
	PyObject *ost;     /* borrowed (from the body info): the baseline's
			    * def or class of that name and type, or NULL */
	int earlier;       /* a def or class of a name bound again below */
	char qn[1024];     /* "<module>.<name>" */
};

/* A statement binding no name that an untrusted baseline cannot judge:
 * not re-run, reported by its line. */
static int skipped_stmt(struct engine *e, PyObject *st)
{
	char where[640];

	snprintf(where, sizeof(where), "%s:%ld", e->mp->module, node_line(st));
	return change_add(e, "skipped", "statement", where, "%s", LIVECMP_SKIPPED);
}

/* An unchanged statement is not re-run and its state is kept: a moved def
 * or class gets code with the new lines; the names of other statements
 * (imports aside) are reported kept. same: its baseline twin. */
static int plan_unchanged(struct engine *e, struct stmt_plan *s, PyObject *same)
{
	PyObject *it;   /* owned */
	PyObject *y;   /* owned */
	char qn[1024];

	if (node_line(same) != node_line(s->st) && s->live && !e->dry_run &&
	    relocate_stmt(e, s->st, s->live) < 0) {
		return -1;
	}
	if (s->name || is_a(s->st, e->t_Import) || is_a(s->st, e->t_ImportFrom)) {
		return 0;
	}
	if (PySet_Size(s->names) == 0) {
		return e->mp->untrusted ? skipped_stmt(e, s->st) : 0;
	}
	it = PyObject_GetIter(s->names);
	while (it && (y = PyIter_Next(it)) != NULL) {
		PyObject *v = PyDict_GetItemWithError(e->G, y);   /* owned below */

		Py_XINCREF(v);
		if (v && !PyObject_TypeCheck(v, &PyModule_Type)) {
			qname(e, NULL, y, qn, sizeof(qn));
			change_add(e, e->mp->untrusted ? "skipped" : "kept", value_kind(e, v),
				   qn, "%s", e->mp->untrusted ? LIVECMP_SKIPPED :
				   "statement unchanged, not re-run");
		}
		Py_XDECREF(v);
		Py_DECREF(y);
	}
	Py_XDECREF(it);
	return PyErr_Occurred() ? -1 : 0;
}

/* Without a baseline, a statement is re-run only when it binds names the
 * module lacks: state is never reset. 1 when every name it binds is live
 * (also when it binds nothing: side effects), 0 not, -1 error. */
static int all_names_live(struct engine *e, struct stmt_plan *s)
{
	PyObject *it = PyObject_GetIter(s->names);   /* owned */
	PyObject *y;   /* owned */
	int all_live = 1;

	while (it && (y = PyIter_Next(it)) != NULL) {
		if (!PyDict_GetItemWithError(e->G, y)) {
			all_live = 0;
		}
		Py_DECREF(y);
	}
	Py_XDECREF(it);
	return PyErr_Occurred() ? -1 : all_live;
}

/* A changed class statement whose name is live: patched in place when it
 * fits, else re-run (a new class object). 1 done, -1 error. */
static int plan_class(struct engine *e, struct stmt_plan *s)
{
	enum class_fit fit;
	const char *why = "";
	char why2[256];

	if (class_in_place(e, s->live, s->st, s->ost, &fit, &why) < 0) {
		return -1;
	}
	if (fit != CLASS_NEW) {
		if (patch_class(e, s->live, s->st, s->ost, s->qn,
				fit == CLASS_IN_PLACE_REGEN) < 0 ||
		    PySet_Add(e->inplace, s->name) < 0) {
			return -1;
		}
		return 1;
	}
	snprintf(why2, sizeof(why2),
		 "new class object (%s); existing instances keep the old class", why);
	return run_stmt(e, s->st, s->names, why2) < 0 ? -1 : 1;
}

/* `if __name__ == "__main__":` starts the program: re-running it inside a
 * refresh would run the program again. 1 it is one (reported kept), 0
 * not, -1 error. */
static int plan_main_guard(struct engine *e, struct stmt_plan *s)
{
	char where[640];
	int guard = main_guard(e, s->st);

	if (guard <= 0) {
		return guard;
	}
	snprintf(where, sizeof(where), "%s:%ld", e->mp->module, node_line(s->st));
	return change_add(e, "kept", "statement", where,
			  "the __main__ guard is never re-run") < 0 ? -1 : 1;
}

/* A statement nothing else took: re-run into the overlay. */
static int plan_rerun(struct engine *e, struct stmt_plan *s)
{
	return run_stmt(e, s->st, s->names, NULL);
}

/* A changed (or, without a baseline, any) statement: patched in place,
 * kept, or re-run. */
static int plan_changed(struct engine *e, struct stmt_plan *s)
{
	int done = 0;

	if (e->mp->nobaseline && !s->live) {
		done = all_names_live(e, s);
	}
	if (done == 0 && s->earlier) {
		/* re-running it would bind the name to it: report, no guess */
		done = change_add(e, e->mp->nobaseline ? "kept" : "failed", is_def(e, s->st) ? "function" : "class",
				  s->qn, "line %ld: a later statement binds the name again; "
				  "this definition's object is not the module's and was "
				  "not patched", node_line(s->st)) < 0 ? -1 : 1;
	}
	if (done == 0 && s->live && is_def(e, s->st)) {
		done = plan_def(e, s->st, s->ost, s->live, s->name, s->qn);
	} else if (done == 0 && s->live && is_a(s->st, e->t_ClassDef) &&
		   (s->ost || e->mp->nobaseline)) {
		done = plan_class(e, s);
	}
	if (done == 0) {
		done = plan_main_guard(e, s);
	}
	if (done == 0) {
		done = plan_rerun(e, s) < 0 ? -1 : 1;
	}
	return done < 0 ? -1 : 0;
}

/* Of the defs and classes named name in body, the one at index want
 * (borrowed, or NULL), and where st is among them (*at, -1 when it is
 * not) and how many there are (*count). */
static PyObject *named_nth(struct engine *e, PyObject *body, PyObject *name,
			   PyObject *st, Py_ssize_t want, Py_ssize_t *at,
			   Py_ssize_t *count)
{
	PyObject *found = NULL;   /* borrowed */
	Py_ssize_t i, n = PyList_Size(body);

	*at = -1;
	*count = 0;
	for (i = 0; i < n; i++) {
		PyObject *x = PyList_GetItem(body, i);   /* borrowed */
		PyObject *xn;   /* owned */

		if (!is_def(e, x) && !is_a(x, e->t_ClassDef)) {
			continue;
		}
		xn = getattr_opt(x, "name");
		if (xn && PyObject_RichCompareBool(xn, name, Py_EQ) == 1) {
			*at = x == st ? *count : *at;
			found = *count == want ? x : found;
			++*count;
		}
		Py_XDECREF(xn);
		PyErr_Clear();
	}
	return found;
}

/*
 * The baseline's statement a def or class of the new source is compared
 * with: of several of the same name, the one at the same position among
 * them. 1 when st is not the last of its name (the module binds a later
 * one: st's own object is not s->live), 0 when it is, -1 error.
 */
static int stmt_plan_twin(struct engine *e, struct module_plan *p,
			  struct stmt_plan *s)
{
	Py_ssize_t at, count, oat, ocount;

	s->ost = p->oi.defs ? PyDict_GetItemWithError(p->oi.defs, s->name) : NULL;
	if (PyErr_Occurred()) {
		return -1;
	}
	(void)named_nth(e, p->nbody, s->name, s->st, -1, &at, &count);
	if (count > 1 && p->obody) {
		s->ost = named_nth(e, p->obody, s->name, NULL, at, &oat, &ocount);
	}
	if (s->ost && Py_TYPE(s->ost) != Py_TYPE(s->st)) {
		s->ost = NULL;
	}
	if (at >= 0 && at < count - 1) {
		return 1;
	}
	return PySet_Contains(p->later, s->name);
}

/* The def or class a statement makes: its name, what is live under it,
 * and the baseline's statement of that name and type. */
static int stmt_plan_def(struct engine *e, struct module_plan *p,
			 struct stmt_plan *s)
{
	int earlier;

	s->name = pyhot_patch_get_attr(s->st, "name");
	if (!s->name) {
		return -1;
	}
	earlier = stmt_plan_twin(e, p, s);
	if (earlier < 0) {
		return -1;
	}
	/* owned: Python runs below, and other threads with it, and may
	 * rebind the name. An earlier def of a name bound again below has
	 * no live object the module holds. */
	s->live = earlier ? NULL : PyDict_GetItemWithError(e->G, s->name);
	Py_XINCREF(s->live);
	s->earlier = earlier;
	qname(e, NULL, s->name, s->qn, sizeof(s->qn));
	return PyErr_Occurred() ? -1 : 0;
}

/* Plan one top-level statement of the new source. */
static int plan_stmt(struct engine *e, struct module_plan *p, PyObject *st)
{
	struct stmt_plan s;
	PyObject *same = NULL;   /* owned: its unchanged baseline twin */
	int rc = -1;

	memset(&s, 0, sizeof(s));
	s.st = st;
	s.names = bound_names(e, st);
	if (!s.names || set_update(p->newbound, s.names) < 0) {
		goto out;
	}
	if ((is_def(e, st) || is_a(st, e->t_ClassDef)) && stmt_plan_def(e, p, &s) < 0) {
		goto out;
	}
	if (!e->mp->nobaseline) {
		same = body_take(e, &p->oi, st);
	}
	if (PyErr_Occurred()) {
		goto out;
	}
	rc = same ? plan_unchanged(e, &s, same) : plan_changed(e, &s);
out:
	Py_XDECREF(same);
	Py_XDECREF(s.name);
	Py_XDECREF(s.live);
	Py_XDECREF(s.names);
	return rc;
}

/* Names bound by the baseline and by nothing in the new source go (but
 * dunders, and names untouched statements bind). */
static int plan_removed(struct engine *e, struct module_plan *p)
{
	PyObject *removed = PyNumber_Subtract(p->oi.bound, p->newbound);   /* owned */
	PyObject *gone = removed ? PyNumber_Subtract(removed, p->kept) : NULL;   /* owned */
	PyObject *it = gone ? PyObject_GetIter(gone) : NULL;   /* owned */
	PyObject *x;   /* owned */
	char qn[1024];
	int r = it ? 0 : -1;

	while (r == 0 && (x = PyIter_Next(it)) != NULL) {
		PyObject *v = PyDict_GetItemWithError(e->G, x);   /* owned below */
		/* A re-run statement bound it again (a star import binds names
		 * the source does not show): the overlay sets it, nothing is
		 * removed. */
		int rebound = v ? PyDict_Contains(e->L, x) : 0;

		Py_XINCREF(v);
		if (rebound < 0) {
			r = -1;
		} else if (v && !rebound && !is_dunder(x)) {
			qname(e, NULL, x, qn, sizeof(qn));
			r = pyhot_ops_add(&e->ops, PYHOT_OP_DELITEM, e->G, x, NULL);
			if (r == 0) {
				r = change_add(e, "removed", value_kind(e, v), qn, NULL);
			}
		}
		Py_XDECREF(v);
		Py_DECREF(x);
		if (PyErr_Occurred()) {
			r = -1;
		}
	}
	Py_XDECREF(it);
	Py_XDECREF(gone);
	Py_XDECREF(removed);
	return r;
}

/* The overlay's names go into the module (but those patched in place). */
static int plan_overlay(struct engine *e)
{
	PyObject *k;   /* borrowed */
	PyObject *v;   /* borrowed */
	PyObject *old;   /* borrowed */
	Py_ssize_t pos = 0;
	int skip, inpl;

	while (PyDict_Next(e->L, &pos, &k, &v)) {
		skip = PySet_Contains(e->inplace, k);
		if (skip < 0) {
			return -1;
		}
		if (skip) {
			continue;
		}
		old = PyDict_GetItemWithError(e->G, k);
		if (PyErr_Occurred() || queue_replace(e, e->G, 0, k, old, v, &inpl) < 0) {
			return -1;
		}
	}
	return 0;
}

/* The per-module state of e, made for module and dropped after. */
static int plan_begin(struct engine *e, PyObject *module, struct module_plan *p)
{
	e->G = PyModule_GetDict(module);   /* borrowed; module is held */
	Py_XINCREF(e->G);
	e->L = PyDict_New();
	e->inplace = PySet_New(NULL);
	e->codemap = PyDict_New();
	e->patched = PySet_New(NULL);
	e->cur_line = 0;
	p->newbound = PySet_New(NULL);
	p->kept = PySet_New(NULL);
	p->later = PySet_New(NULL);
	return e->G && e->L && e->inplace && e->codemap && e->patched &&
	       p->newbound && p->kept && p->later ? 0 : -1;
}

static void plan_end(struct engine *e, struct module_plan *p)
{
	body_info_release(&p->oi);
	Py_XDECREF(p->otree);
	Py_XDECREF(p->nbody);
	Py_XDECREF(p->obody);
	Py_XDECREF(p->newbound);
	Py_XDECREF(p->kept);
	Py_XDECREF(p->later);
	Py_CLEAR(e->G);
	Py_CLEAR(e->L);
	Py_CLEAR(e->inplace);
	Py_CLEAR(e->codemap);
	Py_CLEAR(e->patched);
	Py_CLEAR(e->nscls);
}

/* An untrusted baseline: the new statements are planned against a
 * stand-in made from what runs (livecmp.c). 0, or -1 error. */
static int plan_untrusted(struct engine *e, struct module_plan *p)
{
	PyObject *so = livecmp_stand_in(e, p->nbody, p->obody, e->mp->rerun);   /* owned */

	if (!so) {
		return -1;
	}
	Py_XDECREF(p->obody);
	p->obody = so;
	e->mp->nobaseline = 0;
	e->mp->untrusted = 1;
	return 0;
}

/* Parse what is needed: the changed region when the baseline has a table,
 * else the whole file; then match against the baseline's statements. */
static int plan_parse(struct engine *e, struct module_plan *p)
{
	struct pyhot_baseline *b = p->b;
	int r = 0;

	if (b && !b->has_table && chunkable(b->src, b->len) &&
	    baseline_table(e, p) < 0) {
		return -1;
	}
	if (b && b->trusted && b->has_table &&
	    chunkable(e->mp->newsrc, e->mp->newlen)) {
		r = plan_chunks(e, b, &p->nbody, &p->obody, p->kept, p->later);
	}
	if (r < 0 || (r == 0 && parse_full(e, p) < 0)) {
		return -1;
	}
	if (b && !b->trusted && plan_untrusted(e, p) < 0) {
		return -1;
	}
	if (p->obody && body_info_make(e, p->obody, &p->oi) < 0) {
		return -1;
	}
	return 0;
}

int plan_module(struct engine *e, PyObject *module, struct pyhot_baseline *b)
{
	struct module_plan p;
	Py_ssize_t i, n;
	int rc = -1;

	memset(&p, 0, sizeof(p));
	p.b = b;
	if (plan_begin(e, module, &p) < 0 || plan_parse(e, &p) < 0) {
		goto out;
	}
	n = PyList_Size(p.nbody);
	for (i = 0; i < n; i++) {
		if (plan_stmt(e, &p, PyList_GetItem(p.nbody, i)) < 0) {
			goto out;
		}
	}
	e->cur_line = 0;
	if (p.oi.bound && plan_removed(e, &p) < 0) {
		goto out;
	}
	/* The linecache entry is for tracebacks once the code is in: a dry
	 * run, whose ops are dropped, spares decoding the source for it
	 * (importlib's decode_source(), Python code). */
	if (follow_codes(e) < 0 || plan_overlay(e) < 0 || plan_importers(e) < 0 ||
	    (!e->dry_run && queue_linecache(e) < 0)) {
		goto out;
	}
	e->mp->flags = e->flags;
	rc = 0;
out:
	plan_end(e, &p);
	return rc;
}
