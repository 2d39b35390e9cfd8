/* test_cli_trust.c: the client's judgement of the agent's socket directory
 * and peer (cli/client_trust.c), and the /proc parsers that tell a thread
 * or a kernel thread from a process (cli/ctx.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "cli.h"
#include "client.h"

static struct stat dir_st(unsigned int uid, mode_t mode)
{
	struct stat st;

	memset(&st, 0, sizeof(st));
	st.st_uid = uid;
	st.st_mode = mode;
	return st;
}

static void test_dir_judge(void **state)
{
	struct stat st;
	char why[512];

	st = dir_st(0, S_IFDIR | 0700);
	assert_int_equal(pyhot_client_dir_judge(&st, 0, why, sizeof(why)), 0);
	st = dir_st(65534, S_IFDIR | 0700);
	assert_int_equal(pyhot_client_dir_judge(&st, 0, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "is owned by uid 65534"));
	assert_non_null(strstr(why, "not by the target's user, uid 0 (root)"));
	st = dir_st(0, S_IFDIR | 0777);
	assert_int_equal(pyhot_client_dir_judge(&st, 0, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "has mode 0777"));
	st = dir_st(0, S_IFDIR | 0710);
	assert_int_equal(pyhot_client_dir_judge(&st, 0, why, sizeof(why)), -1);
	st = dir_st(0, S_IFLNK | 0777);
	assert_int_equal(pyhot_client_dir_judge(&st, 0, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "is not a directory"));
}

static void test_peer_judge(void **state)
{
	char why[512];

	assert_int_equal(pyhot_client_peer_judge(42, 1000, 42, 1000, why, sizeof(why)), 0);
	assert_int_equal(pyhot_client_peer_judge(43, 1000, 42, 1000, why, sizeof(why)), -1);
	assert_string_equal(why, "is served by pid 43, not by pid 42");
	assert_int_equal(pyhot_client_peer_judge(0, 1000, 42, 1000, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "outside our pid namespace"));
	assert_int_equal(pyhot_client_peer_judge(42, 65534, 42, 0, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "is served by uid 65534"));
}

static void test_proc_parsers(void **state)
{
	unsigned long flags = 0;
	pid_t tgid = 0;

	assert_int_equal(cli_proc_parse_tgid("Name:\tpython3\nUmask:\t0022\nState:\tS\n"
					     "Tgid:\t1234\nNgid:\t0\nPid:\t1240\n", &tgid), 0);
	assert_int_equal(tgid, 1234);
	assert_int_equal(cli_proc_parse_tgid("Name:\tx\n", &tgid), -1);
	/* comm with spaces and a parenthesis; flags of kthreadd. */
	assert_int_equal(cli_proc_parse_stat_flags("2 (kth) read) S 0 0 0 0 -1 2129984 0 0",
						   &flags), 0);
	assert_int_equal(flags, 2129984UL);
	assert_true(flags & 0x00200000UL);
	assert_int_equal(cli_proc_parse_stat_flags("no paren", &flags), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dir_judge),
		cmocka_unit_test(test_peer_judge),
		cmocka_unit_test(test_proc_parsers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
