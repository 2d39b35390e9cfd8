/*
 * plan.h: the state a refresh shares between the engine's rooms while it
 * plans one module (struct engine) and what it keeps per module (struct
 * modplan). Private to payload/patch; everything here runs with the GIL.
 *
 * A refresh has two phases. Plan (runs Python, changes nothing live):
 * parse the baseline and the new source, match top-level statements by
 * their ast.dump(), and for each new statement decide whether it is kept,
 * patched in place (functions.c, classes.c) or re-run into an overlay
 * (module.c). Apply (ops.c): the queued sets run in one go and are undone
 * if one fails. docs/engine.md states the rules the plan follows.
 */
#ifndef PYHOT_PATCH_PLAN_H
#define PYHOT_PATCH_PLAN_H

#include <Python.h>
#include <stddef.h>

#include "baseline.h"
#include "ops.h"
#include "report.h"

/* What a refresh keeps per module until it is reported. */
struct modplan {
	char module[512];
	char file[4096];
	char *newsrc;
	size_t newlen;
	int nobaseline;
	int untrusted;                /* planned against what runs (livecmp.c) */
	int rerun;                    /* re-run statements an untrusted
				       * baseline cannot judge */
	int chunked;                  /* only the changed region was parsed */
	struct pyhot_stmt_rec *recs;  /* the new source's statement table */
	size_t nrecs;
	int has_table;
	int flags;                    /* the new source's __future__ flags */
	struct pyhot_changes report;
	long generation;              /* recorded after apply, or 0 */
};

/* One refresh: the stdlib objects it uses, its queued ops, and the module
 * being planned. Made by engine_init() (refresh.c); the per-module fields
 * are set and cleared by plan_module() (module.c). */
struct engine {
	/* stdlib callables and types, owned */
	PyObject *parse, *dump, *Module, *Pass, *compile, *get_docstring,
		 *copy_location, *walk;
	PyObject *t_FunctionDef, *t_AsyncFunctionDef, *t_ClassDef, *t_Name,
		 *t_Store, *t_Import, *t_ImportFrom, *t_AnnAssign, *t_Lambda, *t_If,
		 *t_Expr, *t_Assign, *t_AugAssign,
		 *t_ListComp, *t_SetComp, *t_DictComp, *t_GeneratorExp;
	PyObject *t_function, *t_code, *t_classmethod, *t_staticmethod,
		 *t_property, *t_cell, *t_partial, *enummeta;
	int dry_run;
	struct pyhot_ops ops;
	PyObject *recompute; /* list: classes whose hooks re-run after the
			      * apply (recompute.c) */

	/* the module being planned */
	struct modplan *mp;
	PyObject *modname;   /* str */
	PyObject *fileobj;   /* str */
	PyObject *G;         /* live module dict */
	PyObject *L;         /* overlay: names bound by re-run statements */
	PyObject *inplace;   /* names patched in place: L entries not applied */
	PyObject *codemap;   /* id(old nested code) -> (old, new) */
	PyObject *patched;   /* ids of functions whose code is already queued */
	PyObject *nscls;     /* dict subclass reading misses from L, or NULL */
	int flags;           /* __future__ compiler flags of the new source */
	long cur_line;       /* statement being run, for error messages */
	PyObject *built;     /* list: objects built only to be taken apart
			      * (their code moved into live functions), which
			      * the generation tracker watches die */
};

#endif /* PYHOT_PATCH_PLAN_H */
