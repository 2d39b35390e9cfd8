/* cmd_call.c: one request of stack, watch or exec (see cmd_util.h). */
#include "cmd_util.h"

#include <stdio.h>

#include <json.h>

#include "client.h"

int cli_call(struct cli_ctx *c, const char *verb, const char *const *kv, size_t nkv,
	     struct json_object **resp, struct pyhot_err *err)
{
	const struct cli_args *a = c->args;
	struct pyhot_client_req req;
	char tmo[32];
	size_t i;
	int r;

	*resp = NULL;
	pyhot_client_req_init(&req, verb);
	snprintf(tmo, sizeof(tmo), "%u", a->timeout_ms);
	for (i = 0; i + 1 < nkv; i += 2)
		if (pyhot_client_req_add(&req, kv[i], kv[i + 1]) < 0)
			return pyhot_err_set(err, PYHOT_ERR_FAILED, 0, a->pid, verb,
					     "too many arguments");
	if (pyhot_client_req_add(&req, "timeout_ms", tmo) < 0 ||
	    pyhot_client_req_add(&req, "run_timeout_ms", tmo) < 0)
		return pyhot_err_set(err, PYHOT_ERR_FAILED, 0, a->pid, verb,
				     "too many arguments");
	r = cli_ctx_call(c, &req, 2 * a->timeout_ms + 2000, resp, err);
	if (r == 0)
		r = pyhot_client_resp_check(*resp, a->pid, verb, err);
	return r;
}
