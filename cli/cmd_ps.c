/*
 * cmd_ps.c: pyhot ps, the CPython processes of this machine: those pyhot
 * can attach to, with their agent if one answers, and the others with the
 * reason. Reads /proc only (pyhot_target_inspect); agents get a ping.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json.h>

#include "client.h"
#include "cmd_util.h"
#include "proctree.h"

#define PS_PING_MS 1000u
#define PS_CMDLINE_MAX 4096

struct ps_entry {
	struct pyhot_target t;
	pid_t ppid;
	int attachable;
	int agent;                 /* an agent answered a ping */
	const char *agent_state;   /* "answers", "none", "not-answering",
				    * "untrusted" (not the target's: not asked) */
	const char *reason_kind;   /* NULL when attachable */
	char reason[256];
	char user[64];
	char cmdline[PS_CMDLINE_MAX];
};

void cli_read_text(const char *path, char *buf, size_t len, int nul_to_space)
{
	/* open and read, not stdio: a tree's walk reads one such file per
	 * thread of every process, and fopen() adds an fstat() and a buffer
	 * to each. */
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t n = 0, i;
	ssize_t got;

	buf[0] = '\0';
	if (fd < 0)
		return;
	while (n < len - 1) {
		got = read(fd, buf + n, len - 1 - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		n += (size_t)got;
	}
	close(fd);
	buf[n] = '\0';
	if (nul_to_space)
		for (i = 0; i < n; i++)
			if (buf[i] == '\0')
				buf[i] = ' ';
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
}

static void user_name(uid_t uid, char *buf, size_t len)
{
	struct passwd pw, *res = NULL;
	char tmp[1024];

	if (getpwuid_r(uid, &pw, tmp, sizeof(tmp), &res) == 0 && res)
		snprintf(buf, len, "%s", res->pw_name);
	else
		snprintf(buf, len, "%u", (unsigned int)uid);
}

/* A name that says Python: "python3.11", "python", "python3.8d"... */
static int looks_like_python(const char *comm, const char *cmdline)
{
	const char *b = strrchr(cmdline, '/');
	char argv0[256];

	if (strncmp(comm, "python", 6) == 0)
		return 1;
	snprintf(argv0, sizeof(argv0), "%s", b ? b + 1 : cmdline);
	argv0[strcspn(argv0, " ")] = '\0';
	return strncmp(argv0, "python", 6) == 0;
}

/* Why pyhot_target_check() refuses t, in a few words. */
static void judge(struct ps_entry *e)
{
	const struct pyhot_target *t = &e->t;
	struct pyhot_err err;
	char path[64], comm[64];

	pyhot_err_init(&err);
	e->attachable = pyhot_target_check(t, &err) == 0;
	if (e->attachable) {
		if (geteuid() != 0 && t->uid != geteuid()) {
			e->attachable = 0;
			e->reason_kind = "other-user";
			snprintf(e->reason, sizeof(e->reason), "runs as %s, not as you", e->user);
		}
		return;
	}
	if (t->state == 'Z' || t->state == 'X') {
		e->reason_kind = "zombie";
		snprintf(e->reason, sizeof(e->reason), "a zombie: it exited and its parent "
			 "has not reaped it");
	} else if (t->tracer) {
		snprintf(path, sizeof(path), "/proc/%d/comm", (int)t->tracer);
		cli_read_text(path, comm, sizeof(comm), 0);
		e->reason_kind = "traced";
		snprintf(e->reason, sizeof(e->reason), "traced by pid %d (%s)", (int)t->tracer,
			 comm[0] ? comm : "?");
	} else if (t->state == 'T' || t->state == 't') {
		e->reason_kind = "stopped";
		snprintf(e->reason, sizeof(e->reason), "stopped (kill -CONT %d resumes it)",
			 (int)t->pid);
	} else if (t->opted_out) {
		e->reason_kind = "opted-out";
		snprintf(e->reason, sizeof(e->reason), "opted out of remote debugging "
			 "(PYTHON_DISABLE_REMOTE_DEBUG or -X disable_remote_debug)");
	} else if (t->py_major < 3 || (t->py_major == 3 && t->py_minor >= 0 &&
				       t->py_minor < 8)) {
		e->reason_kind = "too-old";
		snprintf(e->reason, sizeof(e->reason), "CPython %d.%d is too old (pyhot "
			 "needs 3.8 or newer)", t->py_major, t->py_minor);
	} else {
		const char *m = strchr(err.msg, ':');

		e->reason_kind = "refused";
		snprintf(e->reason, sizeof(e->reason), "%.200s", m ? m + 2 : err.msg);
	}
}

static void ping_agent(struct ps_entry *e)
{
	struct pyhot_client_req req;
	struct json_object *resp = NULL;
	struct pyhot_err err;
	unsigned int euid;
	char sock[256];
	int r;

	e->agent_state = "none";
	pyhot_err_init(&err);
	if (pyhot_client_target_euid(e->t.pid, &euid, &err) < 0)
		return;
	if (pyhot_client_sock_path(sock, sizeof(sock), euid,
				   e->t.nspid > 0 ? e->t.nspid : e->t.pid) < 0)
		return;
	pyhot_client_req_init(&req, "ping");
	r = pyhot_client_call(e->t.pid, sock, &req, PS_PING_MS, &resp, &err);
	if (r == 0)
		e->agent = pyhot_client_resp_check(resp, e->t.pid, "ping", &err) == 0;
	if (e->agent)
		e->agent_state = "answers";
	else if (strcmp(err.step, PYHOT_CLIENT_TRUST_STEP) == 0)
		e->agent_state = "untrusted";
	else if (!pyhot_client_no_agent(&err))
		e->agent_state = "not-answering";
	if (resp)
		json_object_put(resp);
}

/* Inspect one pid; 1 when it is a Python process to list. */
static int ps_one(pid_t pid, struct ps_entry *e)
{
	struct pyhot_err err;
	char path[64];
	int r;

	memset(e, 0, sizeof(*e));
	pyhot_err_init(&err);
	r = pyhot_target_inspect(pid, &e->t, &err);
	e->ppid = cli_proc_ppid(pid);
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	cli_read_text(path, e->cmdline, sizeof(e->cmdline), 1);
	if (r < 0) {
		/* Not ours to read (another user): list it when its name says
		 * Python. A process that went away is not listed. */
		if (err.sys_errno != EACCES && err.sys_errno != EPERM)
			return 0;
		if (!looks_like_python(e->t.comm, e->cmdline))
			return 0;
		user_name(e->t.uid, e->user, sizeof(e->user));
		e->reason_kind = "other-user";
		snprintf(e->reason, sizeof(e->reason), "runs as %s: no permission to "
			 "read its memory map", e->user);
		return 1;
	}
	if (e->t.py_major == 0 &&
	    !((e->t.state == 'Z' || e->t.state == 'X') &&
	      looks_like_python(e->t.comm, e->cmdline)))
		return 0;
	user_name(e->t.uid, e->user, sizeof(e->user));
	if (!e->cmdline[0])
		snprintf(e->cmdline, sizeof(e->cmdline), "[%s]", e->t.comm);
	judge(e);
	if (e->t.py_major)
		ping_agent(e);
	return 1;
}

static void version_of(const struct pyhot_target *t, char *buf, size_t len)
{
	if (t->py_major == 0)
		snprintf(buf, len, "?");
	else if (t->py_minor < 0)
		snprintf(buf, len, "%d", t->py_major);
	else
		snprintf(buf, len, "%d.%d", t->py_major, t->py_minor);
}

static struct json_object *entry_json(const struct ps_entry *e)
{
	struct json_object *o = json_object_new_object();
	char v[32];

	version_of(&e->t, v, sizeof(v));
	json_object_object_add(o, "pid", json_object_new_int(e->t.pid));
	json_object_object_add(o, "ppid", json_object_new_int(e->ppid));
	json_object_object_add(o, "user", json_object_new_string(e->user));
	json_object_object_add(o, "uid", json_object_new_int((int)e->t.uid));
	json_object_object_add(o, "python", e->t.py_major ? json_object_new_string(v) : NULL);
	json_object_object_add(o, "static", json_object_new_boolean(e->t.py_static));
	json_object_object_add(o, "exe", json_object_new_string(e->t.exe));
	json_object_object_add(o, "cmdline", json_object_new_string(e->cmdline));
	json_object_object_add(o, "attachable", json_object_new_boolean(e->attachable));
	json_object_object_add(o, "agent", json_object_new_boolean(e->agent));
	json_object_object_add(o, "agent_state", json_object_new_string(
		e->agent_state ? e->agent_state : "none"));
	json_object_object_add(o, "payload_loaded",
			       json_object_new_boolean(e->t.payload_base != 0));
	json_object_object_add(o, "reason_kind", e->reason_kind ?
			       json_object_new_string(e->reason_kind) : NULL);
	json_object_object_add(o, "reason", e->reason_kind ?
			       json_object_new_string(e->reason) : NULL);
	return o;
}

void cli_ps_one_line(const char *in, char *out, size_t len, size_t max)
{
	size_t n = 0;

	for (; *in && n + 4 < len; in++) {
		char ch = (unsigned char)*in < 0x20 ? ' ' : *in;

		if (ch == ' ' && (n == 0 || out[n - 1] == ' '))
			continue;
		if (max && n >= max) {
			memcpy(out + n, "...", 3);
			n += 3;
			break;
		}
		out[n++] = ch;
	}
	while (n && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
}

/* The AGENT column when no agent answered. */
static const char *agent_word(const struct ps_entry *e)
{
	if (e->agent_state && strcmp(e->agent_state, "untrusted") == 0)
		return "foreign";
	if (e->agent_state && strcmp(e->agent_state, "none") != 0)
		return "mute";
	return e->attachable ? "no" : "-";
}

/* One process; tree: the branch drawn before its pid ("" in a list). */
static void print_entry(const struct ps_entry *e, const char *tree, int color,
			int verbose)
{
	char v[32], cmd[PS_CMDLINE_MAX + 4], pid[96];

	version_of(&e->t, v, sizeof(v));
	cli_ps_one_line(e->cmdline, cmd, sizeof(cmd), verbose ? 0 : 100);
	snprintf(pid, sizeof(pid), "%s%d", tree, (int)e->t.pid);
	printf("%-7s %-7d %-10.10s %-7s %s%-6s%s %s\n", pid, (int)e->ppid, e->user, v,
	       cli_color(color && e->agent, "green"),
	       e->agent ? "yes" : agent_word(e),
	       cli_color(color && e->agent, "reset"), cmd);
	if (!e->attachable)
		printf("        %sreason: %s%s\n", cli_color(color, "yellow"), e->reason,
		       cli_color(color, "reset"));
}

/* Whether e's parent is listed in the same part (attachable or not): then
 * e is drawn under it. */
static int listed_parent(const struct ps_entry *list, size_t n,
			 const struct ps_entry *e, int pass)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (list[i].t.pid == e->ppid && list[i].attachable == !pass)
			return 1;
	return 0;
}

/* e, then its children of the same part below it, one level deeper; a
 * child that shares its parent with others says how many they are. */
static void print_tree(const struct ps_entry *list, size_t n, const struct ps_entry *e,
		       int depth, int pass, const struct cli_out *o)
{
	char branch[64];
	size_t i, kids = 0;

	snprintf(branch, sizeof(branch), "%*s%s", depth > 1 ? 2 * (depth - 1) : 0, "",
		 depth ? "`-" : "");
	print_entry(e, branch, o->color_out, o->verbose);
	if (depth > 8)
		return;
	for (i = 0; i < n; i++)
		kids += list[i].ppid == e->t.pid && list[i].attachable == !pass;
	if (kids > 1)
		printf("%*s(%zu children of %d)\n", 2 * depth + 2, "", kids, (int)e->t.pid);
	for (i = 0; i < n; i++)
		if (list[i].ppid == e->t.pid && list[i].attachable == !pass &&
		    list[i].t.pid != e->t.pid)
			print_tree(list, n, &list[i], depth + 1, pass, o);
}

int cli_cmd_ps(const struct cli_args *a, struct cli_out *o, struct pyhot_err *err)
{
	struct json_object *arr;
	struct ps_entry *e, *list = NULL;
	struct timespec t0, t1;
	pid_t *pids = NULL, *ppids = NULL, self = getpid();
	size_t npids = 0, n = 0, i, nok = 0;
	int pass;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (cli_proc_list(&pids, &ppids, &npids, err) < 0)
		return -PYHOT_ERR_FAILED;
	free(ppids);   /* read again per listed process, next to its other fields */
	list = calloc(npids ? npids : 1, sizeof(*list));
	if (!list) {
		free(pids);
		return pyhot_err_set(err, PYHOT_ERR_FAILED, ENOMEM, 0, "ps", "out of memory");
	}
	for (i = 0; i < npids; i++)
		if (pids[i] != self && ps_one(pids[i], &list[n]))
			n++;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cli_out_verbose(o, "looked at %zu processes in %.1f ms", npids,
			(double)(t1.tv_sec - t0.tv_sec) * 1e3 +
			(double)(t1.tv_nsec - t0.tv_nsec) / 1e6);

	arr = json_object_new_array();
	for (i = 0; i < n; i++) {
		json_object_array_add(arr, entry_json(&list[i]));
		nok += list[i].attachable;
	}
	cli_out_set(o, "processes", arr);
	if (!o->json && !o->quiet) {
		if (nok)
			printf("%-7s %-7s %-10s %-7s %-6s %s\n", "PID", "PPID", "USER",
			       "PYTHON", "AGENT", "COMMAND");
		else
			printf("no Python process pyhot can attach to\n");
		for (pass = 0; pass < 2; pass++) {
			if (pass == 1 && nok < n)
				printf("\ncannot attach to:\n");
			for (i = 0; i < n; i++) {
				e = &list[i];
				if (e->attachable == !pass && !a->ps_tree)
					print_entry(e, "", o->color_out, o->verbose);
				else if (e->attachable == !pass && !listed_parent(list, n, e, pass))
					print_tree(list, n, e, 0, pass, o);
			}
		}
	}
	free(list);
	free(pids);
	return 0;
}
