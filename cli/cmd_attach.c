/* cmd_attach.c: pyhot attach, and the "attach when needed" of other commands. */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <json.h>

#include "client.h"
#include "cmd_util.h"
#include "pyhot_log.h"
#include "pyhot_proto.h"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* A double with three decimals in the JSON text ("2.145", not 2.1450000000000002). */
static struct json_object *jms(double v)
{
	char buf[64];

	snprintf(buf, sizeof(buf), "%.3f", v);
	return json_object_new_double_s(v, buf);
}

/* One ping; 0 when the agent answered ok, *resp set. */
static int ping_wait(struct cli_ctx *c, unsigned int timeout_ms, unsigned int wait_ms,
		     struct json_object **resp, struct pyhot_err *err)
{
	char n[16], w[16];
	const char *kv[4];
	size_t nkv = 0;
	int r;

	if (c->args->history) {
		snprintf(n, sizeof(n), "%u", c->args->history);
		kv[nkv++] = "history";
		kv[nkv++] = n;
	}
	if (wait_ms) {
		snprintf(w, sizeof(w), "%u", wait_ms);
		kv[nkv++] = "wait_baseline_ms";
		kv[nkv++] = w;
	}
	r = cli_agent_call(c, "ping", kv, nkv, timeout_ms + wait_ms, resp, err);

	if (r < 0 && *resp) {
		json_object_put(*resp);
		*resp = NULL;
	}
	return r;
}

/* How long a ping may wait for the baseline, ending by deadline. */
static unsigned int baseline_wait_ms(double deadline)
{
	double left = deadline - now_ms();

	if (left >= PYHOT_PING_WAIT_MAX_MS)
		return PYHOT_PING_WAIT_MAX_MS;
	return left > 1 ? (unsigned int)left : 1;
}

static int ping(struct cli_ctx *c, unsigned int timeout_ms, struct json_object **resp,
		struct pyhot_err *err)
{
	return ping_wait(c, timeout_ms, 0, resp, err);
}

/* Whether the agent says its baseline is recorded ("baseline" is absent
 * from an older agent: then it cannot say). */
static int baseline_ready(struct json_object *resp)
{
	struct json_object *v;

	return !resp || !json_object_object_get_ex(resp, "baseline", &v) ||
	       json_object_get_boolean(v);
}

static void explain_boot(struct cli_ctx *c, long ret, struct pyhot_err *err)
{
	pid_t pid = c->args->pid;
	int e = (int)-ret;

	/* The agent refused its socket directory: say whose it is (the
	 * command's own check passed a moment ago, so it changed since). */
	if ((e == ENOTDIR || e == EPERM || e == EACCES) && cli_sock_dir_explain(c, err) < 0) {
		pyhot_err_hint(err, "the payload is loaded but idle; pid %d is otherwise "
			       "unchanged", (int)pid);
		return;
	}
	if (e == EAGAIN || e == ENOMEM)
		pyhot_err_set(err, PYHOT_ERR_ATTACH, e, pid, "attach",
			      "agent in pid %d could not start its thread: %s", (int)pid,
			      strerror(e));
	else
		pyhot_err_set(err, PYHOT_ERR_ATTACH, e, pid, "attach",
			      "agent in pid %d could not bind %s: %s", (int)pid, c->sock,
			      strerror(e));
	if (e == EROFS || e == EACCES || e == EPERM || e == ENOSPC)
		pyhot_err_hint(err, "the agent needs a writable /tmp inside the target's "
			       "mount namespace (it creates %s)", c->sock);
	else if (e == EADDRINUSE)
		pyhot_err_hint(err, "something else listens at %s; remove it if it is stale",
			       c->sock);
	else
		pyhot_err_hint(err, "the payload is loaded but idle; pid %d is otherwise "
			       "unchanged", (int)pid);
}

/* An agent that answers is reused: no ptrace at all. Returns 1 with *resp
 * when one answered, 0 when none listens, or an error (one seems to be
 * there but does not answer). */
static int reuse_agent(struct cli_ctx *c, struct json_object **resp,
		       struct pyhot_err *err)
{
	const struct cli_args *a = c->args;
	struct pyhot_err pe;

	pyhot_err_init(&pe);
	if (ping(c, a->timeout_ms < 1000 ? a->timeout_ms : 1000, resp, &pe) == 0)
		return 1;
	if (pyhot_client_no_agent(&pe))
		return 0;
	*err = pe;
	pyhot_err_hint(err, "an agent seems to be in pid %d but does not answer; "
		       "retry, or check the process with pyhot status %d",
		       (int)a->pid, (int)a->pid);
	return -(int)pe.kind;
}

/* The payload's path, with an error that says which attach needed it:
 * "payload: ... (attaching to pid N)". */
static int find_payload(struct cli_ctx *c, char *path, size_t len,
			struct pyhot_err *err)
{
	pid_t pid = c->args->pid;
	struct pyhot_err pe;
	int r;

	pyhot_err_init(&pe);
	r = cli_payload_find(path, len, &pe);
	if (r < 0) {
		pyhot_err_set(err, pe.kind, pe.sys_errno, pid, pe.step, "%s (attaching to pid %d)",
			      pe.msg + strlen(pe.step) + 2, (int)pid);
		pyhot_err_hint(err, "%s", pe.hint);
	}
	return r;
}

/* Load the payload and start its agent; *res says how it went. */
static int inject_agent(struct cli_ctx *c, struct pyhot_inject_result *res,
			struct pyhot_err *err)
{
	const struct cli_args *a = c->args;
	pid_t pid = a->pid;
	struct pyhot_inject_opts opts;
	char payload[PATH_MAX], boot_arg[512];
	int r, i;

	r = find_payload(c, payload, sizeof(payload), err);
	if (r < 0)
		return r;
	if (a->history)
		snprintf(boot_arg, sizeof(boot_arg), "sock=%s\nhistory=%u\n", c->sock,
			 a->history);
	else
		snprintf(boot_arg, sizeof(boot_arg), "sock=%s\n", c->sock);
	memset(&opts, 0, sizeof(opts));
	opts.payload_path = payload;
	opts.boot_symbol = PYHOT_BOOT_SYMBOL;
	opts.boot_arg = boot_arg;
	opts.timeout_ms = a->timeout_ms;
	opts.build_id = cli_payload_build_id();
	cli_out_verbose(c->out, "injecting %s into pid %d", payload, (int)pid);
	r = pyhot_inject(pid, &opts, res, err);
	if (r < 0) {
		/* A SIGKILLed target takes a moment to become a zombie. */
		for (i = 0; i < 100 && !pyhot_target_exited(pid); i++)
			sleep_ms(1);
		if (i < 100)
			pyhot_err_hint(err, "pid %d exited during the attach", (int)pid);
		return r;
	}
	cli_out_verbose(c->out, "borrowed thread %d (%u attempt%s), stopped %.3f ms, "
			"boot returned %ld%s", (int)res->tid, res->attempts,
			res->attempts == 1 ? "" : "s", res->stopped_ms, res->boot_ret,
			res->reused ? " (payload was already mapped)" : "");
	if (res->boot_ret < 0) {
		explain_boot(c, res->boot_ret, err);
		return -PYHOT_ERR_ATTACH;
	}
	return 0;
}

/* The socket is bound by the boot function; the agent thread accepts as
 * soon as it runs. Wait for its first answer (*resp), until deadline. */
static int wait_agent(struct cli_ctx *c, const struct pyhot_inject_result *res,
		      double deadline, struct json_object **resp, struct pyhot_err *err)
{
	pid_t pid = c->args->pid;
	struct pyhot_err pe;

	for (;;) {
		pyhot_err_init(&pe);
		/* The first answer comes once the baseline is pinned. */
		if (ping_wait(c, 1000, baseline_wait_ms(deadline), resp, &pe) == 0)
			return 0;
		if (now_ms() >= deadline || (!pyhot_client_no_agent(&pe) &&
					     pe.kind != PYHOT_ERR_TIMEOUT))
			break;
		sleep_ms(1);
	}
	*err = pe;
	err->kind = pe.kind == PYHOT_ERR_TIMEOUT ? PYHOT_ERR_TIMEOUT : PYHOT_ERR_ATTACH;
	if (res->boot_ret == PYHOT_BOOT_RUNNING)
		pyhot_err_hint(err, "an agent was already running in pid %d but "
			       "does not answer at %s", (int)pid, c->sock);
	else
		pyhot_err_hint(err, "the agent in pid %d was started but does not "
			       "answer at %s; retry pyhot attach %d", (int)pid,
			       c->sock, (int)pid);
	return -(int)err->kind;
}

/* The engine records the source of every module at its first safe point
 * (the agent takes the GIL for it at once). Until then an edit would
 * become part of the baseline and never be seen as a change: wait for it,
 * bounded, so that every edit after attach counts. *resp is the last
 * answer (NULL when a ping failed). */
static void wait_baseline(struct cli_ctx *c, double deadline, struct json_object **resp)
{
	struct pyhot_err pe;

	while (!baseline_ready(*resp) && now_ms() < deadline) {
		json_object_put(*resp);
		*resp = NULL;
		pyhot_err_init(&pe);
		/* The agent answers as soon as the baseline is pinned. */
		if (ping_wait(c, 1000, baseline_wait_ms(deadline), resp, &pe) < 0)
			break;
	}
	if (*resp && !baseline_ready(*resp))
		fprintf(c->out->err, "pyhot: warning: pid %d reached no safe point within "
			"%.1f s: the source of its modules is not recorded yet, and a file "
			"edited before it is will not be seen as changed\n",
			(int)c->args->pid, c->args->timeout_ms / 1000.0);
}

/* The "attach" fields of the JSON document; res is NULL when the agent
 * was reused. */
static struct json_object *attach_json(struct cli_ctx *c, const char *version,
				       int reused, double elapsed,
				       const struct pyhot_inject_result *res)
{
	struct json_object *info, *agent, *py, *inj;

	info = json_object_new_object();
	py = json_object_new_object();
	json_object_object_add(py, "version", json_object_new_string(version));
	json_object_object_add(py, "static", json_object_new_boolean(c->t.py_static));
	json_object_object_add(py, "exe", json_object_new_string(c->t.exe));
	json_object_object_add(py, "libpython", json_object_new_string(c->t.libpython));
	json_object_object_add(info, "python", py);
	agent = json_object_new_object();
	json_object_object_add(agent, "socket", json_object_new_string(c->sock));
	json_object_object_add(agent, "reused", json_object_new_boolean(reused));
	json_object_object_add(info, "agent", agent);
	json_object_object_add(info, "elapsed_ms", jms(elapsed));
	if (res) {
		inj = json_object_new_object();
		json_object_object_add(inj, "tid", json_object_new_int(res->tid));
		json_object_object_add(inj, "stopped_ms", jms(res->stopped_ms));
		json_object_object_add(inj, "attempts", json_object_new_int((int)res->attempts));
		json_object_object_add(inj, "payload_was_mapped",
				       json_object_new_boolean(res->reused));
		json_object_object_add(inj, "boot_ret", json_object_new_int64(res->boot_ret));
		json_object_object_add(info, "inject", inj);
	}
	return info;
}

/* Say what the attach did: the JSON fields (at the top for "pyhot attach",
 * under "attach" for the others) and one line. */
static void report_attach(struct cli_ctx *c, struct json_object *resp, int reused,
			  double elapsed, const struct pyhot_inject_result *res)
{
	const struct cli_args *a = c->args;
	pid_t pid = a->pid;
	struct json_object *info;
	char version[64];

	cli_fmt_version(version, sizeof(version), resp, &c->t);
	info = attach_json(c, version, reused, elapsed, res);
	if (a->cmd == CLI_CMD_ATTACH) {
		json_object_object_foreach(info, k, v)
			cli_out_set(c->out, k, json_object_get(v));
	} else {
		cli_out_set(c->out, "attach", json_object_get(info));
	}
	json_object_put(info);
	if (reused && a->cmd != CLI_CMD_ATTACH)
		cli_out_verbose(c->out, "agent in pid %d already running at %s", (int)pid,
				c->sock);
	else if (reused)
		cli_out_info(c->out, "attached to pid %d: CPython %s (%s), agent at %s "
			     "(already running, %.1f ms)", (int)pid, version,
			     c->t.py_static ? "static libpython" : "shared libpython",
			     c->sock, elapsed);
	else
		cli_out_info(c->out, "attached to pid %d: CPython %s (%s), agent at %s "
			     "(%.1f ms, thread %d stopped %.2f ms)", (int)pid, version,
			     c->t.py_static ? "static libpython" : "shared libpython",
			     c->sock, elapsed, (int)res->tid, res->stopped_ms);
}

static int attach_ensure(struct cli_ctx *c, int *reused, struct pyhot_err *err)
{
	struct pyhot_inject_result res;
	struct json_object *resp = NULL;
	double t0 = now_ms();
	int r;

	*reused = 0;
	if (c->agent_seen) {
		*reused = 1;
		return 0;
	}
	memset(&res, 0, sizeof(res));
	if (c->t.light) {
		/* A context made for a request alone: the check and the
		 * attach need the executable and its maps. */
		r = pyhot_target_inspect(c->args->pid, &c->t, err);
		if (r < 0)
			return r;
	}
	r = pyhot_target_check(&c->t, err);
	if (r < 0)
		return r;
	r = reuse_agent(c, &resp, err);
	if (r < 0)
		return r;
	if (r == 1) {
		*reused = 1;
	} else {
		r = inject_agent(c, &res, err);
		if (r == 0)
			/* The timeout counts from our turn: another step's
			 * injection may have held us (steps.h). */
			r = wait_agent(c, &res, t0 + res.lock_wait_ms + c->args->timeout_ms,
				       &resp, err);
		if (r < 0)
			return r;
		wait_baseline(c, t0 + res.lock_wait_ms + c->args->timeout_ms, &resp);
	}
	report_attach(c, resp, *reused, now_ms() - t0, *reused ? NULL : &res);
	if (resp)
		json_object_put(resp);
	c->agent_seen = 1;
	return 0;
}

int cli_attach_ensure(struct cli_ctx *c, int *reused, struct pyhot_err *err)
{
	int r = attach_ensure(c, reused, err);

	/* Attached or not, no request of ours before the others' attaches
	 * (several processes: cli_gate). */
	cli_ctx_gate_pass(c, 1);
	return r;
}

int cli_attach_quiet(struct cli_ctx *c, struct pyhot_err *err)
{
	int reused, quiet, r;

	quiet = c->out->quiet;
	c->out->quiet = 1;
	r = cli_attach_ensure(c, &reused, err);
	c->out->quiet = quiet;
	if (r == 0 && !reused)
		cli_out_verbose(c->out, "attached to pid %d, agent at %s", (int)c->args->pid,
				c->sock);
	return r;
}

int cli_cmd_attach(struct cli_ctx *c, struct pyhot_err *err)
{
	int reused;

	return cli_attach_ensure(c, &reused, err);
}
