/*
 * hooks.c: the refresh hooks a program may define (see hooks.h and
 * docs/hooks.md): they run around the apply phase of refresh.c, and what
 * they did goes into each module's report.
 */
#include "hooks.h"

#include "attr.h"
#include "jsonw.h"
#include "plan.h"
#include "verbargs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STEP "refresh"
#define NEW_CLASS_DETAIL "new class object"

/* One hook that ran: module NULL means the whole refresh (a process-wide
 * callback), listed in every module's report. error NULL: it returned. */
struct hook_rec {
	char *module;
	char *name;
	char *error;
};

static PyObject *dispatch_fn;   /* owned, or NULL */
static int busy;
static int refreshing;
static struct hook_rec *recs;
static size_t nrecs, caprecs;

void pyhot_hooks_set_dispatch(PyObject *fn)
{
	PyObject *old = dispatch_fn;   /* owned */

	Py_XINCREF(fn);
	dispatch_fn = fn;
	Py_XDECREF(old);
}

int pyhot_hooks_refreshing(void)
{
	return refreshing;
}

void pyhot_hooks_set_refreshing(int on)
{
	refreshing = on;
}

int pyhot_hooks_enter(struct pyhot_err *err)
{
	if (busy) {
		return pyhot_err_set(err, PYHOT_ERR_FAILED, 0, getpid(), STEP,
				     "a refresh is already running in pid %d "
				     "(called from a refresh hook?)", (int)getpid());
	}
	busy = 1;
	return 0;
}

void pyhot_hooks_leave(void)
{
	size_t i;

	for (i = 0; i < nrecs; i++) {
		free(recs[i].module);
		free(recs[i].name);
		free(recs[i].error);
	}
	free(recs);
	recs = NULL;
	nrecs = caprecs = 0;
	refreshing = 0;
	busy = 0;
}

/* Remember that a hook ran (module NULL: the whole refresh). Out of memory
 * loses the line, never the refresh. */
static void rec_add(const char *module, const char *name, const char *error)
{
	struct hook_rec *r;

	if (nrecs == caprecs) {
		size_t cap = caprecs ? caprecs * 2 : 8;
		struct hook_rec *nv = realloc(recs, cap * sizeof(*nv));

		if (!nv) {
			return;
		}
		recs = nv;
		caprecs = cap;
	}
	r = &recs[nrecs];
	r->module = module ? strdup(module) : NULL;
	r->name = strdup(name);
	r->error = error ? strdup(error) : NULL;
	if (!r->name || (module && !r->module) || (error && !r->error)) {
		free(r->module);
		free(r->name);
		free(r->error);
		return;
	}
	nrecs++;
}

/* Whether a report line is a change (not "kept", not "failed"). */
static int is_change(const struct pyhot_change *c)
{
	return strcmp(c->action, "changed") == 0 || strcmp(c->action, "added") == 0 ||
	       strcmp(c->action, "removed") == 0;
}

static int plan_changes(struct modplan *mp)
{
	size_t i;

	for (i = 0; i < mp->report.n; i++) {
		if (is_change(&mp->report.v[i])) {
			return 1;
		}
	}
	return 0;
}

/* The qualified names mp changed, as a new tuple of str, or NULL. */
static PyObject *changes_tuple(struct modplan *mp)
{
	PyObject *t;   /* owned */
	PyObject *s;   /* owned, stolen by the tuple */
	size_t i, k = 0;

	for (i = 0; i < mp->report.n; i++) {
		k += is_change(&mp->report.v[i]);
	}
	t = PyTuple_New((Py_ssize_t)k);
	for (i = 0, k = 0; t && i < mp->report.n; i++) {
		if (!is_change(&mp->report.v[i])) {
			continue;
		}
		s = PyUnicode_FromString(mp->report.v[i].name ? mp->report.v[i].name : "?");
		if (!s) {
			Py_CLEAR(t);
			break;
		}
		PyTuple_SetItem(t, (Py_ssize_t)k++, s);
	}
	return t;
}

/* Turn the pending exception of a hook into the error text of the report
 * (the engine's own wording, file and line included); the traceback is
 * dropped. Clears the exception. */
static void rec_exception(struct engine *e, struct modplan *mp,
			  const char *module, const char *name)
{
	struct pyhot_err err;
	struct jsonw scratch;

	pyhot_err_init(&err);
	jsonw_init(&scratch);
	(void)fail_py(e, mp, &scratch, &err, "");
	jsonw_release(&scratch);
	rec_add(module, name, err.msg);
}

/* A module's own hook, or NULL (no exception left) when it has none. */
static PyObject *module_hook(const char *module, const char *name)
{
	PyObject *mod = pyhot_patch_live_module(module);   /* borrowed */
	PyObject *fn;   /* owned */

	if (!mod) {
		return NULL;
	}
	fn = plain_attr(mod, name);
	if (!fn) {
		PyErr_Clear();
	}
	return fn;
}

int pyhot_hooks_before(struct engine *e, struct modplan *plans, size_t n,
		       struct jsonw *out, struct pyhot_err *err)
{
	PyObject *fn;   /* owned */
	PyObject *res;   /* owned */
	char what[700];
	size_t i;

	for (i = 0; i < n; i++) {
		if (!plan_changes(&plans[i]) ||
		    !(fn = module_hook(plans[i].module, PYHOT_HOOK_BEFORE))) {
			continue;
		}
		res = PyObject_CallObject(fn, NULL);
		Py_DECREF(fn);
		if (!res) {
			snprintf(what, sizeof(what), "module '%.500s' refused it (%s): ",
				 plans[i].module, PYHOT_HOOK_BEFORE);
			return fail_py(e, &plans[i], out, err, what);
		}
		Py_DECREF(res);
		rec_add(plans[i].module, PYHOT_HOOK_BEFORE, NULL);
	}
	return 0;
}

/* The object at "<module>.<a>.<b>" (a report line's name), or NULL with no
 * exception left. */
static PyObject *resolve_qualname(const char *module, const char *qn)
{
	PyObject *o;   /* owned */
	PyObject *next;   /* owned */
	char part[512];
	const char *p, *dot;
	size_t mlen = strlen(module), len;

	o = pyhot_patch_live_module(module);   /* borrowed until the INCREF */
	if (!o || strncmp(qn, module, mlen) != 0 || qn[mlen] != '.') {
		return NULL;
	}
	Py_INCREF(o);
	for (p = qn + mlen + 1; o && *p; p = *dot ? dot + 1 : dot) {
		dot = strchrnul(p, '.');
		len = (size_t)(dot - p);
		if (len >= sizeof(part)) {
			Py_CLEAR(o);
			break;
		}
		memcpy(part, p, len);
		part[len] = '\0';
		next = plain_attr(o, part);
		Py_DECREF(o);
		o = next;
	}
	if (!o) {
		PyErr_Clear();
	}
	return o;
}

/* Call the dispatcher and record what each callback did under module
 * (NULL: the whole refresh). args is borrowed. */
static void dispatch(const char *module, const char *event, PyObject *arg)
{
	PyObject *res;   /* owned */
	PyObject *it;   /* borrowed */
	PyObject *err;   /* borrowed */
	char name[256], text[1024];
	Py_ssize_t i, n;

	if (!dispatch_fn) {
		return;
	}
	res = PyObject_CallFunction(dispatch_fn, "sO", event, arg);
	if (!res) {
		PyErr_Clear();
		rec_add(module, "pyhot dispatcher", "the dispatcher raised");
		return;
	}
	n = PyList_Check(res) ? PyList_Size(res) : 0;
	for (i = 0; i < n; i++) {
		it = PyList_GetItem(res, i);
		if (!PyTuple_Check(it) || PyTuple_Size(it) != 2 ||
		    pyhot_patch_utf8(PyTuple_GetItem(it, 0), name, sizeof(name)) < 0) {
			PyErr_Clear();
			continue;
		}
		err = PyTuple_GetItem(it, 1);
		if (err != Py_None && pyhot_patch_utf8(err, text, sizeof(text)) < 0) {
			PyErr_Clear();
			snprintf(text, sizeof(text), "?");
		}
		rec_add(module, name, err == Py_None ? NULL : text);
	}
	Py_DECREF(res);
}

/* The class callbacks for every class mp patched in place. */
static void after_classes(struct modplan *mp)
{
	const struct pyhot_change *c;
	PyObject *cls;   /* owned */
	size_t i;

	for (i = 0; dispatch_fn && i < mp->report.n; i++) {
		c = &mp->report.v[i];
		if (strcmp(c->action, "changed") != 0 || strcmp(c->kind, "class") != 0 ||
		    !c->name || (c->detail && strncmp(c->detail, NEW_CLASS_DETAIL,
						       strlen(NEW_CLASS_DETAIL)) == 0)) {
			continue;
		}
		cls = resolve_qualname(mp->module, c->name);
		if (cls && PyType_Check(cls)) {
			dispatch(mp->module, "class", cls);
		}
		Py_XDECREF(cls);
	}
}

/* mp's own __pyhot_after_refresh__(changes). */
static void after_module(struct engine *e, struct modplan *mp,
			 PyObject *changes)
{
	PyObject *fn = module_hook(mp->module, PYHOT_HOOK_AFTER);   /* owned */
	PyObject *res;   /* owned */

	if (!fn) {
		return;
	}
	res = PyObject_CallFunctionObjArgs(fn, changes, NULL);
	Py_DECREF(fn);
	if (!res) {
		rec_exception(e, mp, mp->module, PYHOT_HOOK_AFTER);
		return;
	}
	Py_DECREF(res);
	rec_add(mp->module, PYHOT_HOOK_AFTER, NULL);
}

void pyhot_hooks_after(struct engine *e, struct modplan *plans, size_t n)
{
	PyObject *all;   /* owned: module -> changes */
	PyObject *changes;   /* owned */
	size_t i;

	all = PyDict_New();
	for (i = 0; all && i < n; i++) {
		if (!plan_changes(&plans[i])) {
			continue;
		}
		changes = changes_tuple(&plans[i]);
		if (!changes || PyDict_SetItemString(all, plans[i].module, changes) < 0) {
			Py_XDECREF(changes);
			Py_CLEAR(all);
			break;
		}
		after_classes(&plans[i]);
		after_module(e, &plans[i], changes);
		Py_DECREF(changes);
	}
	if (all && PyDict_Size(all) > 0) {
		dispatch(NULL, "refresh", all);
	}
	Py_XDECREF(all);
	PyErr_Clear();
}

/* "hooks": [...] for module into a fresh writer: the text, NULL when no
 * hook ran for it (or out of memory). */
static char *hooks_json(const char *module)
{
	struct jsonw w;
	size_t i, k = 0;

	jsonw_init(&w);
	jsonw_key(&w, "hooks");
	jsonw_array_begin(&w);
	for (i = 0; i < nrecs; i++) {
		if (recs[i].module && strcmp(recs[i].module, module) != 0) {
			continue;
		}
		jsonw_object_begin(&w);
		jsonw_key_str(&w, "name", recs[i].name);
		jsonw_key_bool(&w, "ok", recs[i].error == NULL);
		if (recs[i].error) {
			jsonw_key_str(&w, "error", recs[i].error);
		}
		jsonw_object_end(&w);
		k++;
	}
	jsonw_array_end(&w);
	if (k == 0) {
		jsonw_release(&w);
		return NULL;
	}
	return jsonw_finish(&w);
}

void pyhot_hooks_write_module(struct jsonw *out, const char *module,
			      const char *file, const char *warning,
			      const struct pyhot_change *ch, size_t nch,
			      long generation)
{
	struct jsonw w;
	char *obj, *hooks = hooks_json(module), *both;
	size_t olen;

	if (!hooks) {
		pyhot_patch_write_module(out, module, file, warning, ch, nch, generation);
		return;
	}
	/* The report object, its closing brace replaced by the hooks field. */
	jsonw_init(&w);
	pyhot_patch_write_module(&w, module, file, warning, ch, nch, generation);
	obj = jsonw_finish(&w);
	olen = obj ? strlen(obj) : 0;
	both = olen ? malloc(olen + strlen(hooks) + 2) : NULL;
	if (!both) {
		pyhot_patch_write_module(out, module, file, warning, ch, nch, generation);
	} else {
		memcpy(both, obj, olen - 1);
		sprintf(both + olen - 1, ",%s}", hooks);
		jsonw_raw(out, both);
	}
	free(both);
	free(obj);
	free(hooks);
}
