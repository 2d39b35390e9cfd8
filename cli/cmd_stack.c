/*
 * cmd_stack.c: pyhot stack, the Python stack of every thread, read at a
 * safe point; when none is reached, the native stacks of the threads.
 */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json.h>

#include "client.h"
#include "cmd_util.h"

#define NATIVE_STACK_LEN (64 * 1024)
#define NATIVE_MAX_THREADS 512

/* "(tid 4242, main, daemon)" style details of a thread. */
static void thread_header(FILE *f, struct json_object *t, int color)
{
	struct json_object *v;
	const char *name = cli_json_str(t, "name");
	int first = 1;

	fprintf(f, "%sThread", cli_color(color, "bold"));
	if (name)
		fprintf(f, " \"%s\"", name);
	fputs(" (", f);
	if (json_object_object_get_ex(t, "tid", &v) && json_object_is_type(v, json_type_int)) {
		fprintf(f, "tid %lld", (long long)json_object_get_int64(v));
		first = 0;
	} else if (json_object_object_get_ex(t, "ident", &v)) {
		fprintf(f, "ident %llu", (unsigned long long)json_object_get_uint64(v));
		first = 0;
	}
	if (json_object_object_get_ex(t, "main", &v) && json_object_get_boolean(v)) {
		fprintf(f, "%smain", first ? "" : ", ");
		first = 0;
	}
	if (json_object_object_get_ex(t, "daemon", &v) &&
	    json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v))
		fprintf(f, "%sdaemon", first ? "" : ", ");
	fprintf(f, ")%s:\n", cli_color(color, "reset"));
}

/* The agent's answer as tracebacks, most recent call last. */
static void print_stacks(FILE *f, struct json_object *resp, int color)
{
	struct json_object *threads = NULL, *frames, *v;
	size_t i, j, n, nf;

	json_object_object_get_ex(resp, "threads", &threads);
	n = threads && json_object_is_type(threads, json_type_array) ?
	    json_object_array_length(threads) : 0;
	for (i = 0; i < n; i++) {
		struct json_object *t = json_object_array_get_idx(threads, i);

		if (i)
			fputc('\n', f);
		thread_header(f, t, color);
		frames = NULL;
		json_object_object_get_ex(t, "frames", &frames);
		nf = frames && json_object_is_type(frames, json_type_array) ?
		     json_object_array_length(frames) : 0;
		if (json_object_object_get_ex(t, "truncated", &v) && json_object_get_boolean(v))
			fputs("  ... (older frames not shown)\n", f);
		for (j = 0; j < nf; j++) {
			struct json_object *fr = json_object_array_get_idx(frames, j);
			const char *file = cli_json_str(fr, "file");
			const char *fn = cli_json_str(fr, "function");
			const char *src = cli_json_str(fr, "source");
			long long line = -1;

			if (json_object_object_get_ex(fr, "line", &v) &&
			    json_object_is_type(v, json_type_int))
				line = json_object_get_int64(v);
			fprintf(f, "  File \"%s\", line %lld, in %s\n", file ? file : "?", line,
				fn ? fn : "?");
			if (src && *src)
				fprintf(f, "    %s\n", src);
		}
	}
	if (n == 0)
		fputs("no thread runs Python code\n", f);
}

/* 'thread "MainThread" (tid 4242)' for the thread whose ident is ident,
 * from the threads of the answer. */
static void loop_thread(char *buf, size_t len, struct json_object *threads,
			struct json_object *ident)
{
	size_t i, n;

	snprintf(buf, len, "a thread without Python frames");
	if (!ident || !json_object_is_type(ident, json_type_int)) {
		snprintf(buf, len, "no thread: the loop is not running");
		return;
	}
	n = threads && json_object_is_type(threads, json_type_array) ?
	    json_object_array_length(threads) : 0;
	for (i = 0; i < n; i++) {
		struct json_object *t = json_object_array_get_idx(threads, i), *v;

		if (!json_object_object_get_ex(t, "ident", &v) ||
		    json_object_get_uint64(v) != json_object_get_uint64(ident))
			continue;
		snprintf(buf, len, "thread \"%s\" (tid %lld)", cli_json_str(t, "name") ?: "?",
			 cli_json_int(t, "tid"));
		return;
	}
}

/* One task: its name, coroutine and await chain, outermost first. */
static void print_task(FILE *f, struct json_object *task, int color)
{
	struct json_object *aw = NULL, *v;
	const char *on = cli_json_str(task, "waiting_on");
	size_t j, n;

	fprintf(f, "  %sTask \"%s\" (coroutine %s%s):%s\n", cli_color(color, "bold"),
		cli_json_str(task, "name") ?: "?", cli_json_str(task, "coroutine") ?: "?",
		json_object_object_get_ex(task, "current", &v) && json_object_get_boolean(v) ?
		", running now" : "", cli_color(color, "reset"));
	json_object_object_get_ex(task, "awaits", &aw);
	n = aw && json_object_is_type(aw, json_type_array) ? json_object_array_length(aw) : 0;
	for (j = 0; j < n; j++) {
		struct json_object *fr = json_object_array_get_idx(aw, j);
		const char *src = cli_json_str(fr, "source");

		fprintf(f, "    File \"%s\", line %lld, in %s\n", cli_json_str(fr, "file") ?: "?",
			cli_json_int(fr, "line"), cli_json_str(fr, "function") ?: "?");
		if (src && *src)
			fprintf(f, "      %s\n", src);
	}
	if (on)
		fprintf(f, "    waiting on %s\n", on);
}

/* The asyncio event loops of the answer and their tasks. */
static void print_loops(FILE *f, struct json_object *resp, int color)
{
	struct json_object *loops = NULL, *threads = NULL, *tasks, *v;
	size_t i, j, n, nt;
	char where[300];

	json_object_object_get_ex(resp, "asyncio", &loops);
	json_object_object_get_ex(resp, "threads", &threads);
	n = loops && json_object_is_type(loops, json_type_array) ?
	    json_object_array_length(loops) : 0;
	for (i = 0; i < n; i++) {
		struct json_object *l = json_object_array_get_idx(loops, i);

		tasks = NULL;
		json_object_object_get_ex(l, "tasks", &tasks);
		nt = tasks && json_object_is_type(tasks, json_type_array) ?
		     json_object_array_length(tasks) : 0;
		json_object_object_get_ex(l, "thread", &v);
		loop_thread(where, sizeof(where), threads, v);
		fprintf(f, "\n%sEvent loop %s, in %s: %zu task%s%s\n", cli_color(color, "bold"),
			cli_json_str(l, "loop") ?: "?", where, nt, nt == 1 ? "" : "s",
			cli_color(color, "reset"));
		for (j = 0; j < nt; j++)
			print_task(f, json_object_array_get_idx(tasks, j), color);
		if (json_object_object_get_ex(l, "tasks_cut", &v) && json_object_get_boolean(v))
			fputs("  ... (more tasks not shown)\n", f);
	}
}

/* The state letter of a thread from its stat line. */
static char task_state(pid_t pid, pid_t tid)
{
	char path[96], buf[512], *p;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)tid);
	cli_read_text(path, buf, sizeof(buf), 0);
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : '?';
}

static int cmp_tid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

	return (x > y) - (x < y);
}

/* Every thread of pid, main thread first. */
static size_t list_tasks(pid_t pid, pid_t *tids, size_t max)
{
	char path[64];
	struct dirent *e;
	size_t n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return 0;
	while ((e = readdir(d)) && n < max) {
		pid_t tid;

		if (cli_parse_pid(e->d_name, &tid) == 0)
			tids[n++] = tid;
	}
	closedir(d);
	qsort(tids, n, sizeof(*tids), cmp_tid);
	return n;
}

/*
 * What a native stack says about the GIL, by the names in it: a thread in
 * take_gil, or re-taking the GIL through an exported function, waits for
 * it; one that runs the interpreter without waiting may hold it (a guess:
 * symbols may be missing). NULL: nothing known.
 */
static const char *gil_guess(const char *stack, const char *comm)
{
	if (strstr(stack, "take_gil") || strstr(stack, "PyEval_RestoreThread") ||
	    strstr(stack, "PyEval_AcquireThread") || strstr(stack, "PyGILState_Ensure"))
		return "waiting";
	if (strncmp(comm, "pyhot-", 6) != 0 &&
	    (strstr(stack, "_PyEval_EvalFrame") || strstr(stack, "PyEval_EvalCode")))
		return "probably-held";
	return NULL;
}

struct native_thread {
	pid_t tid;
	char state;
	char comm[64];
	char *stack;              /* NULL when it could not be read */
	char error[512];
	const char *gil;
};

/* Read the native stack of every thread; the guess of who holds the GIL is
 * kept only when it points at one thread. */
static size_t read_native(pid_t pid, struct native_thread *th, size_t max)
{
	pid_t tids[NATIVE_MAX_THREADS];
	struct pyhot_err e;
	char path[96], *buf;
	size_t i, n, held = 0;

	n = list_tasks(pid, tids, max < NATIVE_MAX_THREADS ? max : NATIVE_MAX_THREADS);
	buf = malloc(NATIVE_STACK_LEN);
	for (i = 0; i < n; i++) {
		memset(&th[i], 0, sizeof(th[i]));
		th[i].tid = tids[i];
		th[i].state = task_state(pid, tids[i]);
		snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", (int)pid, (int)tids[i]);
		cli_read_text(path, th[i].comm, sizeof(th[i].comm), 0);
		pyhot_err_init(&e);
		if (!buf) {
			snprintf(th[i].error, sizeof(th[i].error), "out of memory");
			continue;
		}
		buf[0] = '\0';
		if (pyhot_native_stack(pid, tids[i], buf, NATIVE_STACK_LEN, &e) < 0) {
			snprintf(th[i].error, sizeof(th[i].error), "%.*s",
				 (int)sizeof(th[i].error) - 1, e.msg);
			continue;
		}
		th[i].stack = strdup(buf);
		th[i].gil = gil_guess(buf, th[i].comm);
		held += th[i].gil && strcmp(th[i].gil, "probably-held") == 0;
	}
	free(buf);
	for (i = 0; held > 1 && i < n; i++)
		if (th[i].gil && strcmp(th[i].gil, "probably-held") == 0)
			th[i].gil = NULL;
	return n;
}

/*
 * No safe point: show the native stack of every thread (stdout, or
 * "native" in the JSON). Python frames are not read from memory.
 */
static void show_native(struct cli_ctx *c)
{
	pid_t pid = c->args->pid;
	struct json_object *arr = json_object_new_array();
	struct native_thread *th = calloc(NATIVE_MAX_THREADS, sizeof(*th));
	int color = c->out->color_out, text = !c->out->json && !c->out->quiet;
	size_t i, n;

	n = th ? read_native(pid, th, NATIVE_MAX_THREADS) : 0;
	if (text)
		printf("pid %d did not reach a safe point within %.1f s: a thread holds the GIL "
		       "in C code.\nNative stacks of its %zu thread%s follow; Python frames "
		       "were not read.\n", (int)pid, c->args->timeout_ms / 1000.0, n,
		       n == 1 ? "" : "s");
	for (i = 0; i < n; i++) {
		struct json_object *jt = json_object_new_object(), *frames;
		const char *gil = th[i].gil;

		json_object_object_add(jt, "tid", json_object_new_int(th[i].tid));
		json_object_object_add(jt, "name", json_object_new_string(th[i].comm));
		json_object_object_add(jt, "state", json_object_new_string_len(&th[i].state, 1));
		json_object_object_add(jt, "main", json_object_new_boolean(th[i].tid == pid));
		json_object_object_add(jt, "gil", gil ? json_object_new_string(gil) : NULL);
		frames = json_object_new_array();
		if (text)
			printf("\n%sThread \"%s\" (tid %d%s, state %c%s%s):%s\n",
			       cli_color(color, "bold"), th[i].comm, (int)th[i].tid,
			       th[i].tid == pid ? ", main" : "", th[i].state,
			       strncmp(th[i].comm, "pyhot-", 6) == 0 ? ", pyhot's own" : "",
			       !gil ? "" : strcmp(gil, "waiting") == 0 ?
			       ", waiting for the GIL" : ", probably holds the GIL",
			       cli_color(color, "reset"));
		if (th[i].stack) {
			char *p = th[i].stack, *nl;

			while (*p) {
				nl = strchr(p, '\n');
				if (nl)
					*nl = '\0';
				if (*p) {
					json_object_array_add(frames, json_object_new_string(p));
					if (text)
						printf("  %s\n", p);
				}
				if (!nl)
					break;
				p = nl + 1;
			}
		} else {
			json_object_object_add(jt, "error", json_object_new_string(th[i].error));
			if (text)
				printf("  (native stack not readable: %s)\n", th[i].error);
		}
		free(th[i].stack);
		json_object_object_add(jt, "frames", frames);
		json_object_array_add(arr, jt);
	}
	fflush(stdout);
	free(th);
	cli_out_set(c->out, "native", arr);
	cli_out_set(c->out, "python_frames_read", json_object_new_boolean(0));
}

int cli_cmd_stack(struct cli_ctx *c, struct pyhot_err *err)
{
	const struct cli_args *a = c->args;
	struct json_object *resp = NULL, *v;
	int r;

	r = cli_attach_quiet(c, err);
	if (r < 0)
		return r;
	/* Not cli_agent_call(): a timeout here is answered with the stacks of
	 * every thread, not the main thread's alone. */
	r = cli_call(c, "stack", NULL, 0, &resp, err);
	if (r == 0) {
		if (json_object_object_get_ex(resp, "threads", &v))
			cli_out_set(c->out, "threads", json_object_get(v));
		if (json_object_object_get_ex(resp, "via", &v))
			cli_out_set(c->out, "via", json_object_get(v));
		if (json_object_object_get_ex(resp, "asyncio", &v))
			cli_out_set(c->out, "asyncio", json_object_get(v));
		cli_out_set(c->out, "python_frames_read", json_object_new_boolean(1));
		if (!c->out->json && !c->out->quiet) {
			print_stacks(stdout, resp, c->out->color_out);
			print_loops(stdout, resp, c->out->color_out);
		}
	} else if (err->kind == PYHOT_ERR_TIMEOUT) {
		/* The agent's words speak of its request; ours of what was shown. */
		err->msg[0] = '\0';
		err->hint[0] = '\0';
		snprintf(err->msg, sizeof(err->msg), "stack: pid %d did not reach a safe point "
			 "within %.1f s; native stacks shown, Python frames not read",
			 (int)a->pid, a->timeout_ms / 1000.0);
		pyhot_err_hint(err, "pid %d is unchanged; a thread holds the GIL in C code: "
			       "retry when it is back in Python, or raise --timeout; when it "
			       "is the main thread, pyhot interrupt %d stops that call "
			       "(SIGINT)", (int)a->pid, (int)a->pid);
		show_native(c);
	}
	if (resp)
		json_object_put(resp);
	return r;
}
