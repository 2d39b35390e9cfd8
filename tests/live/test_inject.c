/*
 * test_inject.c: pyhot_inject() against real processes (tests/victims).
 * Each test starts its victims, injects tests/victims/libprobe.so (whose
 * pyhot_boot() returns how many times it was called), then asks each
 * victim to check itself: no EINTR seen by a blocked call, registers and
 * signal masks unchanged. Nothing may be left traced, stopped or running.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <grp.h>
#include <sys/stat.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>

#include "pyhot_attach.h"
#include "pyhot_log.h"
#include "victim_util.h"

#define LOOP_VICTIMS 20
#define LOOP_PER_VICTIM 10

static char probe[512];

/* The trace of the last injection, printed when a test fails: a flaky
 * failure on a loaded machine says where the time went. */
static char trace[1 << 15];
static size_t trace_len;

static void trace_cb(void *ctx, const char *component, const char *fmt, va_list ap)
{
	int n;

	if (trace_len + 256 > sizeof(trace))
		return;
	n = snprintf(trace + trace_len, sizeof(trace) - trace_len, "  %.3f %s: ",
		     vu_now_ms(), component);
	if (n > 0)
		trace_len += (size_t)n;
	n = vsnprintf(trace + trace_len, sizeof(trace) - trace_len, fmt, ap);
	if (n > 0)
		trace_len += (size_t)n;
	if (trace_len >= sizeof(trace) - 1)
		trace_len = sizeof(trace) - 2;
	trace[trace_len++] = '\n';
	trace[trace_len] = '\0';
}

static void trace_reset(void)
{
	trace_len = 0;
	trace[0] = '\0';
}

static void opts_init(struct pyhot_inject_opts *o)
{
	memset(o, 0, sizeof(*o));
	victim_path(probe, sizeof(probe), "libprobe.so");
	o->payload_path = probe;
	o->boot_symbol = "pyhot_boot";
	o->boot_arg = "";
	o->timeout_ms = 2000;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* (a) 200 injections: the first into each fresh victim loads the payload
 * with dlopen, the others find it mapped and only call boot. */
static void test_inject_200(void **state)
{
	static double stopped[LOOP_VICTIMS * LOOP_PER_VICTIM];
	unsigned int attempts_total = 0, attempts_max = 0;
	struct pyhot_inject_opts o;
	struct pyhot_inject_result res;
	struct pyhot_err err;
	char last[1200];
	double full_sum = 0;
	int i, k, n = 0;

	opts_init(&o);
	for (i = 0; i < LOOP_VICTIMS; i++) {
		struct victim v;

		assert_int_equal(victim_start(&v, "threads"), 0);
		for (k = 0; k < LOOP_PER_VICTIM; k++) {
			pyhot_err_init(&err);
			trace_reset();
			if (pyhot_inject(v.pid, &o, &res, &err) != 0) {
				victim_kill(&v);
				fail_msg("injection %d into pid %d: %s\ntrace:\n%s", n,
					 (int)v.pid, err.msg, trace);
			}
			assert_int_equal(res.boot_ret, k + 1);
			assert_int_equal(res.reused, k > 0);
			assert_true(victim_alive(&v));
			assert_int_equal(victim_tracer(&v), 0);
			stopped[n++] = res.stopped_ms;
			attempts_total += res.attempts;
			if (res.attempts > attempts_max)
				attempts_max = res.attempts;
			if (k == 0)
				full_sum += res.stopped_ms;
		}
		victim_finish(&v, last, sizeof(last));
		if (strncmp(last, "ok", 2) != 0)
			fail_msg("victim %d: '%s'", (int)v.pid, last);
		assert_true(WIFEXITED(v.status) && WEXITSTATUS(v.status) == 0);
	}
	qsort(stopped, (size_t)n, sizeof(stopped[0]), cmp_double);
	printf("# %d injections: stopped_ms median %.3f, p90 %.3f, max %.3f; "
	       "full load (dlopen) mean %.3f ms; attempts mean %.2f, max %u\n", n,
	       stopped[n / 2], stopped[n * 9 / 10], stopped[n - 1],
	       full_sum / LOOP_VICTIMS, (double)attempts_total / n, attempts_max);
}

/* (b)(c)(d) borrow each kind of thread in turn: parked in nanosleep, read,
 * futex, poll, epoll_wait, running a busy loop, and holding a register
 * pattern across a blocking read. The victim then checks that no call
 * returned EINTR or failed otherwise (a restarted call must get its own
 * number back, not ENOSYS), that each call's result is right, that
 * registers, signal masks and errno are what they were. The probe leaves
 * errno changed, as dlopen() may: the injector must put it back. */
static void test_each_thread_kind(void **state)
{
	static const char *const kinds[] = { "main", "sleep", "read", "futex", "poll",
					     "epoll", "busy", "regs" };
	struct pyhot_inject_opts o;
	struct pyhot_inject_result res;
	struct pyhot_err err;
	struct victim v;
	char last[1200];
	long expect = 0;
	size_t i;
	int round;

	opts_init(&o);
	o.boot_arg = "clobber-errno";
	assert_int_equal(victim_start(&v, "threads"), 0);
	for (round = 0; round < 3; round++) {
		for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
			o.tid = victim_tid(&v, kinds[i]);
			if (!o.tid) {
				victim_kill(&v);
				fail_msg("no tid for %s in '%s'", kinds[i], v.ready);
			}
			pyhot_err_init(&err);
			trace_reset();
			if (pyhot_inject(v.pid, &o, &res, &err) != 0) {
				victim_kill(&v);
				fail_msg("inject into %s thread %d: %s\ntrace:\n%s", kinds[i],
					 (int)o.tid, err.msg, trace);
			}
			assert_int_equal(res.tid, o.tid);
			assert_int_equal(res.boot_ret, ++expect);
		}
		/* Let every thread run back into its call and block again. */
		usleep(30000);
	}
	assert_int_equal(victim_tracer(&v), 0);
	victim_finish(&v, last, sizeof(last));
	if (strncmp(last, "ok", 2) != 0)
		fail_msg("victim: '%s'", last);
}

/* (e) the only thread spends its life in malloc and free: the injector
 * must find a moment outside them within the timeout, or give up with
 * PYHOT_ERR_TIMEOUT; never deadlock the target. */
static void test_malloc_hammer(void **state)
{
	struct pyhot_inject_opts o;
	struct pyhot_inject_result res;
	struct pyhot_err err;
	struct victim v;
	char last[1200];
	unsigned int attempts = 0, refused = 0;
	int i, ok = 0, timeouts = 0, r;

	opts_init(&o);
	assert_int_equal(victim_start(&v, "malloc"), 0);
	for (i = 0; i < 20; i++) {
		pyhot_err_init(&err);
		r = pyhot_inject(v.pid, &o, &res, &err);
		if (r == 0) {
			ok++;
			assert_int_equal(res.boot_ret, ok);
		} else if (r == -PYHOT_ERR_TIMEOUT) {
			timeouts++;
			assert_non_null(strstr(err.msg, "no thread of pid"));
		} else {
			victim_kill(&v);
			fail_msg("inject: %s", err.msg);
		}
		attempts += res.attempts;
		refused += res.attempts - (r == 0);
		assert_true(victim_alive(&v));
	}
	printf("# malloc hammer: %d injected, %d timed out, %u threads stopped, "
	       "%u refused as unsafe\n", ok, timeouts, attempts, refused);
	victim_finish(&v, last, sizeof(last));
	if (strncmp(last, "ok", 2) != 0)
		fail_msg("victim: '%s'", last);
	assert_true(ok > 0);
}

/* Signals keep arriving at the borrowed thread (a handler, SA_RESTART):
 * they are held during the calls and delivered after; the handler runs,
 * the read it interrupts goes on. */
static void test_signal_storm(void **state)
{
	struct pyhot_inject_opts o;
	struct pyhot_inject_result res;
	struct pyhot_err err;
	struct victim v;
	char last[1200];
	pid_t storm;
	int i;

	opts_init(&o);
	assert_int_equal(victim_start(&v, "threads"), 0);
	o.tid = v.pid;
	storm = fork();
	assert_true(storm >= 0);
	if (storm == 0) {
		alarm(30);
		for (;;) {
			syscall(SYS_tgkill, v.pid, v.pid, SIGUSR1);
			usleep(20);
		}
	}
	for (i = 0; i < 50; i++) {
		pyhot_err_init(&err);
		if (pyhot_inject(v.pid, &o, &res, &err) != 0) {
			kill(storm, SIGKILL);
			waitpid(storm, NULL, 0);
			victim_kill(&v);
			fail_msg("inject %d under a signal storm: %s", i, err.msg);
		}
		assert_int_equal(res.boot_ret, i + 1);
	}
	kill(storm, SIGKILL);
	waitpid(storm, NULL, 0);
	victim_finish(&v, last, sizeof(last));
	printf("# signal storm: %s\n", last);
	if (strncmp(last, "ok", 2) != 0)
		fail_msg("victim: '%s'", last);
	assert_null(strstr(last, "usr1=0"));
}

/* The only allowed thread is one pyhot must not borrow (ppoll with a
 * temporary signal mask): a timeout that says where the thread was, and
 * the thread never touched. */
static void test_timeout_names_threads(void **state)
{
	struct pyhot_inject_opts o;
	struct pyhot_inject_result res;
	struct pyhot_err err;
	struct victim v;
	char last[1200], want[128];

	opts_init(&o);
	assert_int_equal(victim_start(&v, "threads"), 0);
	o.tid = victim_tid(&v, "ppoll");
	o.timeout_ms = 50;
	pyhot_err_init(&err);
	assert_int_equal(pyhot_inject(v.pid, &o, &res, &err), -PYHOT_ERR_TIMEOUT);
	printf("# %s\n", err.msg);
	snprintf(want, sizeof(want), "inject: no thread of pid %d was at a safe point "
		 "within 50 ms", (int)v.pid);
	assert_memory_equal(err.msg, want, strlen(want));
	snprintf(want, sizeof(want), "tid %d in ppoll with a temporary signal mask",
		 (int)o.tid);
	assert_non_null(strstr(err.msg, want));
	assert_int_equal(res.attempts, 0);
	assert_true(err.hint[0] != '\0');
	victim_finish(&v, last, sizeof(last));
	if (strncmp(last, "ok", 2) != 0)
		fail_msg("victim: '%s'", last);
}

/* Threads whose frame 0 is a plain read() but that are inside dlopen()
 * (a library constructor blocks) or fork() (an atfork handler blocks)
 * further up: the stack walk must find that frame and refuse them, with
 * a timeout that names the function and the frame's depth. */
static void test_deep_stack(void **state)
{
	static const char *const kinds[] = { "dlopen", "fork" };
	struct pyhot_inject_opts o;
	struct pyhot_inject_result res;
	struct pyhot_err err;
	struct victim v;
	char last[1200], want[64];
	const char *frame;
	size_t i;
	int r;

	opts_init(&o);
	assert_int_equal(victim_start(&v, "deep"), 0);
	for (i = 0; i < 2; i++) {
		o.tid = victim_tid(&v, kinds[i]);
		assert_true(o.tid > 0);
		o.timeout_ms = 100;
		pyhot_err_init(&err);
		trace_reset();
		r = pyhot_inject(v.pid, &o, &res, &err);
		printf("# %s thread: %s\n", kinds[i], err.msg);
		if (r != -PYHOT_ERR_TIMEOUT) {
			victim_kill(&v);
			fail_msg("inject into the thread in %s returned %d: %s\ntrace:\n%s",
				 kinds[i], r, err.msg, trace);
		}
		snprintf(want, sizeof(want), "tid %d in ", (int)o.tid);
		assert_non_null(strstr(err.msg, want));
		frame = strstr(err.msg, "(frame #");
		assert_non_null(frame);
		assert_true(atoi(frame + 8) > 0);
		assert_int_equal(victim_tracer(&v), 0);
	}
	victim_finish(&v, last, sizeof(last));
	if (strncmp(last, "ok", 2) != 0)
		fail_msg("victim: '%s'", last);
}

/* A target killed while its thread is stopped: a clean error, nothing
 * left traced (the test hook does the killing). */
static void test_kill_after_seize(void **state)
{
	struct pyhot_inject_opts o;
	struct pyhot_inject_result res;
	struct pyhot_err err;
	struct victim v;
	char want[64];
	int r;

	opts_init(&o);
	assert_int_equal(victim_start(&v, "threads"), 0);
	setenv("PYHOT_TEST_HOOK", "kill-after-seize", 1);
	pyhot_err_init(&err);
	r = pyhot_inject(v.pid, &o, &res, &err);
	unsetenv("PYHOT_TEST_HOOK");
	victim_reap(&v, 5000);
	close(v.in_fd);
	close(v.out_fd);
	assert_int_equal(r, -PYHOT_ERR_ATTACH);
	snprintf(want, sizeof(want), "attach: pid %d exited during attach", (int)v.pid);
	assert_string_equal(err.msg, want);
}

/* A process that is already traced: refused with the tracer named, the
 * other tracer undisturbed. */
static void test_traced_by_other(void **state)
{
	struct pyhot_inject_opts o;
	struct pyhot_inject_result res;
	struct pyhot_target t, ts;
	struct pyhot_err err;
	struct victim v;
	char last[1200], want[128];
	int sync[2], r;
	pid_t tracer;
	char c;

	opts_init(&o);
	assert_int_equal(victim_start(&v, "threads"), 0);
	assert_int_equal(pipe(sync), 0);
	tracer = fork();
	assert_true(tracer >= 0);
	if (tracer == 0) {
		/* Seize, say so, and hold on until killed. */
		alarm(30);
		if (ptrace(PTRACE_SEIZE, v.pid, NULL, NULL) < 0)
			_exit(1);
		if (write(sync[1], "s", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(sync[1]);
	r = (int)read(sync[0], &c, 1);
	close(sync[0]);
	if (r != 1) {
		kill(tracer, SIGKILL);
		waitpid(tracer, NULL, 0);
		victim_kill(&v);
		fail_msg("tracer did not seize");
	}
	pyhot_err_init(&err);
	assert_int_equal(pyhot_target_inspect(v.pid, &t, &err), 0);
	assert_int_equal(t.tracer, tracer);
	/* The light part alone says the same of it, and nothing of Python. */
	assert_int_equal(pyhot_target_inspect_light(v.pid, &ts, &err), 0);
	assert_int_equal(ts.tracer, tracer);
	assert_int_equal(ts.uid, t.uid);
	assert_int_equal(ts.nspid, t.nspid);
	assert_string_equal(ts.comm, t.comm);
	assert_int_equal(ts.py_major, 0);
	assert_string_equal(ts.exe, "");
	assert_int_equal(ts.payload_base, 0);
	assert_int_equal(ts.light, 1);
	assert_int_equal(pyhot_target_check(&t, &err), -PYHOT_ERR_ATTACH);
	snprintf(want, sizeof(want), "attach: pid %d is traced by pid %d (", (int)v.pid,
		 (int)tracer);
	assert_memory_equal(err.msg, want, strlen(want));
	assert_true(err.hint[0] != '\0');
	/* The light one is judged the same (its interpreter is not). */
	pyhot_err_init(&err);
	assert_int_equal(pyhot_target_check(&ts, &err), -PYHOT_ERR_ATTACH);
	assert_memory_equal(err.msg, want, strlen(want));

	pyhot_err_init(&err);
	r = pyhot_inject(v.pid, &o, &res, &err);
	kill(tracer, SIGKILL);
	waitpid(tracer, NULL, 0);
	assert_int_equal(r, -PYHOT_ERR_ATTACH);
	assert_memory_equal(err.msg, want, strlen(want));
	victim_finish(&v, last, sizeof(last));
	assert_memory_equal(last, "ok", 2);
}

/* An injector without CAP_SYS_PTRACE running as another uid: refused with
 * the uids named and what to do. Runs in a child that drops root. */
static void test_other_uid(void **state)
{
	struct pyhot_inject_opts o;
	struct pyhot_inject_result res;
	struct pyhot_err err;
	struct victim v;
	char msg[1100] = "", last[1200], want[160];
	int fds[2], status;
	ssize_t n;
	pid_t child;

	if (geteuid() != 0)
		skip();
	opts_init(&o);
	assert_int_equal(victim_start(&v, "threads"), 0);
	assert_int_equal(pipe(fds), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		alarm(30);
		if (setgroups(0, NULL) != 0 || setresgid(65534, 65534, 65534) != 0 ||
		    setresuid(65534, 65534, 65534) != 0)
			_exit(2);
		pyhot_err_init(&err);
		if (pyhot_inject(v.pid, &o, &res, &err) != -PYHOT_ERR_ATTACH)
			_exit(3);
		n = snprintf(msg, sizeof(msg), "%s\n%s", err.msg, err.hint);
		if (write(fds[1], msg, (size_t)n) != n)
			_exit(4);
		_exit(0);
	}
	close(fds[1]);
	n = read(fds[0], msg, sizeof(msg) - 1);
	close(fds[0]);
	waitpid(child, &status, 0);
	msg[n > 0 ? n : 0] = '\0';
	printf("# %s\n", msg);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	snprintf(want, sizeof(want), "pid %d belongs to uid 0 and pyhot runs as uid "
		 "65534 without CAP_SYS_PTRACE", (int)v.pid);
	assert_non_null(strstr(msg, want));
	assert_non_null(strstr(msg, "run pyhot as uid 0 or as root"));
	victim_finish(&v, last, sizeof(last));
	assert_memory_equal(last, "ok", 2);
}

/* pyhot_native_stack() of a thread parked in futex: one line a frame,
 * names and mappings, and the thread goes on afterwards. */
static void test_native_stack(void **state)
{
	struct pyhot_err err;
	struct victim v;
	char buf[8192], last[1200], exe[512];
	pid_t tid;

	assert_int_equal(victim_start(&v, "threads"), 0);
	tid = victim_tid(&v, "futex");
	pyhot_err_init(&err);
	if (pyhot_native_stack(v.pid, tid, buf, sizeof(buf), &err) != 0) {
		victim_kill(&v);
		fail_msg("native stack: %s", err.msg);
	}
	printf("# native stack of the futex thread:\n%s", buf);
	assert_memory_equal(buf, "#0  0x", 6);
	assert_non_null(strstr(buf, "libc.so.6)"));
	assert_non_null(strstr(buf, " in thread_main+0x"));
	victim_path(exe, sizeof(exe), "victim");
	assert_non_null(strstr(buf, "/victim)"));
	assert_int_equal(victim_tracer(&v), 0);
	victim_finish(&v, last, sizeof(last));
	assert_memory_equal(last, "ok", 2);
}

/* Errors a caller can hit before any ptrace. */
static void test_bad_payload(void **state)
{
	struct pyhot_inject_opts o;
	struct pyhot_inject_result res;
	struct pyhot_err err;
	struct victim v;
	char last[1200], libc[512];

	assert_int_equal(victim_start(&v, "threads"), 0);
	opts_init(&o);
	o.payload_path = "/nonexistent/pyhot-payload.so";
	pyhot_err_init(&err);
	assert_int_equal(pyhot_inject(v.pid, &o, &res, &err), -PYHOT_ERR_ATTACH);
	assert_non_null(strstr(err.msg, "open('/nonexistent/pyhot-payload.so'): no such file"));

	/* A real ELF without the boot symbol. */
	snprintf(libc, sizeof(libc), "/lib/x86_64-linux-gnu/libm.so.6");
	o.payload_path = libc;
	pyhot_err_init(&err);
	if (access(libc, R_OK) == 0) {
		assert_int_equal(pyhot_inject(v.pid, &o, &res, &err), -PYHOT_ERR_ATTACH);
		assert_non_null(strstr(err.msg, "does not export 'pyhot_boot'"));
	}

	/* dlopen fails inside the target: its dlerror() says why. */
	victim_path(libc, sizeof(libc), "libbadprobe.so");
	o.payload_path = libc;
	pyhot_err_init(&err);
	assert_int_equal(pyhot_inject(v.pid, &o, &res, &err), -PYHOT_ERR_ATTACH);
	printf("# %s\n", err.msg);
	assert_non_null(strstr(err.msg, "undefined symbol: pyhot_no_such_function"));
	assert_int_equal(victim_tracer(&v), 0);

	/* A payload others can write, or owned by another user: refused
	 * before any thread is stopped. */
	{
		char copy[] = "/tmp/pyhot-payload-test-XXXXXX", cmd[1200];

		assert_true(mkstemp(copy) >= 0);
		snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", probe, copy);
		assert_int_equal(system(cmd), 0);
		o.payload_path = copy;
		assert_int_equal(chmod(copy, 0666), 0);
		pyhot_err_init(&err);
		assert_int_equal(pyhot_inject(v.pid, &o, &res, &err), -PYHOT_ERR_ATTACH);
		assert_non_null(strstr(err.msg, "is writable by others (mode 0666)"));
		assert_int_equal(res.attempts, 0);
		assert_int_equal(chmod(copy, 0644), 0);
		if (geteuid() == 0 && chown(copy, 65534, 65534) == 0) {
			pyhot_err_init(&err);
			assert_int_equal(pyhot_inject(v.pid, &o, &res, &err),
					 -PYHOT_ERR_ATTACH);
			assert_non_null(strstr(err.msg, "belongs to uid 65534"));
		}
		unlink(copy);
	}

	pyhot_err_init(&err);
	opts_init(&o);
	assert_int_equal(pyhot_inject(999999999, &o, &res, &err), -PYHOT_ERR_ATTACH);
	assert_string_equal(err.msg, "attach: pid 999999999 does not exist");
	victim_finish(&v, last, sizeof(last));
	assert_memory_equal(last, "ok", 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_inject_200),
		cmocka_unit_test(test_each_thread_kind),
		cmocka_unit_test(test_malloc_hammer),
		cmocka_unit_test(test_signal_storm),
		cmocka_unit_test(test_timeout_names_threads),
		cmocka_unit_test(test_deep_stack),
		cmocka_unit_test(test_kill_after_seize),
		cmocka_unit_test(test_traced_by_other),
		cmocka_unit_test(test_other_uid),
		cmocka_unit_test(test_native_stack),
		cmocka_unit_test(test_bad_payload),
	};

	setvbuf(stdout, NULL, _IOLBF, 0);
	pyhot_log_set(trace_cb, NULL);
	/* A victim's stdin pipe may close early: do not die of SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
