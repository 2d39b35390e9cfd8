/*
 * importers.h: the modules that imported names from the module being
 * planned (importers.c). GIL held; "queue" means adding ops to e->ops.
 */
#ifndef PYHOT_PATCH_IMPORTERS_H
#define PYHOT_PATCH_IMPORTERS_H

#include "plan.h"

/*
 * After the module's own plan (its overlay e->L is final): every other
 * module in sys.modules whose dict still holds, under the same name, an
 * object the refresh replaces by a new one (`from mod import name`) gets
 * the new object; every module that did `from mod import *` (it holds
 * every old public name of mod, and its source says so) gets the public
 * names mod gains (its __all__ when it has one, else the names without a
 * leading underscore), unless it binds them itself. Queued and reported in
 * the module's report as "<importer>.<name>". 0, or -1 error.
 */
int plan_importers(struct engine *e);

#endif /* PYHOT_PATCH_IMPORTERS_H */
