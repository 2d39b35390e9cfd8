/* cmd_refresh.c: pyhot refresh, the client side of the patch engine. */
#include "cli.h"

#include <string.h>

#include <json.h>

/* "generation 7 (usermod); undo: pyhot rollback 123 usermod" per module
 * that a generation was recorded for. */
static void print_generations(FILE *f, struct json_object *resp, pid_t pid)
{
	struct json_object *mods = NULL, *m, *g;
	size_t i, n;

	if (!json_object_object_get_ex(resp, "modules", &mods) ||
	    !json_object_is_type(mods, json_type_array))
		return;
	n = json_object_array_length(mods);
	for (i = 0; i < n; i++) {
		m = json_object_array_get_idx(mods, i);
		if (!json_object_object_get_ex(m, "generation", &g) ||
		    !json_object_is_type(g, json_type_int))
			continue;
		fprintf(f, "generation %lld (%s); undo: pyhot rollback %d %s\n",
		       (long long)json_object_get_int64(g), cli_json_str(m, "module"),
		       (int)pid, cli_json_str(m, "module"));
	}
}

static size_t refresh_kv(const struct cli_args *a, const char **kv)
{
	size_t nkv = 0, i;

	for (i = 0; i < a->nmodules; i++) {
		kv[nkv++] = "module";
		kv[nkv++] = a->modules[i];
	}
	if (a->dry_run) {
		kv[nkv++] = "dry_run";
		kv[nkv++] = "1";
	}
	if (a->rerun) {
		kv[nkv++] = "rerun";
		kv[nkv++] = "1";
	}
	return nkv;
}

static int refresh_report(struct cli_ctx *c, int r, struct json_object *resp,
			  struct pyhot_err *err)
{
	const struct cli_args *a = c->args;
	struct json_object *v;

	if (r == 0) {
		struct json_object *mods = NULL;

		if (json_object_object_get_ex(resp, "modules", &mods))
			cli_out_set(c->out, "modules", json_object_get(mods));
		else
			cli_out_set(c->out, "modules", json_object_new_array());
		cli_out_set(c->out, "dry_run", json_object_new_boolean(
			json_object_object_get_ex(resp, "dry_run", &v) &&
			json_object_get_boolean(v)));
		if (json_object_object_get_ex(resp, "safepoint", &v))
			cli_out_set(c->out, "safepoint", json_object_get(v));
		if (!c->out->json && !c->out->quiet) {
			cli_fmt_refresh(c->out->out, resp, a->pid, a->verbose, c->out->color_out);
			print_generations(c->out->out, resp, a->pid);
		}
	} else if (resp) {
		struct json_object *e = NULL, *msg = NULL;

		if (json_object_object_get_ex(resp, "error", &e) &&
		    json_object_object_get_ex(e, "message", &msg) &&
		    strstr(json_object_get_string(msg), "unknown verb"))
			pyhot_err_hint(err, "the agent in pid %d has no patch engine (it was "
				       "built without payload/patch); pid %d is unchanged",
				       (int)a->pid, (int)a->pid);
		else if (err->kind == PYHOT_ERR_FAILED)
			pyhot_err_hint(err, "nothing was changed: pid %d is unchanged; fix the "
				       "error and run pyhot refresh again", (int)a->pid);
		/* A plan or partial report that came with the failure stays. */
		if (json_object_object_get_ex(resp, "modules", &v))
			cli_out_set(c->out, "modules", json_object_get(v));
	}
	if (resp)
		json_object_put(resp);
	return r;
}

const struct cli_cmd_split cli_refresh_split = { "refresh", refresh_kv, refresh_report };

int cli_cmd_refresh(struct cli_ctx *c, struct pyhot_err *err)
{
	const char *kv[CLI_SPLIT_KV_MAX];
	struct json_object *resp = NULL;
	int reused, r;

	r = cli_attach_ensure(c, &reused, err);
	if (r < 0)
		return r;
	r = cli_agent_call(c, "refresh", kv, refresh_kv(c->args, kv), c->args->timeout_ms,
			   &resp, err);
	return refresh_report(c, r, resp, err);
}
