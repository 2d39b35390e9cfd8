/*
 * cli.h: the pieces of the pyhot command (cli/).
 *
 * main.c parses the command line (args.c), sets up output (out.c) and runs
 * one command (cmd_*.c). Everything but main() lives in build/libpyhot-cli.a
 * so that unit tests can link it; the attach library is
 * build/libpyhot-attach.a. The option and command tables in args.c are
 * the single source of --help; tests/integration checks them against
 * man/pyhot.1.
 */
#ifndef PYHOT_CLI_H
#define PYHOT_CLI_H

#include <pthread.h>
#include <stdio.h>
#include <sys/types.h>

#include "client.h"
#include "pyhot_attach.h"
#include "pyhot_err.h"

struct json_object;

#define PYHOT_VERSION "0.1.0"
#define CLI_JSON_FORMAT 1

enum cli_cmd {
	CLI_CMD_NONE = 0,   /* "pyhot" alone, or "pyhot --help" */
	CLI_CMD_HELP,
	CLI_CMD_ATTACH,
	CLI_CMD_STATUS,
	CLI_CMD_DETACH,
	CLI_CMD_REFRESH,
	CLI_CMD_PS,
	CLI_CMD_STACK,
	CLI_CMD_WATCH,
	CLI_CMD_EXEC,
	CLI_CMD_ROLLBACK,
	CLI_CMD_INTERRUPT,
	CLI_CMD_COUNT
};

#define CLI_MAX_MODULES 64
#define CLI_MAX_PIDS 256

/* Commands that take several pids and --tree PID (multi.c). */
#define CLI_CMD_MULTI(cmd) ((cmd) == CLI_CMD_STATUS || (cmd) == CLI_CMD_REFRESH || \
			    (cmd) == CLI_CMD_ROLLBACK || (cmd) == CLI_CMD_EXEC)

/* The parsed command line. Strings point into argv. */
struct cli_args {
	enum cli_cmd cmd;
	enum cli_cmd help_for;      /* "pyhot help CMD", "pyhot CMD --help" */
	int help;                   /* print help for help_for and exit 0 */
	int version;
	pid_t pid;                  /* the first pid given (or --tree's) */
	size_t npids;               /* pids given, in order (CLI_CMD_MULTI) */
	pid_t pids[CLI_MAX_PIDS];
	pid_t tree;                 /* --tree PID: it and its Python descendants */
	int ps_tree;                /* ps --tree */
	int json;
	int verbose;
	int quiet;
	int dry_run;
	int rerun;                  /* refresh --rerun-statements */
	unsigned int timeout_ms;    /* --timeout, default CLI_DEFAULT_TIMEOUT_MS */
	size_t nmodules;
	const char *modules[CLI_MAX_MODULES];
	const char *code;           /* exec -c CODE */
	const char *file;           /* exec FILE ("-": standard input) */
	size_t npaths;              /* watch [path...] */
	const char *paths[CLI_MAX_MODULES];
	const char *to;             /* rollback --to N (digits, checked) */
	int leaks;                  /* status --leaks */
	unsigned int history;       /* attach --history N; 0: the agent's default */
	const char *thread;         /* interrupt --thread NAME|TID; NULL: main */
	const char *exception;      /* interrupt --exception NAME; NULL: default */
};

#define CLI_DEFAULT_TIMEOUT_MS 5000u

/* Name of a command ("attach"), "" for CLI_CMD_NONE. */
const char *cli_cmd_name(enum cli_cmd cmd);

/* The command named name, or CLI_CMD_NONE. */
enum cli_cmd cli_cmd_lookup(const char *name);

/*
 * Parse argv. On a usage error returns -PYHOT_ERR_USAGE with err->msg the
 * one-line reason and err->hint what to type; a->cmd and a->json are set as
 * far as they could be read, so that the caller can still write JSON.
 */
int cli_args_parse(struct cli_args *a, int argc, char **argv,
		   struct pyhot_err *err) PYHOT_MUST_CHECK;

/* Parse a --timeout value: seconds, decimals allowed ("0.5", "10"). */
int cli_parse_timeout(const char *s, unsigned int *ms);

/* Parse a pid argument: a positive decimal integer. */
int cli_parse_pid(const char *s, pid_t *pid);

/* Print the help of one command (CLI_CMD_NONE: the overview) to f. */
void cli_help_print(FILE *f, enum cli_cmd cmd);

/* Output: human text, or one JSON object for --json. */
struct cli_out {
	int json;
	int verbose;
	int quiet;
	int color_out;              /* stdout is a tty and NO_COLOR is unset */
	int color_err;
	enum cli_cmd cmd;
	pid_t pid;
	struct json_object *doc;    /* the --json object, built as we go */
	char *detail;               /* printed after the error message */
	/* Where results and errors go: stdout and stderr, or a step's own
	 * streams when the command runs for one of several processes
	 * (steps.c). Every command writes through these, never to stdout. */
	FILE *out;
	FILE *err;
	/* Not NULL: cli_out_finish() puts a reference to the --json document
	 * there instead of printing it (a step's document goes to the caller
	 * as an object: steps.c). */
	struct json_object **keep;
};

void cli_out_init(struct cli_out *o, const struct cli_args *a);
void cli_out_release(struct cli_out *o);

/* A line of normal output (suppressed by -q and --json). */
void cli_out_info(struct cli_out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A line shown with -v only (to stderr, never into the JSON). */
void cli_out_verbose(struct cli_out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Text that explains the coming error (a traceback, a native stack): printed
 * on stderr after the error's message, before its hint. Appends. */
void cli_out_detail(struct cli_out *o, const char *text);

/* Add a field to the --json document (takes ownership of val). */
void cli_out_set(struct cli_out *o, const char *key, struct json_object *val);

/*
 * Report err (human: "pyhot: <msg>" and "hint: <hint>" on stderr) and, with
 * --json, put it into the document. Returns the exit code (err->kind).
 */
int cli_out_error(struct cli_out *o, const struct pyhot_err *err);

/* With --json, print the document with "ok" and "exit" set from code. */
int cli_out_finish(struct cli_out *o, int code);

/* Colour helpers: the escape when colour is on, "" otherwise. */
const char *cli_color(int on, const char *which);

/* The trace log (PYHOT_TRACE=1): installs a callback writing to stderr. */
void cli_trace_setup(void);

/* ----- The commands' context (ctx.c) ----- */

/* What the commands share: the target and where its agent listens. */
struct json_object;
struct pyhot_client_req;

struct cli_ctx {
	const struct cli_args *args;
	struct cli_out *out;
	struct pyhot_target t;
	char sock[256];             /* socket path as the target sees it */
	int direct;                 /* /proc/PID is closed to us (the target is
				     * not dumpable) but an agent it started
				     * itself (python -m pyhot run) answers at
				     * our euid's path: sock is a path of ours */
	int no_agent;               /* a request found no agent listening */
	int agent_seen;             /* cli_attach_ensure() found or started the
				     * agent: a second command on this context
				     * (a refresh's apply after its dry run,
				     * steps.h) does not ask again */
	struct cli_gate *attach_gate;   /* several processes (steps.h): after its
					 * attach, wait for every other's */
	int gate_passed;
	struct pyhot_client_kept kept;  /* a connection to its agent that the
					 * last request asked to keep
					 * (cli_call_keep()): the next request
					 * goes there when it can */
};

/*
 * Where the commands of several processes (steps.h) wait after attaching
 * until every one of them has: an injection borrows a thread of its
 * target, and the first plans of processes attached before it (tens of
 * milliseconds of CPU each) kept that thread stopped 20 to 50 ms on two
 * CPUs. Pass it once per context: cli_ctx_gate_pass().
 */
struct cli_gate {
	pthread_mutex_t lock;
	pthread_cond_t all_passed;
	size_t left;                /* contexts still to pass */
};

void cli_gate_init(struct cli_gate *g, size_t n);
void cli_gate_destroy(struct cli_gate *g);

/* Whether t (inspected, light or whole) has our agent's socket at its
 * path, seen through /proc/PID/root; who listens is not known. 1 or 0. */
int cli_target_agent_socket(const struct pyhot_target *t);

/* Whether t's own agent listens there: the directory and the socket judged
 * as for a request (client_trust.c), then a connect() whose peer must be
 * t, closed at once (the agent drops a connection that sends nothing). A
 * socket nobody listens on (left by an older process of that pid, or by
 * one that exec'd: the agent's socket is close-on-exec) refuses it. 1 or
 * 0. */
int cli_target_agent_listening(const struct pyhot_target *t);

/* Whether c's target should have an agent to ask: its agent's socket is
 * there (who listens is checked when a request connects) and the process
 * is not stopped, a zombie, traced or opted out. 1 or 0. */
int cli_ctx_agent_expected(const struct cli_ctx *c);

/* Count c as passed (once; nothing without a gate), and with wait, sleep
 * until every context has. */
void cli_ctx_gate_pass(struct cli_ctx *c, int wait);

/* Send one request to the agent of c (through /proc/PID/root, or directly
 * when c->direct) and read its answer. */
int cli_ctx_call(struct cli_ctx *c, const struct pyhot_client_req *req,
		 unsigned int timeout_ms, struct json_object **resp,
		 struct pyhot_err *err) PYHOT_MUST_CHECK;

/* Inspect the target and compute its socket path. */
int cli_ctx_init(struct cli_ctx *c, const struct cli_args *a, struct cli_out *o,
		 struct pyhot_err *err) PYHOT_MUST_CHECK;

/* The same with the target as the caller inspected it (seen; NULL:
 * inspect it): a --tree command inspects its root to know whether it is
 * Python, and its step need not again. The state and tracer it gives are
 * the walk of the tree older (milliseconds); the request checks the rest. */
int cli_ctx_init_seen(struct cli_ctx *c, const struct cli_args *a, struct cli_out *o,
		      const struct pyhot_target *seen, struct pyhot_err *err) PYHOT_MUST_CHECK;

/* The same with only pyhot_target_inspect_light() (c->t.light): enough
 * for the socket path and a request to the agent; an attach inspects the
 * rest first (cmd_attach.c). */
int cli_ctx_init_light(struct cli_ctx *c, const struct cli_args *a, struct cli_out *o,
		       struct pyhot_err *err) PYHOT_MUST_CHECK;

/*
 * cli_agent_call() in three parts, for a thread that has the requests of
 * several processes under way at once (steps.c): start sends (a usage
 * error returns -PYHOT_ERR_USAGE with err set and nothing under way);
 * while call->r is 0, poll call->conn (pyhot_client_conn_events(),
 * pyhot_client_conn_remaining()) and continue; end closes it and gives
 * what cli_agent_call() returns. Always end a started call.
 */
struct cli_call {
	struct pyhot_client_conn conn;
	const char *verb;
	unsigned int io_ms;         /* the request's deadline */
	int r;                      /* 0 under way, 1 answered, < 0 failed (e) */
	struct json_object *resp;   /* the answer, when r is 1 */
	struct pyhot_err e;
};

int cli_agent_call_start(struct cli_ctx *c, const char *verb, const char *const *kv,
			 size_t nkv, unsigned int timeout_ms, struct cli_call *call,
			 struct pyhot_err *err) PYHOT_MUST_CHECK;
void cli_call_continue(struct cli_call *call);
/* An answered call whose request asked the agent to keep the connection
 * ("keep": "1") and whose answer says it did: c keeps it for its next
 * request (pyhot_client_start_on() says when it is still used);
 * cli_ctx_release() closes it if none comes. Nothing otherwise. */
void cli_call_keep(struct cli_ctx *c, struct cli_call *call);
/* What a context holds: a kept connection. */
void cli_ctx_release(struct cli_ctx *c);
int cli_agent_call_end(struct cli_ctx *c, struct cli_call *call,
		       struct json_object **resp, struct pyhot_err *err) PYHOT_MUST_CHECK;

/* Send verb with key/value pairs to the agent and check the answer; on an
 * agent error kind "timeout" adds the main thread's native stack (unless
 * --timeout was too short to mean anything), and a request that got no
 * answer says what was slow (cli_timeout_explain()). */
int cli_agent_call(struct cli_ctx *c, const char *verb, const char *const *kv,
		   size_t nkv, unsigned int timeout_ms, struct json_object **resp,
		   struct pyhot_err *err) PYHOT_MUST_CHECK;

/*
 * After the agent refused its socket directory (boot returned -ENOTDIR,
 * -EPERM or -EACCES, payload/boot.c): the CLI's own judgement of that
 * directory, naming its owner, into err ("trust: socket directory ... is
 * owned by ..."), returning -PYHOT_ERR_FAILED; 0 when the CLI finds nothing
 * wrong there now (the caller explains the boot's errno itself).
 */
int cli_sock_dir_explain(struct cli_ctx *c, struct pyhot_err *err) PYHOT_MUST_CHECK;

/* Below this --timeout, "no safe point" says more about the timeout than
 * about the target: a safe point takes about a millisecond, but a loaded
 * machine may not schedule the target's threads that soon. */
#define CLI_SHORT_TIMEOUT_MS 200u

/* Whether a --timeout of timeout_ms is too short to judge a target by. */
int cli_timeout_short(unsigned int timeout_ms);

/* What was slow when a request timed out. */
enum cli_slow {
	CLI_SLOW_ACCEPT,      /* the agent did not accept the connection */
	CLI_SLOW_READ,        /* it did not read the request (busy, or stuck) */
	CLI_SLOW_ANSWER,      /* it read the request and sent no answer */
	CLI_SLOW_SAFE_POINT,  /* it answered "timeout": no safe point came */
	CLI_SLOW_TOO_SHORT,   /* ditto, with a --timeout below CLI_SHORT_TIMEOUT_MS */
};

/*
 * Explain a timed-out request in err: answered when the agent itself said
 * "timeout", else err is the client's (its step says what was slow);
 * wait_ms how long we waited. Sets the hint (and, when too short, the
 * message) for every case but CLI_SLOW_SAFE_POINT, which is the caller's.
 */
enum cli_slow cli_timeout_explain(struct cli_ctx *c, struct pyhot_err *err, int answered,
				  unsigned int wait_ms);

/* Pure parsers of /proc text (ctx.c): the Tgid of /proc/PID/status, the
 * flags (field 9) of /proc/PID/stat. 0, or -1 when absent. */
int cli_proc_parse_tgid(const char *status_text, pid_t *tgid);
int cli_proc_parse_stat_flags(const char *stat_text, unsigned long *flags);

/* ----- Commands (cmd_*.c) ----- */

/* Ensure an agent answers in the target (cmd_attach.c). *reused is set when one
 * was already there. Writes the "attach" fields into the JSON document. */
int cli_attach_ensure(struct cli_ctx *c, int *reused,
		      struct pyhot_err *err) PYHOT_MUST_CHECK;

int cli_cmd_attach(struct cli_ctx *c, struct pyhot_err *err) PYHOT_MUST_CHECK;
int cli_cmd_status(struct cli_ctx *c, struct pyhot_err *err) PYHOT_MUST_CHECK;
int cli_cmd_detach(struct cli_ctx *c, struct pyhot_err *err) PYHOT_MUST_CHECK;
int cli_cmd_refresh(struct cli_ctx *c, struct pyhot_err *err) PYHOT_MUST_CHECK;
int cli_cmd_rollback(struct cli_ctx *c, struct pyhot_err *err) PYHOT_MUST_CHECK;
/* stack, watch, exec: attach first when needed (cmd_stack.c, cmd_watch.c,
 * cmd_exec.c). */
int cli_cmd_stack(struct cli_ctx *c, struct pyhot_err *err) PYHOT_MUST_CHECK;
int cli_cmd_watch(struct cli_ctx *c, struct pyhot_err *err) PYHOT_MUST_CHECK;
int cli_cmd_exec(struct cli_ctx *c, struct pyhot_err *err) PYHOT_MUST_CHECK;
/* interrupt: attaches first when needed (cmd_interrupt.c). */
int cli_cmd_interrupt(struct cli_ctx *c, struct pyhot_err *err) PYHOT_MUST_CHECK;
/* ps takes no pid and no cli_ctx (cmd_ps.c). */
int cli_cmd_ps(const struct cli_args *a, struct cli_out *o,
	       struct pyhot_err *err) PYHOT_MUST_CHECK;

/*
 * A command in its two halves, for steps that have the requests of several
 * processes under way from one thread (steps.c): the key/value pairs of its
 * request (kv holds CLI_SPLIT_KV_MAX; returns how many), and its report of
 * the answer into c->out (r and resp: what cli_agent_call() gave; it puts
 * resp; returns the command's result). The one-process command is the
 * same: attach, kv, cli_agent_call(), report.
 */
#define CLI_SPLIT_KV_MAX (2 * CLI_MAX_MODULES + 6)   /* kv() leaves 2 for its caller */

struct cli_cmd_split {
	const char *verb;
	size_t (*kv)(const struct cli_args *a, const char **kv);
	int (*report)(struct cli_ctx *c, int r, struct json_object *resp,
		      struct pyhot_err *err);
};

extern const struct cli_cmd_split cli_refresh_split;

/* ----- Payload lookup (payload_path.c) ----- */

/*
 * Find the payload: $PYHOT_PAYLOAD when set (it must be readable), then
 * <dir of exe>/pyhot-payload.so, then <dir of exe>/../lib/pyhot/pyhot-payload.so.
 * env and exe are passed in so that tests can drive it. Fails with
 * PYHOT_ERR_ATTACH, naming what was tried.
 */
int cli_payload_find_in(const char *env, const char *exe, char *buf, size_t len,
			struct pyhot_err *err) PYHOT_MUST_CHECK;
/* The same with getenv("PYHOT_PAYLOAD") and /proc/self/exe; the payload
 * found must then pass cli_payload_check_build(). */
int cli_payload_find(char *buf, size_t len, struct pyhot_err *err) PYHOT_MUST_CHECK;

/* ----- Version and payload build check (version.c) ----- */

/*
 * The payload at path is the one built with this command: its ELF note
 * NT_GNU_BUILD_ID equals the id make recorded when it linked the command
 * (build/gen/pyhot_build.h). Otherwise fails with PYHOT_ERR_ATTACH, both ids
 * in the message: a payload from another build may speak another protocol.
 */
int cli_payload_check_build(const char *path, struct pyhot_err *err) PYHOT_MUST_CHECK;

/* The build id of the payload built with this command (lower-case hex),
 * which the injector checks again on the descriptor it loads from. */
const char *cli_payload_build_id(void);
/* --version: the version, the git revision and the payload's build id. */
void cli_version_report(struct cli_out *o);

/* ----- Formatting of agent responses (format.c) ----- */

/* A string member of o, or NULL (absent, not a string, o NULL). */
const char *cli_json_str(struct json_object *o, const char *key);
/* An integer member of o, or 0. */
long long cli_json_int(struct json_object *o, const char *key);

/* One line for a refresh change: "  changed  function  app.views.index (code)". */
void cli_fmt_change(char *buf, size_t len, struct json_object *change, int color);
/* The whole refresh response: a line per change ("kept" ones only when
 * verbose) and a summary per module. */
void cli_fmt_refresh(FILE *f, struct json_object *resp, pid_t pid, int verbose,
		     int color);
/* The status response, as "key: value" lines. */
void cli_fmt_status(FILE *f, struct json_object *resp, pid_t pid);
/* ----- The generation tracker's answers (format_history.c) ----- */


/* The "history" of a status response: one line per generation, newest
 * first, and what the history holds. */
void cli_fmt_history(FILE *f, struct json_object *resp, int verbose, int color);
/* The "leaks" of a status --leaks response ("none" when empty). */
void cli_fmt_leaks(FILE *f, struct json_object *resp, pid_t pid);
/* A rollback response: its changes and a summary line. */
void cli_fmt_rollback(FILE *f, struct json_object *resp, pid_t pid, int verbose,
		      int color);

/* "3.11.7" from a status/ping response, or from the inspection. */
void cli_fmt_version(char *buf, size_t len, struct json_object *resp,
		     const struct pyhot_target *t);

#endif /* PYHOT_CLI_H */
