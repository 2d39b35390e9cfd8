/* client.c: talk to the agent over its Unix socket (see client.h). */
#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json.h>

#include "pyhot_log.h"
#include "pyhot_proto.h"

void pyhot_client_req_init(struct pyhot_client_req *r, const char *verb)
{
	memset(r, 0, sizeof(*r));
	r->verb = verb;
}

int pyhot_client_req_add(struct pyhot_client_req *r, const char *key,
			 const char *val)
{
	if (r->nargs == PYHOT_CLIENT_MAX_ARGS)
		return -1;
	r->key[r->nargs] = key;
	r->val[r->nargs] = val;
	r->nargs++;
	return 0;
}

int pyhot_client_req_encode(const struct pyhot_client_req *r, unsigned char **out,
			    size_t *outlen)
{
	size_t len = strlen(r->verb) + 1, i, pos;
	unsigned char *buf;

	for (i = 0; i < r->nargs; i++)
		len += strlen(r->key[i]) + 1 + strlen(r->val[i]) + 1;
	if (len > PYHOT_FRAME_MAX)
		return -1;
	buf = malloc(4 + len);
	if (!buf)
		return -1;
	pyhot_frame_len_encode(buf, (uint32_t)len);
	pos = 4;
#define PUT(s) do { size_t n_ = strlen(s) + 1; memcpy(buf + pos, (s), n_); pos += n_; } while (0)
	PUT(r->verb);
	for (i = 0; i < r->nargs; i++) {
		PUT(r->key[i]);
		PUT(r->val[i]);
	}
#undef PUT
	*out = buf;
	*outlen = pos;
	return 0;
}

int pyhot_client_sock_path(char *buf, size_t len, unsigned int euid, pid_t nspid)
{
	char dir[64], name[64];
	int n;

	snprintf(dir, sizeof(dir), PYHOT_SOCK_DIR_FMT, euid);
	snprintf(name, sizeof(name), PYHOT_SOCK_NAME_FMT, (int)nspid);
	n = snprintf(buf, len, "%s/%s", dir, name);
	return (n < 0 || (size_t)n >= len) ? -1 : 0;
}

const char *pyhot_client_status_field(const char *text, const char *key)
{
	const char *p = text;
	size_t n = strlen(key);

	while (p && *p) {
		if (strncmp(p, key, n) == 0)
			return p + n;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return NULL;
}

int pyhot_client_parse_euid(const char *text, unsigned int *euid)
{
	const char *p = pyhot_client_status_field(text, "Uid:");
	unsigned int r, e;

	if (!p || sscanf(p, "%u %u", &r, &e) != 2)
		return -1;
	*euid = e;
	return 0;
}

int pyhot_client_target_euid(pid_t pid, unsigned int *euid, struct pyhot_err *err)
{
	char path[64], text[4096];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pyhot_err_set(err, PYHOT_ERR_ATTACH, errno, pid, "inspect",
				     "open(%s): %s", path, strerror(errno));
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n < 0)
		return pyhot_err_set(err, PYHOT_ERR_ATTACH, errno, pid, "inspect",
				     "read(%s): %s", path, strerror(errno));
	text[n] = '\0';
	if (pyhot_client_parse_euid(text, euid) < 0)
		return pyhot_err_set(err, PYHOT_ERR_ATTACH, 0, pid, "inspect",
				     "%s: no Uid line", path);
	return 0;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining(long long deadline)
{
	long long r = deadline - now_ms();

	return r < 0 ? 0 : (r > 1000000 ? 1000000 : (int)r);
}

/* Connect to the target's agent at full (sock as the target sees it),
 * owned by and served by uid, only once client_trust.c has judged it. */
static int do_connect(pid_t pid, const char *full, const char *sock, unsigned int uid,
		      long long deadline, int *out, struct pyhot_err *err)
{
	struct sockaddr_un sa;
	socklen_t salen;
	int fd, dirfd, e, r;

	r = pyhot_client_sock_open(pid, full, sock, uid, &sa, &salen, &dirfd, err);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		e = errno;
		close(dirfd);
		return pyhot_err_set(err, PYHOT_ERR_FAILED, e, pid, "connect",
				     "socket(AF_UNIX): %s", strerror(e));
	}
	for (;;) {
		if (connect(fd, (struct sockaddr *)&sa, salen) == 0)
			break;
		e = errno;
		if (e == EINTR)
			continue;
		/* A full backlog: the agent is busy accepting; try again. */
		if (e == EAGAIN && remaining(deadline) > 0) {
			struct timespec ts = { 0, 1000000 };

			nanosleep(&ts, NULL);
			continue;
		}
		close(fd);
		close(dirfd);
		PYHOT_TRACE("socket", "connect(%s) in pid %d: %s", sock, (int)pid,
			    strerror(e));
		if (e == EAGAIN)
			return pyhot_err_set(err, PYHOT_ERR_TIMEOUT, e, pid, "connect",
					     "connect(%s): the agent in pid %d did not accept "
					     "the connection in time (its backlog is full)",
					     sock, (int)pid);
		r = pyhot_err_set(err, PYHOT_ERR_FAILED, e, pid, "connect",
				  "connect(%s): %s", sock, strerror(e));
		if (e == EACCES || e == EPERM)
			pyhot_err_hint(err, "the agent's socket belongs to the target's user: "
				       "run pyhot as that user or as root");
		return r;
	}
	close(dirfd);
	r = pyhot_client_peer_check(fd, pid, sock, uid, err);
	if (r < 0) {
		close(fd);
		return r;
	}
	*out = fd;
	return 0;
}

/* Bytes of our request that the agent has not read yet, 0 when unknown. */
static int unread_bytes(int fd)
{
	int n = 0;

	if (ioctl(fd, SIOCOUTQ, &n) < 0)
		return 0;
	return n;
}

/* Send what is left of the request: 0, or -1 with err set (EAGAIN is 0). */
static int conn_send(struct pyhot_client_conn *c, struct pyhot_err *err)
{
	ssize_t n;

	while (c->sent < c->flen) {
		n = send(c->fd, c->frame + c->sent, c->flen - c->sent, MSG_NOSIGNAL);
		if (n > 0) {
			c->sent += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		return pyhot_err_set(err, PYHOT_ERR_FAILED, errno, c->pid, "send",
				     "send to agent: %s", strerror(errno));
	}
	return 0;
}

/* Read into buf[*got..len): 1 all there, 0 not yet, -1 with err set. */
static int conn_recv(struct pyhot_client_conn *c, unsigned char *buf, size_t len,
		     size_t *got, struct pyhot_err *err)
{
	ssize_t n;

	while (*got < len) {
		n = recv(c->fd, buf + *got, len - *got, 0);
		if (n > 0) {
			*got += (size_t)n;
			continue;
		}
		if (n == 0)
			return pyhot_err_set(err, PYHOT_ERR_FAILED, 0, c->pid, "receive",
					     "the agent closed the connection after %zu of %zu bytes",
					     *got, len);
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN)
			return 0;
		return pyhot_err_set(err, PYHOT_ERR_FAILED, errno, c->pid, "receive",
				     "recv from agent: %s", strerror(errno));
	}
	return 1;
}

/* The deadline passed: say which side was slow. The agent did not read
 * the request (step "send"), or read it and did not answer (step
 * "receive"); ctx.c explains each. */
static int conn_expired(struct pyhot_client_conn *c, struct pyhot_err *err)
{
	if (c->sent < c->flen)
		return pyhot_err_set(err, PYHOT_ERR_TIMEOUT, ETIMEDOUT, c->pid, "send",
				     "the agent in pid %d did not read the request in "
				     "time", (int)c->pid);
	if (c->hgot == 4)
		return pyhot_err_set(err, PYHOT_ERR_TIMEOUT, ETIMEDOUT, c->pid, "receive",
				     "no answer from the agent in pid %d in time",
				     (int)c->pid);
	if (unread_bytes(c->fd) > 0)
		return pyhot_err_set(err, PYHOT_ERR_TIMEOUT, ETIMEDOUT, c->pid, "send",
				     "the agent in pid %d did not read the request within "
				     "%.1f s", (int)c->pid, c->timeout_ms / 1000.0);
	return pyhot_err_set(err, PYHOT_ERR_TIMEOUT, ETIMEDOUT, c->pid, "receive",
			     "no answer from the agent in pid %d in time: it read the "
			     "request but did not answer within %.1f s", (int)c->pid,
			     c->timeout_ms / 1000.0);
}

short pyhot_client_conn_events(const struct pyhot_client_conn *c)
{
	return c->sent < c->flen ? POLLOUT : POLLIN;
}

int pyhot_client_conn_remaining(const struct pyhot_client_conn *c)
{
	return remaining(c->deadline);
}

int pyhot_client_conn_continue(struct pyhot_client_conn *c, struct json_object **resp,
			       struct pyhot_err *err)
{
	int r;

	*resp = NULL;
	if (conn_send(c, err) < 0)
		return -PYHOT_ERR_FAILED;
	r = c->sent < c->flen ? 0 : conn_recv(c, c->hdr, 4, &c->hgot, err);
	if (r > 0 && !c->body) {
		c->blen = pyhot_frame_len_decode(c->hdr);
		if (c->blen == 0 || c->blen > PYHOT_FRAME_MAX)
			return pyhot_err_set(err, PYHOT_ERR_FAILED, 0, c->pid, "receive",
					     "bad frame length %u from the agent", c->blen);
		c->body = malloc(c->blen);
		if (!c->body)
			return pyhot_err_set(err, PYHOT_ERR_FAILED, ENOMEM, c->pid, "receive",
					     "out of memory for %u bytes", c->blen);
	}
	if (r > 0)
		r = conn_recv(c, c->body, c->blen, &c->bgot, err);
	if (r < 0)
		return r;
	if (r == 0)
		return remaining(c->deadline) > 0 ? 0 : conn_expired(c, err);
	PYHOT_TRACE("socket", "<- pid %d %u bytes in %lld ms: %.*s", (int)c->pid, c->blen,
		    now_ms() - c->t0, c->blen > 400 ? 400 : (int)c->blen,
		    (const char *)c->body);
	*resp = pyhot_client_resp_parse((const char *)c->body, c->blen);
	if (!*resp)
		return pyhot_err_set(err, PYHOT_ERR_FAILED, 0, c->pid, "receive",
				     "the agent's answer is not a JSON object");
	return 1;
}

void pyhot_client_conn_close(struct pyhot_client_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->frame);
	free(c->body);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

struct json_object *pyhot_client_resp_parse(const char *buf, size_t len)
{
	struct json_tokener *tok;
	struct json_object *o;

	if (len > (size_t)INT32_MAX)
		return NULL;
	tok = json_tokener_new();
	if (!tok)
		return NULL;
	o = json_tokener_parse_ex(tok, buf, (int)len);
	if (o && json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	if (o && !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		o = NULL;
	}
	return o;
}

int pyhot_client_root_path(pid_t pid, const char *sock, char *full, size_t len,
			   struct pyhot_err *err)
{
	int n = snprintf(full, len, "/proc/%d/root%s", (int)pid, sock);

	if (n < 0 || (size_t)n >= len)
		return pyhot_err_set(err, PYHOT_ERR_FAILED, ENAMETOOLONG, pid, "connect",
				     "socket path too long: %s", sock);
	return 0;
}

int pyhot_client_call(pid_t pid, const char *sock, const struct pyhot_client_req *req,
		      unsigned int timeout_ms, struct json_object **resp,
		      struct pyhot_err *err)
{
	char full[PATH_MAX];

	*resp = NULL;
	if (pyhot_client_root_path(pid, sock, full, sizeof(full), err) < 0)
		return -PYHOT_ERR_FAILED;
	return pyhot_client_call_at(pid, full, sock, req, timeout_ms, resp, err);
}

/* The user the agent must belong to: the target's euid. A target that is
 * gone fails as a missing socket did before (no agent). */
static int target_uid(pid_t pid, unsigned int *uid, struct pyhot_err *err)
{
	struct pyhot_err e;

	pyhot_err_init(&e);
	if (pyhot_client_target_euid(pid, uid, &e) == 0)
		return 0;
	pyhot_err_set(err, PYHOT_ERR_FAILED, e.sys_errno, pid, "connect", "%s",
		      e.msg + strlen(e.step) + 2);
	return -PYHOT_ERR_FAILED;
}

/* c set up for req (encoded) with its deadline, no connection yet. 0, or
 * -PYHOT_ERR_FAILED with err set. */
static int conn_begin(struct pyhot_client_conn *c, pid_t pid,
		      const struct pyhot_client_req *req, unsigned int timeout_ms,
		      struct pyhot_err *err)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->pid = pid;
	c->timeout_ms = timeout_ms;
	c->t0 = now_ms();
	c->deadline = c->t0 + timeout_ms;
	if (pyhot_client_req_encode(req, &c->frame, &c->flen) < 0)
		return pyhot_err_set(err, PYHOT_ERR_FAILED, ENOMEM, pid, "request",
				     "cannot encode request '%s'", req->verb);
	return 0;
}

int pyhot_client_start(pid_t pid, const char *full, const char *sock,
		       const struct pyhot_client_req *req, unsigned int timeout_ms,
		       struct pyhot_client_conn *c, struct pyhot_err *err)
{
	unsigned int uid;
	int r;

	r = conn_begin(c, pid, req, timeout_ms, err);
	if (r == 0)
		r = target_uid(pid, &uid, err);
	if (r == 0)
		r = do_connect(pid, full, sock, uid, c->deadline, &c->fd, err);
	if (r == 0) {
		PYHOT_TRACE("socket", "-> pid %d %s (%zu bytes, %zu args)", (int)pid,
			    req->verb, c->flen, req->nargs);
		r = conn_send(c, err);
	}
	if (r < 0)
		pyhot_client_conn_close(c);
	return r;
}

void pyhot_client_keep(struct pyhot_client_conn *c, struct json_object *resp,
		       struct pyhot_client_kept *k)
{
	struct json_object *v;

	pyhot_client_kept_close(k);
	if (c->fd < 0 || c->hgot < 4 || c->bgot < c->blen || !resp ||
	    !json_object_object_get_ex(resp, "kept", &v) || !json_object_get_boolean(v))
		return;
	k->held = 1;
	k->fd = c->fd;
	k->at = now_ms();
	c->fd = -1;
}

void pyhot_client_kept_close(struct pyhot_client_kept *k)
{
	if (k->held)
		close(k->fd);
	k->held = 0;
}

int pyhot_client_start_on(struct pyhot_client_kept *k, pid_t pid, const char *full,
			  const char *sock, const struct pyhot_client_req *req,
			  unsigned int timeout_ms, struct pyhot_client_conn *c,
			  struct pyhot_err *err)
{
	struct pollfd p = { .fd = k->fd, .events = POLLIN | POLLRDHUP };
	struct pyhot_err e;
	int r;

	/* None, too old for the agent's idle limit, or readable before we
	 * asked anything (closed: an older agent keeps nothing open). */
	if (!k->held || now_ms() - k->at >= PYHOT_KEEP_IDLE_MS / 2 || poll(&p, 1, 0) != 0)
		goto again;
	r = conn_begin(c, pid, req, timeout_ms, err);
	if (r < 0) {
		pyhot_client_kept_close(k);
		return r;
	}
	c->fd = k->fd;
	k->held = 0;
	pyhot_err_init(&e);
	r = conn_send(c, &e);
	/* Closed since (its idle limit: the agent shuts its reading side
	 * first, agent.c): it read nothing of this request. */
	if (r < 0 && c->sent == 0 && (e.sys_errno == EPIPE || e.sys_errno == ECONNRESET)) {
		pyhot_client_conn_close(c);
		goto again;
	}
	if (r < 0) {
		*err = e;
		pyhot_client_conn_close(c);
		return r;
	}
	PYHOT_TRACE("socket", "-> pid %d %s (%zu bytes, %zu args, the same connection)",
		    (int)pid, req->verb, c->flen, req->nargs);
	return 0;
again:
	pyhot_client_kept_close(k);
	return pyhot_client_start(pid, full, sock, req, timeout_ms, c, err);
}

int pyhot_client_conn_poll_failed(const struct pyhot_client_conn *c, int e,
				  struct pyhot_err *err)
{
	return pyhot_err_set(err, PYHOT_ERR_FAILED, e, c->pid,
			     c->sent < c->flen ? "send" : "receive", "poll: %s", strerror(e));
}

int pyhot_client_conn_wait(struct pyhot_client_conn *c, struct json_object **resp,
			   struct pyhot_err *err)
{
	struct pollfd p;
	int r = 0;

	while (r == 0) {
		p.fd = c->fd;
		p.events = pyhot_client_conn_events(c);
		if (poll(&p, 1, pyhot_client_conn_remaining(c)) < 0 && errno != EINTR)
			return pyhot_client_conn_poll_failed(c, errno, err);
		r = pyhot_client_conn_continue(c, resp, err);
	}
	return r;
}

int pyhot_client_call_at(pid_t pid, const char *full, const char *sock,
			 const struct pyhot_client_req *req, unsigned int timeout_ms,
			 struct json_object **resp, struct pyhot_err *err)
{
	struct pyhot_client_conn c;
	int r;

	*resp = NULL;
	r = pyhot_client_start(pid, full, sock, req, timeout_ms, &c, err);
	if (r == 0)
		r = pyhot_client_conn_wait(&c, resp, err);
	pyhot_client_conn_close(&c);
	return r < 0 ? r : 0;
}

int pyhot_client_no_agent(const struct pyhot_err *err)
{
	/* Only connect() sets these errnos on a FAILED record (see do_connect). */
	return err->kind == PYHOT_ERR_FAILED &&
	       (err->sys_errno == ENOENT || err->sys_errno == ECONNREFUSED ||
		err->sys_errno == ENOTDIR);
}

static const char *obj_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

int pyhot_client_resp_check(struct json_object *resp, pid_t pid, const char *step,
			    struct pyhot_err *err)
{
	struct json_object *ok, *e = NULL;
	enum pyhot_errkind kind = PYHOT_ERR_FAILED;
	const char *k, *msg, *estep;

	if (json_object_object_get_ex(resp, "ok", &ok) && json_object_get_boolean(ok))
		return 0;
	json_object_object_get_ex(resp, "error", &e);
	k = obj_str(e, "kind");
	if (k && strcmp(k, "timeout") == 0)
		kind = PYHOT_ERR_TIMEOUT;
	else if (k && strcmp(k, "uncertain") == 0)
		kind = PYHOT_ERR_UNCERTAIN;
	msg = obj_str(e, "message");
	estep = obj_str(e, "step");
	if (!estep || !*estep)
		estep = step;
	/* The agent's messages already start with their step. */
	if (msg && err && err->kind == PYHOT_OK &&
	    strncmp(msg, estep, strlen(estep)) == 0 && msg[strlen(estep)] == ':') {
		pyhot_err_set(err, kind, 0, pid, estep, "%s", "");
		snprintf(err->msg, sizeof(err->msg), "%s", msg);
	} else {
		pyhot_err_set(err, kind, 0, pid, estep, "%s",
			      msg ? msg : "the agent reported an error without a message");
	}
	if (obj_str(e, "hint") && *obj_str(e, "hint"))
		pyhot_err_hint(err, "%s", obj_str(e, "hint"));
	return -(int)kind;
}
