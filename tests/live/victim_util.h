/*
 * victim_util.h: start, talk to and always reap the victims of the live
 * tests. A victim is a child with a pipe on its stdin (we write "q" to
 * make it verify and exit) and one on its stdout (it says "ready ..." and,
 * at the end, "ok ..." or "fail: ..."). victim_stop() bounds everything: a
 * victim that does not finish in time is SIGKILLed and reaped, and a
 * stopped one is continued first, so nothing is left behind.
 */
#ifndef PYHOT_VICTIM_UTIL_H
#define PYHOT_VICTIM_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct victim {
	pid_t pid;
	int in_fd;                /* its stdin */
	int out_fd;               /* its stdout */
	char ready[512];          /* the "ready ..." line */
	int reaped;
	int status;
};

static inline const char *victims_dir(void)
{
	const char *d = getenv("PYHOT_VICTIMS");

	return d && *d ? d : "build/tests/victims";
}

static inline void victim_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", victims_dir(), name);
}

static inline double vu_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Read one line from fd within timeout_ms. Returns its length, or -1. */
static inline int vu_read_line(int fd, char *buf, size_t len, int timeout_ms)
{
	double deadline = vu_now_ms() + timeout_ms;
	size_t n = 0;

	while (n + 1 < len) {
		struct pollfd p = { fd, POLLIN, 0 };
		int left = (int)(deadline - vu_now_ms());
		ssize_t r;

		if (left <= 0 || poll(&p, 1, left) <= 0)
			return -1;
		r = read(fd, buf + n, 1);
		if (r <= 0)
			return -1;
		if (buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = '\0';
	return (int)n;
}

/* Start argv (argv[0] a path) with env extra (or NULL, "K=V"); wait for a
 * line starting with "ready". Returns 0, or -1 (the child is reaped). */
static inline int victim_start_argv(struct victim *v, char *const argv[],
				    const char *extra_env)
{
	int in[2], out[2];
	char line[512];

	memset(v, 0, sizeof(*v));
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
		return -1;
	v->pid = fork();
	if (v->pid < 0)
		return -1;
	if (v->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		if (extra_env)
			putenv((char *)(uintptr_t)extra_env);
		execv(argv[0], argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	v->in_fd = in[1];
	v->out_fd = out[0];
	for (;;) {
		if (vu_read_line(v->out_fd, line, sizeof(line), 10000) < 0) {
			kill(v->pid, SIGKILL);
			waitpid(v->pid, &v->status, 0);
			v->reaped = 1;
			close(v->in_fd);
			close(v->out_fd);
			return -1;
		}
		if (strncmp(line, "ready", 5) == 0)
			break;
	}
	snprintf(v->ready, sizeof(v->ready), "%s", line);
	return 0;
}

static inline int victim_start(struct victim *v, const char *mode)
{
	char path[512];
	char *argv[3];

	victim_path(path, sizeof(path), "victim");
	argv[0] = path;
	argv[1] = (char *)(uintptr_t)mode;
	argv[2] = NULL;
	return victim_start_argv(v, argv, NULL);
}

/* The tid the ready line gives for name ("futex=1234"), or 0. */
static inline pid_t victim_tid(const struct victim *v, const char *name)
{
	char key[64];
	const char *p;

	snprintf(key, sizeof(key), " %s=", name);
	p = strstr(v->ready, key);
	return p ? (pid_t)atoi(p + strlen(key)) : 0;
}

/* The process exists and is not a zombie. */
static inline int victim_alive(const struct victim *v)
{
	char path[64], buf[512];
	FILE *f;
	int alive = 0;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)v->pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(buf, sizeof(buf), f)) {
		if (strncmp(buf, "State:", 6) == 0) {
			alive = !strchr(buf, 'Z') && !strchr(buf, 'X');
			break;
		}
	}
	fclose(f);
	return alive;
}

/* TracerPid of the victim: 0 once every tracer let go. */
static inline int victim_tracer(const struct victim *v)
{
	char path[64], buf[512];
	FILE *f;
	int t = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)v->pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(buf, sizeof(buf), f)) {
		if (strncmp(buf, "TracerPid:", 10) == 0) {
			t = atoi(buf + 10);
			break;
		}
	}
	fclose(f);
	return t;
}

/* Reap within timeout_ms, killing it if need be. Someone else (the
 * injector, as its tracer) may have reaped it already: ECHILD. */
static inline void victim_reap(struct victim *v, int timeout_ms)
{
	double deadline = vu_now_ms() + timeout_ms;
	pid_t r;

	while (!v->reaped) {
		r = waitpid(v->pid, &v->status, WNOHANG);
		if (r == v->pid || (r < 0 && errno == ECHILD)) {
			v->reaped = 1;
			break;
		}
		if (vu_now_ms() > deadline) {
			kill(v->pid, SIGCONT);
			kill(v->pid, SIGKILL);
			deadline = vu_now_ms() + 5000;
		}
		usleep(1000);
	}
}

/* Tell it to verify and exit; returns its last line ("ok ..." or
 * "fail: ...") in buf, "" when none. Always reaps. */
static inline void victim_finish(struct victim *v, char *buf, size_t len)
{
	char line[1200];

	buf[0] = '\0';
	if (write(v->in_fd, "q\n", 2) != 2)
		buf[0] = '\0';
	while (vu_read_line(v->out_fd, line, sizeof(line), 10000) >= 0) {
		if (strncmp(line, "ok", 2) == 0 || strncmp(line, "fail", 4) == 0) {
			size_t n = strnlen(line, len - 1);

			/* A copy, truncated to the caller's buffer. */
			memcpy(buf, line, n);
			buf[n] = '\0';
			break;
		}
	}
	victim_reap(v, 10000);
	close(v->in_fd);
	close(v->out_fd);
}

/* Kill and reap, for error paths and victims that cannot finish. */
static inline void victim_kill(struct victim *v)
{
	if (!v->reaped) {
		kill(v->pid, SIGCONT);
		kill(v->pid, SIGKILL);
		victim_reap(v, 5000);
	}
	close(v->in_fd);
	close(v->out_fd);
}

#endif /* PYHOT_VICTIM_UTIL_H */
