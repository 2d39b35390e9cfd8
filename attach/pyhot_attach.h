/*
 * pyhot_attach.h: look at a live process and load the pyhot payload into it.
 *
 * The attach library borrows ONE thread of the target for well under a
 * millisecond: PTRACE_SEIZE + PTRACE_INTERRUPT, a check (libunwind-ptrace)
 * that the thread is not inside the loader, the malloc family, dl* or thread
 * creation, then remote calls of the target's own libc: memfd_create(),
 * dlopen("/proc/self/fd/N"), dlsym(), the payload's boot function, close().
 * General registers, XSTATE, the signal mask and the interrupted syscall
 * (orig_rax) are saved before and restored after; signals are blocked for the
 * calls. Other threads are never stopped.
 *
 * The library never prints and never exits; it reports through struct
 * pyhot_err (pyhot_err.h) and traces through PYHOT_TRACE (pyhot_log.h).
 */
#ifndef PYHOT_ATTACH_H
#define PYHOT_ATTACH_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

#include "pyhot_err.h"

/* What /proc and the target's ELF files say about a process. */
struct pyhot_target {
	pid_t pid;
	pid_t nspid;            /* the pid as the target sees itself (NSpid) */
	uid_t uid;              /* real uid of the target */
	uid_t euid;             /* its effective uid (whose agent socket path) */
	pid_t tgid;             /* its thread group: pid unless pid is a thread */
	char state;             /* 'R', 'S', 'D', 'T', 't', 'Z', ... */
	pid_t tracer;           /* TracerPid, 0 when not traced */
	int py_major;           /* 3 for CPython 3.x; 0 when not Python */
	int py_minor;           /* -1 when Python but the minor is unknown */
	int py_static;          /* libpython linked into the executable */
	int opted_out;          /* PYTHON_DISABLE_REMOTE_DEBUG / -X disable_remote_debug */
	unsigned long payload_base;  /* load address of a mapped payload, or 0 */
	char exe[PATH_MAX];     /* /proc/PID/exe target, as the target sees it */
	char libpython[PATH_MAX];    /* mapped libpython path, "" when static */
	char comm[64];          /* /proc/PID/comm */
	int light;              /* pyhot_target_inspect_light(): no exe, maps,
				 * Python or payload fields */
};

/*
 * Read /proc/PID/{status,exe,maps,environ,cmdline} and the ELF files they
 * name. Does not stop or trace the target. Fails with PYHOT_ERR_ATTACH and a
 * hint when the pid does not exist or /proc cannot be read; a zombie, a
 * stopped or traced process, or a non-Python one is NOT an error here: the
 * fields say so, and pyhot_target_check() judges.
 */
int pyhot_target_inspect(pid_t pid, struct pyhot_target *t,
			 struct pyhot_err *err) PYHOT_MUST_CHECK;

/*
 * The light part of it: /proc/PID/status (pid, state, tracer, uid, nspid,
 * comm) and whether it opted out (environ, cmdline); not the executable and
 * its maps (py_major 0: not looked at), the costly part. For a command
 * that will talk to the process's agent and needs no more unless none
 * answers.
 */
int pyhot_target_inspect_light(pid_t pid, struct pyhot_target *t,
			       struct pyhot_err *err) PYHOT_MUST_CHECK;

/*
 * Refuse, with a message and a hint, a target that pyhot must not attach to:
 * a zombie, a stopped process, one traced by another tracer (names its pid
 * and comm), not CPython, CPython older than 3.8, or opted out of remote
 * debugging. Returns 0 or -PYHOT_ERR_ATTACH. For a light inspection the
 * interpreter is not judged (unknown): the rest is.
 */
int pyhot_target_check(const struct pyhot_target *t,
		       struct pyhot_err *err) PYHOT_MUST_CHECK;

/* Whether pid has exited: no such process, or a zombie (its exit status
 * not reaped yet). Reads /proc/PID/stat only. */
int pyhot_target_exited(pid_t pid);

struct pyhot_inject_opts {
	const char *payload_path;  /* payload .so on the caller's side */
	const char *boot_symbol;   /* exported boot function ("pyhot_boot") */
	const char *boot_arg;      /* string passed to the boot function */
	unsigned int timeout_ms;   /* bound on finding a thread that is safe to
				      borrow; 0 means 2000 */
	pid_t tid;                 /* borrow this thread only (tests, or a user
				      who knows the process); 0: choose */
	const char *build_id;      /* the payload's GNU build id, lower-case hex,
				      as the caller knows it, or NULL: the file
				      read through the injector's one descriptor
				      must carry it (a file swapped after the
				      caller's own check is refused) */
};

struct pyhot_inject_result {
	pid_t tid;                 /* the borrowed thread */
	int reused;                /* the payload was already mapped: only the
				      boot function was called */
	long boot_ret;             /* what the boot function returned */
	unsigned int attempts;     /* threads stopped, the borrowed one included
				      (1: the first was at a safe point; 0:
				      none could be stopped) */
	double stopped_ms;         /* longest time one thread was stopped */
	double lock_wait_ms;       /* waited for another thread's injection
				      (one at a time per process) */
};

/*
 * Load the payload into pid (unless it is mapped already) and call
 * boot_symbol(boot_arg) on a borrowed thread. Blocks the caller's
 * SIGINT/SIGTERM/SIGHUP for the hijack window. On any failure the thread is
 * restored and detached: a failed injection leaves the target running,
 * untraced and unmodified, except when the error kind is
 * PYHOT_ERR_UNCERTAIN (the remote call faulted or the target died mid-call).
 * Errors: PYHOT_ERR_ATTACH (ptrace refused, with a diagnosis: TracerPid,
 * uid, ptrace_scope, seccomp; payload unreadable; no libc symbols),
 * PYHOT_ERR_TIMEOUT (no safe thread within timeout_ms; the message says
 * where the threads were), PYHOT_ERR_UNCERTAIN. A target that exits during
 * the attempt gives PYHOT_ERR_ATTACH "attach: pid N exited during attach".
 *
 * Threads are tried in this order: parked in a system call the kernel
 * restarts (futex, nanosleep, read, poll...), running user code, parked in
 * a call a ptrace stop turns into EINTR (epoll_wait: rewound so that it
 * runs again), anything else. Never interrupted: threads in uninterruptible
 * sleep, and threads in ppoll/pselect6/epoll_pwait/rt_sigsuspend with a
 * temporary signal mask. The payload's boot function runs with every
 * asynchronous signal blocked; the thread's errno is preserved.
 *
 * Test hook: with PYHOT_TEST_HOOK=kill-after-seize in the environment the
 * target is SIGKILLed right after the borrowed thread stops (tests only).
 */
int pyhot_inject(pid_t pid, const struct pyhot_inject_opts *opts,
		 struct pyhot_inject_result *res,
		 struct pyhot_err *err) PYHOT_MUST_CHECK;

/*
 * Wait until an injection under way in another thread of this process has
 * given its thread back, and keep any other from starting; never undone.
 * For a command with several threads that is about to die of a signal the
 * injecting thread holds (Ctrl-C, SIGTERM): it dies after the target's
 * thread is whole again (cli/multi.c).
 */
void pyhot_inject_quiesce(void);

/*
 * Write the native stack of thread tid of pid into buf, one frame a line
 * ("#0  0x7f12... in PyDict_GetItem+0x12 (/usr/lib/libpython3.11.so)").
 * Stops that one thread for the unwind and resumes it. Used to say where a
 * thread is stuck when no safe point can be reached. buf is always
 * NUL-terminated.
 */
int pyhot_native_stack(pid_t pid, pid_t tid, char *buf, size_t len,
		       struct pyhot_err *err) PYHOT_MUST_CHECK;

#endif /* PYHOT_ATTACH_H */
