/* thread.c: stop one thread and give it back untouched (see attach_thread.h). */
#include "attach_thread.h"
#include "attach_int.h"
#include "pyhot_log.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

/* However long a thread takes to reach its stop (it may be in
 * uninterruptible sleep), we cannot detach before it does. */
#define STOP_HARD_LIMIT_MS 10000.0

#define CAP_SYS_PTRACE_BIT 19

#ifdef PYHOT_TEST_HOOKS
#define TEST_HOOK_ENV "PYHOT_TEST_HOOK"

int attach_test_hook(const char *name)
{
	const char *v = getenv(TEST_HOOK_ENV);

	return v && strcmp(v, name) == 0;
}

void attach_test_hold(void)
{
	const char *v = getenv(TEST_HOOK_ENV);
	struct timespec ts;
	unsigned int ms;

	if (!v || sscanf(v, "hold-inject-ms=%u", &ms) != 1)
		return;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static unsigned int steps;

static void say_steps(void)
{
	fprintf(stderr, "pyhot: test hook: %u steps\n", steps);
}

void attach_test_step(const char *what)
{
	const char *v = getenv(TEST_HOOK_ENV);
	unsigned int at;
	int sig;

	if (!v)
		return;
	if (!steps++ && strcmp(v, "count-steps") == 0)
		atexit(say_steps);
	if (sscanf(v, "kill-self-at=%u", &at) == 1)
		sig = SIGKILL;
	else if (sscanf(v, "stop-self-at=%u", &at) == 1)
		sig = SIGSTOP;
	else if (sscanf(v, "int-self-at=%u", &at) == 1)
		sig = SIGINT;   /* to the process, as a terminal's Ctrl-C */
	else
		return;
	if (at != steps)
		return;
	PYHOT_TRACE("ptrace", "test hook: signal %d to ourselves at step %u (%s)", sig,
		    steps, what);
	fprintf(stderr, "pyhot: test hook: signal %d at step %u (%s)\n", sig, steps, what);
	if (sig == SIGINT)
		kill(getpid(), sig);
	else
		raise(sig);
}
#endif

double attach_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

double attach_thread_stopped_ms(const struct attach_thread *th)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - th->t_stop.tv_sec) * 1e3 +
	       (double)(now.tv_nsec - th->t_stop.tv_nsec) / 1e6;
}

int attach_pid_alive(pid_t pid)
{
	char path[64], *text = NULL;
	struct attach_status st;
	size_t len;
	int alive = 0;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (attach_read_file(path, &text, &len) != 0)
		return 0;
	if (attach_parse_status(text, &st) == 0)
		alive = st.state != 'Z' && st.state != 'X';
	free(text);
	return alive;
}

int attach_get_regs(pid_t tid, arch_regs_t *r)
{
	struct iovec iov = { r, sizeof(*r) };

	if (ptrace(PTRACE_GETREGSET, tid, (void *)NT_PRSTATUS, &iov) < 0)
		return -errno;
	return 0;
}

int attach_set_regs(pid_t tid, const arch_regs_t *r)
{
	struct iovec iov = { (void *)(uintptr_t)r, sizeof(*r) };

	if (ptrace(PTRACE_SETREGSET, tid, (void *)NT_PRSTATUS, &iov) < 0)
		return -errno;
	return 0;
}

int attach_wait(struct attach_chld *chld, pid_t tid, int *status, double deadline_ms)
{
	struct timespec ts;
	siginfo_t si;
	sigset_t sigchld;
	double left;
	pid_t r;

	sigemptyset(&sigchld);
	sigaddset(&sigchld, SIGCHLD);
	for (;;) {
		r = waitpid(tid, status, __WALL | WNOHANG);
		if (r == tid)
			return 1;
		if (r < 0 && errno != EINTR)
			return -errno;
		left = deadline_ms - attach_now_ms();
		if (left <= 0)
			return 0;
		/* Sleep until the kernel tells the tracer of a stop (SIGCHLD,
		 * blocked by the caller: attach_chld_block()). Spinning
		 * instead would take the CPU the borrowed thread needs to
		 * finish its call. A host that ignores SIGCHLD, or another of
		 * its threads taking it, costs at most a millisecond. */
		if (left > 1.0)
			left = 1.0;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)(left * 1e6);
		if (sigtimedwait(&sigchld, &si, &ts) == SIGCHLD && si.si_pid != tid)
			chld->foreign = 1;
	}
}

int attach_chld_block(struct attach_chld *chld)
{
	sigset_t block;

	chld->foreign = 0;
	sigemptyset(&block);
	sigaddset(&block, SIGCHLD);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	/* What else a terminal sends: Ctrl-\ would kill us, Ctrl-Z and
	 * background reads or writes would stop us with the thread borrowed. */
	sigaddset(&block, SIGQUIT);
	sigaddset(&block, SIGTSTP);
	sigaddset(&block, SIGTTIN);
	sigaddset(&block, SIGTTOU);
	return pthread_sigmask(SIG_BLOCK, &block, &chld->old) == 0 ? 0 : -1;
}

void attach_chld_restore(struct attach_chld *chld)
{
	/* A SIGCHLD about another child of the host was taken by our wait:
	 * hand it back; handlers reap in a loop, one signal is enough. */
	if (chld->foreign && !sigismember(&chld->old, SIGCHLD))
		raise(SIGCHLD);
	chld->foreign = 0;
	pthread_sigmask(SIG_SETMASK, &chld->old, NULL);
}

static unsigned long long own_cap_eff(int *seccomp, uid_t *euid)
{
	char *text = NULL;
	size_t len;
	struct attach_status st;
	unsigned long long cap = 0;

	*seccomp = -1;
	*euid = geteuid();
	if (attach_read_file("/proc/self/status", &text, &len) != 0)
		return 0;
	if (attach_parse_status(text, &st) == 0) {
		cap = st.cap_eff;
		*seccomp = st.seccomp;
	}
	free(text);
	return cap;
}

int attach_diagnose_eperm(pid_t pid, const char *what, struct pyhot_err *err)
{
	struct attach_status st;
	char path[64], comm[64], *text = NULL;
	unsigned long long cap;
	size_t len;
	uid_t euid;
	int seccomp, scope = -1, have_cap;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	memset(&st, 0, sizeof(st));
	if (attach_read_file(path, &text, &len) == 0) {
		if (attach_parse_status(text, &st) != 0)
			memset(&st, 0, sizeof(st));
		free(text);
		text = NULL;
	}
	if (st.tracer) {
		snprintf(path, sizeof(path), "/proc/%d/comm", (int)st.tracer);
		snprintf(comm, sizeof(comm), "?");
		if (attach_read_file(path, &text, &len) == 0) {
			text[strcspn(text, "\n")] = '\0';
			snprintf(comm, sizeof(comm), "%s", text);
			free(text);
			text = NULL;
		}
		pyhot_err_set(err, PYHOT_ERR_ATTACH, EPERM, pid, "attach",
			      "pid %d is traced by pid %d (%s)", (int)pid,
			      (int)st.tracer, comm);
		pyhot_err_hint(err, "detach the other tracer (%s) first", comm);
		return -PYHOT_ERR_ATTACH;
	}
	cap = own_cap_eff(&seccomp, &euid);
	have_cap = (int)((cap >> CAP_SYS_PTRACE_BIT) & 1);
	if (!have_cap && st.state && st.uid != euid) {
		pyhot_err_set(err, PYHOT_ERR_ATTACH, EPERM, pid, "attach",
			      "%s: operation not permitted: pid %d "
			      "belongs to uid %u and pyhot runs as uid %u without "
			      "CAP_SYS_PTRACE", what, (int)pid, (unsigned int)st.uid,
			      (unsigned int)euid);
		pyhot_err_hint(err, "run pyhot as uid %u or as root" NO_PTRACE_WAY, (unsigned int)st.uid);
		return -PYHOT_ERR_ATTACH;
	}
	if (attach_read_file("/proc/sys/kernel/yama/ptrace_scope", &text, &len) == 0) {
		scope = atoi(text);
		free(text);
		text = NULL;
	}
	if (scope == 3 || (scope >= 1 && !have_cap)) {
		pyhot_err_set(err, PYHOT_ERR_ATTACH, EPERM, pid, "attach",
			      "%s: operation not permitted: "
			      "kernel.yama.ptrace_scope is %d", what, scope);
		if (scope == 3)
			pyhot_err_hint(err, "ptrace_scope 3 forbids every attach until "
				       "reboot" NO_PTRACE_WAY);
		else
			pyhot_err_hint(err, "run pyhot as root, or: sysctl -w "
				       "kernel.yama.ptrace_scope=0" NO_PTRACE_WAY);
		return -PYHOT_ERR_ATTACH;
	}
	if (seccomp == 2) {
		pyhot_err_set(err, PYHOT_ERR_ATTACH, EPERM, pid, "attach",
			      "%s: operation not permitted: pyhot "
			      "runs under a seccomp filter", what);
		pyhot_err_hint(err, "in a container, allow ptrace: --cap-add=SYS_PTRACE "
			       "--security-opt seccomp=unconfined" NO_PTRACE_WAY);
		return -PYHOT_ERR_ATTACH;
	}
	pyhot_err_set(err, PYHOT_ERR_ATTACH, EPERM, pid, "attach",
		      "%s: operation not permitted", what);
	pyhot_err_hint(err, "the target may be non-dumpable (setuid, or "
		       "prctl(PR_SET_DUMPABLE, 0)): run pyhot as root" NO_PTRACE_WAY);
	return -PYHOT_ERR_ATTACH;
}

static int exited_during_attach(struct attach_thread *th, struct pyhot_err *err)
{
	th->gone = 1;
	th->stopped = 0;
	return pyhot_err_set(err, PYHOT_ERR_ATTACH, ESRCH, th->pid, "attach",
			     "pid %d exited during attach", (int)th->pid);
}

int attach_thread_pending(const struct attach_thread *th, int caught_only)
{
	char path[96], *text = NULL;
	struct attach_status st;
	unsigned long long want;
	size_t len;
	int pending = 1;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)th->pid, (int)th->tid);
	if (attach_read_file(path, &text, &len) != 0)
		return 1;
	if (attach_parse_status(text, &st) == 0) {
		want = st.sig_pnd & ~st.sig_blk;
		pending = (caught_only ? want & st.sig_cgt : want) != 0;
	}
	free(text);
	return pending;
}

/* A stopped thread parked in a blocking call that a ptrace stop turns into
 * -EINTR (epoll_wait, semtimedop, or recv and accept on a socket with a
 * timeout): make it run the call again, as it would have without us,
 * unless a real signal is there to explain the EINTR. */
static void rewind_stray_eintr(struct attach_thread *th)
{
	unsigned char insn[ARCH_SYSCALL_INSN_LEN];
	int mask_arg, indirect;
	long nr = arch_get_syscall_nr(&th->regs);

	if (nr < 0 || !(arch_syscall_flags(nr, &mask_arg, &indirect) &
			(ARCH_SC_EINTR | ARCH_SC_RESTARTS)))
		return;
	if (arch_get_syscall_ret(&th->regs) != -EINTR)
		return;
	if (attach_mem_read(th->pid, arch_get_ip(&th->regs) - ARCH_SYSCALL_INSN_LEN,
			    insn, sizeof(insn)) != 0 ||
	    !arch_is_syscall_insn(insn, sizeof(insn)) || attach_thread_pending(th, 0))
		return;
	arch_rewind_syscall(&th->regs);
	/* Now, not at release: an injector killed in between must not leave
	 * the EINTR behind. */
	th->regs_dirty = attach_set_regs(th->tid, &th->regs) != 0;
	attach_test_step("stray EINTR rewound");
	PYHOT_TRACE("ptrace", "tid %d: %s would see EINTR: rewound to restart it",
		    (int)th->tid, arch_syscall_name(nr));
}

/* PTRACE_SEIZE then PTRACE_INTERRUPT. Returns 0, 1 when the thread
 * vanished but the process lives, or an error. */
static int seize_and_interrupt(struct attach_thread *th, struct pyhot_err *err)
{
	pid_t pid = th->pid, tid = th->tid;
	char eb[128];
	int e;

	if (ptrace(PTRACE_SEIZE, tid, NULL, NULL) < 0) {
		e = errno;
		if (e == ESRCH) {
			if (attach_pid_alive(pid))
				return 1;
			th->gone = 1;
			return exited_during_attach(th, err);
		}
		if (e == EPERM) {
			char what[64];

			snprintf(what, sizeof(what), "ptrace(PTRACE_SEIZE, %d)", (int)tid);
			return attach_diagnose_eperm(pid, what, err);
		}
		return pyhot_err_set(err, PYHOT_ERR_ATTACH, e, pid, "attach",
				     "ptrace(PTRACE_SEIZE, %d): %s", (int)tid,
				     attach_strerror(e, eb, sizeof(eb)));
	}
	th->seized = 1;
	attach_test_step("seized");
	PYHOT_TRACE("ptrace", "PTRACE_SEIZE tid %d", (int)tid);
	if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) < 0) {
		e = errno;
		/* ESRCH: it died after the seize; nothing is stopped. */
		th->seized = 0;
		if (e == ESRCH && attach_pid_alive(pid))
			return 1;
		if (e == ESRCH)
			return exited_during_attach(th, err);
		return pyhot_err_set(err, PYHOT_ERR_ATTACH, e, pid, "attach",
				     "ptrace(PTRACE_INTERRUPT, %d): %s", (int)tid,
				     attach_strerror(e, eb, sizeof(eb)));
	}
	attach_test_step("interrupted");
	return 0;
}

/* Fail the stop (err is set): release the thread as it is. */
static int give_up_stop(struct attach_thread *th)
{
	th->stopped = 1;
	if (attach_thread_release(th, NULL) != 0)
		PYHOT_TRACE("ptrace", "release of tid %d failed", (int)th->tid);
	return -PYHOT_ERR_ATTACH;
}

/* A stop that is not our interrupt's: a group stop (an error), or a signal
 * that reached the thread first, which is delivered as it would have been
 * (the interrupt stays pending). Returns 0 to wait on, or an error. */
static int other_stop(struct attach_thread *th, int sig, int event, int *signals,
		      struct pyhot_err *err)
{
	pid_t pid = th->pid, tid = th->tid;

	if (event == PTRACE_EVENT_STOP) {
		/* The process is being stopped by someone else (SIGSTOP,
		 * SIGTSTP...). */
		pyhot_err_set(err, PYHOT_ERR_ATTACH, 0, pid, "attach",
			      "pid %d was stopped by signal %d (%s) during attach",
			      (int)pid, sig, strsignal(sig));
		pyhot_err_hint(err, "resume it (kill -CONT %d) and retry", (int)pid);
		return give_up_stop(th);
	}
	PYHOT_TRACE("ptrace", "tid %d: signal %d before the stop, delivered",
		    (int)tid, sig);
	if (++*signals > 64 || ptrace(PTRACE_CONT, tid, NULL, (void *)(long)sig) < 0) {
		pyhot_err_set(err, PYHOT_ERR_ATTACH, errno, pid, "attach",
			      "thread %d of pid %d keeps receiving signals",
			      (int)tid, (int)pid);
		return give_up_stop(th);
	}
	return 0;
}

/* Wait for the stop of our PTRACE_INTERRUPT: until start + wait_ms, then
 * on up to the hard limit (a seized thread that has not stopped cannot be
 * detached). Returns 0 when stopped there, 1 when the thread vanished but
 * the process lives, or an error. */
static int wait_interrupt_stop(struct attach_thread *th, double start,
			       unsigned int wait_ms, struct pyhot_err *err)
{
	double deadline = start + (wait_ms ? wait_ms : 1);
	int status, r, sig, event, signals = 0;

	for (;;) {
		r = attach_wait(th->chld, th->tid, &status, deadline);
		if (r == 0) {
			if (deadline < start + STOP_HARD_LIMIT_MS) {
				PYHOT_TRACE("ptrace", "tid %d slow to stop; waiting on",
					    (int)th->tid);
				deadline = start + STOP_HARD_LIMIT_MS;
				continue;
			}
			return pyhot_err_set(err, PYHOT_ERR_UNCERTAIN, ETIMEDOUT, th->pid,
					     "attach", "thread %d of pid %d did not stop "
					     "within %.0f ms of PTRACE_INTERRUPT",
					     (int)th->tid, (int)th->pid, STOP_HARD_LIMIT_MS);
		}
		if (r < 0 || WIFEXITED(status) || WIFSIGNALED(status)) {
			/* Gone: fine when only the thread is (ECHILD, or its
			 * exit status), not when the process is. */
			th->seized = 0;
			if ((r > 0 || r == -ECHILD) && attach_pid_alive(th->pid))
				return 1;
			return exited_during_attach(th, err);
		}
		if (!WIFSTOPPED(status))
			continue;
		sig = WSTOPSIG(status);
		event = status >> 16;
		if (event == PTRACE_EVENT_STOP && sig == SIGTRAP)
			return 0;       /* our interrupt */
		r = other_stop(th, sig, event, &signals, err);
		if (r < 0)
			return r;
	}
}

/* The registers of the thread just stopped. */
static int read_stopped_regs(struct attach_thread *th, struct pyhot_err *err)
{
	char eb[128];
	int r;

	r = attach_get_regs(th->tid, &th->regs);
	if (r == 0)
		return 0;
	if (r == -ESRCH) {
		th->seized = 0;
		return exited_during_attach(th, err);
	}
	pyhot_err_set(err, PYHOT_ERR_ATTACH, -r, th->pid, "attach",
		      "ptrace(PTRACE_GETREGSET, %d): %s", (int)th->tid,
		      attach_strerror(-r, eb, sizeof(eb)));
	return give_up_stop(th);
}

int attach_thread_stop(struct attach_thread *th, struct attach_chld *chld, pid_t pid,
		       pid_t tid, unsigned int wait_ms, struct pyhot_err *err)
{
	double start = attach_now_ms();
	int r;

	memset(th, 0, sizeof(*th));
	th->pid = pid;
	th->tid = tid;
	th->chld = chld;
	r = seize_and_interrupt(th, err);
	if (r == 0)
		r = wait_interrupt_stop(th, start, wait_ms, err);
	if (r != 0)
		return r;
	clock_gettime(CLOCK_MONOTONIC, &th->t_stop);
	th->stopped = 1;
	attach_test_step("stopped");
	r = read_stopped_regs(th, err);
	if (r < 0)
		return r;
	PYHOT_TRACE("ptrace", "tid %d stopped after %.3f ms: ip 0x%lx syscall %ld ret %ld",
		    (int)tid, attach_now_ms() - start, arch_get_ip(&th->regs),
		    arch_get_syscall_nr(&th->regs), arch_get_syscall_ret(&th->regs));
	rewind_stray_eintr(th);
	return 0;
}

/* Killed while stopped: collect the exit we are told of as its tracer, so
 * that its parent can reap it. */
static void reap_dead_tracee(struct attach_thread *th)
{
	double deadline = attach_now_ms() + 200.0;
	int status;

	while (attach_wait(th->chld, th->tid, &status, deadline) == 1) {
		if (WIFEXITED(status) || WIFSIGNALED(status))
			return;
	}
}

int attach_thread_release(struct attach_thread *th, struct pyhot_err *err)
{
	char eb[128];
	int r, e;

	if (!th->seized || th->gone) {
		th->seized = 0;
		return 0;
	}
	attach_test_step("release");
	if (th->regs_dirty) {
		r = attach_set_regs(th->tid, &th->regs);
		if (r < 0 && r != -ESRCH) {
			pyhot_err_set(err, PYHOT_ERR_UNCERTAIN, -r, th->pid, "attach",
				      "ptrace(PTRACE_SETREGSET, %d): %s", (int)th->tid,
				      attach_strerror(-r, eb, sizeof(eb)));
		}
		th->regs_dirty = 0;
		attach_test_step("registers given back");
	}
	/* Detach with signal 0: the stub's completion signal, or a fault a
	 * call stopped on, is dropped here. */
	if (ptrace(PTRACE_DETACH, th->tid, NULL, NULL) < 0) {
		e = errno;
		th->seized = 0;
		th->stopped = 0;
		if (e == ESRCH && !attach_pid_alive(th->pid)) {
			reap_dead_tracee(th);
			return 0;
		}
		return pyhot_err_set(err, PYHOT_ERR_UNCERTAIN, e, th->pid, "attach",
				     "ptrace(PTRACE_DETACH, %d): %s", (int)th->tid,
				     attach_strerror(e, eb, sizeof(eb)));
	}
	PYHOT_TRACE("ptrace", "PTRACE_DETACH tid %d after %.3f ms stopped", (int)th->tid,
		    attach_thread_stopped_ms(th));
	th->seized = 0;
	th->stopped = 0;
	return 0;
}
