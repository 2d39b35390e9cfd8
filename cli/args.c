/*
 * args.c: the command and option tables, getopt_long parsing per command,
 * and --help generated from the same tables (the man page is checked
 * against --help by tests/integration/test_cli_help.py).
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define CMD_BIT(c) (1u << (c))
#define MULTI_CMDS (CMD_BIT(CLI_CMD_STATUS) | CMD_BIT(CLI_CMD_REFRESH) | \
		    CMD_BIT(CLI_CMD_ROLLBACK) | CMD_BIT(CLI_CMD_EXEC))
#define ALL_CMDS (CMD_BIT(CLI_CMD_ATTACH) | CMD_BIT(CLI_CMD_STATUS) | \
		  CMD_BIT(CLI_CMD_DETACH) | CMD_BIT(CLI_CMD_REFRESH) | \
		  CMD_BIT(CLI_CMD_PS) | CMD_BIT(CLI_CMD_STACK) | \
		  CMD_BIT(CLI_CMD_WATCH) | CMD_BIT(CLI_CMD_EXEC) | \
		  CMD_BIT(CLI_CMD_ROLLBACK) | CMD_BIT(CLI_CMD_INTERRUPT))

enum {
	OPT_JSON = 256,
	OPT_TIMEOUT,
	OPT_VERSION,
	OPT_TO,
	OPT_LEAKS,
	OPT_HISTORY,
	OPT_RERUN,
	OPT_THREAD,
	OPT_EXCEPTION,
	OPT_TREE,
};

struct cli_opt {
	const char *name;
	int key;              /* short option character, or OPT_* */
	int has_arg;
	const char *metavar;
	const char *help;
	unsigned int cmds;    /* CMD_BIT()s of the commands that take it */
};

static const struct cli_opt opts[] = {
	{ "help", 'h', no_argument, NULL, "show this help and exit",
	  ALL_CMDS | CMD_BIT(CLI_CMD_NONE) | CMD_BIT(CLI_CMD_HELP) },
	{ "version", OPT_VERSION, no_argument, NULL, "print the version and exit",
	  CMD_BIT(CLI_CMD_NONE) },
	{ "json", OPT_JSON, no_argument, NULL,
	  "print exactly one JSON object (\"format\":1) on stdout, also on failure",
	  ALL_CMDS | CMD_BIT(CLI_CMD_NONE) | CMD_BIT(CLI_CMD_HELP) },
	{ "verbose", 'v', no_argument, NULL, "say more: timings, threads, the agent's answers",
	  ALL_CMDS },
	{ "quiet", 'q', no_argument, NULL, "print nothing on success; errors still go to stderr",
	  ALL_CMDS },
	{ "timeout", OPT_TIMEOUT, required_argument, "SECONDS",
	  "give up after SECONDS (decimals allowed; default 5): finding a safe "
	  "thread, the agent's answer, reaching a safe point",
	  ALL_CMDS },
	{ "dry-run", 'n', no_argument, NULL,
	  "plan the refresh (or rollback) and show it; change nothing",
	  CMD_BIT(CLI_CMD_REFRESH) | CMD_BIT(CLI_CMD_ROLLBACK) },
	{ "rerun-statements", OPT_RERUN, no_argument, NULL,
	  "also re-run the top-level statements of modules whose file changed "
	  "before pyhot read it (what ran is not known; skipped by default)",
	  CMD_BIT(CLI_CMD_REFRESH) },
	{ "to", OPT_TO, required_argument, "N",
	  "go back to generation N (pyhot status lists them; 0: as loaded) "
	  "instead of undoing the newest refresh only", CMD_BIT(CLI_CMD_ROLLBACK) },
	{ "leaks", OPT_LEAKS, no_argument, NULL,
	  "run gc.collect() in the target and list objects of past generations "
	  "that should be dead and are not, with who holds them",
	  CMD_BIT(CLI_CMD_STATUS) },
	{ "history", OPT_HISTORY, required_argument, "N",
	  "keep N generations per module for rollback (default 20); applies to "
	  "an agent already there too", CMD_BIT(CLI_CMD_ATTACH) },
	{ "code", 'c', required_argument, "CODE",
	  "run CODE (instead of a FILE)", CMD_BIT(CLI_CMD_EXEC) },
	{ "thread", OPT_THREAD, required_argument, "NAME|TID",
	  "the thread to interrupt: its name (threading's) or its thread id, as "
	  "pyhot stack shows them (default: the main thread)",
	  CMD_BIT(CLI_CMD_INTERRUPT) },
	{ "exception", OPT_EXCEPTION, required_argument, "NAME",
	  "the builtin exception class to raise (default: KeyboardInterrupt)",
	  CMD_BIT(CLI_CMD_INTERRUPT) },
	{ "tree", OPT_TREE, required_argument, "PID",
	  "PID and its Python descendants too (with the pids given, if any); "
	  "all at once, refresh all or nothing", MULTI_CMDS },
	{ "tree", OPT_TREE, no_argument, NULL,
	  "show the processes as a tree: children under their parent",
	  CMD_BIT(CLI_CMD_PS) },
	{ NULL, 0, 0, NULL, NULL, 0 },
};

struct cli_cmd_info {
	const char *name;
	const char *args;     /* positional arguments of the synopsis */
	const char *summary;  /* one line for the overview */
	const char *desc;     /* paragraph for the command's --help */
};

static const struct cli_cmd_info cmds[CLI_CMD_COUNT] = {
	[CLI_CMD_NONE] = { "", "<command> [options] ...", "", "" },
	[CLI_CMD_HELP] = { "help", "[command]", "show the help of a command",
		"Show the help of a command, or this overview." },
	[CLI_CMD_ATTACH] = { "attach", "<pid>",
		"load the pyhot agent into a running CPython process",
		"Load the pyhot agent into the running CPython process <pid>, or find the\n"
		"agent that is already there, and wait until it answers. One thread of the\n"
		"target is borrowed for well under a millisecond; no other thread stops.\n"
		"Prints the interpreter version and where the agent listens." },
	[CLI_CMD_STATUS] = { "status", "<pid>...",
		"show the interpreter, its main thread and the agent",
		"Ask the agent in <pid> for a status report through a safe point: the\n"
		"interpreter version and build, the state of the main thread (how the safe\n"
		"point was reached and its current Python frame), the agent's uptime and\n"
		"counters, and the generations of its modules (newest first: number, time,\n"
		"module, source hash, what changed) with the memory the history holds.\n"
		"The process must be attached (pyhot attach <pid>)." },
	[CLI_CMD_DETACH] = { "detach", "<pid>",
		"stop the agent and remove its socket",
		"Stop the agent thread in <pid> and remove its socket. The payload stays\n"
		"mapped (it is never unloaded); a later attach starts the agent again." },
	[CLI_CMD_REFRESH] = { "refresh", "<pid>... [module...]",
		"patch changed modules in place (attaches first when needed)",
		"Compare the source files of the target's modules with what they were\n"
		"when they were loaded and patch the changed functions, classes and values\n"
		"in place, all or nothing. With module names, refresh only those; without,\n"
		"every module whose file changed. Attaches first when needed." },
	[CLI_CMD_PS] = { "ps", "",
		"list the Python processes pyhot can attach to",
		"List the CPython processes on this machine that pyhot can attach to: pid,\n"
		"parent pid, user, interpreter version, whether an agent answers in it, and\n"
		"the command line (--tree: each under its parent). Python processes pyhot cannot attach to are listed after them with\n"
		"the reason (another user, traced, stopped, a zombie, opted out, too old).\n"
		"Nothing is stopped or traced; agents are asked with a ping only." },
	[CLI_CMD_STACK] = { "stack", "<pid>",
		"show the Python stack of every thread",
		"Show the Python stack of every thread of <pid>, like a traceback (most\n"
		"recent call last), with the thread names and the source lines. Read at a\n"
		"safe point. When none is reached within --timeout (a thread holds the GIL\n"
		"in C), show the native stacks of all threads instead, say so, and exit\n"
		"124. Attaches first when needed." },
	[CLI_CMD_WATCH] = { "watch", "<pid> [path...]",
		"refresh modules as their source files are saved",
		"Watch (inotify) the source files of the modules <pid> has loaded from the\n"
		"given paths (default: its working directory) and refresh a module when its\n"
		"file is saved, after 100 ms without further writes. Prints each result\n"
		"with a time stamp; a failed refresh is reported and watching goes on.\n"
		"Ctrl-C stops it (exit 0). Attaches first when needed." },
	[CLI_CMD_EXEC] = { "exec", "<pid>... (-c CODE|FILE)",
		"run Python code in the process and show its output",
		"Run CODE, or the Python file FILE (\"-\": standard input), in <pid> at a\n"
		"safe point, in a fresh namespace whose __name__ is \"__pyhot_exec__\".\n"
		"What it prints comes back here (the target's own stdout and stderr are\n"
		"not used), followed by the repr of a final expression, as in the REPL;\n"
		"an exception prints its traceback and exits 1. Attaches first when\n"
		"needed." },
	[CLI_CMD_ROLLBACK] = { "rollback", "<pid>... <module>",
		"undo the newest refresh of a module (or go back to --to N)",
		"Undo the newest refresh of <module> still applied in <pid>, or every\n"
		"refresh after generation N with --to N, all or nothing: the functions,\n"
		"classes and values those refreshes replaced come back (the same objects),\n"
		"what they added goes, nothing is re-run; state they kept stays as it is\n"
		"now. The rollback is recorded as a generation; a second rollback goes\n"
		"further back. The file on disk is not touched: pyhot refresh applies it\n"
		"again." },
	[CLI_CMD_INTERRUPT] = { "interrupt", "<pid>",
		"end a stuck thread's current work by raising an exception in it",
		"Raise an exception (default KeyboardInterrupt) in a thread of <pid> (default\n"
		"the main thread) at its next bytecode, and say where the thread is after.\n"
		"A main thread held in C code that checks for signals (time.sleep, select,\n"
		"a long regular expression) is sent SIGINT instead, when its handler is\n"
		"Python's default one. A thread that does not run Python within --timeout\n"
		"(blocked in C) is not interrupted: the exception is withdrawn, nothing\n"
		"changes, exit 1. Attaches first when needed." },
};

const char *cli_cmd_name(enum cli_cmd cmd)
{
	if ((unsigned int)cmd >= CLI_CMD_COUNT)
		return "";
	return cmds[cmd].name;
}

enum cli_cmd cli_cmd_lookup(const char *name)
{
	int i;

	for (i = 1; i < CLI_CMD_COUNT; i++)
		if (strcmp(cmds[i].name, name) == 0)
			return (enum cli_cmd)i;
	return CLI_CMD_NONE;
}

int cli_parse_timeout(const char *s, unsigned int *ms)
{
	char *end;
	double v;

	if (!s || !*s)
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !(v > 0) || v > 86400)
		return -1;
	*ms = (unsigned int)(v * 1000 + 0.5);
	if (*ms == 0)
		*ms = 1;
	return 0;
}

int cli_parse_pid(const char *s, pid_t *pid)
{
	char *end;
	long v;

	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v <= 0 || v > INT_MAX)
		return -1;
	*pid = (pid_t)v;
	return 0;
}

static int usage_error(struct pyhot_err *err, enum cli_cmd cmd, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int usage_error(struct pyhot_err *err, enum cli_cmd cmd, const char *fmt, ...)
{
	char what[256];
	const char *name = cli_cmd_name(cmd);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	pyhot_err_set(err, PYHOT_ERR_USAGE, 0, 0, *name ? name : "usage", "%s", what);
	if (*name)
		pyhot_err_hint(err, "usage: pyhot %s [options]%s%s (see 'pyhot %s --help')",
			       name, *cmds[cmd].args ? " " : "", cmds[cmd].args, name);
	else
		pyhot_err_hint(err, "usage: pyhot <command> [options] ... (see 'pyhot --help')");
	return -PYHOT_ERR_USAGE;
}

static size_t build_longopts(enum cli_cmd cmd, struct option *lo, char *shorts,
			     size_t shorts_len)
{
	size_t n = 0, s = 0;
	int i;

	shorts[s++] = ':';
	for (i = 0; opts[i].name; i++) {
		if (!(opts[i].cmds & CMD_BIT(cmd)))
			continue;
		lo[n].name = opts[i].name;
		lo[n].has_arg = opts[i].has_arg;
		lo[n].flag = NULL;
		lo[n].val = opts[i].key;
		n++;
		if (opts[i].key < 256 && s + 3 < shorts_len) {
			shorts[s++] = (char)opts[i].key;
			if (opts[i].has_arg == required_argument)
				shorts[s++] = ':';
		}
	}
	memset(&lo[n], 0, sizeof(lo[n]));
	shorts[s] = '\0';
	return n;
}

/* --json applies to usage errors too: look for it before parsing. */
static int json_requested(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--json") == 0)
			return 1;
	}
	return 0;
}

/* --history N: generations kept per module, 1 to 100000. */
static int parse_history(const char *s, unsigned int *history)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > 100000)
		return -1;
	*history = (unsigned int)v;
	return 0;
}

/* --to N: a generation number, digits only (the agent checks the range). */
static int is_generation(const char *s)
{
	return *s && strspn(s, "0123456789") == strlen(s) && strlen(s) <= 18;
}

/* Store one option getopt_long() returned (c, with its argument arg) in a;
 * word is the argument getopt_long() just read, for the messages. */
static int apply_option(struct cli_args *a, enum cli_cmd cmd, int c, char *arg,
			const char *word, struct pyhot_err *err)
{
	switch (c) {
	case 'h':
		a->help = 1;
		return 0;
	case OPT_VERSION:
		a->version = 1;
		return 0;
	case OPT_JSON:
		a->json = 1;
		return 0;
	case 'v':
		a->verbose++;
		return 0;
	case 'q':
		a->quiet = 1;
		return 0;
	case 'n':
		a->dry_run = 1;
		return 0;
	case 'c':
		a->code = arg;
		return 0;
	case OPT_TO:
		if (!is_generation(arg))
			return usage_error(err, cmd, "--to wants a generation number, not '%s'",
					   arg);
		a->to = arg;
		return 0;
	case OPT_RERUN:
		a->rerun = 1;
		return 0;
	case OPT_TREE:
		if (cmd == CLI_CMD_PS) {
			a->ps_tree = 1;
			return 0;
		}
		if (cli_parse_pid(arg, &a->tree) < 0)
			return usage_error(err, cmd, "--tree wants a process id, not '%s'", arg);
		return 0;
	case OPT_LEAKS:
		a->leaks = 1;
		return 0;
	case OPT_HISTORY:
		if (parse_history(arg, &a->history) < 0)
			return usage_error(err, cmd, "--history wants a number of generations "
					   "from 1 to 100000, not '%s'", arg);
		return 0;
	case OPT_THREAD:
		if (!*arg)
			return usage_error(err, cmd, "%s", "--thread wants a name or a thread id");
		a->thread = arg;
		return 0;
	case OPT_EXCEPTION:
		a->exception = arg;
		return 0;
	case OPT_TIMEOUT:
		if (cli_parse_timeout(arg, &a->timeout_ms) < 0)
			return usage_error(err, cmd, "--timeout wants seconds (like 5 or 0.5), "
					   "not '%s'", arg);
		return 0;
	case ':':
		return usage_error(err, cmd, "option '%s' needs an argument", word);
	default:
		return usage_error(err, cmd, "unknown option '%s'", word);
	}
}

/* The words after the options: v[i] is the next one, v[n] the end. */
struct operands {
	char **v;
	int n;
	int i;
};

/* The options of cmd in argv[1..argc); argv is permuted by getopt_long(),
 * the operands end up last. Returns the index of the first operand. */
static int parse_options(struct cli_args *a, enum cli_cmd cmd, int argc, char **argv,
			 struct pyhot_err *err)
{
	struct option lo[sizeof(opts) / sizeof(opts[0])];
	char shorts[64];
	int c;

	build_longopts(cmd, lo, shorts, sizeof(shorts));
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
		if (apply_option(a, cmd, c, optarg, argv[optind - 1], err) < 0)
			return -PYHOT_ERR_USAGE;
	}
	return optind;
}

/* Nothing may follow what the command took. */
static int no_more_operands(const struct operands *o, enum cli_cmd cmd, const char *why,
			    struct pyhot_err *err)
{
	if (o->i < o->n)
		return usage_error(err, cmd, "unexpected argument '%s'%s", o->v[o->i], why);
	return 0;
}

/* "pyhot help [CMD]". */
static int parse_help_operands(struct cli_args *a, struct operands *o,
			       struct pyhot_err *err)
{
	a->help_for = CLI_CMD_NONE;
	if (o->i < o->n) {
		a->help_for = cli_cmd_lookup(o->v[o->i]);
		if (a->help_for == CLI_CMD_NONE)
			return usage_error(err, CLI_CMD_HELP, "unknown command '%s'",
					   o->v[o->i]);
		o->i++;
	}
	if (no_more_operands(o, CLI_CMD_HELP, "", err) < 0)
		return -PYHOT_ERR_USAGE;
	a->help = 1;
	return 0;
}

/* Up to CLI_MAX_MODULES words into list (refresh's modules, watch's paths). */
static int take_list(struct operands *o, enum cli_cmd cmd, const char *what,
		     const char **list, size_t *n, struct pyhot_err *err)
{
	for (; o->i < o->n; o->i++) {
		if (*n == CLI_MAX_MODULES)
			return usage_error(err, cmd, "more than %d %s", CLI_MAX_MODULES, what);
		list[(*n)++] = o->v[o->i];
	}
	return 0;
}

/* "pyhot exec PID (-c CODE | FILE)". */
static int parse_exec_operands(struct cli_args *a, struct operands *o,
			       struct pyhot_err *err)
{
	if (o->i < o->n)
		a->file = o->v[o->i++];
	if (no_more_operands(o, CLI_CMD_EXEC, "", err) < 0)
		return -PYHOT_ERR_USAGE;
	if (a->code && a->file)
		return usage_error(err, CLI_CMD_EXEC, "give -c CODE or FILE, not both");
	if (!a->code && !a->file)
		return usage_error(err, CLI_CMD_EXEC, "missing -c CODE or FILE");
	return 0;
}

/* What follows the pid of a command that takes one. */
static int parse_pid_cmd_operands(struct cli_args *a, enum cli_cmd cmd,
				  struct operands *o, struct pyhot_err *err)
{
	switch (cmd) {
	case CLI_CMD_REFRESH:
		return take_list(o, cmd, "modules", a->modules, &a->nmodules, err);
	case CLI_CMD_ROLLBACK:
		if (o->i >= o->n)
			return usage_error(err, cmd, "%s", "missing <module>");
		a->modules[a->nmodules++] = o->v[o->i++];
		return no_more_operands(o, cmd, " (one module at a time)", err);
	case CLI_CMD_WATCH:
		return take_list(o, cmd, "paths", a->paths, &a->npaths, err);
	case CLI_CMD_EXEC:
		return parse_exec_operands(a, o, err);
	default:
		return no_more_operands(o, cmd, "", err);
	}
}

/* "<pid>... rest" of the commands that take several: the leading words
 * that are numbers are pids (none with --tree PID); a->pid is the first. */
static int parse_multi_pids(struct cli_args *a, enum cli_cmd cmd, struct operands *o,
			    struct pyhot_err *err)
{
	pid_t pid;

	for (; o->i < o->n && cli_parse_pid(o->v[o->i], &pid) == 0; o->i++) {
		if (a->npids == CLI_MAX_PIDS)
			return usage_error(err, cmd, "more than %d pids", CLI_MAX_PIDS);
		a->pids[a->npids++] = pid;
	}
	if (!a->npids && !a->tree) {
		if (o->i < o->n)
			return usage_error(err, cmd, "'%s' is not a process id", o->v[o->i]);
		return usage_error(err, cmd, "%s", "missing <pid> (or --tree PID)");
	}
	a->pid = a->npids ? a->pids[0] : a->tree;
	return parse_pid_cmd_operands(a, cmd, o, err);
}

/* The operands of cmd: none for ps, a command name for help, a pid and
 * what the command takes after it for the others. */
static int parse_operands(struct cli_args *a, enum cli_cmd cmd, struct operands *o,
			  struct pyhot_err *err)
{
	switch (cmd) {
	case CLI_CMD_NONE:
		if (o->i < o->n)
			return usage_error(err, cmd, "unknown command '%s'", o->v[o->i]);
		return usage_error(err, cmd, "%s", "missing command");
	case CLI_CMD_HELP:
		return parse_help_operands(a, o, err);
	case CLI_CMD_PS:
		return no_more_operands(o, cmd, "", err);
	default:
		break;
	}
	if (CLI_CMD_MULTI(cmd))
		return parse_multi_pids(a, cmd, o, err);
	if (o->i >= o->n)
		return usage_error(err, cmd, "%s", "missing <pid>");
	if (cli_parse_pid(o->v[o->i], &a->pid) < 0)
		return usage_error(err, cmd, "'%s' is not a process id", o->v[o->i]);
	o->i++;
	return parse_pid_cmd_operands(a, cmd, o, err);
}

int cli_args_parse(struct cli_args *a, int argc, char **argv, struct pyhot_err *err)
{
	enum cli_cmd cmd = CLI_CMD_NONE;
	struct operands o;
	int i, first = 1, r;

	memset(a, 0, sizeof(*a));
	a->timeout_ms = CLI_DEFAULT_TIMEOUT_MS;
	a->json = json_requested(argc, argv);
	if (argc >= 2 && argv[1][0] != '-') {
		cmd = cli_cmd_lookup(argv[1]);
		if (cmd == CLI_CMD_NONE)
			return usage_error(err, CLI_CMD_NONE, "unknown command '%s'", argv[1]);
		first = 2;
	}
	a->cmd = cmd;
	a->help_for = cmd;

	/* getopt_long permutes argv; parse a copy past the command name. */
	o.v = calloc((size_t)argc + 1, sizeof(*o.v));
	if (!o.v)
		return pyhot_err_set(err, PYHOT_ERR_FAILED, ENOMEM, 0, "usage", "out of memory");
	o.v[0] = argv[0];
	for (i = first; i < argc; i++)
		o.v[i - first + 1] = argv[i];
	o.n = argc - first + 1;
	r = parse_options(a, cmd, o.n, o.v, err);
	if (r >= 0) {
		o.i = r;
		r = 0;
		if (a->verbose && a->quiet && !a->help && !a->version)
			r = usage_error(err, cmd, "%s", "-v and -q contradict each other");
		else if (!a->help && !a->version)
			r = parse_operands(a, cmd, &o, err);
	}
	free(o.v);
	return r < 0 ? -PYHOT_ERR_USAGE : 0;
}

/* Print text from column indent, wrapped before column width. */
static void print_wrapped(FILE *f, const char *text, int indent, int width)
{
	const char *p = text, *end;
	int col = indent, n;

	while (*p) {
		while (*p == ' ')
			p++;
		end = p;
		while (*end && *end != ' ')
			end++;
		n = (int)(end - p);
		if (col > indent && col + 1 + n > width) {
			fprintf(f, "\n%*s", indent, "");
			col = indent;
		} else if (col > indent) {
			fputc(' ', f);
			col++;
		}
		fprintf(f, "%.*s", n, p);
		col += n;
		p = end;
	}
	fputc('\n', f);
}

static void print_options(FILE *f, enum cli_cmd cmd)
{
	char left[64];
	int i;

	for (i = 0; opts[i].name; i++) {
		if (!(opts[i].cmds & CMD_BIT(cmd)))
			continue;
		if (opts[i].key < 256)
			snprintf(left, sizeof(left), "-%c, --%s%s%s", opts[i].key, opts[i].name,
				 opts[i].metavar ? "=" : "", opts[i].metavar ? opts[i].metavar : "");
		else
			snprintf(left, sizeof(left), "    --%s%s%s", opts[i].name,
				 opts[i].metavar ? "=" : "", opts[i].metavar ? opts[i].metavar : "");
		fprintf(f, "  %-22s ", left);
		print_wrapped(f, opts[i].help, 25, 79);
	}
}

static void print_footer(FILE *f)
{
	fputs("\nexit codes:\n"
	      "  0    done\n"
	      "  1    refused or failed; the target is unchanged\n"
	      "  2    usage error\n"
	      "  3    could not attach; the target is unchanged\n"
	      "  4    the target's state is uncertain (the message says what to check)\n"
	      "  124  timed out; the target is unchanged\n"
	      "\nenvironment:\n"
	      "  PYHOT_PAYLOAD   the payload to load (default: next to pyhot, or ../lib/pyhot/)\n"
	      "  PYHOT_TRACE=1   write a trace of what pyhot does (ptrace steps, socket\n"
	      "                  messages) to stderr\n"
	      "  NO_COLOR        no colour, even on a terminal\n"
	      "\nSee pyhot(1).\n", f);
}

void cli_help_print(FILE *f, enum cli_cmd cmd)
{
	int i;

	if (cmd == CLI_CMD_NONE || cmd == CLI_CMD_HELP) {
		fputs("usage: pyhot <command> [options] ...\n\n"
		      "Patch a running CPython process in place, from outside, without\n"
		      "restarting it.\n\ncommands:\n", f);
		for (i = 1; i < CLI_CMD_COUNT; i++) {
			char left[48];

			snprintf(left, sizeof(left), "%s %s", cmds[i].name, cmds[i].args);
			fprintf(f, "  %-30s %s\n", left, cmds[i].summary);
		}
		fputs("\noptions:\n", f);
		print_options(f, CLI_CMD_NONE);
		fputs("\n'pyhot help <command>' or 'pyhot <command> --help' shows a command's\n"
		      "options.\n", f);
		print_footer(f);
		return;
	}
	fprintf(f, "usage: pyhot %s [options]%s%s\n\n%s\n\noptions:\n", cmds[cmd].name,
		*cmds[cmd].args ? " " : "", cmds[cmd].args, cmds[cmd].desc);
	print_options(f, cmd);
	print_footer(f);
}
