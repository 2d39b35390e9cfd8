/*
 * ctx.c: the context every command works in (struct cli_ctx): the target
 * as inspected (a process, not one of its threads or a kernel thread),
 * where its agent listens, and one request to that agent with its errors
 * explained (what was slow when it timed out; a main thread stuck in C gets
 * its native stack reported). The wire itself is client.c.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json.h>

#include "client.h"
#include "pyhot_log.h"
#include "pyhot_proto.h"

/* The task flag of a kernel thread (PF_KTHREAD in the kernel's sched.h),
 * field 9 of /proc/PID/stat. */
#define CLI_PF_KTHREAD 0x00200000UL

int cli_proc_parse_tgid(const char *status_text, pid_t *tgid)
{
	const char *p = pyhot_client_status_field(status_text, "Tgid:");
	int v;

	if (!p || sscanf(p, "%d", &v) != 1 || v <= 0)
		return -1;
	*tgid = (pid_t)v;
	return 0;
}

int cli_proc_parse_stat_flags(const char *stat_text, unsigned long *flags)
{
	/* "pid (comm) state ppid pgrp session tty_nr tpgid flags ...": comm
	 * may hold spaces and parentheses, so start after the last ')'. */
	const char *p = strrchr(stat_text, ')');

	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %lu", flags) != 1)
		return -1;
	return 0;
}

/* A small /proc file of pid into buf; -1 when it cannot be read. */
static int proc_read(pid_t pid, const char *name, char *buf, size_t len)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

/*
 * pyhot works on a process: a thread id (which /proc also answers to, and
 * whose agent socket no later command would find) and a kernel thread
 * (no user space at all) are refused here, with what they are. What cannot
 * be read is left to the inspection to explain.
 */
static int check_process(const struct cli_args *a, const struct pyhot_target *t,
			 struct pyhot_err *err)
{
	char text[4096], comm[64] = "";
	unsigned long flags = 0;
	pid_t tgid = 0;

	/* The inspection read its Tgid and comm already. */
	if (t) {
		snprintf(comm, sizeof(comm), "%s", t->comm);
		tgid = t->tgid;
	} else {
		if (proc_read(a->pid, "comm", comm, sizeof(comm)) == 0)
			comm[strcspn(comm, "\n")] = '\0';
		if (proc_read(a->pid, "status", text, sizeof(text)) != 0 ||
		    cli_proc_parse_tgid(text, &tgid) != 0)
			tgid = 0;
	}
	if (proc_read(a->pid, "stat", text, sizeof(text)) == 0 &&
	    cli_proc_parse_stat_flags(text, &flags) == 0 && (flags & CLI_PF_KTHREAD)) {
		pyhot_err_set(err, PYHOT_ERR_ATTACH, 0, a->pid, "inspect",
			      "pid %d (%s) is a kernel thread, not a Python process",
			      (int)a->pid, comm);
		pyhot_err_hint(err, "give the pid of a Python process (pyhot ps lists them)");
		return -PYHOT_ERR_ATTACH;
	}
	if (tgid && tgid != a->pid) {
		pyhot_err_set(err, PYHOT_ERR_USAGE, 0, a->pid, "inspect",
			      "%d is a thread (%s) of pid %d, not a process", (int)a->pid,
			      comm, (int)tgid);
		pyhot_err_hint(err, "give the process id: pyhot %s %d", cli_cmd_name(a->cmd),
			       (int)tgid);
		return -PYHOT_ERR_USAGE;
	}
	return 0;
}

/* A request to c's agent begun (pyhot_client_start()): through
 * /proc/PID/root, or directly when c->direct; over the connection its last
 * request kept when there is one. */
static int ctx_call_start(struct cli_ctx *c, const struct pyhot_client_req *req,
			  unsigned int timeout_ms, struct pyhot_client_conn *conn,
			  struct pyhot_err *err)
{
	char full[PATH_MAX];
	pid_t pid = c->args->pid;

	if (c->direct)
		snprintf(full, sizeof(full), "%s", c->sock);
	else if (pyhot_client_root_path(pid, c->sock, full, sizeof(full), err) < 0)
		return -PYHOT_ERR_FAILED;
	return pyhot_client_start_on(&c->kept, pid, full, c->sock, req, timeout_ms, conn,
				     err);
}

int cli_ctx_call(struct cli_ctx *c, const struct pyhot_client_req *req,
		 unsigned int timeout_ms, struct json_object **resp,
		 struct pyhot_err *err)
{
	struct pyhot_client_conn conn;
	int r;

	*resp = NULL;
	conn.fd = -1;
	r = ctx_call_start(c, req, timeout_ms, &conn, err);
	if (r == 0)
		r = pyhot_client_conn_wait(&conn, resp, err);
	pyhot_client_conn_close(&conn);
	return r < 0 ? r : 0;
}

/*
 * A target whose /proc files we may not read (not dumpable: a program run
 * by `python -m pyhot run` may set that) can still have an agent it started
 * itself: one at our euid's socket path for that pid, in our namespace,
 * that answers a ping. The socket directory is ours alone (0700) and the
 * agent checks SO_PEERCRED, so answering proves the same user. 0 when found
 * (c->t filled from the ping), -1 otherwise.
 */
static int ctx_direct(struct cli_ctx *c, pid_t pid)
{
	struct pyhot_client_req req;
	struct json_object *resp = NULL, *v;
	struct pyhot_err e;
	int r;

	if (pyhot_client_sock_path(c->sock, sizeof(c->sock), (unsigned int)geteuid(),
				   pid) < 0)
		return -1;
	pyhot_client_req_init(&req, "ping");
	pyhot_err_init(&e);
	if (pyhot_client_call_at(pid, c->sock, c->sock, &req, 1000, &resp, &e) < 0)
		return -1;
	r = pyhot_client_resp_check(resp, pid, "ping", &e);
	memset(&c->t, 0, sizeof(c->t));
	c->t.pid = c->t.nspid = pid;
	c->t.uid = geteuid();
	c->t.state = 'S';
	if (json_object_object_get_ex(resp, "python_version", &v) &&
	    sscanf(json_object_get_string(v), "%d.%d", &c->t.py_major,
		   &c->t.py_minor) != 2)
		c->t.py_major = 0;
	json_object_put(resp);
	if (r < 0 || c->t.py_major == 0)
		return -1;
	c->direct = 1;
	return 0;
}

/* cli_ctx_init_seen(), or with light cli_ctx_init_light(). */
static int ctx_init(struct cli_ctx *c, const struct cli_args *a, struct cli_out *o,
		    const struct pyhot_target *seen, int light, struct pyhot_err *err)
{
	struct pyhot_err e;
	pid_t nspid;
	int r, refused;

	memset(c, 0, sizeof(*c));
	c->args = a;
	c->out = o;
	pyhot_err_init(&e);
	if (seen && seen->pid == a->pid) {
		c->t = *seen;
		r = 0;
	} else if (light) {
		r = pyhot_target_inspect_light(a->pid, &c->t, &e);
	} else {
		r = pyhot_target_inspect(a->pid, &c->t, &e);
	}
	/* A kernel thread or a thread's id is refused first, whatever the
	 * inspection found. */
	refused = check_process(a, r == 0 ? &c->t : NULL, err);
	if (refused < 0)
		return refused;
	if (r < 0 && (e.sys_errno == EACCES || e.sys_errno == EPERM) &&
	    ctx_direct(c, a->pid) == 0) {
		PYHOT_TRACE("cli", "pid %d: /proc closed, its own agent at %s",
			    (int)a->pid, c->sock);
		return 0;
	}
	if (r < 0) {
		*err = e;
		return r;
	}
	nspid = c->t.nspid > 0 ? c->t.nspid : a->pid;
	if (pyhot_client_sock_path(c->sock, sizeof(c->sock), c->t.euid, nspid) < 0)
		return pyhot_err_set(err, PYHOT_ERR_FAILED, ENAMETOOLONG, a->pid, "connect",
				     "socket path too long");
	PYHOT_TRACE("cli", "pid %d: state %c, nspid %d, euid %u, python %d.%d%s, socket %s",
		    (int)a->pid, c->t.state ? c->t.state : '?', (int)nspid,
		    (unsigned int)c->t.euid, c->t.py_major, c->t.py_minor,
		    c->t.py_static ? " static" : "", c->sock);
	return 0;
}

int cli_ctx_init(struct cli_ctx *c, const struct cli_args *a, struct cli_out *o,
		 struct pyhot_err *err)
{
	return ctx_init(c, a, o, NULL, 0, err);
}

int cli_ctx_init_seen(struct cli_ctx *c, const struct cli_args *a, struct cli_out *o,
		      const struct pyhot_target *seen, struct pyhot_err *err)
{
	return ctx_init(c, a, o, seen, 0, err);
}

int cli_ctx_init_light(struct cli_ctx *c, const struct cli_args *a, struct cli_out *o,
		       struct pyhot_err *err)
{
	return ctx_init(c, a, o, NULL, 1, err);
}

/* t's agent path as t sees it (sock) and through /proc/PID/root (full).
 * 0, or -1 when too long. */
static int agent_paths(const struct pyhot_target *t, char *sock, size_t slen, char *full,
		       size_t flen)
{
	return pyhot_client_sock_path(sock, slen, t->euid,
				      t->nspid > 0 ? t->nspid : t->pid) == 0 &&
	       pyhot_client_root_path(t->pid, sock, full, flen, NULL) == 0 ? 0 : -1;
}

int cli_target_agent_socket(const struct pyhot_target *t)
{
	char sock[256], full[PATH_MAX];
	struct stat st;

	return agent_paths(t, sock, sizeof(sock), full, sizeof(full)) == 0 &&
	       lstat(full, &st) == 0 && S_ISSOCK(st.st_mode);
}

int cli_target_agent_listening(const struct pyhot_target *t)
{
	char sock[256], full[PATH_MAX];
	struct sockaddr_un sa;
	socklen_t salen;
	struct pyhot_err e;
	int dirfd, fd, r = 0;

	pyhot_err_init(&e);
	if (agent_paths(t, sock, sizeof(sock), full, sizeof(full)) < 0 ||
	    pyhot_client_sock_open(t->pid, full, sock, t->euid, &sa, &salen, &dirfd, &e) < 0)
		return 0;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, salen) == 0)
		r = pyhot_client_peer_check(fd, t->pid, sock, t->euid, &e) == 0;
	if (fd >= 0)
		close(fd);
	close(dirfd);
	return r;
}

int cli_ctx_agent_expected(const struct cli_ctx *c)
{
	struct pyhot_err e;

	if (c->direct)
		return 1;   /* it answered a ping already (ctx_direct) */
	/* Stopped, a zombie, traced, opted out: the usual way refuses it at
	 * once (pyhot_target_check()), where a request would wait for its
	 * timeout or go where the one-process command does not. */
	pyhot_err_init(&e);
	if (pyhot_target_check(&c->t, &e) < 0)
		return 0;
	return cli_target_agent_socket(&c->t);
}

void cli_gate_init(struct cli_gate *g, size_t n)
{
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->all_passed, NULL);
	g->left = n;
}

void cli_gate_destroy(struct cli_gate *g)
{
	pthread_cond_destroy(&g->all_passed);
	pthread_mutex_destroy(&g->lock);
}

void cli_ctx_gate_pass(struct cli_ctx *c, int wait)
{
	struct cli_gate *g = c->attach_gate;

	if (!g)
		return;
	pthread_mutex_lock(&g->lock);
	if (!c->gate_passed) {
		c->gate_passed = 1;
		if (--g->left == 0)
			pthread_cond_broadcast(&g->all_passed);
	}
	while (wait && g->left)
		pthread_cond_wait(&g->all_passed, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

int cli_sock_dir_explain(struct cli_ctx *c, struct pyhot_err *err)
{
	char full[PATH_MAX];
	struct sockaddr_un sa;
	socklen_t salen;
	struct pyhot_err e;
	unsigned int euid;
	pid_t pid = c->args->pid;
	int n, dirfd = -1;

	pyhot_err_init(&e);
	n = snprintf(full, sizeof(full), "/proc/%d/root%s", (int)pid, c->sock);
	if (n < 0 || (size_t)n >= sizeof(full) ||
	    pyhot_client_target_euid(pid, &euid, &e) < 0)
		return 0;
	if (pyhot_client_sock_open(pid, full, c->sock, euid, &sa, &salen, &dirfd, &e) == 0)
		close(dirfd);
	if (strcmp(e.step, PYHOT_CLIENT_TRUST_STEP) != 0)
		return 0;
	*err = e;
	return -(int)e.kind;
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

int cli_timeout_short(unsigned int timeout_ms)
{
	return timeout_ms < CLI_SHORT_TIMEOUT_MS;
}

enum cli_slow cli_timeout_explain(struct cli_ctx *c, struct pyhot_err *err, int answered,
				  unsigned int wait_ms)
{
	pid_t pid = c->args->pid;
	unsigned int tmo = c->args->timeout_ms;

	if (answered ? cli_timeout_short(tmo) : cli_timeout_short(wait_ms)) {
		/* The agent's message guesses at a stuck main thread, ours at a
		 * busy agent; the real cause is the --timeout. */
		snprintf(err->msg, sizeof(err->msg), "%s: no %s within %u ms in pid %d: "
			 "--timeout %.3f s is too short", err->step,
			 answered ? "safe point" : "answer from the agent",
			 answered ? tmo : wait_ms, (int)pid, tmo / 1000.0);
		err->hint[0] = '\0';
		pyhot_err_hint(err, "pid %d is unchanged; reaching a safe point takes about a "
			       "millisecond, and longer while the main thread holds the GIL "
			       "in C: use --timeout 1 or more", (int)pid);
		return CLI_SLOW_TOO_SHORT;
	}
	if (answered)
		return CLI_SLOW_SAFE_POINT;
	err->hint[0] = '\0';
	if (strcmp(err->step, "connect") == 0) {
		pyhot_err_hint(err, "pid %d is unchanged: the agent did not accept the "
			       "connection within %.1f s; retry", (int)pid, wait_ms / 1000.0);
		return CLI_SLOW_ACCEPT;
	}
	if (strcmp(err->step, "send") == 0) {
		pyhot_err_hint(err, "pid %d is unchanged: the agent did not read the request: "
			       "every connection it serves at once was taken (other "
			       "clients of %s), or its thread is stuck; retry",
			       (int)pid, c->sock);
		return CLI_SLOW_READ;
	}
	pyhot_err_hint(err, "the agent in pid %d read the request but did not answer, "
		       "though it answers \"timeout\" itself when no safe point comes: "
		       "its own thread may be stuck; see pyhot stack %d", (int)pid,
		       (int)pid);
	return CLI_SLOW_ANSWER;
}

int cli_agent_call_start(struct cli_ctx *c, const char *verb, const char *const *kv,
			 size_t nkv, unsigned int timeout_ms, struct cli_call *call,
			 struct pyhot_err *err)
{
	struct pyhot_client_req req;
	pid_t pid = c->args->pid;
	char tmo[32];
	int safe_point = strcmp(verb, "ping") != 0 && strcmp(verb, "detach") != 0;
	size_t i;

	memset(call, 0, sizeof(*call));
	call->conn.fd = -1;
	call->verb = verb;
	call->io_ms = timeout_ms;
	pyhot_err_init(&call->e);
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
		call->io_ms = timeout_ms + 2000;
	}
	call->r = ctx_call_start(c, &req, call->io_ms, &call->conn, &call->e);
	return 0;
}

void cli_call_continue(struct cli_call *call)
{
	if (call->r == 0)
		call->r = pyhot_client_conn_continue(&call->conn, &call->resp, &call->e);
}

void cli_call_keep(struct cli_ctx *c, struct cli_call *call)
{
	if (call->r == 1)
		pyhot_client_keep(&call->conn, call->resp, &c->kept);
}

void cli_ctx_release(struct cli_ctx *c)
{
	pyhot_client_kept_close(&c->kept);
}

int cli_agent_call_end(struct cli_ctx *c, struct cli_call *call,
		       struct json_object **resp, struct pyhot_err *err)
{
	const char *verb = call->verb;
	pid_t pid = c->args->pid;
	unsigned int io_ms = call->io_ms;
	int r = call->r < 0 ? call->r : 0;

	pyhot_client_conn_close(&call->conn);
	*resp = call->resp;
	call->resp = NULL;
	if (r < 0) {
		if (pyhot_client_no_agent(&call->e)) {
			c->no_agent = 1;
			pyhot_err_set(err, PYHOT_ERR_FAILED, call->e.sys_errno, pid, verb,
				      "pid %d is not attached (no agent at %s)", (int)pid,
				      c->sock);
			pyhot_err_hint(err, "run: pyhot attach %d", (int)pid);
			return -PYHOT_ERR_FAILED;
		}
		if (err->kind == PYHOT_OK)
			*err = call->e;
		/* No answer: what was slow is the agent or its socket, not
		 * the main thread (the agent answers "timeout" for that). */
		if (call->e.kind == PYHOT_ERR_TIMEOUT)
			(void)cli_timeout_explain(c, err, 0, io_ms);
		return r;
	}
	r = pyhot_client_resp_check(*resp, pid, verb, err);
	if (r == 0)
		return 0;
	report_traceback(c, *resp);
	if (err->kind == PYHOT_ERR_TIMEOUT &&
	    cli_timeout_explain(c, err, 1, io_ms) == CLI_SLOW_SAFE_POINT) {
		/* The agent's hint speaks of its request key; ours of --timeout. */
		err->hint[0] = '\0';
		pyhot_err_hint(err, "pid %d is unchanged; its main thread holds the GIL in C "
			       "code: wait until it returns to Python and retry, raise "
			       "--timeout, or stop that call with pyhot interrupt %d "
			       "(SIGINT: what Ctrl-C would do)", (int)pid, (int)pid);
		report_stuck(c);
	}
	return r;
}

int cli_agent_call(struct cli_ctx *c, const char *verb, const char *const *kv,
		   size_t nkv, unsigned int timeout_ms, struct json_object **resp,
		   struct pyhot_err *err)
{
	struct cli_call call;
	int r;

	*resp = NULL;
	r = cli_agent_call_start(c, verb, kv, nkv, timeout_ms, &call, err);
	if (r < 0)
		return r;
	if (call.r == 0)
		call.r = pyhot_client_conn_wait(&call.conn, &call.resp, &call.e);
	return cli_agent_call_end(c, &call, resp, err);
}
