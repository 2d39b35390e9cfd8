/*
 * test_attach_procfs.c: the /proc parsers and pyhot_target_check() on
 * fixture text: no process is touched.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "attach_int.h"
#include "pyhot_attach.h"

static const char status_fixture[] =
	"Name:\tpython3.11\n"
	"Umask:\t0022\n"
	"State:\tS (sleeping)\n"
	"Tgid:\t4242\n"
	"Ngid:\t0\n"
	"Pid:\t4242\n"
	"PPid:\t1\n"
	"TracerPid:\t77\n"
	"Uid:\t1000\t1001\t1000\t1000\n"
	"Gid:\t1000\t1000\t1000\t1000\n"
	"NStgid:\t4242\t12\n"
	"NSpid:\t4242\t12\n"
	"CapEff:\t000001ffffffffff\n"
	"Seccomp:\t2\n"
	"Seccomp_filters:\t1\n";

static void test_status(void **state)
{
	struct attach_status st;

	assert_int_equal(attach_parse_status(status_fixture, &st), 0);
	assert_int_equal(st.state, 'S');
	assert_int_equal(st.tracer, 77);
	assert_int_equal(st.uid, 1000);
	assert_int_equal(st.euid, 1001);
	assert_int_equal(st.tgid, 4242);
	assert_int_equal(st.nspid, 12);
	assert_int_equal(st.seccomp, 2);
	assert_true((st.cap_eff >> 19) & 1);
}

static void test_status_minimal(void **state)
{
	struct attach_status st;

	/* A kernel without NSpid or Seccomp lines. */
	assert_int_equal(attach_parse_status("State:\tZ (zombie)\nUid:\t0\t0\t0\t0\n", &st), 0);
	assert_int_equal(st.state, 'Z');
	assert_int_equal(st.tracer, 0);
	assert_int_equal(st.nspid, 0);
	assert_int_equal(st.tgid, 0);
	assert_int_equal(st.euid, 0);
	assert_int_equal(st.seccomp, -1);
	assert_int_equal(attach_parse_status("Name:\tx\nUid:\t0\n", &st), -1);
	assert_int_equal(attach_parse_status("State:\tR (running)\n", &st), -1);
	assert_int_equal(attach_parse_status("", &st), -1);
}

static const char maps_fixture[] =
	"55d1c0a00000-55d1c0a01000 r--p 00000000 08:01 1234    /usr/bin/python3.11\n"
	"55d1c0a01000-55d1c0c00000 r-xp 00001000 08:01 1234    /usr/bin/python3.11\n"
	"7f0000000000-7f0000021000 rw-p 00000000 00:00 0 \n"
	"7f1000000000-7f1000028000 r--p 00000000 08:01 99      /usr/lib/x86_64-linux-gnu/libc.so.6\n"
	"7f1000028000-7f10001bd000 r-xp 00028000 08:01 99      /usr/lib/x86_64-linux-gnu/libc.so.6\n"
	"7f2000000000-7f2000010000 r--p 00000000 00:01 5       /memfd:pyhot-payload (deleted)\n"
	"7f3000000000-7f3000001000 r--p 00000000 08:01 7       /opt/my lib/libpython3.8d.so.1.0\n"
	"bogus line\n"
	"7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0       [stack]\n"
	"7f4000000000-7f4000001000 r-xp 00000000 08:01 8       /lib64/ld-linux-x86-64.so.2";

static void test_maps(void **state)
{
	const char *cur = maps_fixture;
	struct attach_map m;
	char base[64];
	int r, n = 0, bad = 0;

	while ((r = attach_maps_next(&cur, &m)) != 0) {
		if (r < 0) {
			bad++;
			continue;
		}
		switch (n++) {
		case 0:
			assert_int_equal(m.start, 0x55d1c0a00000ul);
			assert_int_equal(m.end, 0x55d1c0a01000ul);
			assert_int_equal(m.offset, 0);
			assert_string_equal(m.perms, "r--p");
			assert_true(attach_map_path_is(&m, "/usr/bin/python3.11"));
			break;
		case 1:
			assert_int_equal(m.offset, 0x1000);
			assert_string_equal(m.perms, "r-xp");
			break;
		case 2:
			assert_int_equal(m.pathlen, 0);
			break;
		case 4:
			attach_map_basename(&m, base, sizeof(base));
			assert_string_equal(base, "libc.so.6");
			assert_true(attach_is_libc(base));
			break;
		case 5:
			assert_true(attach_map_path_is(&m, "/memfd:pyhot-payload (deleted)"));
			break;
		case 6:
			/* Paths may hold spaces. */
			assert_true(attach_map_path_is(&m, "/opt/my lib/libpython3.8d.so.1.0"));
			break;
		case 8:
			attach_map_basename(&m, base, sizeof(base));
			assert_true(attach_is_ldso(base));
			assert_false(attach_is_libc(base));
			break;
		}
	}
	assert_int_equal(n, 9);
	assert_int_equal(bad, 1);
}

static void test_python_names(void **state)
{
	int ma = 0, mi = 0;

	assert_true(attach_libpython_version("libpython3.11.so.1.0", &ma, &mi));
	assert_int_equal(ma, 3);
	assert_int_equal(mi, 11);
	assert_true(attach_libpython_version("libpython3.8d.so.1.0", &ma, &mi));
	assert_int_equal(mi, 8);
	assert_true(attach_libpython_version("libpython3.13t.so", &ma, &mi));
	assert_int_equal(mi, 13);
	assert_true(attach_libpython_version("libpython2.7.so.1.0", &ma, &mi));
	assert_int_equal(ma, 2);
	assert_int_equal(mi, 7);
	assert_false(attach_libpython_version("libpython3.so", &ma, &mi));
	assert_false(attach_libpython_version("libpython3.11.a", &ma, &mi));
	assert_false(attach_libpython_version("libc.so.6", &ma, &mi));

	assert_true(attach_exe_python_version("python3.11", &ma, &mi));
	assert_int_equal(mi, 11);
	assert_true(attach_exe_python_version("python3.7m", &ma, &mi));
	assert_int_equal(mi, 7);
	assert_true(attach_exe_python_version("python3", &ma, &mi));
	assert_int_equal(ma, 3);
	assert_int_equal(mi, -1);
	assert_false(attach_exe_python_version("python3.11-config", &ma, &mi));
	assert_false(attach_exe_python_version("bash", &ma, &mi));
	assert_false(attach_is_libc("libcrypt.so.1"));
	assert_true(attach_is_libc("libc-2.31.so"));
	assert_true(attach_is_ldso("ld-2.31.so"));
	assert_false(attach_is_ldso("libld.so"));
}

/* NUL-separated blocks as /proc gives them. */
#define BLOCK(s) s, sizeof(s) - 1

static void test_environ(void **state)
{
	assert_false(attach_environ_opted_out(BLOCK("HOME=/root\0PATH=/bin\0")));
	assert_true(attach_environ_opted_out(BLOCK("HOME=/root\0PYTHON_DISABLE_REMOTE_DEBUG=1\0")));
	/* Empty means not set, as in CPython. */
	assert_false(attach_environ_opted_out(BLOCK("PYTHON_DISABLE_REMOTE_DEBUG=\0")));
	assert_false(attach_environ_opted_out(BLOCK("XPYTHON_DISABLE_REMOTE_DEBUG=1\0")));
	/* No trailing NUL (a truncated read). */
	assert_true(attach_environ_opted_out("PYTHON_DISABLE_REMOTE_DEBUG=yes", 31));
}

static void test_cmdline(void **state)
{
	assert_false(attach_cmdline_opted_out(BLOCK("python3\0app.py\0")));
	assert_true(attach_cmdline_opted_out(BLOCK("python3\0-X\0disable_remote_debug\0app.py\0")));
	assert_true(attach_cmdline_opted_out(BLOCK("python3\0-u\0-Xdisable_remote_debug\0-m\0app\0")));
	assert_true(attach_cmdline_opted_out(BLOCK("python3\0-W\0ignore\0-X\0disable_remote_debug=1\0x.py\0")));
	assert_false(attach_cmdline_opted_out(BLOCK("python3\0-X\0dev\0app.py\0")));
	/* After the script, -c or -m it is the program's argument. */
	assert_false(attach_cmdline_opted_out(BLOCK("python3\0app.py\0-X\0disable_remote_debug\0")));
	assert_false(attach_cmdline_opted_out(BLOCK("python3\0-c\0pass\0-Xdisable_remote_debug\0")));
	assert_false(attach_cmdline_opted_out(BLOCK("python3\0-m\0mod\0-X\0disable_remote_debug\0")));
	assert_false(attach_cmdline_opted_out(BLOCK("python3\0-uc\0pass\0-Xdisable_remote_debug\0")));
	assert_false(attach_cmdline_opted_out(BLOCK("python3\0-X\0")));
	assert_false(attach_cmdline_opted_out("", 0));
}

static void test_task_syscall(void **state)
{
	struct attach_task_syscall sc;

	assert_int_equal(attach_parse_task_syscall("running\n", &sc), 0);
	assert_true(sc.running);
	assert_int_equal(sc.nr, -1);
	assert_int_equal(attach_parse_task_syscall("-1 0x7ffd1d2e5f38 0x55f1b2a3c4d5\n", &sc), 0);
	assert_false(sc.running);
	assert_int_equal(sc.nr, -1);
	assert_int_equal(attach_parse_task_syscall(
		"202 0x7f5b1c0008a0 0x80 0x0 0x0 0x0 0x0 0x7f5b1bffec10 0x7f5b1d09e7b2\n", &sc), 0);
	assert_int_equal(sc.nr, 202);
	assert_int_equal(sc.args[0], 0x7f5b1c0008a0ul);
	assert_int_equal(sc.args[1], 0x80);
	assert_int_equal(attach_parse_task_syscall(
		"271 0x1 0x2 0x3 0x7ffe00001000 0x8 0x0 0x7ffe 0x7f\n", &sc), 0);
	assert_int_equal(sc.args[3], 0x7ffe00001000ul);
	assert_int_equal(attach_parse_task_syscall("", &sc), -1);
	assert_int_equal(attach_parse_task_syscall("7 0x1\n", &sc), -1);
}

static void test_stat_state(void **state)
{
	assert_int_equal(attach_parse_stat_state("4242 (python3) S 1 4242 4242 0 -1"), 'S');
	/* comm may hold spaces and parentheses. */
	assert_int_equal(attach_parse_stat_state("4243 (we (ird) ) D 1 2"), 'D');
	assert_int_equal(attach_parse_stat_state("garbage"), 0);
}

static void test_strerror(void **state)
{
	char buf[128];

	assert_string_equal(attach_strerror(EPERM, buf, sizeof(buf)), "operation not permitted");
	assert_string_equal(attach_strerror(ENOENT, buf, sizeof(buf)), "no such file or directory");
}

static void target_fixture(struct pyhot_target *t)
{
	memset(t, 0, sizeof(*t));
	t->pid = 4242;
	t->state = 'S';
	t->py_major = 3;
	t->py_minor = 11;
	snprintf(t->exe, sizeof(t->exe), "/usr/bin/python3.11");
}

static void test_check_messages(void **state)
{
	struct pyhot_target t;
	struct pyhot_err err;

	target_fixture(&t);
	pyhot_err_init(&err);
	assert_int_equal(pyhot_target_check(&t, &err), 0);
	assert_int_equal(err.kind, PYHOT_OK);

	t.state = 'Z';
	pyhot_err_init(&err);
	assert_int_equal(pyhot_target_check(&t, &err), -PYHOT_ERR_ATTACH);
	assert_string_equal(err.msg, "attach: pid 4242 is a zombie");
	assert_string_equal(err.step, "attach");
	assert_int_equal(err.pid, 4242);
	assert_true(err.hint[0]);

	target_fixture(&t);
	t.state = 'T';
	pyhot_err_init(&err);
	assert_int_equal(pyhot_target_check(&t, &err), -PYHOT_ERR_ATTACH);
	assert_string_equal(err.msg, "attach: pid 4242 is stopped");
	assert_string_equal(err.hint, "resume it first: kill -CONT 4242");

	target_fixture(&t);
	t.py_major = 0;
	t.py_minor = -1;
	snprintf(t.exe, sizeof(t.exe), "/usr/bin/bash");
	pyhot_err_init(&err);
	assert_int_equal(pyhot_target_check(&t, &err), -PYHOT_ERR_ATTACH);
	assert_non_null(strstr(err.msg, "attach: pid 4242 ('/usr/bin/bash') is not CPython"));

	target_fixture(&t);
	t.py_minor = 7;
	pyhot_err_init(&err);
	assert_int_equal(pyhot_target_check(&t, &err), -PYHOT_ERR_ATTACH);
	assert_string_equal(err.msg, "attach: pid 4242: CPython 3.7 is older than pyhot "
			    "supports (3.8 or newer)");

	t.py_major = 2;
	pyhot_err_init(&err);
	assert_int_equal(pyhot_target_check(&t, &err), -PYHOT_ERR_ATTACH);
	assert_non_null(strstr(err.msg, "CPython 2.7 is older"));

	target_fixture(&t);
	t.opted_out = 1;
	pyhot_err_init(&err);
	assert_int_equal(pyhot_target_check(&t, &err), -PYHOT_ERR_ATTACH);
	assert_non_null(strstr(err.msg, "attach: pid 4242 opted out of remote debugging"));
	assert_true(err.hint[0]);

	/* The tracer is named with its comm; pid 1 always exists. */
	target_fixture(&t);
	t.tracer = 1;
	pyhot_err_init(&err);
	assert_int_equal(pyhot_target_check(&t, &err), -PYHOT_ERR_ATTACH);
	assert_memory_equal(err.msg, "attach: pid 4242 is traced by pid 1 (", 37);
	assert_non_null(strstr(err.hint, "detach the other tracer"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status),
		cmocka_unit_test(test_status_minimal),
		cmocka_unit_test(test_maps),
		cmocka_unit_test(test_python_names),
		cmocka_unit_test(test_environ),
		cmocka_unit_test(test_cmdline),
		cmocka_unit_test(test_task_syscall),
		cmocka_unit_test(test_stat_state),
		cmocka_unit_test(test_strerror),
		cmocka_unit_test(test_check_messages),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
