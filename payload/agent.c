/* agent.c: the agent thread, which serves one request per connection (see
 * agent.h and pyhot_proto.h). */
#include "agent.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent_state.h"
#include "baseline_job.h"
#include "clock.h"
#include "jsonw.h"
#include "pyhot_err.h"
#include "pyhot_proto.h"
#include "request.h"
#include "safepoint.h"
#include "verbs.h"

/* Bound on reading a request and writing a response, so that a client that
 * stalls cannot keep the agent from serving others. */
#define AGENT_IO_TIMEOUT_S 10.0

/* Stop listening and remove the socket file, if it is still the one we
 * bound (never someone else's). */
static void agent_unbind(void)
{
	struct stat st;

	if (pyhot_agent.listen_fd >= 0) {
		close(pyhot_agent.listen_fd);
		pyhot_agent.listen_fd = -1;
	}
	if (lstat(pyhot_agent.sock, &st) == 0 && S_ISSOCK(st.st_mode) &&
	    st.st_dev == pyhot_agent.sock_dev && st.st_ino == pyhot_agent.sock_ino) {
		unlink(pyhot_agent.sock);
	}
}

/* Wait for fd to be ready for events, until deadline. 1 ready, 0 timed out
 * or the peer hung up, -1 error. */
static int io_wait(int fd, short events, double deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	double left;
	int n;

	for (;;) {
		left = deadline - pyhot_now();
		if (left <= 0) {
			return 0;
		}
		n = poll(&p, 1, (int)(left * 1000.0) + 1);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			return -1;
		}
		if (n == 0) {
			return 0;
		}
		return (p.revents & events) ? 1 : -1;
	}
}

enum io_dir {
	IO_READ,
	IO_WRITE,
};

/* Read or write exactly n bytes. 0, or -1 on error, end of file or
 * timeout. */
static int io_full(int fd, enum io_dir dir, char *p, size_t n, double deadline)
{
	ssize_t r;

	while (n > 0) {
		if (io_wait(fd, dir == IO_READ ? POLLIN : POLLOUT, deadline) != 1) {
			return -1;
		}
		/* MSG_NOSIGNAL: a client that went away must not raise SIGPIPE. */
		r = dir == IO_READ ? read(fd, p, n)
				   : send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r < 0 && (errno == EINTR || errno == EAGAIN)) {
			continue;
		}
		if (r <= 0) {
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static void write_error(struct jsonw *w, const struct pyhot_err *err)
{
	jsonw_key_bool(w, "ok", 0);
	jsonw_key(w, "error");
	jsonw_object_begin(w);
	jsonw_key_str(w, "kind", pyhot_errkind_name(err->kind));
	jsonw_key_str(w, "step", err->step);
	jsonw_key_str(w, "message", err->msg);
	jsonw_key_str(w, "hint", err->hint[0] ? err->hint : NULL);
	jsonw_object_end(w);
}

/* Count how a safe-point request fared (the counters of "status"). */
static void count_safepoint(const struct pyhot_sp_info *info)
{
	switch (info->via) {
	case PYHOT_SP_PENDING_CALL:
		atomic_fetch_add(&pyhot_agent.via_pending, 1);
		return;
	case PYHOT_SP_GIL_THREAD:
		atomic_fetch_add(&pyhot_agent.via_gil, 1);
		return;
	case PYHOT_SP_NONE:
		break;
	}
	if (info->outcome == PYHOT_SP_TIMED_OUT) {
		atomic_fetch_add(&pyhot_agent.timeouts, 1);
	}
}

/* Run a PYHOT_VERB_PYTHON verb at a safe point and write its fields, then
 * how it got there. Takes frame over, whatever the outcome. */
static int verb_at_safepoint(const struct pyhot_verb *verb,
			     const struct pyhot_req *req, char *frame,
			     long timeout_ms, struct jsonw *w, struct pyhot_err *err)
{
	const struct pyhot_sp_opts opts = {
		.timeout_ms = timeout_ms,
		.grace_ms = pyhot_req_get_ulong(req, "grace_ms", PYHOT_PENDING_GRACE_MS),
		.run_ms = pyhot_req_get_ulong(req, "run_timeout_ms",
					      PYHOT_SP_RUN_TIMEOUT_MS),
		/* When the baseline job of the boot timed out, the first
		 * safe-point request takes the baseline before its handler. */
		.before = pyhot_baseline_take_once,
	};
	struct pyhot_sp_info info;
	char *fields = NULL;
	int rc;

	rc = pyhot_sp_call(verb, req, frame, &opts, &fields, &info, err);
	count_safepoint(&info);
	if (fields && fields[0]) {
		jsonw_raw(w, fields);
	}
	free(fields);
	if (info.outcome == PYHOT_SP_FINISHED) {
		jsonw_key(w, "safepoint");
		jsonw_object_begin(w);
		jsonw_key_str(w, "via", pyhot_sp_via_name(info.via));
		jsonw_key_double(w, "wait_ms", info.wait_ms);
		jsonw_key_double(w, "run_ms", info.run_ms);
		jsonw_object_end(w);
	}
	return rc;
}

/* Decode the request in frame (len bytes) and run its verb, which writes
 * its fields into w. Takes frame over. 0 or a negative pyhot_errkind with
 * err filled. */
static int agent_dispatch(char *frame, size_t len, struct jsonw *w,
			  struct pyhot_err *err)
{
	const struct pyhot_verb *verb = NULL;
	struct pyhot_req req;
	pid_t pid = getpid();
	long timeout_ms;
	int rc;

	if (pyhot_req_parse(&req, frame, len) < 0) {
		rc = pyhot_err_set(err, PYHOT_ERR_FAILED, 0, pid, "request",
				   "malformed request frame (%zu bytes)", len);
	} else if (!(verb = pyhot_verb_find(req.verb))) {
		rc = pyhot_err_set(err, PYHOT_ERR_FAILED, 0, pid, "request",
				   "unknown verb '%.64s'", req.verb);
	} else if (verb->where == PYHOT_VERB_AGENT) {
		rc = verb->fn(&req, w, err);
	} else if ((timeout_ms = pyhot_req_get_ulong(&req, "timeout_ms",
						     PYHOT_DEFAULT_TIMEOUT_MS)) <= 0) {
		rc = pyhot_err_set(err, PYHOT_ERR_FAILED, 0, pid, verb->name,
				   "timeout_ms must be a positive number of milliseconds");
	} else {
		rc = verb_at_safepoint(verb, &req, frame, timeout_ms, w, err);
		frame = NULL;   /* the safe-point job has it */
	}
	free(frame);
	if (rc < 0 && err->kind == PYHOT_OK) {
		rc = pyhot_err_set(err, PYHOT_ERR_FAILED, 0, pid,
				   verb ? verb->name : "request",
				   "failed without a message");
	}
	return rc;
}

/* Serve a request. Takes frame (len bytes; NULL when the frame could not be
 * read whole, frame_error then says why) and returns the response text
 * (caller frees; NULL only when memory ran out twice). */
static char *agent_handle(char *frame, size_t len, const char *frame_error)
{
	struct pyhot_err err;
	struct jsonw w;
	char *text;

	pyhot_err_init(&err);
	jsonw_init(&w);
	jsonw_object_begin(&w);
	jsonw_key_int(&w, "proto", PYHOT_PROTO_VERSION);
	if (frame_error) {
		pyhot_err_set(&err, PYHOT_ERR_FAILED, 0, getpid(), "request", "%s",
			      frame_error);
		free(frame);
	} else {
		(void)agent_dispatch(frame, len, &w, &err);
	}
	if (err.kind == PYHOT_OK) {
		jsonw_key_bool(&w, "ok", 1);
	} else {
		write_error(&w, &err);
		pyhot_agent_note_error(err.msg);
	}
	jsonw_object_end(&w);
	text = jsonw_finish(&w);
	if (!text) {
		text = strdup("{\"proto\":1,\"ok\":false,\"error\":{\"kind\":\"failed\","
			      "\"step\":\"agent\",\"message\":\"agent: out of memory\"}}");
	}
	return text;
}

/* Is the peer the target's euid or root? */
static int peer_allowed(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		return 0;
	}
	return cred.uid == geteuid() || cred.uid == 0;
}

static void agent_serve(int fd)
{
	double deadline = pyhot_now() + AGENT_IO_TIMEOUT_S;
	unsigned char hdr[4];
	const char *frame_error = NULL;
	char *frame = NULL, *text;
	uint32_t len = 0;

	if (!peer_allowed(fd)) {
		atomic_fetch_add(&pyhot_agent.refused, 1);
		return;
	}
	if (io_full(fd, IO_READ, (char *)hdr, sizeof(hdr), deadline) < 0) {
		return;
	}
	len = pyhot_frame_len_decode(hdr);
	if (len == 0 || len > PYHOT_FRAME_MAX) {
		frame_error = "request frame length out of bounds";
	} else if (!(frame = malloc(len))) {
		frame_error = "out of memory for the request frame";
	} else if (io_full(fd, IO_READ, frame, len, deadline) < 0) {
		free(frame);
		return;   /* the client went away or stalled: nobody to answer */
	}

	/* Counted before it is handled, so that "status" counts itself as its
	 * safe point does (pyhot_proto.h). */
	atomic_fetch_add(&pyhot_agent.requests, 1);
	text = agent_handle(frame, len, frame_error);
	if (atomic_load(&pyhot_agent.stop_requested)) {
		/* Detached: the socket is gone before the client hears so. */
		agent_unbind();
	}
	if (text) {
		size_t n = strlen(text);

		pyhot_frame_len_encode(hdr, (uint32_t)n);
		/* A client that went away misses its answer; nobody to tell. */
		if (io_full(fd, IO_WRITE, (char *)hdr, sizeof(hdr),
			    pyhot_now() + AGENT_IO_TIMEOUT_S) == 0) {
			(void)io_full(fd, IO_WRITE, text, n, pyhot_now() + AGENT_IO_TIMEOUT_S);
		}
		free(text);
	}
}

void *pyhot_agent_main(void *arg)
{
	struct pollfd p;
	struct timespec pause = { 0, 100 * 1000 * 1000 };
	int fd, n;

	(void)arg;
	pthread_setname_np(pthread_self(), "pyhot-agent");
	atomic_store(&pyhot_agent.stop_requested, 0);
	pyhot_baseline_soon();
	while (!atomic_load(&pyhot_agent.stop_requested)) {
		p.fd = pyhot_agent.listen_fd;
		p.events = POLLIN;
		p.revents = 0;
		n = poll(&p, 1, -1);
		if (n < 0 && errno != EINTR) {
			nanosleep(&pause, NULL);   /* never spin */
		}
		if (n <= 0) {
			continue;
		}
		fd = accept4(pyhot_agent.listen_fd, NULL, NULL,
			     SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				nanosleep(&pause, NULL);
			}
			continue;
		}
		atomic_store(&pyhot_agent.conn_fd, fd);
		agent_serve(fd);
		atomic_store(&pyhot_agent.conn_fd, -1);
		close(fd);
	}
	agent_unbind();
	/* Last: from here a new pyhot_boot() may start another agent. */
	atomic_store(&pyhot_agent.state, PYHOT_AGENT_IDLE);
	return NULL;
}
