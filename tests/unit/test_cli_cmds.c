/* test_cli_cmds.c: the command lines of ps, stack, watch and exec
 * (cli/args.c) and the pure helpers of cmd_ps.c and cmd_watch.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli.h"
#include "cmd_util.h"

#define ARGV(...) ((char *[]){ "pyhot", __VA_ARGS__, NULL })
#define ARGC(...) ((int)(sizeof((char *[]){ "pyhot", __VA_ARGS__ }) / sizeof(char *)))
#define PARSE(a, e, ...) cli_args_parse((a), ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), (e))

static void test_ps_takes_no_pid(void **state)
{
	struct cli_args a;
	struct pyhot_err e;

	pyhot_err_init(&e);
	assert_int_equal(PARSE(&a, &e, "ps", "--json", "-v"), 0);
	assert_int_equal(a.cmd, CLI_CMD_PS);
	assert_int_equal(a.pid, 0);
	assert_true(a.json);
	pyhot_err_init(&e);
	assert_int_equal(PARSE(&a, &e, "ps", "42"), -PYHOT_ERR_USAGE);
	assert_non_null(strstr(e.msg, "unexpected argument '42'"));
	assert_non_null(strstr(e.hint, "usage: pyhot ps [options] (see"));
}

static void test_stack(void **state)
{
	struct cli_args a;
	struct pyhot_err e;

	pyhot_err_init(&e);
	assert_int_equal(PARSE(&a, &e, "stack", "--timeout=1", "99"), 0);
	assert_int_equal(a.cmd, CLI_CMD_STACK);
	assert_int_equal(a.pid, 99);
	assert_int_equal(a.timeout_ms, 1000);
	pyhot_err_init(&e);
	assert_int_equal(PARSE(&a, &e, "stack", "99", "x"), -PYHOT_ERR_USAGE);
	pyhot_err_init(&e);
	assert_int_equal(PARSE(&a, &e, "stack", "99", "-c", "1"), -PYHOT_ERR_USAGE);
	assert_non_null(strstr(e.msg, "unknown option"));
}

static void test_watch_paths(void **state)
{
	struct cli_args a;
	struct pyhot_err e;

	pyhot_err_init(&e);
	assert_int_equal(PARSE(&a, &e, "watch", "7"), 0);
	assert_int_equal(a.cmd, CLI_CMD_WATCH);
	assert_int_equal(a.npaths, 0);
	assert_int_equal(PARSE(&a, &e, "watch", "7", "src", "-v", "lib/app.py"), 0);
	assert_int_equal(a.npaths, 2);
	assert_string_equal(a.paths[0], "src");
	assert_string_equal(a.paths[1], "lib/app.py");
	assert_int_equal(a.verbose, 1);
}

static void test_exec_code_or_file(void **state)
{
	struct cli_args a;
	struct pyhot_err e;

	pyhot_err_init(&e);
	assert_int_equal(PARSE(&a, &e, "exec", "5", "-c", "print(1)"), 0);
	assert_int_equal(a.cmd, CLI_CMD_EXEC);
	assert_string_equal(a.code, "print(1)");
	assert_null(a.file);
	assert_int_equal(PARSE(&a, &e, "exec", "--code=x", "5"), 0);
	assert_string_equal(a.code, "x");
	assert_int_equal(PARSE(&a, &e, "exec", "5", "fix.py"), 0);
	assert_string_equal(a.file, "fix.py");
	assert_null(a.code);
	assert_int_equal(PARSE(&a, &e, "exec", "5", "-"), 0);
	assert_string_equal(a.file, "-");

	pyhot_err_init(&e);
	assert_int_equal(PARSE(&a, &e, "exec", "5"), -PYHOT_ERR_USAGE);
	assert_non_null(strstr(e.msg, "missing -c CODE or FILE"));
	pyhot_err_init(&e);
	assert_int_equal(PARSE(&a, &e, "exec", "5", "-c", "1", "f.py"), -PYHOT_ERR_USAGE);
	assert_non_null(strstr(e.msg, "not both"));
	pyhot_err_init(&e);
	assert_int_equal(PARSE(&a, &e, "exec", "5", "-c"), -PYHOT_ERR_USAGE);
	assert_non_null(strstr(e.msg, "needs an argument"));
	pyhot_err_init(&e);
	assert_int_equal(PARSE(&a, &e, "status", "5", "-c", "1"), -PYHOT_ERR_USAGE);
}

static void test_help_lists_the_commands(void **state)
{
	char *t = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&t, &n);

	cli_help_print(f, CLI_CMD_NONE);
	fclose(f);
	assert_non_null(strstr(t, "\n  ps "));
	assert_non_null(strstr(t, "\n  stack <pid> "));
	assert_non_null(strstr(t, "\n  watch <pid> [path...] "));
	assert_non_null(strstr(t, "\n  exec <pid>... (-c CODE|FILE) "));
	free(t);
	t = NULL;
	f = open_memstream(&t, &n);
	cli_help_print(f, CLI_CMD_EXEC);
	fclose(f);
	assert_non_null(strstr(t, "-c, --code=CODE"));
	assert_non_null(strstr(t, "__pyhot_exec__"));
	free(t);
	assert_int_equal(cli_cmd_lookup("watch"), CLI_CMD_WATCH);
	assert_string_equal(cli_cmd_name(CLI_CMD_PS), "ps");
}

static void test_one_line(void **state)
{
	char out[64];

	cli_ps_one_line("python3 -c \nimport x\n\twhile 1: pass\n", out, sizeof(out), 0);
	assert_string_equal(out, "python3 -c import x while 1: pass");
	cli_ps_one_line("abcdefghij", out, sizeof(out), 4);
	assert_string_equal(out, "abcd...");
	cli_ps_one_line("abcd", out, sizeof(out), 4);
	assert_string_equal(out, "abcd");
	cli_ps_one_line("", out, sizeof(out), 4);
	assert_string_equal(out, "");
	cli_ps_one_line("0123456789012345678901234567890123456789", out, 16, 0);
	assert_true(strlen(out) < 16);
}

static void test_watch_paths_and_names(void **state)
{
	assert_true(cli_watch_path_under("/a/b/c.py", "/a/b"));
	assert_true(cli_watch_path_under("/a/b", "/a/b"));
	assert_false(cli_watch_path_under("/a/bc/d.py", "/a/b"));
	assert_false(cli_watch_path_under("/a", "/a/b"));
	assert_true(cli_watch_path_under("/x.py", "/"));

	assert_true(cli_watch_name_wanted("views.py"));
	assert_true(cli_watch_name_wanted("__init__.py"));
	assert_false(cli_watch_name_wanted(".#views.py"));
	assert_false(cli_watch_name_wanted(".views.py.swp"));
	assert_false(cli_watch_name_wanted("views.py~"));
	assert_false(cli_watch_name_wanted("views.py.tmp"));
	assert_false(cli_watch_name_wanted("4913"));
	assert_false(cli_watch_name_wanted(".py"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ps_takes_no_pid),
		cmocka_unit_test(test_stack),
		cmocka_unit_test(test_watch_paths),
		cmocka_unit_test(test_exec_code_or_file),
		cmocka_unit_test(test_help_lists_the_commands),
		cmocka_unit_test(test_one_line),
		cmocka_unit_test(test_watch_paths_and_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
