/* cmd_status.c: pyhot status and pyhot detach. */
#include "cli.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include <json.h>

#include "client.h"

/* A stopped or dead target cannot answer: say so before trying. */
static int check_alive(struct cli_ctx *c, struct pyhot_err *err)
{
	if (c->t.state == 'T' || c->t.state == 't' || c->t.state == 'Z' ||
	    c->t.state == 'X') {
		int r = pyhot_target_check(&c->t, err);

		if (r < 0)
			return r;
	}
	return 0;
}

/* The agent's fields without the protocol's own ("proto", "ok"). */
static struct json_object *payload_fields(struct json_object *resp)
{
	struct json_object *o = json_object_new_object();

	json_object_object_foreach(resp, k, v) {
		if (strcmp(k, "proto") == 0 || strcmp(k, "ok") == 0)
			continue;
		json_object_object_add(o, k, json_object_get(v));
	}
	return o;
}

int cli_cmd_status(struct cli_ctx *c, struct pyhot_err *err)
{
	static const char *const leaks_kv[] = { "leaks", "1" };
	struct json_object *resp = NULL;
	int r;

	r = check_alive(c, err);
	if (r < 0)
		return r;
	r = cli_agent_call(c, "status", c->args->leaks ? leaks_kv : NULL,
			   c->args->leaks ? 2 : 0, c->args->timeout_ms, &resp, err);
	if (r == 0) {
		cli_out_set(c->out, "status", payload_fields(resp));
		if (!c->out->json && !c->out->quiet) {
			/* the generations get a table of their own */
			struct json_object *plain = payload_fields(resp);

			json_object_object_del(plain, "history");
			json_object_object_del(plain, "leaks");
			cli_fmt_status(c->out->out, plain, c->args->pid);
			json_object_put(plain);
			cli_fmt_history(c->out->out, resp, c->args->verbose, c->out->color_out);
			cli_fmt_leaks(c->out->out, resp, c->args->pid);
		}
	}
	if (resp)
		json_object_put(resp);
	return r;
}

int cli_cmd_detach(struct cli_ctx *c, struct pyhot_err *err)
{
	struct json_object *resp = NULL;
	struct pyhot_client_req req;
	struct pyhot_err pe;
	struct timespec ts = { 0, 1000000 }, t0, now;
	int r, gone;

	r = check_alive(c, err);
	if (r < 0)
		return r;
	r = cli_agent_call(c, "detach", NULL, 0, c->args->timeout_ms, &resp, err);
	if (resp)
		json_object_put(resp);
	if (r < 0)
		return r;
	/* The agent answers, then stops and removes its socket: wait for that,
	 * so that an attach right after this one starts a fresh agent. */
	pyhot_client_req_init(&req, "ping");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (gone = 0; !gone;) {
		pyhot_err_init(&pe);
		resp = NULL;
		r = pyhot_client_call(c->args->pid, c->sock, &req, 200, &resp, &pe);
		if (resp)
			json_object_put(resp);
		if (r < 0 && pyhot_client_no_agent(&pe)) {
			gone = 1;
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 >
		    (long)c->args->timeout_ms)
			break;
		nanosleep(&ts, NULL);
	}
	if (!gone) {
		pyhot_err_set(err, PYHOT_ERR_UNCERTAIN, 0, c->args->pid, "detach",
			      "the agent in pid %d acknowledged but still answers at %s",
			      (int)c->args->pid, c->sock);
		pyhot_err_hint(err, "check with pyhot status %d", (int)c->args->pid);
		return -PYHOT_ERR_UNCERTAIN;
	}
	cli_out_set(c->out, "socket", json_object_new_string(c->sock));
	cli_out_info(c->out, "detached from pid %d: agent stopped, %s removed",
		     (int)c->args->pid, c->sock);
	return 0;
}
