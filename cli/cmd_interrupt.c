/*
 * cmd_interrupt.c: pyhot interrupt, an exception raised in a stuck thread
 * (docs/interrupt.md). A thread that runs Python gets it at its next
 * bytecode (the agent's "interrupt" verb sets it as the thread's pending
 * async exception); a main thread held in C gets SIGINT, whose handler
 * raises KeyboardInterrupt when the C code checks for signals. What was not
 * delivered within --timeout is withdrawn.
 */
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <json.h>

#include "client.h"
#include "cmd_util.h"

#define INT_DEFAULT_EXC "KeyboardInterrupt"
/* The first safe point takes about a millisecond; none within this bound
 * means a thread holds the GIL in C. */
#define INT_FIRST_SP_MS 1000u
/* A main thread that does not take its exception for this long while it
 * runs no Python is blocked in C: SIGINT is what reaches it. */
#define INT_BLOCKED_MS 100.0
#define INT_POLL_US 10000
/* The bound of one check or withdrawal: each needs its own safe point,
 * however little of --timeout is left. */
#define INT_WITHDRAW_MS 2000u

/* The builtin exception classes of CPython 3.8 to 3.13; the agent checks
 * again that this interpreter has the one named. */
static const char *const builtin_exceptions[] = {
	"ArithmeticError", "AssertionError", "AttributeError", "BaseException",
	"BaseExceptionGroup", "BlockingIOError", "BrokenPipeError", "BufferError",
	"BytesWarning", "ChildProcessError", "ConnectionAbortedError",
	"ConnectionError", "ConnectionRefusedError", "ConnectionResetError",
	"DeprecationWarning", "EOFError", "EncodingWarning", "EnvironmentError",
	"Exception", "ExceptionGroup", "FileExistsError", "FileNotFoundError",
	"FloatingPointError", "FutureWarning", "GeneratorExit", "IOError",
	"ImportError", "ImportWarning", "IndentationError", "IndexError",
	"InterruptedError", "IsADirectoryError", "KeyError", "KeyboardInterrupt",
	"LookupError", "MemoryError", "ModuleNotFoundError", "NameError",
	"NotADirectoryError", "NotImplementedError", "OSError", "OverflowError",
	"PendingDeprecationWarning", "PermissionError", "ProcessLookupError",
	"PythonFinalizationError", "RecursionError", "ReferenceError",
	"ResourceWarning", "RuntimeError", "RuntimeWarning", "StopAsyncIteration",
	"StopIteration", "SyntaxError", "SyntaxWarning", "SystemError", "SystemExit",
	"TabError", "TimeoutError", "TypeError", "UnboundLocalError",
	"UnicodeDecodeError", "UnicodeEncodeError", "UnicodeError",
	"UnicodeTranslateError", "UnicodeWarning", "UserWarning", "ValueError",
	"Warning", "ZeroDivisionError", NULL,
};

struct intr {
	struct cli_ctx *c;
	pid_t pid;
	const char *exc;
	double start, deadline;   /* seconds, CLOCK_MONOTONIC */
	char id[32];              /* the agent's number of what was sent */
	char who[300];            /* 'thread "x" (tid 42)' */
	char at[600];
	const char *before;       /* where it was when sent (at), or NULL */
	struct json_object *doc;  /* the "interrupt" object of --json */
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned int left_ms(const struct intr *in)
{
	double left = in->deadline - now_s();

	return left > 0.001 ? (unsigned int)(left * 1000) : 1;
}

static int known_exception(const char *name)
{
	size_t i;

	for (i = 0; builtin_exceptions[i]; i++)
		if (strcmp(builtin_exceptions[i], name) == 0)
			return 1;
	return 0;
}

/* One "interrupt" request: op, the thread and the exception when given,
 * a safe point within tmo_ms. */
static int icall(struct intr *in, const char *op, unsigned int tmo_ms,
		 struct json_object **resp, struct pyhot_err *err)
{
	const struct cli_args *a = in->c->args;
	struct pyhot_client_req req;
	char tmo[32];
	int r = 0;

	*resp = NULL;
	snprintf(tmo, sizeof(tmo), "%u", tmo_ms);
	pyhot_client_req_init(&req, "interrupt");
	r |= pyhot_client_req_add(&req, "op", op);
	if (a->thread)
		r |= pyhot_client_req_add(&req, "thread", a->thread);
	r |= pyhot_client_req_add(&req, "exception", in->exc);
	if (in->id[0])
		r |= pyhot_client_req_add(&req, "id", in->id);
	r |= pyhot_client_req_add(&req, "timeout_ms", tmo);
	r |= pyhot_client_req_add(&req, "run_timeout_ms", tmo);
	if (r < 0)
		return pyhot_err_set(err, PYHOT_ERR_FAILED, 0, in->pid, "interrupt",
				     "too many arguments");
	r = cli_ctx_call(in->c, &req, tmo_ms + 2000, resp, err);
	if (r == 0)
		r = pyhot_client_resp_check(*resp, in->pid, "interrupt", err);
	return r;
}

/* The process has ended (or is a zombie its parent has not reaped). */
static int process_gone(pid_t pid)
{
	char path[64], buf[512], *p;

	if (kill(pid, 0) < 0 && errno == ESRCH)
		return 1;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	cli_read_text(path, buf, sizeof(buf), 0);
	p = strrchr(buf, ')');
	return !p || (p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'));
}

/* Whether the process ends within ms (it may be finalizing: its agent
 * closes and its main thread leaves Python before it is gone). */
static int gone_soon(pid_t pid, unsigned int ms)
{
	unsigned int waited = 0;

	while (!process_gone(pid)) {
		if (waited >= ms)
			return 0;
		usleep(INT_POLL_US);
		waited += INT_POLL_US / 1000;
	}
	return 1;
}

/* "file:line in function" of a frame object, or NULL. */
static const char *frame_str(struct json_object *fr, char *buf, size_t len)
{
	if (!fr || !json_object_is_type(fr, json_type_object))
		return NULL;
	snprintf(buf, len, "%s:%lld in %s", cli_json_str(fr, "file") ?: "?",
		 cli_json_int(fr, "line"), cli_json_str(fr, "function") ?: "?");
	return buf;
}

/* 'thread "worker" (tid 42)' or 'the main thread (tid 42)'. */
static void thread_str(struct json_object *th, char *buf, size_t len)
{
	struct json_object *v;
	const char *name = cli_json_str(th, "name");
	char tid[32] = "tid ?";

	if (json_object_object_get_ex(th, "tid", &v) && json_object_is_type(v, json_type_int))
		snprintf(tid, sizeof(tid), "tid %lld", (long long)json_object_get_int64(v));
	else if (json_object_object_get_ex(th, "ident", &v))
		snprintf(tid, sizeof(tid), "ident %llu",
			 (unsigned long long)json_object_get_uint64(v));
	if (json_object_object_get_ex(th, "main", &v) && json_object_get_boolean(v))
		snprintf(buf, len, "the main thread%s%s%s (%s)", name ? " \"" : "",
			 name ? name : "", name ? "\"" : "", tid);
	else
		snprintf(buf, len, "thread \"%s\" (%s)", name ? name : "?", tid);
}

static struct json_object *member(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	if (o)
		json_object_object_get_ex(o, key, &v);
	return v;
}

static int member_bool(struct json_object *o, const char *key)
{
	struct json_object *v = member(o, key);

	return v && json_object_get_boolean(v);
}

static void doc_set(struct intr *in, const char *key, struct json_object *v)
{
	json_object_object_add(in->doc, key, v);
}

/* Where the thread is now, from an answer (NULL: the process is gone). */
static void report_after(struct intr *in, struct json_object *resp)
{
	struct json_object *th = member(resp, "thread");
	char buf[600];

	if (!resp) {
		doc_set(in, "exited", json_object_new_boolean(1));
		cli_out_info(in->c->out, "  pid %d has exited since", (int)in->pid);
		return;
	}
	if (member_bool(th, "main") && !member_bool(th, "alive") &&
	    gone_soon(in->pid, INT_WITHDRAW_MS)) {
		report_after(in, NULL);
		return;
	}
	doc_set(in, "exited", json_object_new_boolean(0));
	doc_set(in, "after", th ? json_object_get(th) : NULL);
	if (member_bool(th, "main") && !member_bool(th, "alive"))
		cli_out_info(in->c->out, "  the main thread runs no Python code now: "
			     "pid %d may be exiting", (int)in->pid);
	else if (!member_bool(th, "alive"))
		cli_out_info(in->c->out, "  the thread has ended since");
	else if (frame_str(member(th, "frame"), buf, sizeof(buf)))
		cli_out_info(in->c->out, "  it is now at %s", buf);
}

/* After a delivery: what was done, where the thread was, and one more
 * look, so that "now" is after the raise. */
static int finish_delivered(struct intr *in, struct json_object *resp,
			    struct pyhot_err *err)
{
	struct json_object *where = NULL;
	struct pyhot_err e;

	doc_set(in, "delivered", json_object_new_boolean(1));
	cli_out_info(in->c->out, "interrupted %s of pid %d: %s raised at its next bytecode",
		     in->who, (int)in->pid, in->exc);
	if (in->before)
		cli_out_info(in->c->out, "  it was at %s", in->before);
	pyhot_err_init(&e);
	if (process_gone(in->pid)) {
		report_after(in, NULL);
	} else if (icall(in, "where", INT_WITHDRAW_MS, &where, &e) == 0) {
		report_after(in, where);
	} else if (gone_soon(in->pid, INT_WITHDRAW_MS)) {
		report_after(in, NULL);
	} else {
		/* The thread has ended: its name names nothing any more. */
		report_after(in, resp);
	}
	if (where)
		json_object_put(where);
	return 0;
}

/* /proc/PID/status (or a task's) line "key:\t<hex mask>" has signal sig. */
static int sigmask_has(const char *path, const char *key, int sig)
{
	char buf[4096], *p;
	unsigned long long mask;

	cli_read_text(path, buf, sizeof(buf), 0);
	p = strstr(buf, key);
	if (!p)
		return 0;
	mask = strtoull(p + strlen(key), NULL, 16);
	return (mask >> (sig - 1)) & 1;
}

/* Whether SIGINT can interrupt the main thread as Python's handler does;
 * fills err (nothing sent) when it cannot. */
static int sigint_usable(struct intr *in, const char *handler, int had_sp,
			 struct pyhot_err *err)
{
	enum pyhot_errkind kind = had_sp ? PYHOT_ERR_FAILED : PYHOT_ERR_TIMEOUT;
	char path[64], task[96];
	pid_t pid = in->pid;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	snprintf(task, sizeof(task), "/proc/%d/task/%d/status", (int)pid, (int)pid);
	if (strcmp(in->exc, INT_DEFAULT_EXC) != 0) {
		pyhot_err_set(err, kind, 0, pid, "interrupt", "the main thread of pid %d "
			      "is held in C code, where no %s reaches it; only SIGINT "
			      "does, which raises KeyboardInterrupt: nothing sent",
			      (int)pid, in->exc);
		pyhot_err_hint(err, "pyhot interrupt %d (without --exception) sends SIGINT",
			       (int)pid);
		return -(int)kind;
	}
	if (handler && strcmp(handler, "default") != 0) {
		pyhot_err_set(err, kind, 0, pid, "interrupt", "the main thread of pid %d "
			      "is held in C code, and its SIGINT handler is %s, not "
			      "Python's default: a SIGINT would run that instead of raising "
			      "KeyboardInterrupt: nothing sent", (int)pid,
			      strcmp(handler, "ignored") == 0 ? "SIG_IGN" :
			      strcmp(handler, "default-action") == 0 ? "SIG_DFL" : handler);
		pyhot_err_hint(err, "'kill -INT %d' sends it anyway", (int)pid);
		return -(int)kind;
	}
	if (sigmask_has(path, "SigIgn:", SIGINT) || !sigmask_has(path, "SigCgt:", SIGINT) ||
	    sigmask_has(task, "SigBlk:", SIGINT)) {
		pyhot_err_set(err, kind, 0, pid, "interrupt", "the main thread of pid %d "
			      "is held in C code and SIGINT cannot interrupt it: the process "
			      "%s: nothing sent", (int)pid,
			      sigmask_has(path, "SigIgn:", SIGINT) ? "ignores SIGINT" :
			      sigmask_has(task, "SigBlk:", SIGINT) ?
			      "blocks SIGINT in its main thread" :
			      "has no SIGINT handler (a SIGINT would end it)");
		return -(int)kind;
	}
	return 0;
}

/* Samples of the main thread's system call: one waiting for the GIL wakes
 * every switch interval and runs a moment between its waits. */
#define INT_FUTEX_SAMPLES 20
#define INT_FUTEX_GAP_US 1000

/*
 * The main thread waits in futex(): for the GIL (or for a lock of C code).
 * A SIGINT would not wake it for good, as the wait goes on after the
 * handler, and would fire later in whatever it runs next. Seen when some
 * samples show futex() and none another system call (a thread running C
 * code shows "running", one in sleep() nanosleep).
 */
static int main_in_futex(pid_t pid)
{
	char path[96], buf[256], *end;
	int i, futex = 0, other = 0;
	long nr;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", (int)pid, (int)pid);
	for (i = 0; i < INT_FUTEX_SAMPLES && !other; i++) {
		cli_read_text(path, buf, sizeof(buf), 0);
		nr = strtol(buf, &end, 10);
		if (end != buf && nr == SYS_futex)
			futex++;
		else if (end != buf && nr >= 0)
			other++;
		usleep(INT_FUTEX_GAP_US);
	}
	return futex > 0 && !other;
}

/*
 * The main thread is held in C: send SIGINT to it (tgkill: a signal to the
 * process may land on another thread and leave the main one asleep) and
 * wait for a safe point to see where it went. handler: the SIGINT handler
 * the agent saw, NULL when no safe point was reached before.
 */
static int signal_path(struct intr *in, const char *handler, const char *before,
		       struct pyhot_err *err)
{
	struct json_object *resp = NULL;
	struct pyhot_err e;
	pid_t pid = in->pid;
	int r;

	r = sigint_usable(in, handler, handler != NULL, err);
	if (r < 0)
		return r;
	if (!handler && main_in_futex(pid)) {
		pyhot_err_set(err, PYHOT_ERR_TIMEOUT, 0, pid, "interrupt", "no safe point "
			      "in pid %d, and its main thread waits in futex(): another "
			      "thread holds the GIL in C code, and a SIGINT would not free "
			      "it: nothing sent", (int)pid);
		pyhot_err_hint(err, "pyhot stack %d shows which thread holds the GIL; a "
			       "non-main thread in C cannot be interrupted: pid %d is "
			       "unchanged", (int)pid, (int)pid);
		return -PYHOT_ERR_TIMEOUT;
	}
	if (syscall(SYS_tgkill, (int)pid, (int)pid, SIGINT) < 0) {
		int saved = errno;

		return pyhot_err_set(err, PYHOT_ERR_FAILED, saved, pid, "interrupt",
				     "tgkill(%d, %d, SIGINT): %s", (int)pid, (int)pid,
				     strerror(saved));
	}
	doc_set(in, "method", json_object_new_string("sigint"));
	cli_out_info(in->c->out, "interrupted the main thread (tid %d) of pid %d with "
		     "SIGINT: it %s", (int)pid, (int)pid, before ? "was blocked in C code" :
		     "held the GIL in C code (its Python frames could not be read)");
	if (before)
		cli_out_info(in->c->out, "  it was at %s", before);
	pyhot_err_init(&e);
	r = icall(in, "where", left_ms(in) > 1000 ? left_ms(in) : 1000, &resp, &e);
	if (r == 0) {
		doc_set(in, "delivered", json_object_new_boolean(1));
		report_after(in, resp);
		handler = cli_json_str(resp, "sigint_handler");
		if (handler && strcmp(handler, "default") != 0)
			cli_out_info(in->c->out, "  its SIGINT handler is %s, not Python's "
				     "default", handler);
		json_object_put(resp);
		return 0;
	}
	if (resp)
		json_object_put(resp);
	if (gone_soon(pid, INT_WITHDRAW_MS)) {
		doc_set(in, "delivered", json_object_new_boolean(1));
		report_after(in, NULL);
		return 0;
	}
	doc_set(in, "delivered", json_object_new_boolean(0));
	pyhot_err_set(err, PYHOT_ERR_UNCERTAIN, 0, pid, "interrupt", "SIGINT was sent to "
		      "the main thread of pid %d, and no safe point came after it: the "
		      "main thread is held in C code, still or again (%s)", (int)pid, e.msg);
	pyhot_err_hint(err, "pyhot cannot tell whether its handler ran; if not, it runs "
		       "when that C code checks for signals or returns to Python (a "
		       "signal cannot be withdrawn); the stacks: pyhot stack %d", (int)pid);
	return -PYHOT_ERR_UNCERTAIN;
}

/* The withdrawal got no answer: the exception may still be pending. */
static int withdraw_failed(struct intr *in, struct pyhot_err *err)
{
	err->kind = PYHOT_ERR_UNCERTAIN;
	err->hint[0] = '\0';
	pyhot_err_hint(err, "the %s sent to %s could not be withdrawn: it is raised "
		       "when that thread next runs Python", in->exc, in->who);
	return -PYHOT_ERR_UNCERTAIN;
}

/* The exception was not taken in time: withdraw it and say why. */
static int not_taken(struct intr *in, struct json_object *th, struct pyhot_err *err)
{
	struct json_object *resp = NULL;
	const char *who = in->who;
	char at[600];
	int r;

	r = icall(in, "withdraw", INT_WITHDRAW_MS, &resp, err);
	if (r < 0) {
		if (resp)
			json_object_put(resp);
		return withdraw_failed(in, err);
	}
	if (!member_bool(resp, "withdrawn")) {
		r = finish_delivered(in, resp, err);
		json_object_put(resp);
		return r;
	}
	json_object_put(resp);
	doc_set(in, "delivered", json_object_new_boolean(0));
	doc_set(in, "withdrawn", json_object_new_boolean(1));
	pyhot_err_set(err, PYHOT_ERR_FAILED, 0, in->pid, "interrupt", "%s of pid %d ran "
		      "no Python code within %.1f s: it is blocked in C code%s%s; not "
		      "interrupted", who, (int)in->pid, in->c->args->timeout_ms / 1000.0,
		      frame_str(member(th, "frame"), at, sizeof(at)) ? ", called at " : "",
		      frame_str(member(th, "frame"), at, sizeof(at)) ? at : "");
	if (member_bool(th, "main"))
		pyhot_err_hint(err, "the %s was withdrawn before that thread saw it: pid %d "
			       "is unchanged. A main thread held in C is interrupted only by "
			       "SIGINT, which raises KeyboardInterrupt: retry without "
			       "--exception", in->exc, (int)in->pid);
	else
		pyhot_err_hint(err, "the %s was withdrawn before that thread saw it: pid %d "
			       "is unchanged. Only a main thread can be interrupted in C code "
			       "(by SIGINT); this one runs on until its call returns",
			       in->exc, (int)in->pid);
	return -PYHOT_ERR_FAILED;
}

/* Sent: wait until the thread takes it, or until --timeout. */
static int async_path(struct intr *in, struct json_object *sent, struct pyhot_err *err)
{
	struct json_object *th = member(sent, "thread"), *resp = NULL;
	int is_main = member_bool(th, "main");
	const char *handler = cli_json_str(sent, "sigint_handler");
	double blocked_since = member_bool(sent, "on_thread") ? 0 : now_s();
	const char *who = in->who;
	int r;

	snprintf(in->id, sizeof(in->id), "%lld", cli_json_int(sent, "id"));
	in->before = frame_str(member(th, "frame"), in->at, sizeof(in->at));
	thread_str(th, in->who, sizeof(in->who));
	doc_set(in, "method", json_object_new_string("async-exception"));
	doc_set(in, "thread", json_object_get(th));
	doc_set(in, "before", json_object_get(member(th, "frame")));
	for (;;) {
		r = icall(in, "check", INT_WITHDRAW_MS, &resp, err);
		if (r < 0) {
			if (resp)
				json_object_put(resp);
			if (gone_soon(in->pid, INT_WITHDRAW_MS)) {
				doc_set(in, "delivered", json_object_new_boolean(1));
				report_after(in, NULL);
				return 0;
			}
			err->kind = PYHOT_ERR_UNCERTAIN;
			pyhot_err_hint(err, "the %s sent to %s may still be pending: it is "
				       "raised when that thread next runs Python", in->exc, who);
			return -PYHOT_ERR_UNCERTAIN;
		}
		if (!member_bool(resp, "pending")) {
			r = finish_delivered(in, resp, err);
			json_object_put(resp);
			return r;
		}
		if (member_bool(resp, "on_thread"))
			blocked_since = 0;
		else if (!blocked_since)
			blocked_since = now_s();
		json_object_put(resp);
		resp = NULL;
		if (is_main && blocked_since && now_s() - blocked_since >= INT_BLOCKED_MS / 1000 &&
		    strcmp(in->exc, INT_DEFAULT_EXC) == 0)
			break;
		if (now_s() >= in->deadline)
			return not_taken(in, th, err);
		usleep(INT_POLL_US);
	}
	/* A main thread blocked in C: take the exception back, send SIGINT. */
	r = icall(in, "withdraw", INT_WITHDRAW_MS, &resp, err);
	if (r == 0 && !member_bool(resp, "withdrawn")) {
		r = finish_delivered(in, resp, err);
		json_object_put(resp);
		return r;
	}
	if (resp)
		json_object_put(resp);
	if (r < 0)
		return withdraw_failed(in, err);
	return signal_path(in, handler, in->before, err);
}

/* Checks of the command line that need no agent: nothing is sent when
 * they fail. */
static int check_input(struct intr *in, struct pyhot_err *err)
{
	const char *t = in->c->args->thread;
	char path[96];
	pid_t tid;

	if (!known_exception(in->exc)) {
		pyhot_err_set(err, PYHOT_ERR_USAGE, 0, in->pid, "interrupt",
			      "'%s' is not a builtin exception class", in->exc);
		pyhot_err_hint(err, "give a class of builtins, like KeyboardInterrupt, "
			       "SystemExit or RuntimeError; pid %d is unchanged", (int)in->pid);
		return -PYHOT_ERR_USAGE;
	}
	/* A small number is a thread id (larger ones are idents). */
	if (t && cli_parse_pid(t, &tid) == 0 && tid < (1 << 22)) {
		snprintf(path, sizeof(path), "/proc/%d/task/%d", (int)in->pid, (int)tid);
		if (access(path, F_OK) < 0) {
			pyhot_err_set(err, PYHOT_ERR_FAILED, 0, in->pid, "interrupt",
				      "pid %d has no thread %d", (int)in->pid, (int)tid);
			pyhot_err_hint(err, "pyhot stack %d shows its threads; pid %d is "
				       "unchanged", (int)in->pid, (int)in->pid);
			return -PYHOT_ERR_FAILED;
		}
	}
	return 0;
}

/* Send, then follow it to the end. */
static int run(struct intr *in, struct pyhot_err *err)
{
	const struct cli_args *a = in->c->args;
	struct json_object *resp = NULL;
	struct pyhot_err e;
	unsigned int first;
	int r, main_thread;

	in->start = now_s();
	in->deadline = in->start + a->timeout_ms / 1000.0;
	first = a->timeout_ms / 2 < INT_FIRST_SP_MS ? a->timeout_ms / 2 : INT_FIRST_SP_MS;
	pyhot_err_init(&e);
	r = icall(in, "send", first ? first : 1, &resp, &e);
	if (r == 0) {
		r = async_path(in, resp, err);
		json_object_put(resp);
		return r;
	}
	if (resp)
		json_object_put(resp);
	main_thread = !a->thread || (cli_parse_pid(a->thread, &(pid_t){ 0 }) == 0 &&
				     atoi(a->thread) == a->pid);
	if (e.kind != PYHOT_ERR_TIMEOUT || !main_thread) {
		*err = e;
		if (e.kind == PYHOT_ERR_TIMEOUT) {
			err->hint[0] = '\0';
			pyhot_err_hint(err, "nothing was sent: a thread holds the GIL in C "
				       "code, and only the main thread can be interrupted there "
				       "(by SIGINT; without a safe point it is known by its tid "
				       "%d only, or with no --thread); pyhot stack %d shows the "
				       "native stacks", (int)a->pid, (int)a->pid);
		}
		return -(int)e.kind;
	}
	doc_set(in, "thread", NULL);
	return signal_path(in, NULL, NULL, err);
}

int cli_cmd_interrupt(struct cli_ctx *c, struct pyhot_err *err)
{
	const struct cli_args *a = c->args;
	struct intr in = { .c = c, .pid = a->pid,
			   .exc = a->exception ? a->exception : INT_DEFAULT_EXC,
			   .doc = json_object_new_object() };
	int r;

	if (!in.doc)
		return pyhot_err_set(err, PYHOT_ERR_FAILED, ENOMEM, a->pid, "interrupt",
				     "out of memory");
	json_object_object_add(in.doc, "exception", json_object_new_string(in.exc));
	r = check_input(&in, err);
	if (r == 0)
		r = cli_attach_quiet(c, err);
	if (r == 0)
		r = run(&in, err);
	cli_out_set(c->out, "interrupt", in.doc);
	return r;
}
