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
#define ALL_CMDS (CMD_BIT(CLI_CMD_ATTACH) | CMD_BIT(CLI_CMD_STATUS) | \
		  CMD_BIT(CLI_CMD_DETACH) | CMD_BIT(CLI_CMD_REFRESH) | \
		  CMD_BIT(CLI_CMD_PS) | CMD_BIT(CLI_CMD_STACK) | \
		  CMD_BIT(CLI_CMD_WATCH) | CMD_BIT(CLI_CMD_EXEC) | \
		  CMD_BIT(CLI_CMD_ROLLBACK))

enum {
	OPT_JSON = 256,
	OPT_TIMEOUT,
	OPT_VERSION,
	OPT_TO,
	OPT_LEAKS,
	OPT_HISTORY,
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
	[CLI_CMD_STATUS] = { "status", "<pid>",
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
	[CLI_CMD_REFRESH] = { "refresh", "<pid> [module...]",
		"patch changed modules in place (attaches first when needed)",
		"Compare the source files of the target's modules with what they were\n"
		"when they were loaded and patch the changed functions, classes and values\n"
		"in place, all or nothing. With module names, refresh only those; without,\n"
		"every module whose file changed. Attaches first when needed." },
	[CLI_CMD_PS] = { "ps", "",
		"list the Python processes pyhot can attach to",
		"List the CPython processes on this machine that pyhot can attach to: pid,\n"
		"user, interpreter version, whether an agent answers in it, and the command\n"
		"line. Python processes pyhot cannot attach to are listed after them with\n"
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
	[CLI_CMD_EXEC] = { "exec", "<pid> (-c CODE|FILE)",
		"run Python code in the process and show its output",
		"Run CODE, or the Python file FILE (\"-\": standard input), in <pid> at a\n"
		"safe point, in a fresh namespace whose __name__ is \"__pyhot_exec__\".\n"
		"What it prints comes back here (the target's own stdout and stderr are\n"
		"not used), followed by the repr of a final expression, as in the REPL;\n"
		"an exception prints its traceback and exits 1. Attaches first when\n"
		"needed." },
	[CLI_CMD_ROLLBACK] = { "rollback", "<pid> <module>",
		"undo the newest refresh of a module (or go back to --to N)",
		"Undo the newest refresh of <module> still applied in <pid>, or every\n"
		"refresh after generation N with --to N, all or nothing: the functions,\n"
		"classes and values those refreshes replaced come back (the same objects),\n"
		"what they added goes, nothing is re-run; state they kept stays as it is\n"
		"now. The rollback is recorded as a generation; a second rollback goes\n"
		"further back. The file on disk is not touched: pyhot refresh applies it\n"
		"again." },
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

int cli_args_parse(struct cli_args *a, int argc, char **argv, struct pyhot_err *err)
{
	struct option lo[sizeof(opts) / sizeof(opts[0])];
	char shorts[64];
	enum cli_cmd cmd = CLI_CMD_NONE;
	int i, c, first = 1, npos;
	char **pos;

	memset(a, 0, sizeof(*a));
	a->timeout_ms = CLI_DEFAULT_TIMEOUT_MS;
	/* --json applies to usage errors too: look for it before parsing. */
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--json") == 0)
			a->json = 1;
	}
	if (argc >= 2 && argv[1][0] != '-') {
		cmd = cli_cmd_lookup(argv[1]);
		if (cmd == CLI_CMD_NONE)
			return usage_error(err, CLI_CMD_NONE, "unknown command '%s'", argv[1]);
		first = 2;
	}
	a->cmd = cmd;
	a->help_for = cmd;
	build_longopts(cmd, lo, shorts, sizeof(shorts));

	/* getopt_long permutes argv; parse a copy past the command name. */
	pos = calloc((size_t)argc + 1, sizeof(*pos));
	if (!pos)
		return pyhot_err_set(err, PYHOT_ERR_FAILED, ENOMEM, 0, "usage", "out of memory");
	pos[0] = argv[0];
	for (i = first; i < argc; i++)
		pos[i - first + 1] = argv[i];
	npos = argc - first + 1;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(npos, pos, shorts, lo, NULL)) != -1) {
		switch (c) {
		case 'h':
			a->help = 1;
			break;
		case OPT_VERSION:
			a->version = 1;
			break;
		case OPT_JSON:
			a->json = 1;
			break;
		case 'v':
			a->verbose++;
			break;
		case 'q':
			a->quiet = 1;
			break;
		case 'n':
			a->dry_run = 1;
			break;
		case 'c':
			a->code = optarg;
			break;
		case OPT_TO:
			if (!*optarg || strspn(optarg, "0123456789") != strlen(optarg) ||
			    strlen(optarg) > 18) {
				usage_error(err, cmd, "--to wants a generation number, not '%s'",
					    optarg);
				goto out_usage;
			}
			a->to = optarg;
			break;
		case OPT_LEAKS:
			a->leaks = 1;
			break;
		case OPT_HISTORY: {
			char *end;
			long v;

			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || v < 1 || v > 100000) {
				usage_error(err, cmd, "--history wants a number of generations "
					    "from 1 to 100000, not '%s'", optarg);
				goto out_usage;
			}
			a->history = (unsigned int)v;
			break;
		}
		case OPT_TIMEOUT:
			if (cli_parse_timeout(optarg, &a->timeout_ms) < 0) {
				usage_error(err, cmd, "--timeout wants seconds (like 5 or 0.5), not '%s'",
					    optarg);
				goto out_usage;
			}
			break;
		case ':':
			usage_error(err, cmd, "option '%s' needs an argument", pos[optind - 1]);
			goto out_usage;
		default:
			usage_error(err, cmd, "unknown option '%s'", pos[optind - 1]);
			goto out_usage;
		}
	}
	if (a->help || a->version)
		goto out_ok;
	if (a->verbose && a->quiet) {
		usage_error(err, cmd, "%s", "-v and -q contradict each other");
		goto out_usage;
	}
	switch (cmd) {
	case CLI_CMD_NONE:
		if (optind < npos) {
			usage_error(err, cmd, "unknown command '%s'", pos[optind]);
			goto out_usage;
		}
		usage_error(err, cmd, "%s", "missing command");
		goto out_usage;
	case CLI_CMD_HELP:
		if (optind < npos) {
			a->help_for = cli_cmd_lookup(pos[optind]);
			if (a->help_for == CLI_CMD_NONE) {
				usage_error(err, cmd, "unknown command '%s'", pos[optind]);
				goto out_usage;
			}
			optind++;
		} else {
			a->help_for = CLI_CMD_NONE;
		}
		if (optind < npos) {
			usage_error(err, cmd, "unexpected argument '%s'", pos[optind]);
			goto out_usage;
		}
		a->help = 1;
		goto out_ok;
	case CLI_CMD_PS:
		if (optind < npos) {
			usage_error(err, cmd, "unexpected argument '%s'", pos[optind]);
			goto out_usage;
		}
		goto out_ok;
	default:
		break;
	}
	if (optind >= npos) {
		usage_error(err, cmd, "%s", "missing <pid>");
		goto out_usage;
	}
	if (cli_parse_pid(pos[optind], &a->pid) < 0) {
		usage_error(err, cmd, "'%s' is not a process id", pos[optind]);
		goto out_usage;
	}
	optind++;
	if (cmd == CLI_CMD_REFRESH) {
		for (; optind < npos; optind++) {
			if (a->nmodules == CLI_MAX_MODULES) {
				usage_error(err, cmd, "more than %d modules", CLI_MAX_MODULES);
				goto out_usage;
			}
			a->modules[a->nmodules++] = pos[optind];
		}
	} else if (cmd == CLI_CMD_ROLLBACK) {
		if (optind >= npos) {
			usage_error(err, cmd, "%s", "missing <module>");
			goto out_usage;
		}
		a->modules[a->nmodules++] = pos[optind++];
		if (optind < npos) {
			usage_error(err, cmd, "unexpected argument '%s' (one module at a time)",
				    pos[optind]);
			goto out_usage;
		}
	} else if (cmd == CLI_CMD_WATCH) {
		for (; optind < npos; optind++) {
			if (a->npaths == CLI_MAX_MODULES) {
				usage_error(err, cmd, "more than %d paths", CLI_MAX_MODULES);
				goto out_usage;
			}
			a->paths[a->npaths++] = pos[optind];
		}
	} else if (cmd == CLI_CMD_EXEC) {
		if (optind < npos)
			a->file = pos[optind++];
		if (optind < npos) {
			usage_error(err, cmd, "unexpected argument '%s'", pos[optind]);
			goto out_usage;
		}
		if (a->code && a->file) {
			usage_error(err, cmd, "give -c CODE or FILE, not both");
			goto out_usage;
		}
		if (!a->code && !a->file) {
			usage_error(err, cmd, "missing -c CODE or FILE");
			goto out_usage;
		}
	} else if (optind < npos) {
		usage_error(err, cmd, "unexpected argument '%s'", pos[optind]);
		goto out_usage;
	}
out_ok:
	free(pos);
	return 0;
out_usage:
	free(pos);
	return -PYHOT_ERR_USAGE;
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
			fprintf(f, "  %-26s %s\n", left, cmds[i].summary);
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
