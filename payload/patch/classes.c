/*
 * classes.c: patching a class in place: its body runs into a scratch
 * namespace and the members that changed are set on the live class, so the
 * class object, its instances and its subclasses stay what they are.
 */
#include "classes.h"

#include "attr.h"
#include "functions.h"
#include "recompute.h"
#include "stmts.h"

#include <stdio.h>
#include <string.h>

static const char *member_kind(struct engine *e, PyObject *v)
{
	if (is_a(v, e->t_function)) {
		return "method";
	}
	if (is_a(v, e->t_classmethod)) {
		return "classmethod";
	}
	if (is_a(v, e->t_staticmethod)) {
		return "staticmethod";
	}
	if (is_a(v, e->t_property)) {
		return "property";
	}
	if (PyType_Check(v)) {
		return "class";
	}
	return "value";
}

int replaced_in_place(PyObject *livev, PyObject *newv)
{
	return livev && livev != newv && Py_TYPE(livev) == Py_TYPE(newv) &&
	       (PyList_CheckExact(newv) || PyDict_CheckExact(newv) ||
		PyObject_TypeCheck(newv, &PySet_Type));
}

int queue_replace(struct engine *e, PyObject *owner, int is_class,
		  PyObject *name, PyObject *livev, PyObject *newv, int *in_place)
{
	*in_place = 0;
	if (replaced_in_place(livev, newv)) {
		*in_place = 1;
		return pyhot_ops_add(&e->ops, PYHOT_OP_REPLACE, livev, NULL, newv);
	}
	return pyhot_ops_add(&e->ops, is_class ? PYHOT_OP_SETATTR : PYHOT_OP_SETITEM,
			     owner, name, newv);
}

/* Which statements of a class body select_stmts() picks. */
enum stmt_pick {
	PICK_SLOTS,    /* those that bind __slots__ */
	PICK_FIELDS,   /* annotated assignments (dataclass fields) */
};

/* Statements of body that pick wants. New reference, or NULL. */
static PyObject *select_stmts(struct engine *e, PyObject *body,
			      enum stmt_pick pick)
{
	PyObject *out = PyList_New(0);   /* owned */
	PyObject *slots = PyUnicode_FromString("__slots__");   /* owned */
	Py_ssize_t i, n = PyList_Size(body);

	if (!out || !slots) {
		goto error;
	}
	for (i = 0; i < n; i++) {
		PyObject *st = PyList_GetItem(body, i);   /* borrowed */
		PyObject *names;   /* owned */
		int take;

		if (pick == PICK_FIELDS) {
			take = is_a(st, e->t_AnnAssign);
		} else {
			names = bound_names(e, st);
			if (!names) {
				goto error;
			}
			take = PySet_Contains(names, slots);
			Py_DECREF(names);
			if (take < 0) {
				goto error;
			}
		}
		if (take && PyList_Append(out, st) < 0) {
			goto error;
		}
	}
	Py_DECREF(slots);
	return out;
error:
	Py_XDECREF(out);
	Py_XDECREF(slots);
	return NULL;
}

/* Whether two lists of nodes dump the same, item by item. 1, 0, or -1. */
static int lists_dump_equal(struct engine *e, PyObject *a, PyObject *b)
{
	Py_ssize_t i, n = PyList_Size(a);
	int rc = 1;

	if (n != PyList_Size(b)) {
		return 0;
	}
	for (i = 0; i < n && rc == 1; i++) {
		rc = dump_equal(e, PyList_GetItem(a, i), PyList_GetItem(b, i));
	}
	return rc;
}

/* Whether the statements pick selects dump the same in both bodies. 1, 0,
 * or -1. */
static int picked_equal(struct engine *e, PyObject *nb, PyObject *ob,
			enum stmt_pick pick)
{
	PyObject *a = select_stmts(e, nb, pick);   /* owned */
	PyObject *b = a ? select_stmts(e, ob, pick) : NULL;   /* owned */
	int r = b ? lists_dump_equal(e, a, b) : -1;

	Py_XDECREF(a);
	Py_XDECREF(b);
	return r;
}

/* Whether the live class still has the name the statement gives it (the
 * name may be bound to some other class by now). 1, 0, or -1. */
static int class_same_name(PyObject *live, PyObject *ncd)
{
	PyObject *q = plain_attr(live, "__name__");   /* owned */
	PyObject *n = getattr_opt(ncd, "name");   /* owned */
	int same = q && n ? PyObject_RichCompareBool(q, n, Py_EQ) : 0;

	Py_XDECREF(q);
	Py_XDECREF(n);
	return same;
}

/* The class body: its __slots__ and, for a dataclass, its fields. */
static int class_body_fit(struct engine *e, PyObject *live, PyObject *ncd,
			  PyObject *ocd, enum class_fit *fit, const char **why)
{
	PyObject *nb = pyhot_patch_get_attr(ncd, "body");   /* owned */
	PyObject *ob = nb ? pyhot_patch_get_attr(ocd, "body") : NULL;   /* owned */
	int r = ob ? picked_equal(e, nb, ob, PICK_SLOTS) : -1;

	if (r == 0) {
		*why = "__slots__ layout changed";
	} else if (r == 1 && has_attr(live, "__dataclass_fields__")) {
		r = picked_equal(e, nb, ob, PICK_FIELDS);
		if (r == 0) {
			/* Fields changed: the class stays, the methods the
			 * decorator generates are taken from a throwaway
			 * class (see dataclass_regen()). Not with __slots__:
			 * a new field needs a new layout. */
			*why = "dataclass fields changed on a __slots__ class";
			*fit = has_attr(live, "__slots__") ? CLASS_NEW : CLASS_IN_PLACE_REGEN;
		}
	}
	if (r == 1) {
		*fit = CLASS_IN_PLACE;
	}
	Py_XDECREF(nb);
	Py_XDECREF(ob);
	return r < 0 ? -1 : 0;
}

int class_in_place(struct engine *e, PyObject *live, PyObject *ncd,
		   PyObject *ocd, enum class_fit *fit, const char **why)
{
	static const char *const fields[] = { "bases", "keywords", "decorator_list", NULL };
	static const char *const changed[] = { "bases changed",
					       "metaclass or class keywords changed",
					       "class decorators changed" };
	int k, r;

	*fit = CLASS_NEW;
	*why = "";
	if (!PyType_Check(live)) {
		*why = "the live object is not a class";
		return 0;
	}
	r = class_same_name(live, ncd);
	if (r <= 0) {
		*why = "the name is bound to another class";
		return r;
	}
	if (!ocd) {
		*fit = CLASS_IN_PLACE;   /* no baseline: assume the header did not change */
		return 0;
	}
	for (k = 0; fields[k]; k++) {
		r = field_equal(e, ncd, ocd, fields[k]);
		if (r <= 0) {
			*why = changed[k];
			return r;
		}
	}
	return class_body_fit(e, live, ncd, ocd, fit, why);
}

static int enum_add(struct engine *e, PyObject *live, PyObject *ncd,
		    PyObject *name, PyObject **tmpcls, const char *qn)
{
	PyObject *cd = NULL;   /* owned */
	PyObject *code = NULL;   /* owned */
	PyObject *tmp = NULL;   /* owned */
	PyObject *map = NULL;   /* owned */
	PyObject *member = NULL;   /* owned */
	PyObject *value = NULL;   /* owned */
	PyObject *v2m = NULL;   /* owned */
	PyObject *names = NULL;   /* owned */
	PyObject *livemap = NULL;   /* owned */
	int rc = -1;

	if (!*tmpcls) {
		/* A throwaway class made by the real Enum machinery gives the
		 * new member; it is then moved into the live class. */
		cd = node_stripped(e, ncd, strip_decorators);
		code = cd ? compile_stmt(e, cd) : NULL;
		tmp = code ? scratch_ns(e) : NULL;
		if (!tmp) {
			goto out;
		}
		value = PyEval_EvalCode(code, e->G, tmp);
		if (!value) {
			goto out;
		}
		Py_CLEAR(value);
		{
			PyObject *cn = pyhot_patch_get_attr(ncd, "name");   /* owned */

			*tmpcls = cn ? PyObject_GetItem(tmp, cn) : NULL;
			Py_XDECREF(cn);
		}
		if (!*tmpcls) {
			goto out;
		}
	}
	map = pyhot_patch_get_attr(*tmpcls, "_member_map_");
	member = map ? PyObject_GetItem(map, name) : NULL;
	if (!member) {
		goto out;
	}
	value = pyhot_patch_get_attr(member, "_value_");
	livemap = pyhot_patch_get_attr(live, "_member_map_");
	v2m = pyhot_patch_get_attr(live, "_value2member_map_");
	names = pyhot_patch_get_attr(live, "_member_names_");
	if (!value || !livemap || !v2m || !names) {
		goto out;
	}
	if (pyhot_ops_add_attr(&e->ops, PYHOT_OP_SETATTR, member, "__class__", live) < 0 ||
	    pyhot_ops_add(&e->ops, PYHOT_OP_SETATTR, live, name, member) < 0 ||
	    pyhot_ops_add(&e->ops, PYHOT_OP_SETITEM, livemap, name, member) < 0) {
		goto out;
	}
	if (PyObject_Hash(value) == -1) {
		PyErr_Clear();   /* unhashable values are looked up linearly */
	} else if (pyhot_ops_add(&e->ops, PYHOT_OP_SETITEM, v2m, value, member) < 0) {
		goto out;
	}
	if (PyList_Check(names) &&
	    pyhot_ops_add(&e->ops, PYHOT_OP_APPEND, names, NULL, name) < 0) {
		goto out;
	}
	rc = change_add(e, "added", "value", qn, "enum member");
out:
	Py_XDECREF(cd);
	Py_XDECREF(code);
	Py_XDECREF(tmp);
	Py_XDECREF(map);
	Py_XDECREF(member);
	Py_XDECREF(value);
	Py_XDECREF(v2m);
	Py_XDECREF(names);
	Py_XDECREF(livemap);
	return rc;
}

static int is_enum_member_candidate(struct engine *e, PyObject *name, PyObject *v)
{
	char n[256];
	size_t len;

	if (pyhot_patch_utf8(name, n, sizeof(n)) < 0) {
		PyErr_Clear();
		return 0;
	}
	len = strlen(n);
	if (len >= 2 && n[0] == '_' && n[len - 1] == '_') {
		return 0;   /* _sunder_ and __dunder__ names are not members */
	}
	if (is_a(v, e->t_function) || is_a(v, e->t_classmethod) ||
	    is_a(v, e->t_staticmethod) || is_a(v, e->t_property) || PyType_Check(v)) {
		return 0;
	}
	return 1;
}

/* A changed member of a class. */
static int patch_member(struct engine *e, PyObject *live, PyObject *name,
			PyObject *livev, PyObject *newv, PyObject *st,
			PyObject *odef, const char *qn)
{
	static const char *const acc[] = { "fget", "fset", "fdel", NULL };
	char detail[256];
	int same = 0, r, k, in_place;

	if (odef && is_def(e, st) && Py_TYPE(st) == Py_TYPE(odef)) {
		same = field_equal(e, st, odef, "decorator_list");
		if (same < 0) {
			return -1;
		}
	}
	if (same && is_a(livev, e->t_property) && is_a(newv, e->t_property)) {
		PyObject *lp[3] = { NULL, NULL, NULL };   /* owned */
		PyObject *np[3] = { NULL, NULL, NULL };   /* owned */
		int ok = 1;

		for (k = 0; acc[k]; k++) {
			lp[k] = pyhot_patch_get_attr(livev, acc[k]);
			np[k] = pyhot_patch_get_attr(newv, acc[k]);
			if (!lp[k] || !np[k]) {
				ok = -1;
			} else if ((lp[k] == Py_None) != (np[k] == Py_None)) {
				ok = ok < 0 ? ok : 0;
			}
		}
		for (k = 0; ok == 1 && acc[k]; k++) {
			if (lp[k] == Py_None) {
				continue;
			}
			r = patch_behind(e, lp[k], np[k], name, NULL, TP_FULL,
					 detail, sizeof(detail));
			if (r <= 0) {
				ok = r;
			}
		}
		for (k = 0; k < 3; k++) {
			Py_XDECREF(lp[k]);
			Py_XDECREF(np[k]);
		}
		if (ok < 0) {
			return -1;
		}
		if (ok == 1) {
			return change_add(e, "changed", "property", qn, "accessors");
		}
	} else if (same) {
		r = patch_behind(e, livev, newv, name, NULL, TP_FULL, detail,
				 sizeof(detail));
		if (r < 0) {
			return -1;
		}
		if (r == 1) {
			return change_add(e, "changed", member_kind(e, newv), qn, "%s", detail);
		}
	}
	if (queue_replace(e, live, 1, name, livev, newv, &in_place) < 0) {
		return -1;
	}
	if (strcmp(member_kind(e, livev), member_kind(e, newv)) != 0) {
		return change_add(e, "changed", member_kind(e, newv), qn, "was a %s",
				  member_kind(e, livev));
	}
	return change_add(e, "changed", member_kind(e, newv), qn, "%s",
			  in_place ? "updated in place" : "replaced");
}

/*
 * A dataclass whose fields changed: the generated methods (__init__,
 * __repr__, __eq__, ordering, __hash__) and the field tables come from a
 * throwaway class made by the real statement, decorators included. The
 * frozen __setattr__/__delattr__ stay: they name their own class. New
 * fields' defaults are class attributes, so existing instances read them.
 */
static int dataclass_regen(struct engine *e, PyObject *live, PyObject *ncd,
			   const char *qual)
{
	static const char *const gen[] = {
		"__init__", "__repr__", "__eq__", "__hash__", "__lt__", "__le__",
		"__gt__", "__ge__", "__dataclass_fields__", "__dataclass_params__",
		"__match_args__", "__annotations__", NULL };
	PyObject *code = NULL;   /* owned */
	PyObject *tmp = NULL;   /* owned */
	PyObject *res = NULL;   /* owned */
	PyObject *cn = NULL;   /* owned */
	PyObject *t = NULL;   /* owned */
	PyObject *d = NULL;   /* owned */
	int k, rc = -1;

	code = compile_stmt(e, ncd);
	tmp = code ? scratch_ns(e) : NULL;
	if (!tmp) {
		goto out;
	}
	res = PyEval_EvalCode(code, e->G, tmp);
	cn = res ? pyhot_patch_get_attr(ncd, "name") : NULL;
	t = cn ? PyObject_GetItem(tmp, cn) : NULL;
	d = t ? pyhot_patch_get_attr(t, "__dict__") : NULL;
	if (!d) {
		goto out;
	}
	for (k = 0; gen[k]; k++) {
		PyObject *v = PyMapping_GetItemString(d, gen[k]);   /* owned */

		if (!v) {
			PyErr_Clear();
			continue;
		}
		if (pyhot_ops_add_attr(&e->ops, PYHOT_OP_SETATTR, live, gen[k], v) < 0) {
			Py_DECREF(v);
			goto out;
		}
		Py_DECREF(v);
	}
	rc = change_add(e, "changed", "class", qual,
			"dataclass fields changed: generated methods renewed");
out:
	Py_XDECREF(code);
	Py_XDECREF(tmp);
	Py_XDECREF(res);
	Py_XDECREF(cn);
	Py_XDECREF(t);
	Py_XDECREF(d);
	return rc;
}

/* One class being patched in place: what patch_class()'s steps share. */
struct class_patch {
	PyObject *live;       /* borrowed: the live class */
	PyObject *ncd;        /* borrowed: the new ClassDef */
	PyObject *ocd;        /* borrowed: the baseline's, or NULL */
	const char *qual;     /* "<module>.<qualname>" for the report */
	struct body_info oi;  /* the baseline body's statements */
	PyObject *nbody;      /* owned: the new body's statements */
	PyObject *nested;     /* owned: (st, old st or None, live class) of
			       * nested classes patched on their own */
	PyObject *ns;         /* owned: the namespace the body ran in */
	PyObject *newbound;   /* owned: names the new body binds */
	PyObject *tmpcls;     /* owned: throwaway enum class, or NULL */
	PyObject *memmap;     /* owned: the live enum's _member_map_, or NULL */
	int is_enum;
	int reshaped;         /* a member added or removed, or a statement
			       * other than a def changed: what the class's
			       * hooks computed may differ */
};

static void class_patch_release(struct class_patch *c)
{
	body_info_release(&c->oi);
	Py_XDECREF(c->nbody);
	Py_XDECREF(c->nested);
	Py_XDECREF(c->ns);
	Py_XDECREF(c->newbound);
	Py_XDECREF(c->tmpcls);
	Py_XDECREF(c->memmap);
}

/* A new `pass` statement at st's position (new reference). */
static PyObject *pass_at(struct engine *e, PyObject *st)
{
	PyObject *p0 = PyObject_CallFunctionObjArgs(e->Pass, NULL);   /* owned */
	PyObject *p;   /* owned */

	if (!p0 || !st) {
		return p0;
	}
	p = PyObject_CallFunctionObjArgs(e->copy_location, p0, st, NULL);
	Py_DECREF(p0);
	return p;
}

/* Whether nested class statement st of the body has a live class that is
 * patched on its own (then it goes to c->nested and *taken is set). */
static int nested_take(struct engine *e, struct class_patch *c, PyObject *st,
		       int *taken)
{
	PyObject *nm = pyhot_patch_get_attr(st, "name");   /* owned */
	PyObject *ost = nm ? PyDict_GetItemWithError(c->oi.defs, nm) : NULL;   /* borrowed */
	PyObject *ln = NULL;   /* owned: the live nested class */
	PyObject *t;   /* owned */
	enum class_fit fit = CLASS_NEW;
	const char *why;
	int rc = -1;

	*taken = 0;
	if (!nm || PyErr_Occurred()) {
		goto out;
	}
	if ((ost && is_a(ost, e->t_ClassDef)) || !c->ocd) {
		ln = own_attr(c->live, nm);
	}
	if (PyErr_Occurred()) {
		goto out;
	}
	if (ln && class_in_place(e, ln, st, c->ocd ? ost : NULL, &fit, &why) < 0) {
		goto out;
	}
	/* a nested dataclass with new fields is remade with its parent */
	if (fit == CLASS_IN_PLACE) {
		t = PyTuple_Pack(3, st, ost ? ost : Py_None, ln);
		if (!t || PyList_Append(c->nested, t) < 0) {
			Py_XDECREF(t);
			goto out;
		}
		Py_DECREF(t);
		*taken = 1;
	}
	rc = 0;
out:
	Py_XDECREF(ln);
	Py_XDECREF(nm);
	return rc;
}

/* The body that runs: the new one, with nested classes that are patched on
 * their own replaced by `pass` (never empty). New reference, or NULL. */
static PyObject *class_body_to_run(struct engine *e, struct class_patch *c)
{
	PyObject *body2 = PyList_New(0);   /* owned */
	PyObject *p;   /* owned */
	Py_ssize_t i, n = PyList_Size(c->nbody);
	int taken = 0, r = body2 ? 0 : -1;

	for (i = 0; i < n && r == 0; i++) {
		PyObject *st = PyList_GetItem(c->nbody, i);   /* borrowed */

		taken = 0;
		if (is_a(st, e->t_ClassDef)) {
			r = nested_take(e, c, st, &taken);
		}
		if (r == 0 && taken) {
			p = pass_at(e, st);
			r = p ? PyList_Append(body2, p) : -1;
			Py_XDECREF(p);
		} else if (r == 0) {
			r = PyList_Append(body2, st);
		}
	}
	if (r == 0 && PyList_Size(body2) == 0) {
		p = pass_at(e, NULL);
		r = p ? PyList_Append(body2, p) : -1;
		Py_XDECREF(p);
	}
	if (r < 0) {
		Py_CLEAR(body2);
	}
	return body2;
}

/* Run the class body with the live module dict as globals, so that the
 * functions it makes have the right __globals__, and a fresh dict as its
 * namespace (c->ns): no class is made. Its __class__ cell is the live
 * class, so that methods using super() see it. 0, or -1 error. */
static int class_body_run(struct engine *e, struct class_patch *c)
{
	PyObject *body2 = class_body_to_run(e, c);   /* owned */
	PyObject *bcode = body2 ? class_body_code(e, c->ncd, body2) : NULL;   /* owned */
	PyObject *res = NULL;   /* owned */
	PyObject *cell;   /* borrowed */
	int rc = -1;

	c->ns = bcode ? scratch_ns(e) : NULL;
	if (!c->ns) {
		goto out;
	}
	e->cur_line = node_line(c->ncd);
	res = PyEval_EvalCode(bcode, e->G, c->ns);
	if (!res) {
		goto out;
	}
	cell = is_a(res, e->t_cell) ? res : PyDict_GetItemString(c->ns, "__classcell__");
	if (cell && set_attr(cell, "cell_contents", c->live) < 0) {
		goto out;
	}
	if (PyDict_GetItemString(c->ns, "__classcell__") &&
	    PyDict_DelItemString(c->ns, "__classcell__") < 0) {
		goto out;
	}
	rc = 0;
out:
	Py_XDECREF(body2);
	Py_XDECREF(bcode);
	Py_XDECREF(res);
	return rc;
}

/* Whether the live class is an Enum (then c->memmap is its members). */
static int class_enum_check(struct engine *e, struct class_patch *c)
{
	if (!e->enummeta) {
		return 0;
	}
	c->is_enum = PyObject_IsInstance(c->live, e->enummeta);
	if (c->is_enum < 0) {
		return -1;
	}
	if (c->is_enum) {
		c->memmap = pyhot_patch_get_attr(c->live, "_member_map_");
		if (!c->memmap) {
			return -1;
		}
	}
	return 0;
}

/* One name a body statement binds, now newv in the namespace: kept,
 * relocated, added, or patched on the live class. same_old: the unchanged
 * baseline statement, or NULL; moved: it moved in the file. */
static int class_apply_name(struct engine *e, struct class_patch *c,
			    PyObject *st, PyObject *x, PyObject *newv,
			    PyObject *same_old, int moved, const char *qn)
{
	PyObject *livev = own_attr(c->live, x);   /* owned */
	PyObject *odef;   /* borrowed */
	char d[64];
	int r = 0;

	if (PyErr_Occurred()) {
		r = -1;
	} else if (same_old && !c->ocd) {
		r = 0;
	} else if (same_old) {
		if (moved && livev && is_def(e, st)) {
			r = patch_behind(e, livev, newv, x, NULL, TP_CODE_ONLY,
					 d, sizeof(d)) < 0 ? -1 : 0;
		}
	} else if (!livev) {
		c->reshaped = 1;
		if (c->is_enum && is_enum_member_candidate(e, x, newv)) {
			r = enum_add(e, c->live, c->ncd, x, &c->tmpcls, qn);
		} else {
			r = pyhot_ops_add(&e->ops, PYHOT_OP_SETATTR, c->live, x, newv);
			if (r == 0) {
				r = change_add(e, "added", member_kind(e, newv), qn, NULL);
			}
		}
	} else if (c->is_enum && PyMapping_HasKey(c->memmap, x)) {
		r = change_add(e, "failed", "value", qn,
			       "a changed enum member value is not applied");
	} else {
		odef = PyDict_GetItemWithError(c->oi.defs, x);
		r = PyErr_Occurred() ? -1 :
		    patch_member(e, c->live, x, livev, newv, st, odef, qn);
	}
	Py_XDECREF(livev);
	return r;
}

/* "<qual>.<name>" into buf. */
static void member_qname(const char *qual, PyObject *x, char *buf, size_t size)
{
	char nm[256];

	if (pyhot_patch_utf8(x, nm, sizeof(nm)) < 0) {
		snprintf(nm, sizeof(nm), "?");
	}
	snprintf(buf, size, "%s.%s", qual, nm);
}

/* Whether st is a nested class statement patched on its own. */
static int is_nested(struct class_patch *c, PyObject *st)
{
	Py_ssize_t j, nn = PyList_Size(c->nested);

	for (j = 0; j < nn; j++) {
		if (PyTuple_GetItem(PyList_GetItem(c->nested, j), 0) == st) {
			return 1;
		}
	}
	return 0;
}

/* The names body statement st binds, each applied to the live class. */
static int class_apply_stmt(struct engine *e, struct class_patch *c,
			    PyObject *st)
{
	PyObject *names = bound_names(e, st);   /* owned */
	PyObject *same_old = NULL;   /* owned */
	PyObject *it = NULL;   /* owned */
	PyObject *x;   /* owned */
	char qn[1024];
	int moved, r = 0;

	if (!names || set_update(c->newbound, names) < 0) {
		Py_XDECREF(names);
		return -1;
	}
	if (!is_nested(c, st)) {
		same_old = c->ocd ? body_take(e, &c->oi, st) : NULL;
		moved = same_old && node_line(same_old) != node_line(st);
		if (!same_old && !is_def(e, st)) {
			c->reshaped = 1;
		}
		it = PyErr_Occurred() ? NULL : PyObject_GetIter(names);
		r = it ? 0 : -1;
		while (r == 0 && (x = PyIter_Next(it)) != NULL) {
			PyObject *newv = PyDict_GetItemWithError(c->ns, x);   /* owned below */

			member_qname(c->qual, x, qn, sizeof(qn));
			Py_XINCREF(newv);
			if (!newv && PyErr_Occurred()) {
				r = -1;
			} else if (newv) {
				r = class_apply_name(e, c, st, x, newv, same_old, moved, qn);
			}
			Py_XDECREF(newv);
			Py_DECREF(x);
		}
	}
	Py_XDECREF(it);
	Py_XDECREF(same_old);
	Py_DECREF(names);
	return r < 0 || PyErr_Occurred() ? -1 : 0;
}

/* Members bound by the old body and not by the new one go. */
static int class_remove_members(struct engine *e, struct class_patch *c)
{
	PyObject *removed = PyNumber_Subtract(c->oi.bound, c->newbound);   /* owned */
	PyObject *it = removed ? PyObject_GetIter(removed) : NULL;   /* owned */
	PyObject *x;   /* owned */
	char qn[1024];
	int r = it ? 0 : -1;

	while (r == 0 && (x = PyIter_Next(it)) != NULL) {
		PyObject *livev = own_attr(c->live, x);   /* owned */

		if (livev) {
			c->reshaped = 1;
			member_qname(c->qual, x, qn, sizeof(qn));
			r = pyhot_ops_add(&e->ops, PYHOT_OP_DELATTR, c->live, x, NULL);
			if (r == 0) {
				r = change_add(e, "removed", member_kind(e, livev), qn, NULL);
			}
			Py_DECREF(livev);
		}
		Py_DECREF(x);
		if (PyErr_Occurred()) {
			r = -1;
		}
	}
	Py_XDECREF(it);
	Py_XDECREF(removed);
	return r;
}

/* The class docstring, when it changed. */
static int class_queue_doc(struct engine *e, struct class_patch *c)
{
	PyObject *nd = PyObject_CallFunction(e->get_docstring, "Oi", c->ncd, 0);   /* owned */
	PyObject *od = nd ? PyObject_CallFunction(e->get_docstring, "Oi", c->ocd, 0) : NULL;   /* owned */
	int rc = -1;

	if (od && (PyObject_RichCompareBool(nd, od, Py_NE) != 1 ||
		   pyhot_ops_add_attr(&e->ops, PYHOT_OP_SETATTR, c->live,
				      "__doc__", nd) == 0)) {
		rc = 0;
		PyErr_Clear();
	}
	Py_XDECREF(nd);
	Py_XDECREF(od);
	return rc;
}

/* Nested classes taken out of the body: relocated when unchanged (and
 * moved), else patched in place themselves. */
static int class_patch_nested(struct engine *e, struct class_patch *c)
{
	Py_ssize_t i, n = PyList_Size(c->nested);
	char sub[1024], name[256];
	int same, r = 0;

	for (i = 0; i < n && r == 0; i++) {
		PyObject *t = PyList_GetItem(c->nested, i);   /* borrowed */
		PyObject *st = PyTuple_GetItem(t, 0);   /* borrowed */
		PyObject *ost = PyTuple_GetItem(t, 1);   /* borrowed */
		PyObject *ln = PyTuple_GetItem(t, 2);   /* borrowed */
		PyObject *nm;   /* owned */

		if (ost == Py_None) {
			ost = NULL;
		}
		same = ost ? dump_equal(e, st, ost) : 0;
		if (same < 0) {
			return -1;
		}
		nm = pyhot_patch_get_attr(st, "name");
		if (!nm || pyhot_patch_utf8(nm, name, sizeof(name)) < 0) {
			Py_XDECREF(nm);
			return -1;
		}
		Py_DECREF(nm);
		snprintf(sub, sizeof(sub), "%s.%s", c->qual, name);
		if (!same) {
			r = patch_class(e, ln, st, ost, sub, 0);
		} else if (node_line(st) != node_line(ost)) {
			r = relocate_stmt(e, st, ln);
		}
	}
	return r;
}

/* The class's hooks re-run after the apply (recompute.c), told every name
 * its body binds, old or new. */
static int class_recompute(struct engine *e, struct class_patch *c, size_t line)
{
	PyObject *bound = PySet_New(c->newbound);   /* owned */
	int rc = -1;

	if (bound && set_update(bound, c->oi.bound) == 0) {
		rc = recompute_plan(e, c->live, c->ncd, bound, line);
	}
	Py_XDECREF(bound);
	return rc;
}

int patch_class(struct engine *e, PyObject *live, PyObject *ncd,
		PyObject *ocd, const char *qual, int regen)
{
	struct class_patch c;
	PyObject *obody;   /* owned */
	Py_ssize_t i, n;
	size_t line;
	int rc = -1;

	memset(&c, 0, sizeof(c));
	c.live = live;
	c.ncd = ncd;
	c.ocd = ocd;
	c.qual = qual;
	c.nbody = pyhot_patch_get_attr(ncd, "body");
	obody = ocd ? pyhot_patch_get_attr(ocd, "body") : PyList_New(0);
	if (!c.nbody || !obody || body_info_make(e, obody, &c.oi) < 0) {
		goto out;
	}
	c.nested = PyList_New(0);
	c.newbound = PySet_New(NULL);
	if (!c.nested || !c.newbound || class_body_run(e, &c) < 0 ||
	    class_enum_check(e, &c) < 0) {
		goto out;
	}
	/* this report line names the class; qual is "<module>.<qual>" */
	line = e->mp->report.n;
	if (change_add(e, "changed", "class", qual[0] ? qual : "?", "in place") < 0) {
		goto out;
	}
	n = PyList_Size(c.nbody);
	for (i = 0; i < n; i++) {
		if (class_apply_stmt(e, &c, PyList_GetItem(c.nbody, i)) < 0) {
			goto out;
		}
	}
	if (ocd && (class_remove_members(e, &c) < 0 || class_queue_doc(e, &c) < 0)) {
		goto out;
	}
	if (queue_firstlineno(e, live, ncd) < 0 || class_patch_nested(e, &c) < 0) {
		goto out;
	}
	if (regen && dataclass_regen(e, live, ncd, qual) < 0) {
		goto out;
	}
	if (c.reshaped && class_recompute(e, &c, line) < 0) {
		goto out;
	}
	rc = 0;
out:
	Py_XDECREF(obody);
	class_patch_release(&c);
	return rc;
}
