/* agent.c: the agent thread, which serves one request per connection, several
 * connections at once from one poll() loop (see agent.h, pyhot_proto.h and
 * docs/safepoints.md, "Serving clients"). */
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
#include "sockfile.h"
#include "verbs.h"

/* Connections read at once. Past them, up to AGENT_MAX_BUSY more are read
 * and answered "busy"; past those, new connections wait in the listen
 * backlog until a slot is free. */
#define AGENT_MAX_CONNS 8
#define AGENT_MAX_BUSY 4
#define AGENT_SLOTS (AGENT_MAX_CONNS + AGENT_MAX_BUSY)

/* A connection that sends no byte of its request for AGENT_IDLE_S, or has
 * not sent it whole after AGENT_REQUEST_S, is dropped (counted in
 * "dropped_idle"). The CLI sends its request as soon as it has connected,
 * in one write. */
#define AGENT_IDLE_S 1.0
#define AGENT_REQUEST_S 10.0

/* A client that reads none of its answer for this long is dropped. */
#define AGENT_REPLY_IDLE_S 10.0

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
		jsonw_key_double(w, "total_ms", info.total_ms);
		jsonw_object_end(w);
	}
	return rc;
}

/* The largest answer the request accepts: PYHOT_FRAME_MAX, or less when
 * it says so with "reply_max" (for tests of the size check). */
static size_t reply_max_of(const struct pyhot_req *req)
{
	long max = pyhot_req_get_ulong(req, "reply_max", (long)PYHOT_FRAME_MAX);

	return max > 0 && max < (long)PYHOT_FRAME_MAX ? (size_t)max : PYHOT_FRAME_MAX;
}

/* Decode the request in frame (len bytes) and run its verb, which writes
 * its fields into w; *reply_max is the largest answer the request takes,
 * *keep whether it asks for the connection to stay open for one more
 * ("keep": "1"). Takes frame over. 0 or a negative pyhot_errkind with err
 * filled. */
static int agent_dispatch(char *frame, size_t len, struct jsonw *w,
			  size_t *reply_max, int *keep, struct pyhot_err *err)
{
	const struct pyhot_verb *verb = NULL;
	const char *keep_val;
	struct pyhot_req req;
	pid_t pid = getpid();
	long timeout_ms;
	int parsed = pyhot_req_parse(&req, frame, len) == 0;
	int rc;

	/* Read before the safe-point job takes frame, which req points into. */
	*reply_max = parsed ? reply_max_of(&req) : PYHOT_FRAME_MAX;
	keep_val = parsed ? pyhot_req_get(&req, "keep") : NULL;
	*keep = keep_val && strcmp(keep_val, "1") == 0;
	if (!parsed) {
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

/* The text of an error answer made of err (caller frees; NULL when memory
 * ran out). */
static char *error_text(const struct pyhot_err *err)
{
	struct jsonw w;

	jsonw_init(&w);
	jsonw_object_begin(&w);
	jsonw_key_int(&w, "proto", PYHOT_PROTO_VERSION);
	write_error(&w, err);
	jsonw_object_end(&w);
	pyhot_agent_note_error(err->msg);
	return jsonw_finish(&w);
}

/* Finish the answer in w. One longer than max (at most PYHOT_FRAME_MAX,
 * which the CLI refuses to read) is replaced by an error that says so.
 * Caller frees; NULL when memory ran out. */
static char *answer_text(struct jsonw *w, size_t max)
{
	struct pyhot_err err;
	char *text = jsonw_finish(w);
	size_t n;

	/* JSON text has no NUL: jsonw escapes it. */
	if (!text || (n = strlen(text)) <= max) {
		return text;
	}
	free(text);
	pyhot_err_init(&err);
	pyhot_err_set(&err, PYHOT_ERR_FAILED, 0, getpid(), "reply",
		      "the answer was too large to send: %zu bytes, more than the "
		      "%zu a frame may carry", n, max);
	pyhot_err_hint(&err, "ask for less (a smaller exec output, stack or "
		       "status --leaks)");
	return error_text(&err);
}

/* Serve a request, or refuse it with pre when pre->kind is set. Takes frame
 * (len bytes; NULL when refused) and returns the response text (caller
 * frees; NULL only when memory ran out twice); *keep as agent_dispatch()
 * says. */
static char *agent_handle(char *frame, size_t len, const struct pyhot_err *pre,
			  int *keep)
{
	size_t reply_max = PYHOT_FRAME_MAX;
	struct pyhot_err err;
	struct jsonw w;
	char *text;

	*keep = 0;
	if (pre->kind != PYHOT_OK) {
		free(frame);
		text = error_text(pre);
	} else {
		pyhot_err_init(&err);
		jsonw_init(&w);
		jsonw_object_begin(&w);
		jsonw_key_int(&w, "proto", PYHOT_PROTO_VERSION);
		(void)agent_dispatch(frame, len, &w, &reply_max, keep, &err);
		if (*keep) {
			/* The client sends its next request here only when told. */
			jsonw_key_bool(&w, "kept", 1);
		}
		if (err.kind == PYHOT_OK) {
			jsonw_key_bool(&w, "ok", 1);
		} else {
			write_error(&w, &err);
			pyhot_agent_note_error(err.msg);
		}
		jsonw_object_end(&w);
		text = answer_text(&w, reply_max);
	}
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

enum conn_phase {
	CONN_FREE,      /* the slot is free */
	CONN_HEADER,    /* reading the 4-byte length */
	CONN_BODY,      /* reading the request */
	CONN_READY,     /* read whole (or refused: pre says why), not answered */
	CONN_REPLY,     /* writing the answer */
};

/*
 * One connection: one request, one answer, then it is closed; or, when the
 * request asked to keep it ("keep": "1"), read again for one more request
 * (a refresh over several processes sends its apply where its plan went:
 * no second connect, trust check and accept); the answer says "kept". A
 * kept connection waits PYHOT_KEEP_IDLE_MS for it (conns_expire()); the
 * client uses it only within half that, and connects again otherwise.
 */
struct conn {
	int fd;
	enum conn_phase phase;
	int busy;                 /* over AGENT_MAX_CONNS: answered "busy" */
	int keep;                 /* open again for one more request once answered */
	int kept;                 /* it was: it waits for that request (conn_keep()) */
	unsigned char hdr[4];     /* the request's length, then the answer's */
	uint32_t len;             /* of the request */
	size_t got;               /* bytes of hdr or frame read, of the answer sent */
	char *frame;              /* the request (len bytes) */
	char *text;               /* the answer */
	size_t text_len;
	struct pyhot_err pre;     /* refused before its verb ran */
	double started;           /* accepted, CLOCK_MONOTONIC seconds */
	double last;              /* last byte read or written */
};

/* Only the agent thread touches the table (and a forked child's atfork
 * handler, which has no agent thread). */
static struct conn conns[AGENT_SLOTS];
static pthread_once_t conns_atfork_once = PTHREAD_ONCE_INIT;

static void conn_close(struct conn *c)
{
	if (c->fd >= 0) {
		close(c->fd);
	}
	free(c->frame);
	free(c->text);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->phase = CONN_FREE;
}

/* In a forked child: close the parent's connections (their buffers are
 * leaked: the parent's thread may have been using them). */
static void conns_atfork_child(void)
{
	size_t i;

	for (i = 0; i < AGENT_SLOTS; i++) {
		if (conns[i].phase != CONN_FREE && conns[i].fd >= 0) {
			close(conns[i].fd);
		}
		memset(&conns[i], 0, sizeof(conns[i]));
		conns[i].fd = -1;
	}
}

static void conns_atfork_register(void)
{
	size_t i;

	for (i = 0; i < AGENT_SLOTS; i++) {
		conns[i].fd = -1;
	}
	/* Nothing to do if it fails: the child only keeps some descriptors. */
	(void)pthread_atfork(NULL, NULL, conns_atfork_child);
}

/* Connections in use, and among them those not answered "busy". */
static size_t conns_count(size_t *serving)
{
	size_t i, n = 0;

	*serving = 0;
	for (i = 0; i < AGENT_SLOTS; i++) {
		if (conns[i].phase != CONN_FREE) {
			n++;
			*serving += !conns[i].busy;
		}
	}
	return n;
}

/* The request's length is in: check it and make room for the body. */
static void conn_header_done(struct conn *c)
{
	c->len = pyhot_frame_len_decode(c->hdr);
	c->got = 0;
	if (c->len == 0 || c->len > PYHOT_FRAME_MAX) {
		pyhot_err_set(&c->pre, PYHOT_ERR_FAILED, 0, getpid(), "request",
			      "request frame length out of bounds");
		c->phase = CONN_READY;
	} else if (!(c->frame = malloc(c->len))) {
		pyhot_err_set(&c->pre, PYHOT_ERR_FAILED, ENOMEM, getpid(), "request",
			      "out of memory for the request frame");
		c->phase = CONN_READY;
	} else {
		c->phase = CONN_BODY;
	}
}

/* Read what the client has sent, without waiting. A client that goes away
 * before its request is whole has nobody to answer. */
static void conn_read(struct conn *c, double now)
{
	char *buf;
	size_t want;
	ssize_t r;

	while (c->phase == CONN_HEADER || c->phase == CONN_BODY) {
		buf = c->phase == CONN_HEADER ? (char *)c->hdr : c->frame;
		want = c->phase == CONN_HEADER ? sizeof(c->hdr) : c->len;
		r = recv(c->fd, buf + c->got, want - c->got, MSG_DONTWAIT);
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r < 0 && errno == EAGAIN) {
			return;
		}
		if (r <= 0) {
			conn_close(c);
			return;
		}
		c->got += (size_t)r;
		c->last = now;
		if (c->got < want) {
			continue;
		}
		if (c->phase == CONN_HEADER) {
			conn_header_done(c);
		} else {
			c->phase = CONN_READY;
		}
	}
}

/* Accept one connection into a free slot. */
static void conn_accept(void)
{
	struct timespec pause = { 0, 100 * 1000 * 1000 };
	struct conn *c = NULL;
	size_t i, serving;
	int fd;

	fd = accept4(pyhot_agent.listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			nanosleep(&pause, NULL);   /* never spin */
		}
		return;
	}
	if (!peer_allowed(fd)) {
		atomic_fetch_add(&pyhot_agent.refused, 1);
		close(fd);
		return;
	}
	for (i = 0; i < AGENT_SLOTS && !c; i++) {
		c = conns[i].phase == CONN_FREE ? &conns[i] : NULL;
	}
	if (!c) {
		close(fd);   /* not polled for while the table is full */
		return;
	}
	(void)conns_count(&serving);
	c->fd = fd;
	c->phase = CONN_HEADER;
	c->busy = serving >= AGENT_MAX_CONNS;
	c->started = c->last = pyhot_now();
	pyhot_err_init(&c->pre);
	/* The client sends its request as soon as it is connected: read it
	 * now rather than one poll() later. */
	conn_read(c, c->last);
}

/* Answered whole, and asked to stay open: read it again for one more
 * request (that one closes it unless it asks again). */
static void conn_keep(struct conn *c, double now)
{
	free(c->text);
	c->text = NULL;
	c->text_len = 0;
	c->got = 0;
	c->len = 0;
	c->keep = 0;
	c->kept = 1;
	c->phase = CONN_HEADER;
	c->started = c->last = now;
	pyhot_err_init(&c->pre);
}

/* Send what the client's socket takes of the answer, without waiting; close
 * once it is all sent, or the client went away (nobody to tell). */
static void conn_write(struct conn *c, double now)
{
	const char *buf;
	size_t left;
	ssize_t r;

	while (c->got < sizeof(c->hdr) + c->text_len) {
		if (c->got < sizeof(c->hdr)) {
			buf = (const char *)c->hdr + c->got;
			left = sizeof(c->hdr) - c->got;
		} else {
			buf = c->text + (c->got - sizeof(c->hdr));
			left = c->text_len - (c->got - sizeof(c->hdr));
		}
		/* MSG_NOSIGNAL: a client that went away must not raise SIGPIPE. */
		r = send(c->fd, buf, left, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r < 0 && errno == EAGAIN) {
			return;
		}
		if (r <= 0) {
			break;
		}
		c->got += (size_t)r;
		c->last = now;
	}
	if (c->got == sizeof(c->hdr) + c->text_len && c->keep)
		conn_keep(c, now);
	else
		conn_close(c);
}

/* Answer a request that is read whole: run it (one at a time: a safe-point
 * verb waits here for its safe point), then start writing the answer. */
static void conn_answer(struct conn *c)
{
	if (c->busy && c->pre.kind == PYHOT_OK) {
		pyhot_err_set(&c->pre, PYHOT_ERR_FAILED, EBUSY, getpid(), "agent",
			      "the agent in pid %d is busy: it serves %d connections "
			      "at once; try again", (int)getpid(), AGENT_MAX_CONNS);
	}
	/* Counted before it is handled, so that "status" counts itself as its
	 * safe point does (pyhot_proto.h). */
	atomic_fetch_add(&pyhot_agent.requests, 1);
	atomic_store(&pyhot_agent.conn_fd, c->fd);
	c->text = agent_handle(c->frame, c->len, &c->pre, &c->keep);
	atomic_store(&pyhot_agent.conn_fd, -1);
	c->frame = NULL;   /* agent_handle took it */
	if (atomic_load(&pyhot_agent.stop_requested)) {
		/* Detached: the socket is gone before the client hears so. */
		agent_unbind();
	}
	if (!c->text) {
		conn_close(c);
		return;
	}
	/* answer_text() kept it within PYHOT_FRAME_MAX. */
	c->text_len = strlen(c->text);
	pyhot_frame_len_encode(c->hdr, (uint32_t)c->text_len);
	c->got = 0;
	c->last = pyhot_now();
	c->phase = CONN_REPLY;
	conn_write(c, c->last);
}

/* When c must have made progress by (0: no deadline). */
static double conn_deadline(const struct conn *c)
{
	double idle;

	switch (c->phase) {
	case CONN_HEADER:
	case CONN_BODY:
		idle = c->last + (c->kept ? PYHOT_KEEP_IDLE_MS / 1000.0 : AGENT_IDLE_S);
		return idle < c->started + AGENT_REQUEST_S ? idle
							   : c->started + AGENT_REQUEST_S;
	case CONN_REPLY:
		return c->last + AGENT_REPLY_IDLE_S;
	case CONN_FREE:
	case CONN_READY:
		break;
	}
	return 0;
}

/* Drop the connections past their deadline (a silent or slow client). */
static void conns_expire(double now)
{
	struct conn *c;
	double deadline;
	size_t i;

	for (i = 0; i < AGENT_SLOTS; i++) {
		c = &conns[i];
		deadline = conn_deadline(c);
		if (deadline == 0 || now < deadline) {
			continue;
		}
		/* A kept connection that no request came on: its reading side
		 * shut first, a request sent meanwhile is either read whole
		 * now (and answered) or refused to its sender (EPIPE), who
		 * connects again; never dropped unread. Not a silent client. */
		if (c->kept && c->phase == CONN_HEADER && c->got == 0) {
			shutdown(c->fd, SHUT_RD);
			conn_read(c, now);   /* closes it when nothing came */
			if (c->phase != CONN_READY) {
				conn_close(c);
			}
			continue;
		}
		if (c->phase != CONN_REPLY) {
			atomic_fetch_add(&pyhot_agent.dropped_idle, 1);
		}
		conn_close(c);
	}
}

/* Fill pfd with what to wait for: the listening socket while a slot is
 * free, each connection's reads or writes. Returns how many, with
 * slot[k] the connection of pfd[k] (-1: the listening socket), and
 * *timeout_ms until the nearest deadline (-1: none). */
static nfds_t conns_pollfds(struct pollfd *pfd, int *slot, int *timeout_ms)
{
	double nearest = 0, d, now = pyhot_now();
	size_t i, serving;
	nfds_t n = 0;

	if (pyhot_agent.listen_fd >= 0 && conns_count(&serving) < AGENT_SLOTS) {
		pfd[n] = (struct pollfd){ .fd = pyhot_agent.listen_fd, .events = POLLIN };
		slot[n++] = -1;
	}
	for (i = 0; i < AGENT_SLOTS; i++) {
		d = conn_deadline(&conns[i]);
		if (d == 0) {
			continue;
		}
		nearest = nearest == 0 || d < nearest ? d : nearest;
		pfd[n] = (struct pollfd){
			.fd = conns[i].fd,
			.events = conns[i].phase == CONN_REPLY ? POLLOUT : POLLIN,
		};
		slot[n++] = (int)i;
	}
	*timeout_ms = nearest == 0 ? -1
		    : nearest <= now ? 0 : (int)((nearest - now) * 1000.0) + 1;
	return n;
}

/* One round: wait, read and write what is ready, accept, drop the late
 * ones, answer the requests read whole. */
static void agent_round(void)
{
	struct timespec pause = { 0, 100 * 1000 * 1000 };
	struct pollfd pfd[1 + AGENT_SLOTS];
	int slot[1 + AGENT_SLOTS], timeout_ms, accept_one = 0;
	nfds_t k, n;
	double now;
	size_t i;

	n = conns_pollfds(pfd, slot, &timeout_ms);
	if (poll(pfd, n, timeout_ms) < 0) {
		if (errno != EINTR) {
			nanosleep(&pause, NULL);   /* never spin */
		}
		return;
	}
	now = pyhot_now();
	for (k = 0; k < n; k++) {
		if (!pfd[k].revents) {
			continue;
		}
		if (slot[k] < 0) {
			accept_one = 1;
		} else if (conns[slot[k]].phase == CONN_REPLY) {
			conn_write(&conns[slot[k]], now);
		} else {
			conn_read(&conns[slot[k]], now);
		}
	}
	if (accept_one) {
		conn_accept();
	}
	conns_expire(now);
	for (i = 0; i < AGENT_SLOTS; i++) {
		if (conns[i].phase == CONN_READY &&
		    !atomic_load(&pyhot_agent.stop_requested)) {
			conn_answer(&conns[i]);
		}
	}
}

/* Detached: close every connection but those still being answered. 1 while
 * an answer is still being written. */
static int conns_after_detach(void)
{
	int writing = 0;
	size_t i;

	for (i = 0; i < AGENT_SLOTS; i++) {
		if (conns[i].phase == CONN_REPLY) {
			writing = 1;
		} else if (conns[i].phase != CONN_FREE) {
			conn_close(&conns[i]);
		}
	}
	return writing;
}

void *pyhot_agent_main(void *arg)
{
	size_t i;

	(void)arg;
	pthread_setname_np(pthread_self(), "pyhot-agent");
	pthread_once(&conns_atfork_once, conns_atfork_register);
	atomic_store(&pyhot_agent.stop_requested, 0);
	pyhot_baseline_soon(pyhot_agent.forked_from != 0);
	if (pyhot_agent.forked_from) {
		/* Workers come and go; nothing removes the sockets of those
		 * that exited. Here, off the host's threads. */
		(void)pyhot_sock_sweep_dead(pyhot_agent.sock);
	}
	while (!atomic_load(&pyhot_agent.stop_requested) || conns_after_detach()) {
		agent_round();
	}
	for (i = 0; i < AGENT_SLOTS; i++) {
		if (conns[i].phase != CONN_FREE) {
			conn_close(&conns[i]);
		}
	}
	agent_unbind();
	/* Last: from here a new pyhot_boot() may start another agent. */
	atomic_store(&pyhot_agent.state, PYHOT_AGENT_IDLE);
	return NULL;
}
