/*
 * refresh.c: the "refresh" verb: the engine's stdlib objects, then each
 * module planned (module.c), all applied in one go (ops.c), recorded
 * (history.c) and reported.
 */
#include "pyhot_patch.h"

#include "attr.h"
#include "history.h"
#include "hooks.h"
#include "module.h"
#include "recompute.h"
#include "plan.h"
#include "verbargs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STEP "refresh"

#define NO_BASELINE_WARNING \
	"no baseline (module imported after attach?): functions and classes " \
	"were patched in place; statements binding existing names were not re-run"

static void modplan_release(struct modplan *mp)
{
	pyhot_changes_free(mp->report.v, mp->report.n);
	free(mp->newsrc);
	pyhot_stmt_recs_free(mp->recs, mp->nrecs);
	memset(mp, 0, sizeof(*mp));
}

static void engine_release(struct engine *e)
{
	PyObject **objs[] = { &e->parse, &e->dump, &e->Module, &e->Pass, &e->compile, &e->get_docstring, &e->copy_location, &e->walk, &e->t_FunctionDef, &e->t_AsyncFunctionDef, &e->t_ClassDef, &e->t_Name, &e->t_Store, &e->t_Import, &e->t_ImportFrom, &e->t_AnnAssign, &e->t_If, &e->t_Expr, &e->t_Assign, &e->t_AugAssign, &e->t_Lambda, &e->t_ListComp, &e->t_SetComp, &e->t_DictComp, &e->t_GeneratorExp, &e->t_function, &e->t_code, &e->t_classmethod, &e->t_staticmethod, &e->t_property, &e->t_cell, &e->t_partial, &e->enummeta, &e->modname, &e->fileobj, &e->built, &e->recompute, };   /* owned */
	size_t i;

	for (i = 0; i < sizeof(objs) / sizeof(objs[0]); i++) {
		Py_CLEAR(*objs[i]);
	}
	pyhot_ops_release(&e->ops);
}

static int engine_init(struct engine *e, int dry_run)
{
	static const struct { size_t off; const char *mod, *name; } want[] = {
#define W(f, m, n) { offsetof(struct engine, f), m, n }
		W(parse, "ast", "parse"), W(dump, "ast", "dump"),
		W(Module, "ast", "Module"), W(Pass, "ast", "Pass"),
		W(get_docstring, "ast", "get_docstring"),
		W(copy_location, "ast", "copy_location"), W(walk, "ast", "walk"),
		W(t_FunctionDef, "ast", "FunctionDef"),
		W(t_AsyncFunctionDef, "ast", "AsyncFunctionDef"),
		W(t_ClassDef, "ast", "ClassDef"), W(t_Name, "ast", "Name"),
		W(t_Store, "ast", "Store"), W(t_Import, "ast", "Import"),
		W(t_ImportFrom, "ast", "ImportFrom"), W(t_AnnAssign, "ast", "AnnAssign"),
		W(t_If, "ast", "If"), W(t_Expr, "ast", "Expr"),
		W(t_Assign, "ast", "Assign"), W(t_AugAssign, "ast", "AugAssign"),
		W(t_Lambda, "ast", "Lambda"), W(t_ListComp, "ast", "ListComp"),
		W(t_SetComp, "ast", "SetComp"), W(t_DictComp, "ast", "DictComp"),
		W(t_GeneratorExp, "ast", "GeneratorExp"),
		W(compile, "builtins", "compile"),
		W(t_function, "types", "FunctionType"), W(t_code, "types", "CodeType"),
		W(t_classmethod, "builtins", "classmethod"),
		W(t_staticmethod, "builtins", "staticmethod"),
		W(t_property, "builtins", "property"),
		W(t_partial, "functools", "partial"),
#undef W
	};
	size_t i;
	PyObject *m;   /* owned */
	PyObject *f;   /* owned */
	PyObject *cell;   /* owned */
	PyObject *mods;   /* borrowed */

	memset(e, 0, sizeof(*e));
	pyhot_ops_init(&e->ops);
	e->dry_run = dry_run;
	e->built = PyList_New(0);
	e->recompute = PyList_New(0);
	if (!e->built || !e->recompute) {
		return -1;
	}
	/* One look-up per run of names of one module in want[], not per name. */
	m = NULL;
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		if (i == 0 || strcmp(want[i].mod, want[i - 1].mod) != 0) {
			Py_XDECREF(m);
			m = pyhot_patch_module(want[i].mod);
			if (!m) {
				return -1;
			}
		}
		f = pyhot_patch_get_attr(m, want[i].name);
		if (!f) {
			Py_DECREF(m);
			return -1;
		}
		*(PyObject **)((char *)e + want[i].off) = f;
	}
	Py_XDECREF(m);
	/* the cell type has no public name before 3.8's types.CellType in
	 * some builds: take it from a cell */
	m = pyhot_patch_module("types");
	cell = m ? getattr_opt(m, "CellType") : NULL;
	Py_XDECREF(m);
	if (!cell) {
		PyErr_Clear();
	}
	e->t_cell = cell;
	/* Enum classes only matter when enum is already imported. */
	mods = PyImport_GetModuleDict();
	m = mods ? PyDict_GetItemString(mods, "enum") : NULL;   /* borrowed */
	if (m) {
		e->enummeta = getattr_opt(m, "EnumMeta");
		PyErr_Clear();
	}
	return 0;
}

/* The modules a request names, or (none named) every module with a
 * baseline whose file changed since or whose baseline is untrusted: a new
 * array of plans, *nmods long. 0, or -1 out of memory. */
static int plans_make(const struct pyhot_req *req, struct modplan **plans,
		      size_t *nmods)
{
	size_t i, n = pyhot_req_count(req, "module"), nchanged = 0;
	const char *rr = pyhot_req_get(req, "rerun");
	int rerun = rr && strcmp(rr, "0") != 0 && strcmp(rr, "false") != 0;
	char **changed = NULL;

	*nmods = 0;
	if (n == 0 && pyhot_baseline_changed(&changed, &nchanged) < 0) {
		return -1;
	}
	*plans = calloc(n ? n : nchanged ? nchanged : 1, sizeof(**plans));
	for (i = 0; *plans && i < n; i++) {
		snprintf((*plans)[i].module, sizeof((*plans)->module), "%s",
			 pyhot_req_nth(req, "module", i));
	}
	for (i = 0; *plans && i < nchanged; i++) {
		snprintf((*plans)[i].module, sizeof((*plans)->module), "%s", changed[i]);
	}
	pyhot_baseline_names_free(changed, nchanged);
	if (!*plans) {
		return -1;
	}
	for (i = 0; i < (n ? n : nchanged); i++) {
		(*plans)[i].rerun = rerun;
	}
	*nmods = n ? n : nchanged;
	return 0;
}

/* The new source of mp's module (mod): its __file__, read whole. 0, or -1
 * with err set. */
static int source_load(struct modplan *mp, PyObject *mod, struct pyhot_err *err)
{
	PyObject *f = plain_attr(mod, "__file__");   /* owned; no module __getattr__ */
	size_t n;
	int r;

	if (!f || f == Py_None || pyhot_patch_utf8(f, mp->file, sizeof(mp->file)) < 0 ||
	    (n = strlen(mp->file)) < 3 || strcmp(mp->file + n - 3, ".py") != 0) {
		Py_XDECREF(f);
		PyErr_Clear();
		pyhot_err_set(err, PYHOT_ERR_FAILED, 0, getpid(), STEP,
			      "module '%s' has no Python source file%s%s%s",
			      mp->module, mp->file[0] ? " (" : "", mp->file,
			      mp->file[0] ? ")" : "");
		return -1;
	}
	Py_DECREF(f);
	r = pyhot_patch_read_file_nogil(mp->file, &mp->newsrc, &mp->newlen, NULL);
	if (r < 0) {
		pyhot_err_set(err, PYHOT_ERR_FAILED, -r, getpid(), STEP,
			      "cannot read '%s': %s", mp->file,
			      r == -EFBIG ? "file too large" :
			      r == -EINVAL ? "not a regular file" : strerror(-r));
		return -1;
	}
	if (memchr(mp->newsrc, '\0', mp->newlen)) {
		pyhot_err_set(err, PYHOT_ERR_FAILED, 0, getpid(), STEP,
			      "'%s' is not Python source (it contains NUL bytes)",
			      mp->file);
		return -1;
	}
	return 0;
}

/* Plan module i of the request. 0, or -1 with err set (and a traceback
 * written when Python raised). */
static int plan_one(struct engine *e, struct modplan *mp, int i,
		    struct jsonw *out, struct pyhot_err *err)
{
	PyObject *mod = pyhot_patch_live_module(mp->module);   /* borrowed, held below */
	int r;

	if (!mod) {
		pyhot_err_set(err, PYHOT_ERR_FAILED, 0, getpid(), STEP,
			      "module '%s' is not imported in pid %d", mp->module,
			      (int)getpid());
		return -1;
	}
	if (source_load(mp, mod, err) < 0) {
		return -1;
	}
	e->mp = mp;
	Py_CLEAR(e->modname);
	Py_CLEAR(e->fileobj);
	e->modname = PyUnicode_FromString(mp->module);
	e->fileobj = PyUnicode_DecodeFSDefault(mp->file);
	if (!e->modname || !e->fileobj) {
		fail_py(e, mp, out, err, "");
		return -1;
	}
	e->ops.tag = i;   /* each module's ops become its generation */
	Py_INCREF(mod);
	r = plan_module(e, mod, pyhot_baseline_find(mp->module));
	Py_DECREF(mod);
	if (r < 0) {
		fail_py(e, mp, out, err, "");
		return -1;
	}
	return 0;
}

/* After apply: each module's undo log moves into its generation (what the
 * plan built for nothing is watched by the first), and its baseline becomes
 * the source installed, with the new statement table. 0, or -1 out of
 * memory. */
static int record_one(struct engine *e, struct modplan *mp, int i)
{
	struct pyhot_baseline *b = pyhot_baseline_find(mp->module);
	long gen;

	gen = pyhot_history_record(mp->module, mp->file, &e->ops, i,
				   b ? b->src : NULL, b ? b->len : 0,
				   mp->newsrc, mp->newlen,
				   mp->report.v, mp->report.n, e->built);
	if (gen < 0) {
		PyErr_Clear();   /* applied; only not undoable */
	}
	mp->generation = gen > 0 ? gen : 0;
	if (gen > 0) {
		Py_CLEAR(e->built);
	}
	if (pyhot_baseline_put(mp->module, mp->file, mp->newsrc, mp->newlen) < 0) {
		return -1;
	}
	b = pyhot_baseline_find(mp->module);
	if (b && mp->has_table) {
		pyhot_baseline_set_table(b, mp->recs, mp->nrecs, mp->flags);
		mp->recs = NULL;
		mp->nrecs = 0;
	}
	return 0;
}

static void write_report(struct jsonw *out, const struct modplan *plans,
			 size_t nmods, int dry_run)
{
	size_t i;

	jsonw_key(out, "modules");
	jsonw_array_begin(out);
	for (i = 0; i < nmods; i++) {
		pyhot_hooks_write_module(out, plans[i].module, plans[i].file,
					 plans[i].nobaseline ? NO_BASELINE_WARNING : NULL,
					 plans[i].report.v, plans[i].report.n,
					 plans[i].generation);
	}
	jsonw_array_end(out);
	jsonw_key_bool(out, "dry_run", dry_run);
}

/* Undo the applied ops of e (the pending exception is kept). */
static void apply_undo(struct engine *e)
{
	struct pyhot_ops inv;
	PyObject *t;   /* owned */
	PyObject *v;   /* owned */
	PyObject *tb;   /* owned */

	PyErr_Fetch(&t, &v, &tb);
	pyhot_ops_init(&inv);
	if (pyhot_ops_invert(&e->ops, &inv) == 0) {
		(void)pyhot_ops_apply(&inv);
	}
	pyhot_ops_release(&inv);
	PyErr_Clear();
	PyErr_Restore(t, v, tb);
}

/* Plan every module, apply, record and report. */
static int refresh_run(struct engine *e, const struct pyhot_req *req,
		       struct modplan **plans, size_t *nmods,
		       struct jsonw *out, struct pyhot_err *err)
{
	size_t i;

	if (plans_make(req, plans, nmods) < 0) {
		goto oom;
	}
	pyhot_hooks_set_refreshing(1);
	for (i = 0; i < *nmods; i++) {
		if (plan_one(e, &(*plans)[i], (int)i, out, err) < 0) {
			return -1;
		}
	}
	pyhot_hooks_set_refreshing(0);
	if (!e->dry_run && pyhot_hooks_before(e, *plans, *nmods, out, err) < 0) {
		return -1;
	}
	if (!e->dry_run && pyhot_ops_apply(&e->ops) < 0) {
		fail_py(e, e->mp, out, err, "apply failed, nothing changed: ");
		return -1;
	}
	if (!e->dry_run && recompute_run(e, *plans, *nmods) < 0) {
		apply_undo(e);
		fail_py(e, e->mp, out, err,
			"re-running a class's hooks failed, the refresh was undone: ");
		return -1;
	}
	for (i = 0; !e->dry_run && i < *nmods; i++) {
		if (record_one(e, &(*plans)[i], (int)i) < 0) {
			goto oom;
		}
	}
	if (!e->dry_run) {
		pyhot_hooks_after(e, *plans, *nmods);
	}
	write_report(out, *plans, *nmods, e->dry_run);
	return 0;
oom:
	pyhot_err_set(err, PYHOT_ERR_FAILED, ENOMEM, getpid(), STEP, "out of memory");
	return -1;
}

int pyhot_patch_refresh(const struct pyhot_req *req, struct jsonw *out,
			struct pyhot_err *err)
{
	struct engine e;
	struct modplan *plans = NULL;
	PyObject *t0;   /* owned: the caller's exception, if any */
	PyObject *v0;   /* owned */
	PyObject *tb0;   /* owned */
	size_t nmods = 0, i;
	int rc = -PYHOT_ERR_FAILED;

	/* the caller's exception, if any, is not ours to lose */
	if (pyhot_hooks_enter(err) < 0) {
		return -PYHOT_ERR_FAILED;
	}
	PyErr_Fetch(&t0, &v0, &tb0);
	if (engine_init(&e, pyhot_patch_dry_run(req)) < 0) {
		fail_py(&e, NULL, out, err, "engine: ");
	} else if (refresh_run(&e, req, &plans, &nmods, out, err) == 0) {
		rc = 0;
	}
	PyErr_Clear();
	engine_release(&e);
	for (i = 0; plans && i < nmods; i++) {
		modplan_release(&plans[i]);
	}
	free(plans);
	pyhot_hooks_leave();
	PyErr_Restore(t0, v0, tb0);
	return rc;
}
