/*
 * watchdog.c: a stopped injector must not hold the borrowed thread.
 *
 * While a thread is borrowed it waits in a ptrace stop whenever the
 * injector is not running it, and the end of each call stops it again. A
 * pyhot stopped by SIGSTOP (which no process can block; the terminal's
 * SIGTSTP, SIGTTIN and SIGTTOU are blocked for the attach) would hold it
 * until someone continued it. So for the length of an attach a small child
 * process watches the injector: when it sees it stopped (state T in
 * /proc/PID/stat; not t, a debugger's stop), it continues it with SIGCONT,
 * the attach finishes and the thread is given back within about a
 * millisecond; the injector then stops itself again
 * (attach_watchdog_stop()), so that whoever stopped it finds it stopped.
 *
 * The child is made with clone(CLONE_VM): a process of its own (a group
 * stop of pyhot does not stop it) that shares pyhot's memory. A fork()
 * made every page pyhot wrote afterwards a copy-on-write fault and cost
 * the borrowed thread about 1 ms of stop (measured). Sharing the memory,
 * and pyhot's thread pointer, the child calls nothing of libc: raw system
 * calls only (arch_raw_syscall(): no errno, no TLS), its own stack, no
 * allocation, no sanitizer. It leaves the process group (a SIGSTOP to the group must not
 * stop it too), keeps the terminal's signals blocked (the mask is
 * inherited) and dies with pyhot (PR_SET_PDEATHSIG).
 */
#include "attach_int.h"
#include "arch.h"
#include "pyhot_log.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The child runs on pyhot's thread pointer: keep sanitizers out of it. */
#define NO_SANITIZE __attribute__((no_sanitize("address", "undefined")))

/* How often the child looks: the longest a stop holds the thread. */
#define WATCH_PERIOD_NS 250000L
#define WATCH_STACK_SIZE (64u * 1024u)

struct attach_watchdog_shared {
	atomic_int quit;        /* parent -> child: done */
	atomic_int continued;   /* child -> parent: it sent SIGCONT */
	pid_t parent;
	char stat_path[32];     /* /proc/PARENT/stat, written by the parent */
};

static struct attach_watchdog_shared shared;
/* The last child, killed and not reaped yet (attach_watchdog_stop()). */
static pid_t unreaped = -1;
static unsigned char watch_stack[WATCH_STACK_SIZE] __attribute__((aligned(16)));

/* The parent's state letter, or 0 when it cannot be read: what follows the
 * last ')' of /proc/PID/stat (the command name may hold any byte). No libc
 * here, not even strrchr: sanitizer interceptors keep per-thread state. */
NO_SANITIZE static char parent_state(long fd)
{
	char buf[512];
	long n = arch_raw_syscall(SYS_pread64, fd, (long)buf, sizeof(buf) - 1, 0);
	long i, close_paren = -1;

	for (i = 0; i < n; i++) {
		if (buf[i] == ')')
			close_paren = i;
	}
	if (close_paren < 0 || close_paren + 2 >= n || buf[close_paren + 1] != ' ')
		return 0;
	return buf[close_paren + 2];
}

NO_SANITIZE static int watch(void *arg)
{
	struct attach_watchdog_shared *sh = arg;
	struct timespec period = { 0, WATCH_PERIOD_NS };
	long fd;

	(void)arch_raw_syscall(SYS_setpgid, 0, 0, 0, 0);
	(void)arch_raw_syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0);
	fd = arch_raw_syscall(SYS_openat, AT_FDCWD, (long)sh->stat_path,
			      O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	while (!atomic_load(&sh->quit) &&
	       arch_raw_syscall(SYS_getppid, 0, 0, 0, 0) == sh->parent) {
		if (parent_state(fd) == 'T') {
			atomic_store(&sh->continued, 1);
			(void)arch_raw_syscall(SYS_kill, sh->parent, SIGCONT, 0, 0);
		}
		(void)arch_raw_syscall(SYS_nanosleep, (long)&period, 0, 0, 0);
	}
	(void)arch_raw_syscall(SYS_close, fd, 0, 0, 0);
	return 0;
}

int attach_watchdog_start(struct attach_watchdog *wd)
{
	int n;

	wd->pid = -1;
	/* The last one is dead (SIGKILL needs no run of user code): reap it
	 * before its stack and block serve another. */
	if (unreaped > 0) {
		int status;

		while (waitpid(unreaped, &status, 0) < 0 && errno == EINTR)
			;
		unreaped = -1;
	}
	atomic_store(&shared.quit, 0);
	atomic_store(&shared.continued, 0);
	shared.parent = getpid();
	n = snprintf(shared.stat_path, sizeof(shared.stat_path), "/proc/%d/stat",
		     (int)shared.parent);
	if (n < 0 || (size_t)n >= sizeof(shared.stat_path))
		return -ENAMETOOLONG;
	/* The child returns from watch() into clone()'s own exit call. */
	wd->pid = clone(watch, watch_stack + sizeof(watch_stack), CLONE_VM | SIGCHLD,
			&shared);
	if (wd->pid < 0) {
		wd->pid = -1;
		return -errno;
	}
	return 0;
}

int attach_watchdog_stop(struct attach_watchdog *wd)
{
	int continued = 0, status;

	if (wd->pid > 0) {
		/* Killed, not asked, and not waited for: asking waited for its
		 * next look (0.25 ms), and waiting for its exit for a CPU to run
		 * it on, 1 to 3 ms while the busy target and its new agent take
		 * both CPUs. Once SIGKILL is sent it runs no more of its code,
		 * so nothing of ours is touched after this; the next start (or
		 * our exit) reaps it. */
		atomic_store(&shared.quit, 1);
		(void)kill(wd->pid, SIGKILL);
		if (waitpid(wd->pid, &status, WNOHANG) != wd->pid)
			unreaped = wd->pid;
		wd->pid = -1;
	}
	/* Cleared by the start: only this attach's child sets it. */
	continued = atomic_exchange(&shared.continued, 0);
	if (continued) {
		PYHOT_TRACE("ptrace", "stopped during the attach: the watchdog continued us "
			    "until the thread was given back; stopping again");
		raise(SIGSTOP);
	}
	return continued;
}
