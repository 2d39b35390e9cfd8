/* sockfile.c: stale agent socket files (see sockfile.h). */
#include "sockfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pyhot_proto.h"

int pyhot_sock_is_stale(const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, stale;

	if (lstat(sa->sun_path, &st) < 0) {
		return errno == ENOENT;
	}
	if (!S_ISSOCK(st.st_mode) || st.st_uid != geteuid()) {
		return 0;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		return 0;
	}
	stale = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 &&
		errno == ECONNREFUSED;
	close(fd);
	return stale;
}

/* No process pid, or a zombie (it ended; its parent has not reaped it). */
static int pid_gone(int pid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	if (kill(pid, 0) < 0) {
		return errno == ESRCH;
	}
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		return 0;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0) {
		return 0;
	}
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p && (p[1] == ' ') && (p[2] == 'Z' || p[2] == 'X');
}

int pyhot_sock_sweep_dead(const char *own)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[sizeof(sa.sun_path)], tail[8];
	const char *slash = strrchr(own, '/');
	struct dirent *de;
	int pid, n = 0;
	DIR *d;

	if (!slash || slash == own || (size_t)(slash - own) >= sizeof(dir)) {
		return 0;
	}
	memcpy(dir, own, (size_t)(slash - own));
	dir[slash - own] = '\0';
	d = opendir(dir);
	if (!d) {
		return 0;
	}
	while ((de = readdir(d))) {
		/* exactly PYHOT_SOCK_NAME_FMT: "agent-%d.sock" */
		if (sscanf(de->d_name, "agent-%d%7s", &pid, tail) != 2 ||
		    strcmp(tail, ".sock") != 0 || pid <= 0 || pid == getpid()) {
			continue;
		}
		if (!pid_gone(pid)) {
			continue;
		}
		if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%.*s/%.*s",
				     (int)(sizeof(dir) - 1), dir, 32, de->d_name) >=
		    sizeof(sa.sun_path)) {
			continue;
		}
		if (strcmp(sa.sun_path, own) != 0 && pyhot_sock_is_stale(&sa) &&
		    unlink(sa.sun_path) == 0) {
			n++;
		}
	}
	closedir(d);
	return n;
}
