/*
 * libstopagent.c: an LD_PRELOAD for the pyhot command (not for a victim),
 * to test what it does when the agent it just started never answers.
 * The first connect() that reaches a socket named "agent-PID.sock", PID
 * being PYHOT_TEST_STOP_PID, stops that process (SIGSTOP) as soon as the
 * connection is made: the request is queued in the kernel and no answer
 * ever comes. Before the injection no such socket exists (the connect
 * fails and nothing happens); the connect after it is the command's wait
 * for its new agent. The test continues the process afterwards.
 */
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

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
			done = 1;
			kill((pid_t)atoi(v), SIGSTOP);
		}
	}
	return r;
}
