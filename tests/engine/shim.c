/*
 * shim.c: a test entry point into the patch engine, for in-process engine
 * tests (tests/engine/run_scenarios.py loads build/tests/pyhot-engine-test.so
 * with ctypes.PyDLL, which keeps the GIL held during the call, as at a safe
 * point). Not part of the payload.
 */
#include <Python.h>
#include <stdlib.h>
#include <string.h>

#include "jsonw.h"
#include "pyhot_err.h"
#include "pyhot_patch.h"
#include "request.h"

#define EXPORT __attribute__((visibility("default")))

EXPORT char *pyhot_test_refresh(const char *modules, int dry_run);
EXPORT void pyhot_test_free(char *p);
EXPORT int pyhot_test_baseline(void);

/* modules: names separated by commas ("" for every changed module).
 * Returns the response JSON as the agent would frame it; free it with
 * pyhot_test_free(). */
char *pyhot_test_refresh(const char *modules, int dry_run)
{
	struct pyhot_req req;
	struct pyhot_err err;
	struct jsonw w;
	char *copy = strdup(modules ? modules : ""), *p, *tok, *save = NULL;
	int rc;

	memset(&req, 0, sizeof(req));
	req.verb = "refresh";
	for (p = copy; copy && (tok = strtok_r(p, ",", &save)) != NULL; p = NULL) {
		if (req.nargs < PYHOT_REQ_MAX_ARGS) {
			req.key[req.nargs] = "module";
			req.val[req.nargs++] = tok;
		}
	}
	if (dry_run && req.nargs < PYHOT_REQ_MAX_ARGS) {
		req.key[req.nargs] = "dry_run";
		req.val[req.nargs++] = "1";
	}
	pyhot_err_init(&err);
	jsonw_init(&w);
	jsonw_object_begin(&w);
	jsonw_key_int(&w, "proto", 1);
	rc = pyhot_patch_refresh(&req, &w, &err);
	jsonw_key_bool(&w, "ok", rc == 0);
	if (rc != 0) {
		jsonw_key(&w, "error");
		jsonw_object_begin(&w);
		jsonw_key_str(&w, "kind", pyhot_errkind_name(err.kind));
		jsonw_key_str(&w, "step", err.step);
		jsonw_key_str(&w, "message", err.msg);
		jsonw_object_end(&w);
	}
	jsonw_key_bool(&w, "exception_left_set", PyErr_Occurred() != NULL);
	jsonw_object_end(&w);
	free(copy);
	return jsonw_finish(&w);
}

void pyhot_test_free(char *p)
{
	free(p);
}

int pyhot_test_baseline(void)
{
	struct pyhot_err err;

	pyhot_err_init(&err);
	return pyhot_patch_baseline_take(&err);
}
