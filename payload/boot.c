/*
 * boot.c: pyhot_boot(), the payload's entry for the injector (contract in
 * pyhot_proto.h; the pyhot package calls it too, through pymodule.c).
 *
 * It runs on a thread the injector borrowed with ptrace, in the middle of
 * whatever that thread was doing: it never runs Python and never takes the
 * GIL; it does a few syscalls and one pthread_create (the only place that
 * may allocate; the injector does not borrow a thread that is inside malloc
 * or the loader). docs/safepoints.md says why, and what a fork() does.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "agent_state.h"
#include "baseline_job.h"
#include "boot.h"
#include "clock.h"
#include "copies.h"
#include "pyhot_patch.h"
#include "pyhot_proto.h"
#include "safepoint.h"
#include "sockfile.h"

/* The agent thread's stack: it runs no Python (handlers that do run on the
 * main thread or a GIL thread). */
#define AGENT_STACK_SIZE (512u << 10)

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static int atfork_rc;

/*
 * In a forked child there is no agent thread: forget the parent's agent so
 * that a later boot in the child starts one for the child's pid. Close the
 * inherited descriptors but never unlink the parent's socket. Remember
 * whether the parent's agent was serving: the child's after-fork hook
 * (fork_child.c) then boots the child's own. Baselines and history are
 * the engine's, in memory the child has a copy of: left as they are.
 */
static void atfork_child(void)
{
	int fd = atomic_exchange(&pyhot_agent.conn_fd, -1);
	pid_t parent = pyhot_agent.pid;

	pyhot_agent.forked_from =
		atomic_load(&pyhot_agent.state) == PYHOT_AGENT_RUNNING &&
		!atomic_load(&pyhot_agent.stop_requested) ? parent : 0;

	if (fd >= 0) {
		close(fd);
	}
	if (pyhot_agent.listen_fd >= 0) {
		close(pyhot_agent.listen_fd);
		pyhot_agent.listen_fd = -1;
	}
	pyhot_agent.pid = 0;
	atomic_store(&pyhot_agent.stop_requested, 0);
	pthread_mutex_init(&pyhot_agent.lock, NULL);
	pyhot_sp_atfork_child();
	pyhot_baseline_atfork_child();
	atomic_store(&pyhot_agent.state, PYHOT_AGENT_IDLE);
}

static void atfork_register(void)
{
	atfork_rc = pthread_atfork(NULL, NULL, atfork_child);
}

/* Find "sock=PATH" in the boot argument. 0 or -errno. */
static int parse_arg(const char *arg, char *sock, size_t size)
{
	const char *line = arg, *end;
	size_t n;

	sock[0] = '\0';
	while (arg && *line) {
		end = strchrnul(line, '\n');
		if (strncmp(line, "sock=", 5) == 0) {
			n = (size_t)(end - line) - 5;
			if (n >= size) {
				return -ENAMETOOLONG;
			}
			memcpy(sock, line + 5, n);
			sock[n] = '\0';
		}
		if (strncmp(line, "history=", 8) == 0) {
			/* plain C: no Python, no GIL; out of range is ignored */
			pyhot_patch_set_history_limit(strtol(line + 8, NULL, 10));
		}
		/* Other keys are from a newer CLI. */
		line = *end ? end + 1 : end;
	}
	return sock[0] == '/' ? 0 : -EINVAL;
}

/*
 * The socket's directory: create it 0700, or accept it only if it is a real
 * directory (not a symlink: opened with O_NOFOLLOW, judged on the
 * descriptor) owned by our euid with no group or other access. Anything
 * else may be another user's trap (docs/trust.md): refuse, each case with
 * its own errno so that the CLI can say which: -ENOTDIR (a symlink or not
 * a directory), -EPERM (another owner), -EACCES (group or other access).
 */
static int sock_dir_prepare(const char *sock)
{
	char dir[sizeof(pyhot_agent.sock)];
	char *slash;
	struct stat st;
	int fd, rc;

	snprintf(dir, sizeof(dir), "%s", sock);
	slash = strrchr(dir, '/');
	if (slash == dir) {
		return -EPERM;   /* "/" is never ours alone */
	}
	*slash = '\0';
	if (mkdir(dir, 0700) == 0) {
		(void)chmod(dir, 0700);   /* whatever the umask took away */
	} else if (errno != EEXIST) {
		return -errno;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		return errno == ELOOP ? -ENOTDIR : -errno;
	}
	rc = fstat(fd, &st) < 0 ? -errno : 0;
	close(fd);
	if (rc < 0) {
		return rc;
	}
	if (!S_ISDIR(st.st_mode)) {
		return -ENOTDIR;
	}
	if (st.st_uid != geteuid()) {
		return -EPERM;
	}
	if (st.st_mode & 077) {
		return -EACCES;
	}
	return 0;
}

/* Bind and listen on path, 0600. Returns the listening fd or -errno. */
static int sock_listen(const char *path, struct stat *bound)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, rc;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		return -errno;
	}
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	if (rc < 0 && errno == EADDRINUSE && pyhot_sock_is_stale(&sa)) {
		unlink(sa.sun_path);
		rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	}
	if (rc < 0 || chmod(path, 0600) < 0 || listen(fd, 16) < 0 ||
	    lstat(path, bound) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

/* Claim the agent slot. 0 when claimed, PYHOT_BOOT_RUNNING, or -errno. */
static int agent_claim(void)
{
	struct timespec ms = { 0, 1000 * 1000 };
	pid_t pid = getpid();
	int st, i;

	for (i = 0;; i++) {
		st = PYHOT_AGENT_IDLE;
		if (atomic_compare_exchange_strong(&pyhot_agent.state, &st,
						   PYHOT_AGENT_RUNNING)) {
			return 0;
		}
		if (pyhot_agent.pid != 0 && pyhot_agent.pid != pid) {
			/* State copied into a child the atfork handler did not
			 * see (a raw clone): the agent is the parent's. (A child
			 * the handler saw has pid 0, as before any boot.) */
			atomic_compare_exchange_strong(&pyhot_agent.state, &st,
						       PYHOT_AGENT_IDLE);
			continue;
		}
		if (st == PYHOT_AGENT_RUNNING) {
			return PYHOT_BOOT_RUNNING;
		}
		/* STOPPING: a detached agent is closing; it takes microseconds. */
		if (i >= 200) {
			return -EBUSY;
		}
		nanosleep(&ms, NULL);
	}
}

/* Close the memfd named by the boot argument's "memfd=FD" line, if that
 * descriptor is still the memfd the injector made (its name says so): the
 * injector leaves that to us, one remote call less with its thread
 * stopped. */
static void close_boot_memfd(const char *arg)
{
	static const char want[] = "/memfd:" PYHOT_MEMFD_NAME;
	const char *p = arg ? strstr(arg, PYHOT_BOOT_MEMFD_KEY) : NULL;
	char path[64], target[sizeof(want) + 16];
	ssize_t n;
	long fd;

	if (!p || (p != arg && p[-1] != '\n')) {
		return;
	}
	fd = strtol(p + strlen(PYHOT_BOOT_MEMFD_KEY), NULL, 10);
	if (fd < 0 || fd > 1 << 30) {
		return;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%ld", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n >= (ssize_t)sizeof(want) - 1 &&
	    memcmp(target, want, sizeof(want) - 1) == 0) {
		close((int)fd);
	}
}

/* forked_from: the parent's pid for a forked child's agent, 0 otherwise. */
static int boot(const char *arg, pid_t forked_from)
{
	char sock[sizeof(pyhot_agent.sock)];
	sigset_t all, old;
	pthread_attr_t attr;
	pthread_t thread;
	struct stat bound;
	int rc, fd;

	close_boot_memfd(arg);
	rc = parse_arg(arg, sock, sizeof(sock));
	if (rc < 0) {
		return rc;
	}
	pthread_once(&atfork_once, atfork_register);
	if (atfork_rc) {
		return -atfork_rc;
	}
	rc = agent_claim();
	if (rc != 0) {
		return rc;
	}
	pyhot_agent.pid = getpid();
	pyhot_agent.forked_from = forked_from;

	rc = sock_dir_prepare(sock);
	if (rc < 0) {
		goto out_release;
	}
	fd = sock_listen(sock, &bound);
	if (fd < 0) {
		rc = fd;
		goto out_release;
	}
	pyhot_agent.listen_fd = fd;
	snprintf(pyhot_agent.sock, sizeof(pyhot_agent.sock), "%s", sock);
	pyhot_agent.sock_dev = bound.st_dev;
	pyhot_agent.sock_ino = bound.st_ino;
	pyhot_agent.started = pyhot_now();
	pyhot_agent_counters_reset();

	/* The agent thread takes none of the host's signals (SIGINT must still
	 * reach Python's main thread): it is born with every signal blocked. */
	sigfillset(&all);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, AGENT_STACK_SIZE);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = -pthread_create(&thread, &attr, pyhot_agent_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (rc < 0) {
		goto out_unbind;
	}
	return PYHOT_BOOT_STARTED;

out_unbind:
	close(pyhot_agent.listen_fd);
	pyhot_agent.listen_fd = -1;
	unlink(sock);
out_release:
	atomic_store(&pyhot_agent.state, PYHOT_AGENT_IDLE);
	return rc;
}

int pyhot_boot_forked_wanted(void)
{
	return pyhot_agent.forked_from != 0 &&
	       atomic_load(&pyhot_agent.state) == PYHOT_AGENT_IDLE;
}

int pyhot_boot_forked(void)
{
	char arg[16 + sizeof(pyhot_agent.sock)], dir[64];
	int n;

	snprintf(dir, sizeof(dir), PYHOT_SOCK_DIR_FMT, (unsigned int)geteuid());
	n = snprintf(arg, sizeof(arg), "sock=%s/" PYHOT_SOCK_NAME_FMT, dir,
		     (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(arg)) {
		return -ENAMETOOLONG;
	}
	/* The history limit is the parent's, already in the engine. */
	return boot(arg, pyhot_agent.forked_from);
}

/* An attach, or the package's start_agent(): a baseline of its own. */
static int boot_attach(const char *arg)
{
	return boot(arg, 0);
}

int pyhot_boot(const char *arg)
{
	int saved_errno = errno;
	/* Another copy of the payload loaded first (the pyhot package's
	 * extension) holds the process's agent: boot that one. */
	ptrdiff_t delta = pyhot_copies_first_delta();
	int rc = delta ? PYHOT_COPIES_AT(boot_attach, delta)(arg) : boot_attach(arg);

	errno = saved_errno;
	return rc;
}
