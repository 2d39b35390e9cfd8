/*
 * cmd_util.h: helpers shared by the commands that attach on their own
 * (stack, watch, exec), and small pure helpers of cmd_ps.c and cmd_watch.c,
 * declared here for tests/unit/test_cli_cmds.c. Private to cli/.
 */
#ifndef PYHOT_CMD_UTIL_H
#define PYHOT_CMD_UTIL_H

#include <stddef.h>

#include "cli.h"

/*
 * cli_attach_ensure() without its line on stdout, for commands whose
 * stdout is their result (stack, exec): when an agent had to be started,
 * "attached to pid N, agent at PATH" goes to stderr with -v only. The
 * "attach" fields still go into the JSON document; errors are
 * cli_attach_ensure()'s (cmd_attach.c).
 */
int cli_attach_quiet(struct cli_ctx *c, struct pyhot_err *err) PYHOT_MUST_CHECK;

/*
 * One safe-point request for stack, watch and exec (cmd_call.c): the
 * key/value pairs, plus timeout_ms and run_timeout_ms both set to the
 * command's --timeout, so that the agent answers within twice that (it
 * says "timeout" when no safe point came, "uncertain" when the handler
 * started but did not end); we wait for that answer 2 s longer. Unlike
 * cli_agent_call() it reports nothing itself (no detail, no JSON): *resp
 * is the agent's answer when one came (the caller puts it), err its error.
 */
int cli_call(struct cli_ctx *c, const char *verb, const char *const *kv, size_t nkv,
	     struct json_object **resp, struct pyhot_err *err) PYHOT_MUST_CHECK;

/* A small /proc file into buf (cmd_ps.c): "" when it cannot be read; NULs
 * become spaces with nul_to_space (cmdline); trailing newlines and spaces
 * are cut. */
void cli_read_text(const char *path, char *buf, size_t len, int nul_to_space);

/* A command line on one line (cmd_ps.c): control characters become spaces,
 * runs of spaces one, no trailing space; past max characters (0: no limit)
 * it is cut and ends with "...". out always NUL-terminated (len > 4). */
void cli_ps_one_line(const char *in, char *out, size_t len, size_t max);

/* Non-zero when path is root or inside it (cmd_watch.c); both absolute,
 * without trailing slash except "/" itself. "/a/bc" is not inside "/a/b". */
int cli_watch_path_under(const char *path, const char *root);

/* Non-zero when a file name in a watched directory may be a module's
 * source (cmd_watch.c): "*.py", not hidden (editors' ".#x.py" locks, swap
 * files). Temporary names ("x.py.tmp", "x.py~", "4913") are not. */
int cli_watch_name_wanted(const char *name);

#endif /* PYHOT_CMD_UTIL_H */
