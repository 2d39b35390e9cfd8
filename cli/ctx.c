/*
 * ctx.c: the context every command works in (struct cli_ctx): the target
 * as inspected, where its agent listens, and one request to that agent
 * with its errors explained (a main thread stuck in C gets its native
 * stack reported). The wire itself is client.c.
 */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json.h>

#include "client.h"
#include "pyhot_log.h"

int cli_ctx_init(struct cli_ctx *c, const struct cli_args *a, struct cli_out *o,
		 struct pyhot_err *err)
{
	unsigned int euid;
	pid_t nspid;
	int r;

	memset(c, 0, sizeof(*c));
	c->args = a;
	c->out = o;
	r = pyhot_target_inspect(a->pid, &c->t, err);
	if (r < 0)
		return r;
	r = pyhot_client_target_euid(a->pid, &euid, err);
	if (r < 0)
		return r;
	nspid = c->t.nspid > 0 ? c->t.nspid : a->pid;
	if (pyhot_client_sock_path(c->sock, sizeof(c->sock), euid, nspid) < 0)
		return pyhot_err_set(err, PYHOT_ERR_FAILED, ENAMETOOLONG, a->pid, "connect",
				     "socket path too long");
	PYHOT_TRACE("cli", "pid %d: state %c, nspid %d, euid %u, python %d.%d%s, socket %s",
		    (int)a->pid, c->t.state ? c->t.state : '?', (int)nspid, euid,
		    c->t.py_major, c->t.py_minor, c->t.py_static ? " static" : "", c->sock);
	return 0;
}

/* Add the native stack of the main thread to the error report. */
static void report_stuck(struct cli_ctx *c)
{
	pid_t pid = c->args->pid;
	struct pyhot_err e;
	struct json_object *jerr, *frames;
	char *buf;
	size_t cap = 64 * 1024;
	int r;

	buf = malloc(cap);
	if (!buf)
		return;
	buf[0] = '\0';
	pyhot_err_init(&e);
	r = pyhot_native_stack(pid, pid, buf, cap, &e);
	if (r == 0) {
		char head[128];

		snprintf(head, sizeof(head),
			 "the main thread (tid %d) is stuck in C, holding the GIL:\n", (int)pid);
		cli_out_detail(c->out, head);
		cli_out_detail(c->out, buf);
	} else {
		char head[700];

		snprintf(head, sizeof(head), "the main thread (tid %d) did not reach a safe "
			 "point; its native stack could not be read: %.500s\n", (int)pid, e.msg);
		cli_out_detail(c->out, head);
	}
	if (c->out->doc) {
		jerr = json_object_new_object();
		json_object_object_add(jerr, "main_tid", json_object_new_int(pid));
		frames = json_object_new_array();
		if (r == 0) {
			char *p = buf, *nl;

			while (*p) {
				nl = strchr(p, '\n');
				if (nl)
					*nl = '\0';
				if (*p)
					json_object_array_add(frames, json_object_new_string(p));
				if (!nl)
					break;
				p = nl + 1;
			}
		} else {
			json_object_object_add(jerr, "native_stack_error",
					       json_object_new_string(e.msg));
		}
		json_object_object_add(jerr, "native_stack", frames);
		cli_out_set(c->out, "error", jerr);
	}
	free(buf);
}

/* Put the agent's traceback into the report (stderr, and "error" in JSON). */
static void report_traceback(struct cli_ctx *c, struct json_object *resp)
{
	struct json_object *e = NULL, *tb = NULL, *jerr;

	if (!json_object_object_get_ex(resp, "traceback", &tb) &&
	    json_object_object_get_ex(resp, "error", &e))
		json_object_object_get_ex(e, "traceback", &tb);
	if (!tb || !json_object_is_type(tb, json_type_string) ||
	    !*json_object_get_string(tb))
		return;
	cli_out_detail(c->out, json_object_get_string(tb));
	if (c->out->doc) {
		jerr = json_object_new_object();
		json_object_object_add(jerr, "traceback", json_object_get(tb));
		cli_out_set(c->out, "error", jerr);
	}
}

int cli_agent_call(struct cli_ctx *c, const char *verb, const char *const *kv,
		   size_t nkv, unsigned int timeout_ms, struct json_object **resp,
		   struct pyhot_err *err)
{
	struct pyhot_client_req req;
	struct pyhot_err e;
	pid_t pid = c->args->pid;
	char tmo[32];
	int safe_point = strcmp(verb, "ping") != 0 && strcmp(verb, "detach") != 0;
	unsigned int io_ms = timeout_ms;
	size_t i;
	int r;

	*resp = NULL;
	pyhot_client_req_init(&req, verb);
	for (i = 0; i + 1 < nkv; i += 2)
		if (pyhot_client_req_add(&req, kv[i], kv[i + 1]) < 0)
			return pyhot_err_set(err, PYHOT_ERR_USAGE, 0, pid, verb,
					     "too many arguments");
	if (safe_point) {
		snprintf(tmo, sizeof(tmo), "%u", timeout_ms);
		if (pyhot_client_req_add(&req, "timeout_ms", tmo) < 0)
			return pyhot_err_set(err, PYHOT_ERR_USAGE, 0, pid, verb,
					     "too many arguments");
		/* The agent answers "timeout" itself; leave it room to. */
		io_ms = timeout_ms + 2000;
	}
	pyhot_err_init(&e);
	r = pyhot_client_call(pid, c->sock, &req, io_ms, resp, &e);
	if (r < 0) {
		if (pyhot_client_no_agent(&e)) {
			pyhot_err_set(err, PYHOT_ERR_FAILED, e.sys_errno, pid, verb,
				      "pid %d is not attached (no agent at %s)", (int)pid,
				      c->sock);
			pyhot_err_hint(err, "run: pyhot attach %d", (int)pid);
			return -PYHOT_ERR_FAILED;
		}
		if (err->kind == PYHOT_OK)
			*err = e;
		if (e.kind == PYHOT_ERR_TIMEOUT && safe_point) {
			pyhot_err_hint(err, "the agent in pid %d did not answer within %.1f s; "
				       "see the main thread's stack above, or retry with a "
				       "longer --timeout", (int)pid, io_ms / 1000.0);
			report_stuck(c);
		}
		return r;
	}
	r = pyhot_client_resp_check(*resp, pid, verb, err);
	if (r == 0)
		return 0;
	report_traceback(c, *resp);
	if (err->kind == PYHOT_ERR_TIMEOUT) {
		/* The agent's hint speaks of its request key; ours of --timeout. */
		err->hint[0] = '\0';
		pyhot_err_hint(err, "pid %d is unchanged; its main thread holds the GIL in C "
			       "code: wait until it returns to Python and retry, or raise "
			       "--timeout", (int)pid);
		report_stuck(c);
	}
	return r;
}
