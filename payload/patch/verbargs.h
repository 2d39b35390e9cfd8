/*
 * verbargs.h: what the engine's two verbs (refresh, rollback) read alike
 * from a request and from the running interpreter (verbargs.c).
 */
#ifndef PYHOT_PATCH_VERBARGS_H
#define PYHOT_PATCH_VERBARGS_H

#include <Python.h>

#include "request.h"

/* Whether the request asks for a dry run: "dry_run" present and neither
 * "0" nor "false". 1 or 0. */
int pyhot_patch_dry_run(const struct pyhot_req *req);

/* The imported module of that name (borrowed from sys.modules), or NULL
 * when there is none or it is not a module. GIL held; no error set. */
PyObject *pyhot_patch_live_module(const char *name);

#endif /* PYHOT_PATCH_VERBARGS_H */
