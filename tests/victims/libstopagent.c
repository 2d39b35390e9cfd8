/*
 * libstopagent.c: an LD_PRELOAD for the pyhot command (not for a victim),
 * to test what it does when the agent it just started never answers.
 * The first connect() that reaches a socket named "agent-PID.sock", PID
 * being PYHOT_TEST_STOP_PID, stops that process (SIGSTOP) as soon as the
 * connection is made: the request is queued in the kernel and no answer
 * ever comes. Before the injection no such socket exists (the connect
 * fails and nothing happens); the connect after it is the command's wait
 * for its new agent. A stop takes effect asynchronously: connect() returns
 * only once every thread of the process shows as stopped in /proc (the
 * agent thread could otherwise read the request first). The test
 * continues the process afterwards.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

/* Is every thread of pid in a stop (state T or t)? */
static int all_stopped(const char *pid)
{
	char path[512], buf[512], *p;
	struct dirent *d;
	DIR *dir;
	FILE *f;
	int ok = 1;

	snprintf(path, sizeof(path), "/proc/%s/task", pid);
	dir = opendir(path);
	if (!dir)
		return 1;   /* gone: nothing will answer */
	while (ok && (d = readdir(dir)) != NULL) {
		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/task/%s/stat", pid, d->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) && p[1] && p[2])
			ok = p[2] == 'T' || p[2] == 't';
		fclose(f);
	}
	closedir(dir);
	return ok;
}

__attribute__((visibility("default"))) int connect(int fd, const struct sockaddr *sa,
						   socklen_t len);

int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	static int (*real)(int, const struct sockaddr *, socklen_t);
	static int done;
	const char *v = getenv("PYHOT_TEST_STOP_PID");
	char want[64];
	int r;

	if (!real)
		real = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT,
									   "connect");
	r = real(fd, sa, len);
	if (r == 0 && v && !done && sa && sa->sa_family == AF_UNIX) {
		const struct sockaddr_un *un = (const struct sockaddr_un *)sa;

		snprintf(want, sizeof(want), "/agent-%s.sock", v);
		if (strstr(un->sun_path, want)) {
			struct timespec nap = { 0, 1000000 };
			int i;

			done = 1;
			kill((pid_t)atoi(v), SIGSTOP);
			for (i = 0; i < 5000 && !all_stopped(v); i++)
				nanosleep(&nap, NULL);
		}
	}
	return r;
}
