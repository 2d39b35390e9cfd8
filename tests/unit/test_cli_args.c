/* test_cli_args.c: the command line of pyhot (cli/args.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli.h"

#define ARGV(...) ((char *[]){ "pyhot", __VA_ARGS__, NULL })
#define ARGC(...) ((int)(sizeof((char *[]){ "pyhot", __VA_ARGS__ }) / sizeof(char *)))
#define PARSE(a, e, ...) cli_args_parse((a), ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), (e))

static void test_attach_pid(void **state)
{
	struct cli_args a;
	struct pyhot_err e;

	pyhot_err_init(&e);
	assert_int_equal(PARSE(&a, &e, "attach", "1234"), 0);
	assert_int_equal(a.cmd, CLI_CMD_ATTACH);
	assert_int_equal(a.pid, 1234);
	assert_int_equal(a.timeout_ms, CLI_DEFAULT_TIMEOUT_MS);
	assert_false(a.json);
	assert_false(a.help);
}

static void test_common_options(void **state)
{
	struct cli_args a;
	struct pyhot_err e;

	pyhot_err_init(&e);
	assert_int_equal(PARSE(&a, &e, "status", "--json", "-v", "--timeout=0.25", "42"), 0);
	assert_int_equal(a.cmd, CLI_CMD_STATUS);
	assert_int_equal(a.pid, 42);
	assert_true(a.json);
	assert_int_equal(a.verbose, 1);
	assert_int_equal(a.timeout_ms, 250);
	pyhot_err_init(&e);
	assert_int_equal(PARSE(&a, &e, "detach", "42", "--timeout", "3", "-q"), 0);
	assert_int_equal(a.timeout_ms, 3000);
	assert_true(a.quiet);
}

static void test_refresh_modules(void **state)
{
	struct cli_args a;
	struct pyhot_err e;

	pyhot_err_init(&e);
	assert_int_equal(PARSE(&a, &e, "refresh", "7", "app.views", "--dry-run", "app.models"), 0);
	assert_int_equal(a.cmd, CLI_CMD_REFRESH);
	assert_int_equal(a.pid, 7);
	assert_true(a.dry_run);
	assert_int_equal(a.nmodules, 2);
	assert_string_equal(a.modules[0], "app.views");
	assert_string_equal(a.modules[1], "app.models");
}

static void test_interrupt_options(void **state)
{
	struct cli_args a;
	struct pyhot_err e;

	pyhot_err_init(&e);
	assert_int_equal(PARSE(&a, &e, "interrupt", "42", "--thread", "worker-1",
			       "--exception=SystemExit"), 0);
	assert_int_equal(a.cmd, CLI_CMD_INTERRUPT);
	assert_int_equal(a.pid, 42);
	assert_string_equal(a.thread, "worker-1");
	assert_string_equal(a.exception, "SystemExit");
	pyhot_err_init(&e);
	assert_int_equal(PARSE(&a, &e, "interrupt", "42"), 0);
	assert_null(a.thread);
	assert_null(a.exception);
	pyhot_err_init(&e);
	assert_int_equal(PARSE(&a, &e, "interrupt", "42", "--thread="), -PYHOT_ERR_USAGE);
	assert_non_null(strstr(e.msg, "--thread wants a name or a thread id"));
	pyhot_err_init(&e);
	assert_int_equal(PARSE(&a, &e, "stack", "42", "--thread", "x"), -PYHOT_ERR_USAGE);
}

static void test_several_pids_and_tree(void **state)
{
	struct cli_args a;
	struct pyhot_err e;

	pyhot_err_init(&e);
	assert_int_equal(PARSE(&a, &e, "refresh", "10", "11", "12", "app", "lib"), 0);
	assert_int_equal(a.npids, 3);
	assert_int_equal(a.pids[2], 12);
	assert_int_equal(a.pid, 10);
	assert_int_equal(a.nmodules, 2);
	assert_string_equal(a.modules[0], "app");
	assert_int_equal(PARSE(&a, &e, "rollback", "--tree", "7", "app"), 0);
	assert_int_equal(a.npids, 0);
	assert_int_equal(a.tree, 7);
	assert_int_equal(a.pid, 7);
	assert_string_equal(a.modules[0], "app");
	assert_int_equal(PARSE(&a, &e, "ps", "--tree"), 0);
	assert_true(a.ps_tree);
	assert_int_equal(PARSE(&a, &e, "exec", "3", "4", "-c", "1"), 0);
	assert_int_equal(a.npids, 2);
	assert_string_equal(a.code, "1");
}

static void test_help_forms(void **state)
{
	struct cli_args a;
	struct pyhot_err e;

	pyhot_err_init(&e);
	assert_int_equal(PARSE(&a, &e, "--help"), 0);
	assert_true(a.help);
	assert_int_equal(a.help_for, CLI_CMD_NONE);
	assert_int_equal(PARSE(&a, &e, "help", "refresh"), 0);
	assert_true(a.help);
	assert_int_equal(a.help_for, CLI_CMD_REFRESH);
	assert_int_equal(PARSE(&a, &e, "attach", "--help"), 0);
	assert_true(a.help);
	assert_int_equal(a.help_for, CLI_CMD_ATTACH);
	/* --help wins over a missing pid. */
	assert_int_equal(PARSE(&a, &e, "status", "-h"), 0);
	assert_int_equal(e.kind, PYHOT_OK);
}

static void expect_usage(int r, struct pyhot_err *e, const char *needle)
{
	assert_int_equal(r, -PYHOT_ERR_USAGE);
	assert_int_equal(e->kind, PYHOT_ERR_USAGE);
	if (!strstr(e->msg, needle))
		fail_msg("'%s' not in '%s'", needle, e->msg);
	assert_true(e->hint[0] != '\0');
	assert_null(strchr(e->msg, '\n'));
}

static void test_usage_errors(void **state)
{
	struct cli_args a;
	struct pyhot_err e;

	pyhot_err_init(&e);
	expect_usage(PARSE(&a, &e, "attach"), &e, "missing <pid>");
	pyhot_err_init(&e);
	expect_usage(PARSE(&a, &e, "attach", "12x"), &e, "'12x' is not a process id");
	pyhot_err_init(&e);
	expect_usage(PARSE(&a, &e, "attach", "-5"), &e, "unknown option");
	pyhot_err_init(&e);
	expect_usage(PARSE(&a, &e, "attach", "0"), &e, "not a process id");
	pyhot_err_init(&e);
	expect_usage(PARSE(&a, &e, "frobnicate", "1"), &e, "unknown command 'frobnicate'");
	pyhot_err_init(&e);
	expect_usage(PARSE(&a, &e, "status", "1", "x2"), &e, "unexpected argument 'x2'");
	pyhot_err_init(&e);
	expect_usage(PARSE(&a, &e, "attach", "1", "2"), &e, "unexpected argument '2'");
	pyhot_err_init(&e);
	expect_usage(PARSE(&a, &e, "refresh", "--tree", "x"), &e, "--tree wants a process id");
	pyhot_err_init(&e);
	expect_usage(PARSE(&a, &e, "refresh", "app"), &e, "'app' is not a process id");
	pyhot_err_init(&e);
	expect_usage(PARSE(&a, &e, "stack", "--tree", "1"), &e, "unknown option");
	pyhot_err_init(&e);
	expect_usage(PARSE(&a, &e, "status", "--bogus", "1"), &e, "unknown option '--bogus'");
	pyhot_err_init(&e);
	expect_usage(PARSE(&a, &e, "status", "1", "--timeout"), &e, "needs an argument");
	pyhot_err_init(&e);
	expect_usage(PARSE(&a, &e, "status", "1", "--timeout=abc"), &e, "--timeout wants seconds");
	pyhot_err_init(&e);
	expect_usage(PARSE(&a, &e, "status", "1", "--dry-run"), &e, "unknown option");
	pyhot_err_init(&e);
	expect_usage(PARSE(&a, &e, "status", "1", "-v", "-q"), &e, "contradict");
	pyhot_err_init(&e);
	expect_usage(PARSE(&a, &e, "help", "nope"), &e, "unknown command 'nope'");
	pyhot_err_init(&e);
	assert_int_equal(cli_args_parse(&a, 1, ARGV("x") /* argc 1: no command */, &e),
			 -PYHOT_ERR_USAGE);
}

static void test_json_seen_on_usage_error(void **state)
{
	struct cli_args a;
	struct pyhot_err e;

	pyhot_err_init(&e);
	assert_int_equal(PARSE(&a, &e, "attach", "--json"), -PYHOT_ERR_USAGE);
	assert_true(a.json);
	assert_int_equal(a.cmd, CLI_CMD_ATTACH);
	pyhot_err_init(&e);
	assert_int_equal(PARSE(&a, &e, "bogus", "--json"), -PYHOT_ERR_USAGE);
	assert_true(a.json);
}

static void test_parse_helpers(void **state)
{
	unsigned int ms;
	pid_t pid;

	assert_int_equal(cli_parse_timeout("10", &ms), 0);
	assert_int_equal(ms, 10000);
	assert_int_equal(cli_parse_timeout("0.001", &ms), 0);
	assert_int_equal(ms, 1);
	assert_int_equal(cli_parse_timeout("0", &ms), -1);
	assert_int_equal(cli_parse_timeout("-1", &ms), -1);
	assert_int_equal(cli_parse_timeout("1s", &ms), -1);
	assert_int_equal(cli_parse_timeout("", &ms), -1);
	assert_int_equal(cli_parse_pid("1", &pid), 0);
	assert_int_equal(pid, 1);
	assert_int_equal(cli_parse_pid("4194304", &pid), 0);
	assert_int_equal(cli_parse_pid("99999999999", &pid), -1);
	assert_int_equal(cli_parse_pid("+3", &pid), -1);
	assert_int_equal(cli_parse_pid(" 3", &pid), -1);
}

static char *help_text(enum cli_cmd cmd)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	cli_help_print(f, cmd);
	fclose(f);
	return text;
}

static void test_help_from_table(void **state)
{
	char *t;

	t = help_text(CLI_CMD_REFRESH);
	assert_non_null(strstr(t, "usage: pyhot refresh [options] <pid>... [module...]"));
	assert_non_null(strstr(t, "--dry-run"));
	assert_non_null(strstr(t, "--timeout=SECONDS"));
	assert_non_null(strstr(t, "124"));
	free(t);
	t = help_text(CLI_CMD_STATUS);
	assert_null(strstr(t, "--dry-run"));
	assert_non_null(strstr(t, "--json"));
	free(t);
	t = help_text(CLI_CMD_NONE);
	assert_non_null(strstr(t, "attach <pid>"));
	assert_non_null(strstr(t, "refresh <pid>... [module...]"));
	assert_non_null(strstr(t, "PYHOT_TRACE"));
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_attach_pid),
		cmocka_unit_test(test_common_options),
		cmocka_unit_test(test_refresh_modules),
		cmocka_unit_test(test_interrupt_options),
		cmocka_unit_test(test_several_pids_and_tree),
		cmocka_unit_test(test_help_forms),
		cmocka_unit_test(test_usage_errors),
		cmocka_unit_test(test_json_seen_on_usage_error),
		cmocka_unit_test(test_parse_helpers),
		cmocka_unit_test(test_help_from_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
