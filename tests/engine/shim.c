/*
 * shim.c: a test entry point into the patch engine, for in-process engine
 * tests (tests/engine/run_scenarios.py loads build/tests/pyhot-engine-test.so
 * with ctypes.PyDLL, which keeps the GIL held during the call, as at a safe
 * point). Not part of the payload.
 */
#include <Python.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonw.h"
#include "ops.h"
#include "pyhot_err.h"
#include "pyhot_patch.h"
#include "request.h"

#define EXPORT __attribute__((visibility("default")))

EXPORT char *pyhot_test_refresh(const char *modules, int dry_run);
EXPORT void pyhot_test_free(char *p);
EXPORT int pyhot_test_baseline(void);
EXPORT char *pyhot_test_rollback(const char *module, long to, int dry_run);
EXPORT void *pyhot_test_baseline_list(void);
EXPORT void pyhot_test_baseline_pin(void *pass);
EXPORT void pyhot_test_baseline_read(void *pass, int user_only);
EXPORT int pyhot_test_baseline_keep(void *pass);
EXPORT long pyhot_test_apply_fail_after(long n);

/* The engine's test hook (ops.h): the next apply fails once it has done n
 * ops (n < 0: off). Returns the previous setting: -1 when the hook fired. */
long pyhot_test_apply_fail_after(long n)
{
	long was = pyhot_ops_test_fail_after;

	pyhot_ops_test_fail_after = n;
	return was;
}

/* Run an engine verb and frame its answer as the agent would. */
static char *call(int (*fn)(const struct pyhot_req *, struct jsonw *,
			    struct pyhot_err *), const struct pyhot_req *req)
{
	struct pyhot_err err;
	struct jsonw w;
	int rc;

	pyhot_err_init(&err);
	jsonw_init(&w);
	jsonw_object_begin(&w);
	jsonw_key_int(&w, "proto", 1);
	rc = fn(req, &w, &err);
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
	return jsonw_finish(&w);
}

/* modules: names separated by commas ("" for every changed module).
 * Returns the response JSON as the agent would frame it; free it with
 * pyhot_test_free(). */
char *pyhot_test_refresh(const char *modules, int dry_run)
{
	struct pyhot_req req;
	char *copy = strdup(modules ? modules : ""), *p, *tok, *save = NULL, *out;

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
	out = call(pyhot_patch_refresh, &req);
	free(copy);
	return out;
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

/* The attach baseline's steps one at a time, so that a test can edit a
 * file between two of them. list returns the pass, or NULL. */
void *pyhot_test_baseline_list(void)
{
	struct pyhot_err err;

	pyhot_err_init(&err);
	return pyhot_patch_baseline_list(&err);
}

void pyhot_test_baseline_pin(void *pass)
{
	pyhot_patch_baseline_pin(pass);
}

void pyhot_test_baseline_read(void *pass, int user_only)
{
	pyhot_patch_baseline_read(pass, user_only);
}

int pyhot_test_baseline_keep(void *pass)
{
	struct pyhot_err err;

	pyhot_err_init(&err);
	return pyhot_patch_baseline_keep(pass, &err);
}

/* to < 0: the newest refresh only. */
char *pyhot_test_rollback(const char *module, long to, int dry_run)
{
	struct pyhot_req req;
	char n[32];

	memset(&req, 0, sizeof(req));
	req.verb = "rollback";
	req.key[req.nargs] = "module";
	req.val[req.nargs++] = module;
	if (to >= 0) {
		snprintf(n, sizeof(n), "%ld", to);
		req.key[req.nargs] = "to";
		req.val[req.nargs++] = n;
	}
	if (dry_run) {
		req.key[req.nargs] = "dry_run";
		req.val[req.nargs++] = "1";
	}
	return call(pyhot_patch_rollback, &req);
}
