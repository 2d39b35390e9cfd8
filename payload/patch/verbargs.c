/* verbargs.c: request and module look-ups shared by refresh and rollback. */
#include "verbargs.h"

#include <string.h>

int pyhot_patch_dry_run(const struct pyhot_req *req)
{
	const char *dr = pyhot_req_get(req, "dry_run");

	return dr && strcmp(dr, "0") != 0 && strcmp(dr, "false") != 0;
}

PyObject *pyhot_patch_live_module(const char *name)
{
	PyObject *mods = PyImport_GetModuleDict();   /* borrowed */
	PyObject *mod = mods ? PyDict_GetItemString(mods, name) : NULL;   /* borrowed */

	if (!mod || !PyObject_TypeCheck(mod, &PyModule_Type)) {
		return NULL;
	}
	return mod;
}
