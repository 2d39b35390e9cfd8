/* multi.c: one command over several processes at once (see multi.h). */
#include "multi.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json.h>

#include "memory.h"
#include "proctree.h"
#include "pyhot_log.h"
#include "steps.h"

int cli_multi_wanted(const struct cli_args *a)
{
	return CLI_CMD_MULTI(a->cmd) && (a->npids > 1 || a->tree);
}

int cli_multi_exit_code(const int *codes, size_t n)
{
	size_t i;
	int first = 0;

	for (i = 0; i < n; i++) {
		if (codes[i] == PYHOT_ERR_UNCERTAIN)
			return PYHOT_ERR_UNCERTAIN;
		if (!first)
			first = codes[i];
	}
	return first;
}

/* ----- Which processes ----- */

static int has_pid(const pid_t *list, size_t n, pid_t pid)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (list[i] == pid)
			return 1;
	return 0;
}

/* A CPython process pyhot could look at (not a zombie). A child that runs
 * the same executable as a Python root is one (a forked worker) without a
 * look at its memory map; any other is inspected. */
static int is_python(pid_t pid, const char *root_exe)
{
	struct pyhot_target t;
	struct pyhot_err e;
	char path[64], exe[PATH_MAX];
	ssize_t len;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	len = readlink(path, exe, sizeof(exe) - 1);
	if (len > 0 && root_exe[0]) {
		exe[len] = '\0';
		if (strcmp(exe, root_exe) == 0)
			return cli_proc_ppid(pid) != 0;   /* still there */
	}
	pyhot_err_init(&e);
	return pyhot_target_inspect(pid, &t, &e) == 0 && t.py_major > 0 &&
	       t.state != 'Z' && t.state != 'X';
}

/* The executable of root when root is a CPython process, else ""; *t
 * what the inspection found (t->pid 0 when it failed). A root whose own
 * agent listens runs Python (our agent runs nowhere else): its
 * /proc/PID/status is enough (a light target; its step or its attach
 * inspects the rest if it must), where a whole inspection reads and parses
 * its maps, a third of finding the tree. Any other root (a socket nobody
 * listens on included) is inspected whole. */
static void python_exe(pid_t root, char *exe, size_t size, struct pyhot_target *t)
{
	struct pyhot_err e;
	char path[64];
	ssize_t len;

	exe[0] = '\0';
	pyhot_err_init(&e);
	if (pyhot_target_inspect_light(root, t, &e) < 0) {
		t->pid = 0;
		return;
	}
	if (t->state == 'Z' || t->state == 'X' || !cli_target_agent_listening(t)) {
		pyhot_err_init(&e);
		if (pyhot_target_inspect(root, t, &e) < 0) {
			t->pid = 0;
			return;
		}
		if (!t->py_major)
			return;
	}
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)root);
	len = readlink(path, exe, size - 1);
	exe[len > 0 ? len : 0] = '\0';
}

/* The pids given, then --tree's root and its Python descendants, each
 * once, in that order; *root_t the root as inspected (pid 0: none). */
static int targets(const struct cli_args *a, pid_t *out, size_t *n,
		   struct pyhot_target *root_t, struct pyhot_err *err)
{
	pid_t desc[CLI_MAX_PIDS * 4];
	char root_exe[PATH_MAX];
	size_t i;
	int nd;

	*n = 0;
	root_t->pid = 0;
	for (i = 0; i < a->npids; i++)
		if (!has_pid(out, *n, a->pids[i]))
			out[(*n)++] = a->pids[i];
	if (!a->tree)
		return 0;
	if (kill(a->tree, 0) < 0 && errno == ESRCH)
		return pyhot_err_set(err, PYHOT_ERR_FAILED, ESRCH, a->tree, "tree",
				     "pid %d does not exist", (int)a->tree);
	python_exe(a->tree, root_exe, sizeof(root_exe), root_t);
	/* The root itself only when it is Python (a shell or a supervisor
	 * above the service is not), unless no process of the tree is. */
	if (root_exe[0] && !has_pid(out, *n, a->tree) && *n < CLI_MAX_PIDS)
		out[(*n)++] = a->tree;
	nd = cli_proc_tree(a->tree, desc, sizeof(desc) / sizeof(desc[0]), err);
	if (nd < 0)
		return nd;
	for (i = 0; i < (size_t)nd && *n < CLI_MAX_PIDS; i++)
		if (!has_pid(out, *n, desc[i]) && is_python(desc[i], root_exe))
			out[(*n)++] = desc[i];
	if (!*n)
		out[(*n)++] = a->tree;   /* its step says what it is */
	return 0;
}

/* ----- Reporting ----- */

static struct json_object *doc_get(struct json_object *doc, const char *key)
{
	struct json_object *v = NULL;

	if (doc && json_object_object_get_ex(doc, key, &v))
		return v;
	return NULL;
}

static struct json_object *entry_new(const struct cli_step *s)
{
	struct json_object *e = json_object_new_object();

	json_object_object_add(e, "pid", json_object_new_int(s->pid));
	json_object_object_add(e, "ppid", json_object_new_int(cli_proc_ppid(s->pid)));
	return e;
}

static void fail_summary(struct pyhot_err *err, const char *cmd, int code,
			 const struct cli_step *s, const int *codes, size_t n,
			 const char *what)
{
	char pids[256];
	size_t i, bad = 0, len = 0;

	pids[0] = '\0';
	for (i = 0; i < n; i++) {
		if (!codes[i])
			continue;
		bad++;
		if (len + 16 < sizeof(pids))
			len += (size_t)snprintf(pids + len, sizeof(pids) - len, "%s%d",
						len ? ", " : "", (int)s[i].pid);
	}
	pyhot_err_set(err, (enum pyhot_errkind)code, 0, 0, cmd,
		      "failed in %zu of %zu processes (%s %s)%s", bad, n,
		      bad > 1 ? "pids" : "pid", pids, what);
}

/* ----- status, rollback, exec: each process on its own ----- */

static int multi_each(const struct cli_args *a, struct cli_out *o, cli_cmd_fn fn,
		      struct cli_step *s, size_t n, struct pyhot_err *err)
{
	struct json_object *arr = json_object_new_array(), *e;
	int *codes = calloc(n, sizeof(*codes)), code;
	struct cli_gate gate;
	size_t i;

	cli_gate_init(&gate, n);
	cli_steps_start(s, n, a, fn, NULL, 0, &gate);
	cli_steps_collect(s, n, 0);
	cli_gate_destroy(&gate);
	for (i = 0; i < n; i++) {
		codes[i] = s[i].code;
		if (o->json) {
			e = s[i].doc ? json_object_get(s[i].doc) : entry_new(&s[i]);
			json_object_object_del(e, "format");
			json_object_object_add(e, "pid", json_object_new_int(s[i].pid));
			json_object_object_add(e, "ppid",
					       json_object_new_int(cli_proc_ppid(s[i].pid)));
			json_object_object_add(e, "exit", json_object_new_int(s[i].code));
			if (!s[i].doc) {
				struct json_object *je = json_object_new_object();

				json_object_object_add(je, "kind", json_object_new_string(
					pyhot_errkind_name(PYHOT_ERR_FAILED)));
				json_object_object_add(je, "message", json_object_new_string(
					cli_step_message(&s[i])));
				json_object_object_add(e, "error", je);
			}
			json_object_array_add(arr, e);
			continue;
		}
		if (!o->quiet)
			printf("%s== pid %d ==%s\n", cli_color(o->color_out, "bold"),
			       (int)s[i].pid, cli_color(o->color_out, "reset"));
		if (s[i].text[0])
			fputs(s[i].text[0], stdout);
		fflush(stdout);
		if (s[i].text[1])
			fputs(s[i].text[1], stderr);
	}
	cli_out_set(o, "processes", arr);
	code = cli_multi_exit_code(codes, n);
	if (code)
		fail_summary(err, cli_cmd_name(a->cmd), code, s, codes, n,
			     "; each one's error is above; the others are done");
	free(codes);
	if (!code)
		return 0;
	pyhot_err_hint(err, "the report per process says what happened in each");
	return -code;
}

/* ----- refresh: plan everywhere, apply everywhere, or undo ----- */

enum outcome {
	OUT_PLANNED,        /* --dry-run: its plan */
	OUT_PLAN_FAILED,    /* its plan failed: nothing applied anywhere */
	OUT_NOT_APPLIED,    /* its plan was fine; another's was not */
	OUT_REFRESHED,      /* applied and kept */
	OUT_FAILED,         /* the refresh failed there: nothing changed there */
	OUT_ROLLED_BACK,    /* applied, then undone because another failed */
	OUT_ROLLBACK_FAILED /* applied; undoing it failed: it runs the new code */
};

static const char *const outcome_names[] = {
	"planned", "plan-failed", "not-applied", "refreshed", "failed",
	"rolled-back", "rollback-failed",
};

struct proc_report {
	enum outcome outcome;
	int code;
	struct json_object *modules;   /* borrowed from a step's document */
	struct json_object *error;     /* borrowed, or NULL */
	struct json_object *undo;      /* owned array of rollback documents */
	char *undo_msg;                /* owned: why the rollback failed, or NULL */
};

/* Its rollback failed, for why (copied). */
static void undo_failed(struct proc_report *r, const char *why)
{
	r->outcome = OUT_ROLLBACK_FAILED;
	free(r->undo_msg);
	r->undo_msg = strdup(why);
}

/* Why its rollback failed (the copy found no memory: say that). */
static const char *undo_why(const struct proc_report *r)
{
	return r->undo_msg ? r->undo_msg : "out of memory";
}

/* The modules of a refresh document that a generation was recorded for. */
static size_t generations(struct json_object *doc, const char **mods, size_t max)
{
	struct json_object *arr = doc_get(doc, "modules"), *m;
	size_t i, n = 0, len = arr ? json_object_array_length(arr) : 0;

	for (i = 0; i < len && n < max; i++) {
		m = json_object_array_get_idx(arr, i);
		if (doc_get(m, "generation") && cli_json_str(m, "module"))
			mods[n++] = cli_json_str(m, "module");
	}
	return n;
}

/* Undo the refresh in every process where it was applied (s[i].code 0):
 * one rollback per module it recorded a generation for, all at once. */
static void undo_applied(const struct cli_args *a, struct cli_step *s, size_t n,
			 struct proc_report *rep)
{
	const char *mods[CLI_MAX_MODULES];
	struct cli_step *u = calloc(n * CLI_MAX_MODULES, sizeof(*u));
	size_t *owner = calloc(n * CLI_MAX_MODULES, sizeof(*owner));
	struct cli_args b = *a;
	size_t i, j, k, nu = 0, nm;

	if (!u || !owner) {
		free(u);
		free(owner);
		for (i = 0; i < n; i++)
			if (rep[i].outcome == OUT_REFRESHED)
				undo_failed(&rep[i], "out of memory");
		return;
	}
	b.cmd = CLI_CMD_ROLLBACK;
	b.json = 1;
	b.dry_run = 0;
	b.to = NULL;
	b.nmodules = 1;
	for (i = 0; i < n; i++) {
		if (rep[i].outcome != OUT_REFRESHED)
			continue;
		rep[i].outcome = OUT_ROLLED_BACK;
		rep[i].undo = json_object_new_array();
		nm = generations(s[i].doc2, mods, CLI_MAX_MODULES);
		for (j = 0; j < nm; j++) {
			struct pyhot_err err;

			b.modules[0] = mods[j];
			u[nu].pid = s[i].pid;
			u[nu].signals = s[i].signals;
			owner[nu] = i;
			pyhot_err_init(&err);
			if (cli_step_start(&u[nu], &b, cli_cmd_rollback, 0, &err) < 0) {
				u[nu].code = PYHOT_ERR_FAILED;
				u[nu].text[1] = strdup(err.msg);
			}
			nu++;
		}
	}
	cli_steps_collect(u, nu, 0);
	for (k = 0; k < nu; k++) {
		i = owner[k];
		if (u[k].doc)
			json_object_array_add(rep[i].undo, json_object_get(u[k].doc));
		if (u[k].code && rep[i].outcome == OUT_ROLLED_BACK)
			undo_failed(&rep[i], cli_step_message(&u[k]));
		cli_step_release(&u[k]);
	}
	free(u);
	free(owner);
}

static void report_text(const struct cli_out *o, const struct cli_step *s,
			const struct proc_report *r, int dry_run)
{
	int pid = (int)s->pid;
	const char *msg = r->error ? cli_json_str(r->error, "message") : NULL;
	const char *hint = r->error ? cli_json_str(r->error, "hint") : NULL;

	switch (r->outcome) {
	case OUT_PLANNED:
	case OUT_REFRESHED:
		if (!o->quiet) {
			struct json_object *resp = json_object_new_object();

			json_object_object_add(resp, "modules", json_object_get(r->modules));
			json_object_object_add(resp, "dry_run",
					       json_object_new_boolean(dry_run));
			cli_fmt_refresh(stdout, resp, s->pid, o->verbose, o->color_out);
			json_object_put(resp);
		}
		return;
	case OUT_NOT_APPLIED:
		if (!o->quiet)
			printf("pid %d: planned, not applied (a plan failed elsewhere); "
			       "unchanged\n", pid);
		return;
	case OUT_ROLLED_BACK:
		if (!o->quiet)
			printf("pid %d: applied, then rolled back (the refresh failed "
			       "elsewhere); it runs the code it ran before\n", pid);
		return;
	case OUT_PLAN_FAILED:
		fprintf(stderr, "pid %d: plan failed: %s\n", pid, msg ? msg : cli_step_message(s));
		if (hint && *hint)   /* what to do there (a stopped process: resume it) */
			fprintf(stderr, "  hint for pid %d: %s\n", pid, hint);
		return;
	case OUT_FAILED:
		fprintf(stderr, "pid %d: refresh failed: %s; unchanged\n", pid,
			msg ? msg : cli_step_message(s));
		if (hint && *hint)
			fprintf(stderr, "  hint for pid %d: %s\n", pid, hint);
		return;
	case OUT_ROLLBACK_FAILED:
		fprintf(stderr, "pid %d: applied, and the rollback failed: %s; it runs "
			"the new code (pyhot status %d lists its generations)\n", pid,
			undo_why(r), pid);
		return;
	}
}

static struct json_object *report_json(const struct cli_step *s, const struct proc_report *r)
{
	struct json_object *e = entry_new(s);

	json_object_object_add(e, "outcome", json_object_new_string(
		outcome_names[r->outcome]));
	json_object_object_add(e, "exit", json_object_new_int(r->code));
	json_object_object_add(e, "modules", r->modules ? json_object_get(r->modules)
							 : json_object_new_array());
	if (r->error)
		json_object_object_add(e, "error", json_object_get(r->error));
	if (r->undo)
		json_object_object_add(e, "rollback", json_object_get(r->undo));
	if (r->outcome == OUT_ROLLBACK_FAILED)
		json_object_object_add(e, "rollback_error",
				       json_object_new_string(undo_why(r)));
	return e;
}

/* What the whole refresh returns, with err set when it did not succeed. */
static int refresh_verdict(const struct cli_step *s, size_t n, const struct proc_report *rep,
			   int applied, struct pyhot_err *err)
{
	int *codes = calloc(n, sizeof(*codes)), code, undone = 0, stuck = 0;
	size_t i;

	if (!codes)
		return pyhot_err_set(err, PYHOT_ERR_FAILED, ENOMEM, 0, "refresh",
				     "out of memory");
	for (i = 0; i < n; i++) {
		codes[i] = rep[i].code;
		undone += rep[i].outcome == OUT_ROLLED_BACK;
		stuck += rep[i].outcome == OUT_ROLLBACK_FAILED;
	}
	code = cli_multi_exit_code(codes, n);
	if (!code) {
		free(codes);
		return 0;
	}
	if (!applied) {
		fail_summary(err, "refresh", code, s, codes, n,
			     ": the plan failed; nothing was applied in any process");
		pyhot_err_hint(err, "fix the error and run pyhot refresh again");
	} else if (stuck) {
		code = PYHOT_ERR_UNCERTAIN;
		fail_summary(err, "refresh", code, s, codes, n, "");
		pyhot_err_hint(err, "%d process(es) could not be rolled back and run the "
			       "new code, the others the old: see the report above", stuck);
	} else {
		fail_summary(err, "refresh", code, s, codes, n, "");
		pyhot_err_hint(err, "%d process(es) that had applied it were rolled back: "
			       "every process runs the code it ran before", undone);
	}
	free(codes);
	return -code;
}

/* Plan in every process (each step's dry run), then, when every plan
 * succeeded, apply in every one (the same steps go on, on the context
 * they made); undo where it was applied when it failed somewhere. */
static int multi_refresh(const struct cli_args *a, struct cli_out *o, cli_cmd_fn fn,
			 struct cli_step *s, size_t n, struct pyhot_err *err)
{
	struct proc_report *rep = calloc(n, sizeof(*rep));
	struct json_object *arr;
	struct cli_args b = *a;
	struct cli_gate gate;
	size_t i, bad = 0;
	int r, applied = 0;

	b.json = 1;
	b.dry_run = 1;
	PYHOT_TRACE("multi", "refresh: %zu processes, planning", n);
	cli_gate_init(&gate, n);
	/* The report is the plans' and the applies': no step needs the
	 * ping's "attach" fields. */
	for (i = 0; i < n; i++)
		s[i].assume_agent = 1;
	cli_steps_start(s, n, &b, fn, &cli_refresh_split, !a->dry_run, &gate);
	cli_steps_collect(s, n, 1);
	PYHOT_TRACE("multi", "refresh: planned");
	for (i = 0; i < n; i++) {
		bad += s[i].code != 0;
		rep[i].code = s[i].code;
		rep[i].outcome = s[i].code ? OUT_PLAN_FAILED : OUT_PLANNED;
	}
	cli_steps_go(s, n, !bad && !a->dry_run);
	cli_steps_collect(s, n, 0);
	cli_gate_destroy(&gate);
	PYHOT_TRACE("multi", "refresh: %s", !bad && !a->dry_run ? "applied" : "not applied");
	for (i = 0; i < n; i++) {
		rep[i].modules = doc_get(s[i].doc, "modules");
		rep[i].error = doc_get(s[i].doc, "error");
		if (bad && rep[i].outcome != OUT_PLAN_FAILED)
			rep[i].outcome = OUT_NOT_APPLIED;
	}
	if (!bad && !a->dry_run) {
		applied = 1;
		for (i = 0; i < n; i++) {
			/* no second document: the step died after its plan */
			rep[i].code = !s[i].doc2 && !s[i].code ? PYHOT_ERR_FAILED : s[i].code;
			rep[i].modules = doc_get(s[i].doc2, "modules");
			rep[i].error = doc_get(s[i].doc2, "error");
			rep[i].outcome = rep[i].code ? OUT_FAILED : OUT_REFRESHED;
			bad += rep[i].code != 0;
		}
		if (bad)
			undo_applied(a, s, n, rep);
	}
	/* What a step said on its stderr besides its error (which the
	 * report gives): its warnings, as the one-process command prints
	 * them (an agent whose baseline was not recorded in time). */
	for (i = 0; i < n; i++)
		if (s[i].warnings)
			fputs(s[i].warnings, stderr);
	arr = json_object_new_array();
	for (i = 0; i < n; i++) {
		if (o->json)
			json_object_array_add(arr, report_json(&s[i], &rep[i]));
		else
			report_text(o, &s[i], &rep[i], a->dry_run);
	}
	cli_out_set(o, "processes", arr);
	cli_out_set(o, "dry_run", json_object_new_boolean(a->dry_run));
	r = refresh_verdict(s, n, rep, applied, err);
	if (!r && !o->json && !o->quiet)
		printf("%s %zu processes together\n", a->dry_run ? "planned in" : "refreshed",
		       n);
	for (i = 0; i < n; i++) {
		if (rep[i].undo)
			json_object_put(rep[i].undo);
		free(rep[i].undo_msg);
	}
	free(rep);
	return r;
}

int cli_multi_run(const struct cli_args *a, struct cli_out *o, cli_cmd_fn fn,
		  struct pyhot_err *err)
{
	pid_t pids[CLI_MAX_PIDS];
	struct pyhot_target root_t;
	struct cli_signals signals = { 0 };
	struct cli_step *steps = NULL;
	struct json_object *list;
	size_t n = 0, i;
	int r;

	if (a->cmd == CLI_CMD_EXEC && a->file && strcmp(a->file, "-") == 0)
		return pyhot_err_set(err, PYHOT_ERR_USAGE, 0, 0, "exec", "exec: standard "
				     "input (-) can go to one process only");
	r = targets(a, pids, &n, &root_t, err);
	if (r < 0)
		return r;
	/* The steps' heap too, and every step in the one malloc arena. */
	cli_memory_prepare(CLI_MEMORY_COMMAND + n * CLI_MEMORY_STEP);
	steps = calloc(n ? n : 1, sizeof(*steps));
	if (!steps) {
		r = pyhot_err_set(err, PYHOT_ERR_FAILED, ENOMEM, 0, "multi", "out of memory");
		goto out_free;
	}
	list = json_object_new_array();
	for (i = 0; i < n; i++) {
		steps[i].pid = pids[i];
		steps[i].seen = root_t.pid == pids[i] ? &root_t : NULL;
		steps[i].signals = &signals;
		json_object_array_add(list, json_object_new_int(pids[i]));
	}
	if (o->doc)
		json_object_object_del(o->doc, "pid");
	cli_out_set(o, "pids", list);
	cli_out_verbose(o, "%zu processes", n);
	if (a->cmd == CLI_CMD_REFRESH)
		r = multi_refresh(a, o, fn, steps, n, err);
	else
		r = multi_each(a, o, fn, steps, n, err);
	cli_steps_release(steps, n);
	/* Once every thread has ended: the signals they would have taken. */
	cli_signals_release(&signals);
out_free:
	free(steps);
	return r;
}
