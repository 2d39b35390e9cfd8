/*
 * attach_thread.h: private to attach/. Stop one thread of a process with
 * PTRACE_SEIZE + PTRACE_INTERRUPT, and let it go again exactly as it was.
 * Every other thread keeps running.
 */
#ifndef PYHOT_ATTACH_THREAD_H
#define PYHOT_ATTACH_THREAD_H

#include <signal.h>
#include <time.h>
#include <sys/types.h>

#include "arch.h"
#include "pyhot_err.h"

/*
 * The window in which a thread of the target is ours: SIGCHLD (so that
 * attach_wait() can sleep on it) and what a terminal sends (SIGINT,
 * SIGTERM, SIGHUP, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU: a borrowed thread
 * should not wait on a stopped injector) blocked in the calling thread. One per attach_chld_block() /
 * attach_chld_restore() pair, on the caller's stack.
 */
struct attach_chld {
	sigset_t old;             /* the mask to put back */
	int foreign;              /* a SIGCHLD about another child was taken */
};

struct attach_thread {
	pid_t pid, tid;
	struct attach_chld *chld; /* the window the thread is stopped in */
	int seized;               /* we are its tracer */
	int stopped;              /* in a ptrace stop we can act on */
	int gone;                 /* exited (or the process did) while seized */
	arch_regs_t regs;         /* registers to give back on release */
	int regs_dirty;           /* regs differ from the thread's: write them */
	struct timespec t_stop;   /* when the stop was reported */
};

/* Now, in milliseconds of CLOCK_MONOTONIC. */
double attach_now_ms(void);

/*
 * Seize tid, inside the window chld (attach_chld_block() done), and wait (at most wait_ms, then as long as it takes the thread
 * to reach the stop, bounded by a hard limit) for its PTRACE_EVENT_STOP.
 * Reads its registers; a system call that would return a stray -EINTR
 * because of the stop is rewound to run again (th->regs_dirty).
 * Returns 0 when stopped, 1 when the thread vanished but the process lives
 * (nothing to undo), or a negative error with err filled and the thread
 * released: ptrace refused (with a diagnosis), the process exited ("pid N
 * exited during attach") or was stopped by a signal.
 */
int attach_thread_stop(struct attach_thread *th, struct attach_chld *chld, pid_t pid,
		       pid_t tid, unsigned int wait_ms, struct pyhot_err *err) PYHOT_MUST_CHECK;

/* Write back th->regs when dirty and PTRACE_DETACH: the thread goes on
 * untraced. Harmless on a thread that is gone or was never seized. */
int attach_thread_release(struct attach_thread *th, struct pyhot_err *err) PYHOT_MUST_CHECK;

/* A signal the thread would take now is pending (caught_only: one with a
 * handler), from /proc; 1 when that cannot be read. */
int attach_thread_pending(const struct attach_thread *th, int caught_only);

/* Milliseconds since the stop was reported. */
double attach_thread_stopped_ms(const struct attach_thread *th);

/* The process still exists (and is not a zombie). */
int attach_pid_alive(pid_t pid);

/*
 * waitpid(tid, __WALL) bounded by deadline_ms (attach_now_ms() clock). A
 * ptrace stop cannot be waited for with a timeout: this sleeps in
 * sigtimedwait(SIGCHLD), inside the window chld. A SIGCHLD about another
 * child is noted in chld->foreign. Returns 1 with *status, 0 on timeout,
 * -errno.
 */
int attach_wait(struct attach_chld *chld, pid_t tid, int *status,
		double deadline_ms) PYHOT_MUST_CHECK;

/*
 * Open the window chld (see struct attach_chld). attach_chld_restore()
 * closes it: puts the old mask back and re-raises a SIGCHLD we took that
 * was not about our tracee.
 */
int attach_chld_block(struct attach_chld *chld) PYHOT_MUST_CHECK;
void attach_chld_restore(struct attach_chld *chld);

/* Fill err with why what ("ptrace(PTRACE_SEIZE, 12)", "read('/proc/12/maps')")
 * failed with EPERM or EACCES: TracerPid, uid without CAP_SYS_PTRACE, yama
 * ptrace_scope, our own seccomp filter. Returns -PYHOT_ERR_ATTACH. */
int attach_diagnose_eperm(pid_t pid, const char *what, struct pyhot_err *err);

/* Registers of a stopped thread (PTRACE_GETREGSET NT_PRSTATUS). */
int attach_get_regs(pid_t tid, arch_regs_t *r) PYHOT_MUST_CHECK;
int attach_set_regs(pid_t tid, const arch_regs_t *r) PYHOT_MUST_CHECK;

/*
 * Fault injection for the tests, compiled only into a test build
 * (-DPYHOT_TEST_HOOKS; build/pyhot never has it). PYHOT_TEST_HOOK in the
 * environment names one:
 *   kill-after-seize   SIGKILL the target once the borrowed thread stopped
 *   kill-self-at=N     SIGKILL the injector at its Nth step (a ptrace
 *                      request or a stop it waited for, counted from 1)
 *   stop-self-at=N     SIGSTOP it there instead
 *   int-self-at=N      SIGINT to the whole process there (a Ctrl-C)
 *   count-steps        say on exit how many steps there were
 *   stop-before-payload-open  SIGSTOP the injector just before it opens
 *                      the payload (a test swaps the file meanwhile)
 *   hold-inject-ms=N   each injection holds the injection lock N ms more
 *                      before it starts (a slow target), so that the
 *                      attaches of a several-process command queue
 * attach_test_step() marks a step; attach_test_hook() says whether a named
 * hook is on; attach_test_hold() sleeps as hold-inject-ms says.
 */
#ifdef PYHOT_TEST_HOOKS
void attach_test_step(const char *what);
int attach_test_hook(const char *name);
void attach_test_hold(void);
#else
static inline void attach_test_hold(void)
{
}

static inline void attach_test_step(const char *what)
{
	(void)what;
}

static inline int attach_test_hook(const char *name)
{
	(void)name;
	return 0;
}
#endif

#endif /* PYHOT_ATTACH_THREAD_H */
