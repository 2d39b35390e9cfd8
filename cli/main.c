/* main.c: the pyhot command. Parses, runs one command, reports. */
#include "cli.h"
#include "memory.h"
#include "multi.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <json.h>

static cli_cmd_fn command(enum cli_cmd cmd)
{
	switch (cmd) {
	case CLI_CMD_ATTACH:  return cli_cmd_attach;
	case CLI_CMD_STATUS:  return cli_cmd_status;
	case CLI_CMD_DETACH:  return cli_cmd_detach;
	case CLI_CMD_REFRESH: return cli_cmd_refresh;
	case CLI_CMD_STACK:   return cli_cmd_stack;
	case CLI_CMD_WATCH:   return cli_cmd_watch;
	case CLI_CMD_EXEC:    return cli_cmd_exec;
	case CLI_CMD_ROLLBACK: return cli_cmd_rollback;
	case CLI_CMD_INTERRUPT: return cli_cmd_interrupt;
	default:              return NULL;
	}
}

/* --help with --json: the help text inside the one JSON object. */
static void help_json(struct cli_out *o, enum cli_cmd cmd)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return;
	cli_help_print(f, cmd);
	fclose(f);
	cli_out_set(o, "help", json_object_new_string(text ? text : ""));
	free(text);
}

int main(int argc, char **argv)
{
	struct cli_args a;
	struct cli_out o;
	struct cli_ctx c;
	struct pyhot_err err;
	int code = 0, r;

	signal(SIGPIPE, SIG_IGN);
	cli_memory_prepare(CLI_MEMORY_COMMAND);
	cli_trace_setup();
	pyhot_err_init(&err);
	r = cli_args_parse(&a, argc, argv, &err);
	cli_out_init(&o, &a);
	if (r < 0) {
		code = cli_out_error(&o, &err);
		goto out;
	}
	if (a.version) {
		cli_version_report(&o);
		goto out;
	}
	if (a.help) {
		if (o.json)
			help_json(&o, a.help_for);
		else
			cli_help_print(stdout, a.help_for);
		goto out;
	}
	if (a.cmd == CLI_CMD_PS) {
		r = cli_cmd_ps(&a, &o, &err);
	} else if (cli_multi_wanted(&a)) {
		r = cli_multi_run(&a, &o, command(a.cmd), &err);
	} else {
		r = cli_ctx_init(&c, &a, &o, &err);
		if (r == 0)
			r = command(a.cmd)(&c, &err);
	}
	if (r < 0)
		code = cli_out_error(&o, &err);
out:
	code = cli_out_finish(&o, code);
	cli_out_release(&o);
	return code;
}
