/*
 * test_python.c: pyhot_target_inspect()/check() and pyhot_inject() against
 * the real interpreters of the machine: pyenv's shared builds, Debian's
 * static /usr/bin/python3.11, and the too-old ones that must be refused.
 * A test whose interpreter is not installed is reported skipped (by
 * cmocka, and counted), never passed; the last test fails when no
 * supported interpreter at all was found, and names the missing ones.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <glob.h>

#include "pyhot_attach.h"
#include "victim_util.h"

#define PY_SCRIPT "import sys; print('ready', flush=True); sys.stdin.readline(); " \
		  "print('ok', flush=True)"

static int n_found, n_missing, n_supported_found;
static char missing[512];

/* The path of an installed interpreter matching pattern, or NULL. */
static const char *find_python(const char *pattern, char *buf, size_t len)
{
	const char *root = getenv("PYENV_ROOT");
	char pat[512];
	glob_t g;

	if (pattern[0] == '/')
		snprintf(pat, sizeof(pat), "%s", pattern);
	else
		snprintf(pat, sizeof(pat), "%s/versions/%s", root ? root : "/root/.pyenv",
			 pattern);
	if (glob(pat, 0, NULL, &g) != 0)
		return NULL;
	snprintf(buf, len, "%s", g.gl_pathv[g.gl_pathc - 1]);
	globfree(&g);
	return access(buf, X_OK) == 0 ? buf : NULL;
}

/* find_python(), counting; a missing interpreter skips the test (cmocka
 * reports it as skipped, never as passed). */
static const char *need_python(const char *pattern, int supported, char *buf,
			       size_t len)
{
	size_t n = strlen(missing);

	if (find_python(pattern, buf, len)) {
		n_found++;
		n_supported_found += supported;
		return buf;
	}
	n_missing++;
	snprintf(missing + n, sizeof(missing) - n, "%s%s", n ? ", " : "", pattern);
	printf("# %s not installed: test skipped\n", pattern);
	skip();
	return NULL;
}

static int start_python(struct victim *v, const char *py, const char *xopt,
			const char *env)
{
	char *argv[6];
	int i = 0;

	argv[i++] = (char *)(uintptr_t)py;
	if (xopt) {
		argv[i++] = (char *)(uintptr_t)"-X";
		argv[i++] = (char *)(uintptr_t)xopt;
	}
	argv[i++] = (char *)(uintptr_t)"-c";
	argv[i++] = (char *)(uintptr_t)PY_SCRIPT;
	argv[i] = NULL;
	return victim_start_argv(v, argv, env);
}

struct pycase {
	const char *pattern;
	int minor;
	int is_static;
};

static void inspect_inject(const struct pycase *c)
{
	struct pyhot_target t;
	struct pyhot_inject_opts o;
	struct pyhot_inject_result res;
	struct pyhot_err err;
	struct victim v;
	char py[512], probe[512], last[256];
	int k;

	need_python(c->pattern, 1, py, sizeof(py));
	assert_int_equal(start_python(&v, py, NULL, NULL), 0);
	pyhot_err_init(&err);
	if (pyhot_target_inspect(v.pid, &t, &err) != 0) {
		victim_kill(&v);
		fail_msg("inspect %s: %s", py, err.msg);
	}
	assert_int_equal(t.py_major, 3);
	assert_int_equal(t.py_minor, c->minor);
	assert_int_equal(t.py_static, c->is_static);
	assert_int_equal(t.libpython[0] != '\0', !c->is_static);
	assert_int_equal(t.opted_out, 0);
	assert_int_equal(t.payload_base, 0);
	assert_int_equal(pyhot_target_check(&t, &err), 0);

	memset(&o, 0, sizeof(o));
	victim_path(probe, sizeof(probe), "libprobe.so");
	o.payload_path = probe;
	o.boot_symbol = "pyhot_boot";
	o.boot_arg = "";
	for (k = 1; k <= 3; k++) {
		pyhot_err_init(&err);
		if (pyhot_inject(v.pid, &o, &res, &err) != 0) {
			victim_kill(&v);
			fail_msg("inject into %s: %s", py, err.msg);
		}
		assert_int_equal(res.boot_ret, k);
		printf("# %s: injection %d stopped %.3f ms (%u attempts)%s\n", py, k,
		       res.stopped_ms, res.attempts, res.reused ? ", reused" : "");
	}
	pyhot_err_init(&err);
	assert_int_equal(pyhot_target_inspect(v.pid, &t, &err), 0);
	assert_true(t.payload_base != 0);
	victim_finish(&v, last, sizeof(last));
	assert_string_equal(last, "ok");
}

static void test_pyenv_38(void **state)
{
	static const struct pycase c = { "3.8*/bin/python3.8", 8, 0 };

	inspect_inject(&c);
}

static void test_pyenv_39(void **state)
{
	static const struct pycase c = { "3.9*/bin/python3.9", 9, 0 };

	inspect_inject(&c);
}

static void test_pyenv_310(void **state)
{
	static const struct pycase c = { "3.10*/bin/python3.10", 10, 0 };

	inspect_inject(&c);
}

static void test_pyenv_311(void **state)
{
	static const struct pycase c = { "3.11*/bin/python3.11", 11, 0 };

	inspect_inject(&c);
}

static void test_pyenv_312(void **state)
{
	static const struct pycase c = { "3.12*/bin/python3.12", 12, 0 };

	inspect_inject(&c);
}

static void test_pyenv_313(void **state)
{
	static const struct pycase c = { "3.13*/bin/python3.13", 13, 0 };

	inspect_inject(&c);
}

static void test_debian_static_311(void **state)
{
	static const struct pycase c = { "/usr/bin/python3.11", 11, 1 };

	inspect_inject(&c);
}

static void refuse_old(const char *pattern, int major, int minor)
{
	struct pyhot_target t;
	struct pyhot_err err;
	struct victim v;
	char py[512], want[128], last[256];

	need_python(pattern, 0, py, sizeof(py));
	/* Python 2 has no print(flush=...): its own script. */
	if (major == 2) {
		char *argv[] = { py, (char *)(uintptr_t)"-c",
				 (char *)(uintptr_t)"import sys; sys.stdout.write('ready\\n'); "
				 "sys.stdout.flush(); sys.stdin.readline(); "
				 "sys.stdout.write('ok\\n'); sys.stdout.flush()", NULL };

		assert_int_equal(victim_start_argv(&v, argv, NULL), 0);
	} else {
		assert_int_equal(start_python(&v, py, NULL, NULL), 0);
	}
	pyhot_err_init(&err);
	assert_int_equal(pyhot_target_inspect(v.pid, &t, &err), 0);
	assert_int_equal(t.py_major, major);
	assert_int_equal(t.py_minor, minor);
	assert_int_equal(pyhot_target_check(&t, &err), -PYHOT_ERR_ATTACH);
	snprintf(want, sizeof(want), "attach: pid %d: CPython %d.%d is older than pyhot "
		 "supports (3.8 or newer)", (int)v.pid, major, minor);
	assert_string_equal(err.msg, want);
	victim_finish(&v, last, sizeof(last));
	assert_string_equal(last, "ok");
}

static void test_refuse_37(void **state)
{
	refuse_old("3.7*/bin/python3.7", 3, 7);
}

static void test_refuse_36(void **state)
{
	refuse_old("3.6*/bin/python3.6", 3, 6);
}

static void test_refuse_27(void **state)
{
	refuse_old("2.7*/bin/python2.7", 2, 7);
}

static void opted_out(const char *xopt, const char *env)
{
	struct pyhot_target t;
	struct pyhot_err err;
	struct victim v;
	char py[512], last[256];

	if (!find_python("3.11*/bin/python3.11", py, sizeof(py)))
		need_python("/usr/bin/python3.11", 1, py, sizeof(py));
	assert_int_equal(start_python(&v, py, xopt, env), 0);
	pyhot_err_init(&err);
	assert_int_equal(pyhot_target_inspect(v.pid, &t, &err), 0);
	assert_int_equal(t.opted_out, 1);
	assert_int_equal(pyhot_target_check(&t, &err), -PYHOT_ERR_ATTACH);
	assert_non_null(strstr(err.msg, "opted out of remote debugging"));
	victim_finish(&v, last, sizeof(last));
	assert_string_equal(last, "ok");
}

static void test_opt_out_env(void **state)
{
	opted_out(NULL, "PYTHON_DISABLE_REMOTE_DEBUG=1");
}

static void test_opt_out_xoption(void **state)
{
	opted_out("disable_remote_debug", NULL);
}

/* A C program is no Python; a stopped one is refused with the cure. */
static void test_not_python_and_stopped(void **state)
{
	struct pyhot_target t;
	struct pyhot_err err;
	struct victim v;
	char want[128], last[256];
	int i;

	/* Not the "threads" victim: SIGSTOP and SIGCONT make its epoll_wait
	 * return EINTR by themselves (signal(7)). */
	assert_int_equal(victim_start(&v, "malloc"), 0);
	pyhot_err_init(&err);
	assert_int_equal(pyhot_target_inspect(v.pid, &t, &err), 0);
	assert_int_equal(t.py_major, 0);
	assert_int_equal(t.state == 'S' || t.state == 'R', 1);
	assert_int_equal(pyhot_target_check(&t, &err), -PYHOT_ERR_ATTACH);
	assert_non_null(strstr(err.msg, "is not CPython"));

	kill(v.pid, SIGSTOP);
	for (i = 0; i < 1000; i++) {
		pyhot_err_init(&err);
		assert_int_equal(pyhot_target_inspect(v.pid, &t, &err), 0);
		if (t.state == 'T')
			break;
		usleep(1000);
	}
	kill(v.pid, SIGCONT);
	assert_int_equal(t.state, 'T');
	t.py_major = 3;
	t.py_minor = 11;
	pyhot_err_init(&err);
	assert_int_equal(pyhot_target_check(&t, &err), -PYHOT_ERR_ATTACH);
	snprintf(want, sizeof(want), "attach: pid %d is stopped", (int)v.pid);
	assert_string_equal(err.msg, want);
	snprintf(want, sizeof(want), "resume it first: kill -CONT %d", (int)v.pid);
	assert_string_equal(err.hint, want);
	victim_finish(&v, last, sizeof(last));
	if (strncmp(last, "ok", 2) != 0)
		fail_msg("victim: '%s'", last);
}

/* Last: the count of what ran. No supported interpreter at all means this
 * file tested nothing of what it names: a failure, not a pass. */
static void test_interpreters_found(void **state)
{
	printf("# interpreters: %d found, %d missing%s%s\n", n_found, n_missing,
	       n_missing ? ": " : "", missing);
	if (n_supported_found == 0)
		fail_msg("no supported interpreter (pyenv 3.8 to 3.13, /usr/bin/python3.11) "
			 "was found: nothing was tested; install one (make deps)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pyenv_38),
		cmocka_unit_test(test_pyenv_39),
		cmocka_unit_test(test_pyenv_310),
		cmocka_unit_test(test_pyenv_311),
		cmocka_unit_test(test_pyenv_312),
		cmocka_unit_test(test_pyenv_313),
		cmocka_unit_test(test_debian_static_311),
		cmocka_unit_test(test_refuse_37),
		cmocka_unit_test(test_refuse_36),
		cmocka_unit_test(test_refuse_27),
		cmocka_unit_test(test_opt_out_env),
		cmocka_unit_test(test_opt_out_xoption),
		cmocka_unit_test(test_not_python_and_stopped),
		cmocka_unit_test(test_interpreters_found),
	};

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
