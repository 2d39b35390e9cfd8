/* test_cli_payload.c: where pyhot looks for its payload (cli/payload_path.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli.h"

static char root[256];

static void touch(const char *path)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fclose(f);
}

static int setup(void **state)
{
	char p[512];

	snprintf(root, sizeof(root), "/tmp/pyhot-test-payload-XXXXXX");
	if (!mkdtemp(root))
		return -1;
	snprintf(p, sizeof(p), "%s/bin", root);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/lib", root);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/lib/pyhot", root);
	mkdir(p, 0755);
	return 0;
}

static int teardown(void **state)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_env_wins(void **state)
{
	char exe[512], env[512], buf[4096], sib[512];
	struct pyhot_err e;

	snprintf(exe, sizeof(exe), "%s/bin/pyhot", root);
	snprintf(env, sizeof(env), "%s/custom.so", root);
	snprintf(sib, sizeof(sib), "%s/bin/pyhot-payload.so", root);
	touch(env);
	touch(sib);
	pyhot_err_init(&e);
	assert_int_equal(cli_payload_find_in(env, exe, buf, sizeof(buf), &e), 0);
	assert_string_equal(buf, env);
	unlink(env);
	unlink(sib);
}

static void test_env_missing_is_an_error(void **state)
{
	char exe[512], buf[4096], sib[512];
	struct pyhot_err e;

	snprintf(exe, sizeof(exe), "%s/bin/pyhot", root);
	snprintf(sib, sizeof(sib), "%s/bin/pyhot-payload.so", root);
	touch(sib);
	pyhot_err_init(&e);
	/* A set but wrong PYHOT_PAYLOAD is not silently replaced. */
	assert_int_equal(cli_payload_find_in("/nonexistent/p.so", exe, buf, sizeof(buf), &e),
			 -PYHOT_ERR_ATTACH);
	assert_non_null(strstr(e.msg, "PYHOT_PAYLOAD=/nonexistent/p.so"));
	assert_non_null(strstr(e.msg, "No such file or directory"));
	assert_non_null(strstr(e.hint, "PYHOT_PAYLOAD"));
	unlink(sib);
}

static void test_next_to_exe(void **state)
{
	char exe[512], buf[4096], sib[512];
	struct pyhot_err e;

	snprintf(exe, sizeof(exe), "%s/bin/pyhot", root);
	snprintf(sib, sizeof(sib), "%s/bin/pyhot-payload.so", root);
	touch(sib);
	pyhot_err_init(&e);
	assert_int_equal(cli_payload_find_in(NULL, exe, buf, sizeof(buf), &e), 0);
	assert_string_equal(buf, sib);
	/* An empty PYHOT_PAYLOAD counts as unset. */
	assert_int_equal(cli_payload_find_in("", exe, buf, sizeof(buf), &e), 0);
	assert_string_equal(buf, sib);
	unlink(sib);
}

static void test_installed_layout(void **state)
{
	char exe[512], buf[4096], lib[512], want[512];
	struct pyhot_err e;

	snprintf(exe, sizeof(exe), "%s/bin/pyhot", root);
	snprintf(lib, sizeof(lib), "%s/lib/pyhot/pyhot-payload.so", root);
	snprintf(want, sizeof(want), "%s/bin/../lib/pyhot/pyhot-payload.so", root);
	touch(lib);
	pyhot_err_init(&e);
	assert_int_equal(cli_payload_find_in(NULL, exe, buf, sizeof(buf), &e), 0);
	assert_string_equal(buf, want);
	unlink(lib);
}

static void test_nothing_found(void **state)
{
	char exe[512], buf[4096];
	struct pyhot_err e;

	snprintf(exe, sizeof(exe), "%s/bin/pyhot", root);
	pyhot_err_init(&e);
	assert_int_equal(cli_payload_find_in(NULL, exe, buf, sizeof(buf), &e),
			 -PYHOT_ERR_ATTACH);
	assert_string_equal(e.step, "payload");
	assert_non_null(strstr(e.msg, "bin/pyhot-payload.so"));
	assert_non_null(strstr(e.msg, "lib/pyhot/pyhot-payload.so"));
	assert_non_null(strstr(e.hint, "PYHOT_PAYLOAD"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_env_wins),
		cmocka_unit_test(test_env_missing_is_an_error),
		cmocka_unit_test(test_next_to_exe),
		cmocka_unit_test(test_installed_layout),
		cmocka_unit_test(test_nothing_found),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
