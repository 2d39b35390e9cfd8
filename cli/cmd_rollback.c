/* cmd_rollback.c: pyhot rollback, the client side of the generation
 * tracker (payload/patch/history.c). No attach: a process without an agent
 * has no refresh to undo. */
#include "cli.h"

#include <string.h>

#include <json.h>

int cli_cmd_rollback(struct cli_ctx *c, struct pyhot_err *err)
{
	const struct cli_args *a = c->args;
	const char *kv[6];
	struct json_object *resp = NULL, *v;
	size_t nkv = 0;
	int r;

	kv[nkv++] = "module";
	kv[nkv++] = a->modules[0];
	if (a->to) {
		kv[nkv++] = "to";
		kv[nkv++] = a->to;
	}
	if (a->dry_run) {
		kv[nkv++] = "dry_run";
		kv[nkv++] = "1";
	}
	r = cli_agent_call(c, "rollback", kv, nkv, a->timeout_ms, &resp, err);
	if (r == 0) {
		static const char *const keys[] = { "modules", "restored", "undone",
						     "dry_run", NULL };
		int i;

		for (i = 0; keys[i]; i++) {
			if (json_object_object_get_ex(resp, keys[i], &v))
				cli_out_set(c->out, keys[i], json_object_get(v));
		}
		if (!c->out->json && !c->out->quiet)
			cli_fmt_rollback(c->out->out, resp, a->pid, a->verbose, c->out->color_out);
	} else if (resp) {
		struct json_object *e = NULL, *msg = NULL;

		if (json_object_object_get_ex(resp, "error", &e) &&
		    json_object_object_get_ex(e, "message", &msg) &&
		    strstr(json_object_get_string(msg), "unknown verb"))
			pyhot_err_hint(err, "the agent in pid %d predates rollback: detach "
				       "and attach again; pid %d is unchanged",
				       (int)a->pid, (int)a->pid);
		else if (err->kind == PYHOT_ERR_FAILED)
			pyhot_err_hint(err, "nothing was changed: pid %d is unchanged; "
				       "pyhot status %d lists its generations",
				       (int)a->pid, (int)a->pid);
	}
	if (resp)
		json_object_put(resp);
	return r;
}
