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
 * The child leaves the process group (a SIGSTOP to the group must not stop
 * it too), keeps the terminal's signals blocked (the mask is inherited) and
 * dies with its parent (PR_SET_PDEATHSIG).
 */
#include "attach_int.h"
#include "pyhot_log.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* How often the child looks: the longest a stop holds the thread. */
#define WATCH_PERIOD_NS 250000L

struct attach_watchdog_shared {
	atomic_int quit;        /* parent -> child: done */
	atomic_int continued;   /* child -> parent: it sent SIGCONT */
};

/* The parent's state letter, or 0 when it cannot be read. */
static char parent_state(int fd)
{
	char buf[512];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return attach_parse_stat_state(buf);
}

static void watch(pid_t parent, struct attach_watchdog_shared *sh)
{
	struct timespec period = { 0, WATCH_PERIOD_NS };
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)parent);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	while (!atomic_load(&sh->quit) && getppid() == parent) {
		if (parent_state(fd) == 'T') {
			atomic_store(&sh->continued, 1);
			kill(parent, SIGCONT);
		}
		nanosleep(&period, NULL);
	}
	close(fd);
}

int attach_watchdog_start(struct attach_watchdog *wd)
{
	pid_t parent = getpid(), pid;

	wd->pid = -1;
	wd->sh = mmap(NULL, sizeof(*wd->sh), PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (wd->sh == MAP_FAILED) {
		wd->sh = NULL;
		return -errno;
	}
	atomic_store(&wd->sh->quit, 0);
	atomic_store(&wd->sh->continued, 0);
	pid = fork();
	if (pid < 0) {
		int e = errno;

		munmap(wd->sh, sizeof(*wd->sh));
		wd->sh = NULL;
		return -e;
	}
	if (pid == 0) {
		(void)setpgid(0, 0);
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() == parent)
			watch(parent, wd->sh);
		_exit(0);
	}
	wd->pid = pid;
	return 0;
}

int attach_watchdog_stop(struct attach_watchdog *wd)
{
	int continued = 0, status;

	if (wd->pid > 0) {
		atomic_store(&wd->sh->quit, 1);
		while (waitpid(wd->pid, &status, 0) < 0 && errno == EINTR)
			;
		wd->pid = -1;
	}
	if (wd->sh) {
		continued = atomic_load(&wd->sh->continued);
		munmap(wd->sh, sizeof(*wd->sh));
		wd->sh = NULL;
	}
	if (continued) {
		PYHOT_TRACE("ptrace", "stopped during the attach: the watchdog continued us "
			    "until the thread was given back; stopping again");
		raise(SIGSTOP);
	}
	return continued;
}
