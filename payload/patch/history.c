/*
 * history.c: the generation tracker (contract in history.h) and its two
 * requests, rollback and the status fields (pyhot_patch.h).
 */
#include "history.h"

#include "attr.h"
#include "baseline.h"
#include "jsonw.h"
#include "pyhot_patch.h"
#include "pyutil.h"
#include "verbargs.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STEP "rollback"

struct gen {
	long number;
	double time;              /* seconds since the epoch */
	int is_rollback;
	long restores;            /* rollback: the state it brought back */
	long rolled_back_by;      /* refresh taken back by that rollback, or 0 */
	int applied;              /* refresh in the module's chain: undoable */
	char hash[65];            /* SHA-256 of the source it installed */
	char before_hash[65];     /* ... and of the one it replaced */
	struct pyhot_change *ch;  /* owned copies (action, kind: static) */
	size_t nch;
	struct pyhot_ops undo;    /* applied: the ops, with what they replaced */
	char *before;             /* applied: the baseline it replaced, or NULL */
	size_t before_len;
	int before_trusted;       /* ... and whether that one was trusted */
	size_t bytes;             /* what this record holds, roughly */
	struct gen *newer;
};

struct modhist {
	char *module;
	char *file;
	struct gen *oldest, *newest;
	size_t n;
	long floor;   /* state no rollback can go past: 0 (as loaded) or the
		       * newest applied refresh that fell out of the list */
	struct modhist *next;
};

static struct modhist *histories;
static long next_number = 1;
static atomic_long limit = PYHOT_HISTORY_DEFAULT;

/* Weak references to what should die, by generation number: {int: set}.
 * A set leaves it as soon as its last object died (watch_gone()). */
static PyObject *watch;

void pyhot_patch_set_history_limit(long n)
{
	if (n >= 1 && n <= PYHOT_HISTORY_MAX) {
		atomic_store(&limit, n);
	}
}

/* ------------------------------------------------------------ the records */

static struct modhist *modhist_find(const char *module, int create)
{
	struct modhist *h;

	for (h = histories; h; h = h->next) {
		if (strcmp(h->module, module) == 0) {
			return h;
		}
	}
	if (!create) {
		return NULL;
	}
	h = calloc(1, sizeof(*h));
	if (!h || !(h->module = strdup(module))) {
		free(h);
		return NULL;
	}
	h->next = histories;
	histories = h;
	return h;
}

static struct gen *gen_find(const struct modhist *h, long number)
{
	struct gen *g;

	for (g = h->oldest; g; g = g->newer) {
		if (g->number == number) {
			return g;
		}
	}
	return NULL;
}

/* The newest refresh of h still applied, or NULL. */
static struct gen *chain_top(const struct modhist *h)
{
	struct gen *g, *top = NULL;

	for (g = h->oldest; g; g = g->newer) {
		if (g->applied) {
			top = g;
		}
	}
	return top;
}

/* The applied refresh just below g in the chain, or NULL (the floor). */
static struct gen *chain_below(const struct modhist *h, const struct gen *g)
{
	struct gen *x, *below = NULL;

	for (x = h->oldest; x && x != g; x = x->newer) {
		if (x->applied) {
			below = x;
		}
	}
	return below;
}

static void gen_free(struct gen *g)
{
	pyhot_changes_free(g->ch, g->nch);
	pyhot_ops_release(&g->undo);
	free(g->before);
	free(g);
}

/* ------------------------------------------------------------ leak watch */

/* Functions, code objects and classes: what a refresh builds and replaces,
 * and what should die with it. */
static int watchable(PyObject *o)
{
	static PyObject *t_function, *t_code;

	if (!t_function) {
		PyObject *types = pyhot_patch_module("types");   /* owned */

		t_function = types ? pyhot_patch_get_attr(types, "FunctionType") : NULL;
		t_code = types ? pyhot_patch_get_attr(types, "CodeType") : NULL;
		Py_XDECREF(types);
		if (!t_function || !t_code) {
			Py_CLEAR(t_function);
			Py_CLEAR(t_code);
			PyErr_Clear();
			return 0;
		}
	}
	return PyType_Check(o) || (PyObject *)Py_TYPE(o) == t_function ||
	       (PyObject *)Py_TYPE(o) == t_code;
}

/*
 * The weak references' callback, self the generation number: takes the
 * reference of an object that died out of its set, and the set out of the
 * watch once empty. So what the watch holds after a gc.collect() is what is
 * alive, nothing more: a set left empty until the next refresh would make
 * the count of objects depend on when the collector ran.
 */
static PyObject *watch_gone(PyObject *self, PyObject *ref)
{
	PyObject *set = watch ? PyDict_GetItemWithError(watch, self) : NULL;   /* borrowed */

	if (set) {
		Py_INCREF(set);   /* borrowed from watch, which we change */
		if (PySet_Discard(set, ref) >= 0 && PySet_Size(set) == 0) {
			(void)PyDict_DelItem(watch, self);
		}
		Py_DECREF(set);
	}
	PyErr_Clear();
	Py_INCREF(Py_None);
	return Py_None;
}

static PyMethodDef watch_gone_def = {
	"pyhot_watch_gone", watch_gone, METH_O, NULL
};

/* Watch o under generation number: a weak reference whose callback takes
 * it out of the set again when o dies. Failures are ignored (an unhashable
 * class, out of memory): the watch is a diagnostic. */
static void watch_add(PyObject *o, long number)
{
	PyObject *key = NULL;   /* owned */
	PyObject *set = NULL;   /* borrowed */
	PyObject *gone = NULL;   /* owned */
	PyObject *ref = NULL;   /* owned */

	if (!watchable(o)) {
		return;
	}
	if (!watch && !(watch = PyDict_New())) {
		goto out;
	}
	key = PyLong_FromLong(number);
	if (!key) {
		goto out;
	}
	set = PyDict_GetItem(watch, key);   /* borrowed */
	if (set) {
		Py_INCREF(set);
	} else if (!(set = PySet_New(NULL)) || PyDict_SetItem(watch, key, set) < 0) {
		goto out;
	}
	gone = PyCFunction_NewEx(&watch_gone_def, key, NULL);
	ref = gone ? PyWeakref_NewRef(o, gone) : NULL;
	/* adding computes the hash while o lives; the callback needs it */
	if (ref) {
		(void)PySet_Add(set, ref);
	}
out:
	PyErr_Clear();
	Py_XDECREF(key);
	Py_XDECREF(set);
	Py_XDECREF(gone);
	Py_XDECREF(ref);
}

struct watch_arg {
	long number;
};

static void watch_cb(PyObject *o, void *arg)
{
	watch_add(o, ((struct watch_arg *)arg)->number);
}

/* Drop the sets that emptied. */
static void watch_prune(void)
{
	PyObject *keys;   /* owned */
	PyObject *k;   /* borrowed */
	PyObject *v;   /* borrowed */
	Py_ssize_t i;

	if (!watch) {
		return;
	}
	keys = PyDict_Keys(watch);
	for (i = 0; keys && i < PyList_Size(keys); i++) {
		k = PyList_GetItem(keys, i);
		v = PyDict_GetItem(watch, k);
		if (v && PySet_Size(v) == 0) {
			(void)PyDict_DelItem(watch, k);
		}
	}
	Py_XDECREF(keys);
	PyErr_Clear();
}

/* ------------------------------------------------------------- recording */

static void sha256_hex(const char *src, size_t len, char out[65])
{
	PyObject *m;   /* owned */
	PyObject *b;   /* owned */
	PyObject *h = NULL;   /* owned */
	PyObject *d;   /* owned */

	out[0] = '\0';
	m = pyhot_patch_module("hashlib");
	b = m ? PyBytes_FromStringAndSize(src, (Py_ssize_t)len) : NULL;
	h = b ? call_method(m, "sha256", "(O)", b) : NULL;
	Py_XDECREF(b);
	d = h ? call_method(h, "hexdigest", NULL) : NULL;
	if (d) {
		(void)pyhot_patch_utf8(d, out, 65);
	}
	Py_XDECREF(m);
	Py_XDECREF(h);
	Py_XDECREF(d);
	PyErr_Clear();
}

/* sys.getsizeof of every distinct object the undo log replaced. */
struct size_arg {
	PyObject *seen;   /* set of ids */
	PyObject *getsizeof;
	size_t bytes;
};

static void size_cb(PyObject *o, void *arg)
{
	struct size_arg *a = arg;
	PyObject *id = PyLong_FromVoidPtr(o);   /* owned */
	PyObject *n;   /* owned */

	if (id && PySet_Contains(a->seen, id) == 0 && PySet_Add(a->seen, id) == 0) {
		n = PyObject_CallFunctionObjArgs(a->getsizeof, o, NULL);
		if (n) {
			a->bytes += PyLong_AsSize_t(n);
		}
		Py_XDECREF(n);
	}
	Py_XDECREF(id);
	PyErr_Clear();
}

static size_t gen_bytes(const struct gen *g)
{
	struct size_arg a = { NULL, NULL, 0 };
	PyObject *sys = pyhot_patch_module("sys");   /* owned */
	size_t bytes = sizeof(*g) + g->before_len + g->undo.n * sizeof(struct pyhot_op);
	size_t i;

	for (i = 0; i < g->nch; i++) {
		bytes += sizeof(g->ch[i]) + strlen(g->ch[i].name) + strlen(g->ch[i].detail) + 2;
	}
	a.seen = PySet_New(NULL);
	a.getsizeof = sys ? pyhot_patch_get_attr(sys, "getsizeof") : NULL;
	if (a.seen && a.getsizeof) {
		pyhot_ops_each(&g->undo, 1, size_cb, &a);
	}
	Py_XDECREF(sys);
	Py_XDECREF(a.seen);
	Py_XDECREF(a.getsizeof);
	PyErr_Clear();
	return bytes + a.bytes;
}

/* Free g's undo log, watching what it held: it should die with it. */
static void gen_drop_undo(struct gen *g, int what, long watch_number)
{
	struct watch_arg wa = { watch_number };

	pyhot_ops_each(&g->undo, what, watch_cb, &wa);
	pyhot_ops_release(&g->undo);
	free(g->before);
	g->before = NULL;
	g->before_len = 0;
	g->applied = 0;
	g->bytes = gen_bytes(g);
}

/* Keep at most `limit` generations of h. */
/* Keep at most `limit` generations of h. Records that hold no undo log
 * (rollbacks, refreshes rolled back) go first, oldest first, so that the
 * refreshes still applied can all be stepped back through; only then does
 * the oldest applied refresh fall out, and its undo log with it. */
static void history_trim(struct modhist *h)
{
	long max = atomic_load(&limit);
	struct gen **pp, **victim, *g;

	while ((long)h->n > max && h->oldest) {
		victim = NULL;
		for (pp = &h->oldest; *pp; pp = &(*pp)->newer) {
			if (!(*pp)->applied) {
				victim = pp;
				break;
			}
		}
		if (!victim) {
			victim = &h->oldest;
		}
		g = *victim;
		if (g->applied) {
			h->floor = g->number;
			gen_drop_undo(g, 1, g->number);
		}
		*victim = g->newer;
		if (h->newest == g) {
			/* the newest record left: find the one before it */
			struct gen *x = h->oldest;

			while (x && x->newer) {
				x = x->newer;
			}
			h->newest = x;
		}
		h->n--;
		gen_free(g);
	}
}

static struct gen *gen_new(struct modhist *h, const char *after, size_t after_len)
{
	struct gen *g = calloc(1, sizeof(*g));
	struct timespec ts;

	if (!g) {
		PyErr_NoMemory();
		return NULL;
	}
	g->number = next_number++;
	clock_gettime(CLOCK_REALTIME, &ts);
	g->time = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	pyhot_ops_init(&g->undo);
	if (after) {
		sha256_hex(after, after_len, g->hash);
	}
	if (h->newest) {
		h->newest->newer = g;
	} else {
		h->oldest = g;
	}
	h->newest = g;
	h->n++;
	return g;
}

static int changes_copy(struct gen *g, const struct pyhot_change *ch, size_t nch)
{
	size_t i;

	g->ch = calloc(nch ? nch : 1, sizeof(*g->ch));
	if (!g->ch) {
		return -1;
	}
	for (i = 0; i < nch; i++) {
		g->ch[i].action = ch[i].action;
		g->ch[i].kind = ch[i].kind;
		g->ch[i].name = strdup(ch[i].name);
		g->ch[i].detail = strdup(ch[i].detail);
		g->nch = i + 1;
		if (!g->ch[i].name || !g->ch[i].detail) {
			return -1;
		}
	}
	return 0;
}

long pyhot_history_record(const char *module, const char *file,
			  struct pyhot_ops *ops, int tag,
			  const char *before, size_t before_len,
			  const char *after, size_t after_len,
			  const struct pyhot_change *ch, size_t nch,
			  PyObject *built)
{
	struct modhist *h;
	struct gen *g;
	size_t i, n = 0;

	/* A refresh whose report changed nothing (a comment edited: only
	 * linecache moved) is no generation. */
	for (i = 0; i < nch; i++) {
		n += strcmp(ch[i].action, "kept") != 0 && strcmp(ch[i].action, "failed") != 0;
	}
	if (n == 0) {
		return 0;
	}
	watch_prune();
	h = modhist_find(module, 1);
	if (!h || (!h->file && !(h->file = strdup(file)))) {
		PyErr_NoMemory();
		return -1;
	}
	g = gen_new(h, after, after_len);
	if (!g) {
		return -1;
	}
	g->applied = 1;
	if (before) {
		g->before = malloc(before_len + 1);
		if (!g->before) {
			goto oom;
		}
		memcpy(g->before, before, before_len);
		g->before[before_len] = '\0';
		g->before_len = before_len;
		/* An untrusted baseline (read after an edit) must come back
		 * untrusted, or the next refresh would take the file for what
		 * runs and find nothing to do. */
		g->before_trusted = !pyhot_baseline_find(module) ||
				    pyhot_baseline_find(module)->trusted;
		sha256_hex(before, before_len, g->before_hash);
	}
	if (changes_copy(g, ch, nch) < 0 || pyhot_ops_take(ops, tag, &g->undo) < 0) {
		goto oom;
	}
	for (i = 0; built && i < (size_t)PyList_Size(built); i++) {
		watch_add(PyList_GetItem(built, (Py_ssize_t)i), g->number);
	}
	g->bytes = gen_bytes(g);
	history_trim(h);
	return g->number;
oom:
	/* the refresh stays applied; this generation cannot be undone */
	gen_drop_undo(g, 1, g->number);
	PyErr_NoMemory();
	return -1;
}

/* -------------------------------------------------------------- rollback */

/* Report lines of a rollback: each undone change, the other way round.
 * 0, or -1 out of memory. */
static int rollback_changes(const struct gen *g, struct pyhot_changes *out)
{
	size_t i;

	for (i = 0; i < g->nch; i++) {
		const struct pyhot_change *c = &g->ch[i];
		const char *action;
		char detail[512];

		if (strcmp(c->action, "changed") == 0) {
			action = "changed";
		} else if (strcmp(c->action, "added") == 0) {
			action = "removed";
		} else if (strcmp(c->action, "removed") == 0) {
			action = "added";
		} else {
			continue;   /* kept, failed: nothing to take back */
		}
		snprintf(detail, sizeof(detail), "back from generation %ld%s%s",
			 g->number, c->detail[0] ? ": " : "", c->detail);
		if (pyhot_changes_add(out, action, c->kind, c->name, detail) < 0) {
			return -1;
		}
	}
	return 0;
}

/* Where "--to N" leads: the applied refresh whose state is wanted, NULL
 * for the floor. 0, or -1 with err set. */
static int resolve_target(struct modhist *h, long to, struct gen **target,
			  struct pyhot_err *err)
{
	pid_t pid = getpid();
	struct gen *g;
	struct modhist *o;
	int hops;

	*target = NULL;
	for (hops = 0; hops < 2; hops++) {
		if (to == h->floor) {
			return 0;
		}
		g = gen_find(h, to);
		if (g && g->is_rollback) {
			to = g->restores;   /* the state it brought back */
			continue;
		}
		if (g && g->applied) {
			*target = g;
			return 0;
		}
		if (g) {
			return pyhot_err_set(err, PYHOT_ERR_FAILED, 0, pid, STEP,
					     "generation %ld of %s was rolled back by "
					     "generation %ld in pid %d: it is not behind the "
					     "running code; refresh to apply that source again",
					     to, h->module, g->rolled_back_by, (int)pid);
		}
		break;
	}
	for (o = histories; o; o = o->next) {
		if (o != h && gen_find(o, to)) {
			return pyhot_err_set(err, PYHOT_ERR_FAILED, 0, pid, STEP,
					     "generation %ld is of module %s, not %s (pid %d)",
					     to, o->module, h->module, (int)pid);
		}
	}
	if (to < h->floor) {
		return pyhot_err_set(err, PYHOT_ERR_FAILED, 0, pid, STEP,
				     "generation %ld of %s fell out of the history in "
				     "pid %d (it keeps the last %ld per module; "
				     "`pyhot attach --history N` sets that); the oldest "
				     "state it can go back to is %ld",
				     to, h->module, (int)pid, (long)atomic_load(&limit),
				     h->floor);
	}
	return pyhot_err_set(err, PYHOT_ERR_FAILED, 0, pid, STEP,
			     "no generation %ld of %s in pid %d%s (`pyhot status %d` "
			     "lists them)", to, h->module, (int)pid,
			     to < next_number ? " any more: the history keeps the "
			     "refreshes still applied and drops other records first" : "",
			     (int)pid);
}

/* One rollback request, from parse to report. */
struct rollback {
	const char *module;
	int dry_run;
	struct modhist *h;
	struct gen *top;            /* the newest applied refresh, or NULL */
	struct gen *target;         /* the refresh whose state comes back, or
				     * NULL: the module's floor */
	long restored;              /* target's number, or the floor */
	struct pyhot_ops inv;       /* the inverse ops, newest refresh first */
	struct pyhot_changes ch;    /* report lines */
	struct gen *oldest_undone;
	long number;                /* the rollback's own generation, or 0 */
};

/* The "to" argument: -1 when absent. 0, or -1 with err set. */
static int rollback_to(const struct pyhot_req *req, long *to,
		       struct pyhot_err *err)
{
	const char *to_s = pyhot_req_get(req, "to");
	char *end;

	*to = -1;
	if (!to_s) {
		return 0;
	}
	errno = 0;
	*to = strtol(to_s, &end, 10);
	if (errno || end == to_s || *end || *to < 0) {
		pyhot_err_set(err, PYHOT_ERR_FAILED, 0, getpid(), STEP,
			      "to must be a generation number, not '%s'", to_s);
		return -1;
	}
	return 0;
}

/* Which module, and back to which generation. 0, or -1 with err set. */
static int rollback_resolve(const struct pyhot_req *req, struct rollback *rb,
			    struct pyhot_err *err)
{
	pid_t pid = getpid();
	long to;

	rb->module = pyhot_req_get(req, "module");
	if (!rb->module || pyhot_req_count(req, "module") != 1) {
		return pyhot_err_set(err, PYHOT_ERR_FAILED, 0, pid, STEP,
				     "rollback takes exactly one module");
	}
	if (rollback_to(req, &to, err) < 0) {
		return -1;
	}
	if (!pyhot_patch_live_module(rb->module)) {
		return pyhot_err_set(err, PYHOT_ERR_FAILED, 0, pid, STEP,
				     "module '%s' is not imported in pid %d",
				     rb->module, (int)pid);
	}
	rb->h = modhist_find(rb->module, 0);
	if (!rb->h) {
		return pyhot_err_set(err, PYHOT_ERR_FAILED, 0, pid, STEP,
				     "%s has no refresh to roll back in pid %d (it was "
				     "not refreshed since the attach)", rb->module, (int)pid);
	}
	rb->top = chain_top(rb->h);
	if (to >= 0) {
		if (resolve_target(rb->h, to, &rb->target, err) < 0) {
			return -1;
		}
	} else if (rb->top) {
		rb->target = chain_below(rb->h, rb->top);
	}
	if (rb->target == rb->top) {
		return pyhot_err_set(err, PYHOT_ERR_FAILED, 0, pid, STEP,
				     "%s is at generation %ld already in pid %d: nothing to "
				     "roll back%s", rb->module,
				     rb->top ? rb->top->number : rb->h->floor, (int)pid,
				     rb->top ? "" : " (every refresh in its history is "
				     "rolled back)");
	}
	rb->restored = rb->target ? rb->target->number : rb->h->floor;
	return 0;
}

/* Plan: the inverse of each refresh above the target, newest first. 0, or
 * -1 out of memory. */
static int rollback_plan(struct rollback *rb)
{
	struct gen *g;

	for (g = rb->top; g && g != rb->target; g = chain_below(rb->h, g)) {
		if (pyhot_ops_invert(&g->undo, &rb->inv) < 0 ||
		    rollback_changes(g, &rb->ch) < 0) {
			return -1;
		}
		rb->oldest_undone = g;
	}
	return 0;
}

/* After apply: the baseline goes back with the code (so that the next
 * refresh compares the file with what runs), the rollback becomes a
 * generation, and what the undone refreshes installed is watched die.
 * 0, or -1 out of memory. */
static int rollback_record(struct rollback *rb)
{
	struct modhist *h = rb->h;
	struct gen *undone = rb->oldest_undone, *g, *top;

	if (undone->before) {
		if (pyhot_baseline_put_ex(rb->module, h->file, undone->before,
					  undone->before_len, undone->before_trusted) < 0) {
			return -1;
		}
	} else {
		pyhot_baseline_drop(rb->module);
	}
	watch_prune();
	g = gen_new(h, NULL, 0);
	if (!g) {
		return -1;
	}
	rb->number = g->number;
	g->is_rollback = 1;
	g->restores = rb->restored;
	memcpy(g->hash, undone->before_hash, sizeof(g->hash));
	g->ch = rb->ch.v;
	g->nch = rb->ch.n;
	memset(&rb->ch, 0, sizeof(rb->ch));
	for (top = chain_top(h); top && top != rb->target; top = chain_top(h)) {
		top->rolled_back_by = rb->number;
		gen_drop_undo(top, 0, rb->number);
	}
	g->bytes = gen_bytes(g);
	return 0;
}

static void rollback_write(struct jsonw *out, const struct rollback *rb)
{
	const struct modhist *h = rb->h;
	const struct gen *g;

	jsonw_key(out, "modules");
	jsonw_array_begin(out);
	if (rb->number) {
		g = h->newest;
		pyhot_patch_write_module(out, rb->module, h->file, NULL, g->ch, g->nch,
					 rb->number);
	} else {
		pyhot_patch_write_module(out, rb->module, h->file, NULL, rb->ch.v,
					 rb->ch.n, 0);
	}
	jsonw_array_end(out);
	jsonw_key_int(out, "restored", rb->restored);
	jsonw_key(out, "undone");
	jsonw_array_begin(out);
	for (g = h->oldest; g; g = g->newer) {
		if (rb->number ? g->rolled_back_by == rb->number :
		    (g->applied && (!rb->target || g->number > rb->target->number))) {
			jsonw_int(out, g->number);
		}
	}
	jsonw_array_end(out);
	jsonw_key_bool(out, "dry_run", rb->dry_run);
}

/* Resolve, plan, apply, record and report. 0, or -1 with err set. */
static int rollback_run(const struct pyhot_req *req, struct rollback *rb,
			struct jsonw *out, struct pyhot_err *err)
{
	pid_t pid = getpid();
	char msg[512];

	if (rollback_resolve(req, rb, err) < 0) {
		return -1;
	}
	if (rollback_plan(rb) < 0) {
		goto oom;
	}
	if (!rb->dry_run && pyhot_ops_apply(&rb->inv) < 0) {
		pyhot_py_exc_take(msg, sizeof(msg));
		return pyhot_err_set(err, PYHOT_ERR_FAILED, 0, pid, STEP,
				     "rollback of %s failed, nothing changed in pid %d: %s",
				     rb->module, (int)pid, msg);
	}
	if (!rb->dry_run && rollback_record(rb) < 0) {
		goto oom;
	}
	rollback_write(out, rb);
	if (!rb->dry_run) {
		history_trim(rb->h);
	}
	return 0;
oom:
	PyErr_Clear();
	return pyhot_err_set(err, PYHOT_ERR_FAILED, ENOMEM, pid, STEP, "out of memory");
}

int pyhot_patch_rollback(const struct pyhot_req *req, struct jsonw *out,
			 struct pyhot_err *err)
{
	struct rollback rb;
	PyObject *t0;   /* owned: the caller's exception, if any */
	PyObject *v0;   /* owned */
	PyObject *tb0;   /* owned */
	int rc;

	memset(&rb, 0, sizeof(rb));
	rb.dry_run = pyhot_patch_dry_run(req);
	pyhot_ops_init(&rb.inv);
	PyErr_Fetch(&t0, &v0, &tb0);
	rc = rollback_run(req, &rb, out, err) < 0 ? -PYHOT_ERR_FAILED : 0;
	PyErr_Clear();
	pyhot_ops_release(&rb.inv);
	pyhot_changes_free(rb.ch.v, rb.ch.n);
	PyErr_Restore(t0, v0, tb0);
	return rc;
}

/* ---------------------------------------------------------------- status */

/* The name of o's type. */
static void type_name(PyObject *o, char *buf, size_t size)
{
	PyObject *n = pyhot_patch_get_attr((PyObject *)Py_TYPE(o), "__name__");   /* owned */

	snprintf(buf, size, "?");
	if (n) {
		(void)pyhot_patch_utf8(n, buf, size);
	}
	Py_XDECREF(n);
	PyErr_Clear();
}

/* A short, safe name for o: no user code runs (no repr()). */
static void describe(PyObject *o, char *buf, size_t size)
{
	PyObject *n = NULL;   /* owned */
	PyObject *f = NULL;   /* owned */
	PyObject *l = NULL;   /* owned */
	char a[256] = "", b[512] = "";

	if (PyType_Check(o) || PyCallable_Check(o)) {
		n = pyhot_patch_get_attr(o, "__qualname__");
	}
	if (!n) {
		PyErr_Clear();
		n = pyhot_patch_get_attr(o, "co_name");   /* code */
		f = n ? pyhot_patch_get_attr(o, "co_filename") : NULL;
		l = f ? pyhot_patch_get_attr(o, "co_firstlineno") : NULL;
	}
	if (n) {
		(void)pyhot_patch_utf8(n, a, sizeof(a));
	}
	if (f) {
		(void)pyhot_patch_utf8(f, b, sizeof(b));
	}
	PyErr_Clear();
	if (l) {
		snprintf(buf, size, "%s (%s:%ld)", a, b, PyLong_AsLong(l));
	} else {
		snprintf(buf, size, "%s", a);
	}
	PyErr_Clear();
	Py_XDECREF(n);
	Py_XDECREF(f);
	Py_XDECREF(l);
}

/* Who holds o, in words, for the leak list: up to 3 referrers. */
static void write_holders(struct jsonw *out, PyObject *o, PyObject *referrers,
			  PyObject *skip, PyObject *alive_list)
{
	PyObject *gc = pyhot_patch_module("gc");   /* owned */
	PyObject *mods = PyImport_GetModuleDict();   /* borrowed */
	Py_ssize_t i, shown = 0;

	jsonw_key(out, "held_by");
	jsonw_array_begin(out);
	for (i = 0; gc && referrers && i < PyList_Size(referrers) && shown < 3; i++) {
		PyObject *r = PyList_GetItem(referrers, i);   /* borrowed */
		PyObject *refs = call_method(gc, "get_referents", "(O)", r);   /* owned */
		char what[700], name[300];
		int found = 0;

		if (r == skip || r == alive_list || !refs) {
			Py_XDECREF(refs);
			PyErr_Clear();
			continue;
		}
		found = PySequence_Contains(refs, o) == 1;
		Py_DECREF(refs);
		PyErr_Clear();
		if (!found) {
			continue;
		}
		type_name(r, name, sizeof(name));
		snprintf(what, sizeof(what), "%s", name);
		if (PyDict_Check(r)) {
			PyObject *k;   /* borrowed */
			PyObject *v;   /* borrowed */
			PyObject *key = NULL;   /* owned */
			PyObject *mk;   /* borrowed */
			PyObject *mv;   /* borrowed */
			Py_ssize_t pos = 0;

			while (PyDict_Next(r, &pos, &k, &v)) {
				if (v == o) {
					key = k;
					break;
				}
			}
			name[0] = '\0';
			if (key && PyUnicode_Check(key)) {
				(void)pyhot_patch_utf8(key, name, sizeof(name));
			}
			pos = 0;
			while (mods && PyDict_Next(mods, &pos, &mk, &mv)) {
				PyObject *d = PyModule_Check(mv) ? PyModule_GetDict(mv) : NULL;   /* borrowed */

				if (d == r) {
					char m[256] = "";

					(void)pyhot_patch_utf8(mk, m, sizeof(m));
					snprintf(what, sizeof(what), "module %s, global '%s'",
						 m, name);
					break;
				}
			}
			if (strncmp(what, "module ", 7) != 0 && name[0]) {
				snprintf(what, sizeof(what), "a dict, key '%s'", name);
			}
		} else if (PyType_Check(r) || PyCallable_Check(r)) {
			char tn[64];

			type_name(r, tn, sizeof(tn));
			describe(r, name, sizeof(name));
			snprintf(what, sizeof(what), "%s %s", tn, name);
		}
		PyErr_Clear();
		jsonw_str(out, what);
		shown++;
	}
	jsonw_array_end(out);
	Py_XDECREF(gc);
	PyErr_Clear();
}

/* "leaks": gc.collect(), then every watched object still alive. */
static int write_leaks(struct jsonw *out)
{
	PyObject *gc = pyhot_patch_module("gc");   /* owned */
	PyObject *r;   /* owned */
	PyObject *alive = NULL;   /* owned */
	PyObject *nums = NULL;   /* owned */
	PyObject *args = NULL;   /* owned */
	PyObject *referrers = NULL;   /* owned */
	PyObject *k;   /* borrowed */
	PyObject *set;   /* borrowed */
	Py_ssize_t pos = 0, i;

	jsonw_key(out, "leaks");
	jsonw_array_begin(out);
	r = gc ? call_method(gc, "collect", NULL) : NULL;
	Py_XDECREF(r);
	watch_prune();
	alive = PyList_New(0);
	nums = PyList_New(0);
	while (watch && alive && nums && PyDict_Next(watch, &pos, &k, &set)) {
		PyObject *it = PyObject_GetIter(set);   /* owned */
		PyObject *ref;   /* owned */

		while (it && (ref = PyIter_Next(it)) != NULL) {
			PyObject *o = PyWeakref_GetObject(ref);   /* borrowed */

			if (o && o != Py_None) {
				(void)PyList_Append(alive, o);
				(void)PyList_Append(nums, k);
			}
			Py_DECREF(ref);
		}
		Py_XDECREF(it);
	}
	PyErr_Clear();
	if (alive && PyList_Size(alive) > 0 && gc) {
		/* One call for all: its argument tuple is the one referrer of
		 * ours that shows up (alive is a list, which holds them too). */
		PyObject *f = pyhot_patch_get_attr(gc, "get_referrers");   /* owned */

		args = PyList_AsTuple(alive);
		referrers = f && args ? PyObject_CallObject(f, args) : NULL;
		Py_XDECREF(f);
	}
	for (i = 0; alive && i < PyList_Size(alive); i++) {
		PyObject *o = PyList_GetItem(alive, i);   /* borrowed */
		char name[600], tn[64];

		describe(o, name, sizeof(name));
		type_name(o, tn, sizeof(tn));
		jsonw_object_begin(out);
		jsonw_key_int(out, "generation", PyLong_AsLong(PyList_GetItem(nums, i)));
		jsonw_key_str(out, "type", tn);
		jsonw_key_str(out, "name", name);
		write_holders(out, o, referrers, args, alive);
		jsonw_object_end(out);
	}
	jsonw_array_end(out);
	PyErr_Clear();
	Py_XDECREF(gc);
	Py_XDECREF(alive);
	Py_XDECREF(nums);
	Py_XDECREF(args);
	Py_XDECREF(referrers);
	return 0;
}

/* A generation and its module, for the listing. */
struct listed {
	const struct gen *g;
	const char *module;
};

/* Newest first: numbers are unique and increasing. */
static int listed_newest_first(const void *a, const void *b)
{
	long x = ((const struct listed *)a)->g->number;
	long y = ((const struct listed *)b)->g->number;

	return (x < y) - (x > y);
}

int pyhot_patch_history_write(struct jsonw *out, int leaks, struct pyhot_err *err)
{
	struct modhist *h;
	const struct gen *g;
	struct listed *all;
	size_t n = 0, i, bytes = 0;
	PyObject *t0;   /* owned */
	PyObject *v0;   /* owned */
	PyObject *tb0;   /* owned */

	PyErr_Fetch(&t0, &v0, &tb0);
	for (h = histories; h; h = h->next) {
		n += h->n;
	}
	all = calloc(n ? n : 1, sizeof(*all));
	if (!all) {
		PyErr_Restore(t0, v0, tb0);
		return pyhot_err_set(err, PYHOT_ERR_FAILED, ENOMEM, getpid(), "status",
				     "out of memory");
	}
	n = 0;
	for (h = histories; h; h = h->next) {
		bytes += sizeof(*h) + strlen(h->module) + (h->file ? strlen(h->file) : 0);
		for (g = h->oldest; g; g = g->newer) {
			all[n].g = g;
			all[n++].module = h->module;
			bytes += g->bytes;
		}
	}
	qsort(all, n, sizeof(*all), listed_newest_first);
	jsonw_key(out, "history");
	jsonw_object_begin(out);
	jsonw_key_int(out, "limit", atomic_load(&limit));
	jsonw_key_int(out, "bytes", (long long)bytes);
	jsonw_key(out, "generations");
	jsonw_array_begin(out);
	for (i = 0; i < n; i++) {
		g = all[i].g;
		jsonw_object_begin(out);
		jsonw_key_int(out, "number", g->number);
		jsonw_key_double(out, "time", g->time);
		jsonw_key_str(out, "module", all[i].module);
		jsonw_key_str(out, "kind", g->is_rollback ? "rollback" : "refresh");
		jsonw_key_str(out, "hash", g->hash[0] ? g->hash : NULL);
		if (g->is_rollback) {
			jsonw_key_int(out, "restores", g->restores);
		}
		jsonw_key_bool(out, "applied", g->applied);
		if (g->rolled_back_by) {
			jsonw_key_int(out, "rolled_back_by", g->rolled_back_by);
		}
		jsonw_key_int(out, "bytes", (long long)g->bytes);
		pyhot_patch_write_changes(out, g->ch, g->nch);
		jsonw_object_end(out);
	}
	jsonw_array_end(out);
	jsonw_object_end(out);
	free(all);
	if (leaks) {
		write_leaks(out);
	}
	PyErr_Clear();
	PyErr_Restore(t0, v0, tb0);
	return 0;
}
