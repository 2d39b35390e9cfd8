/*
 * client.h: the CLI's side of the agent socket (protocol in pyhot_proto.h).
 *
 * The agent listens at PYHOT_SOCK_DIR_FMT/PYHOT_SOCK_NAME_FMT inside the
 * target's mount namespace. The client reaches it through /proc/PID/root, so
 * a target in a container works as well. It talks to nothing it has not
 * judged to be the target's agent (client_trust.c, docs/trust.md): the
 * directory is opened with O_PATH|O_NOFOLLOW and checked on the descriptor,
 * the socket is reached through that descriptor (/proc/self/fd/N/NAME, which
 * also fits any path in sun_path), and the peer's SO_PEERCRED must be the
 * target's pid and euid. Every wait is a poll() bounded by a deadline.
 */
#ifndef PYHOT_CLIENT_H
#define PYHOT_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>

#include "pyhot_err.h"

struct json_object;

#define PYHOT_CLIENT_MAX_ARGS 64

struct pyhot_client_req {
	const char *verb;
	size_t nargs;
	const char *key[PYHOT_CLIENT_MAX_ARGS];
	const char *val[PYHOT_CLIENT_MAX_ARGS];
};

/* Start a request for verb; add key/value pairs (keys may repeat). Returns
 * -1 when the request is full. */
void pyhot_client_req_init(struct pyhot_client_req *r, const char *verb);
int pyhot_client_req_add(struct pyhot_client_req *r, const char *key,
			 const char *val);

/* Encode a request as one frame (4-byte LE length + body). The caller frees
 * *out. Returns 0 or -1 (out of memory, too large). */
int pyhot_client_req_encode(const struct pyhot_client_req *r, unsigned char **out,
			    size_t *outlen);

/* "/tmp/pyhot-EUID/agent-NSPID.sock", the path as the target sees it. */
int pyhot_client_sock_path(char *buf, size_t len, unsigned int euid, pid_t nspid);

/* The text after "key" (as "Uid:") at the start of a line of a
 * /proc/PID/status text, or NULL. */
const char *pyhot_client_status_field(const char *text, const char *key);

/* The effective uid from the text of /proc/PID/status; -1 when absent. */
int pyhot_client_parse_euid(const char *status_text, unsigned int *euid);

/* Read the effective uid of pid from /proc/PID/status. */
int pyhot_client_target_euid(pid_t pid, unsigned int *euid,
			     struct pyhot_err *err) PYHOT_MUST_CHECK;

/*
 * Connect to the agent of pid at sock (the path as the target sees it),
 * send req, read one response frame and parse it. *resp is the parsed JSON
 * object (the caller puts it), whatever its "ok" says. Errors:
 * PYHOT_ERR_FAILED with sys_errno ENOENT or ECONNREFUSED
 * when no agent listens (see pyhot_client_no_agent()); PYHOT_ERR_FAILED
 * with step PYHOT_CLIENT_TRUST_STEP when what is there is not the target's
 * agent (nothing was sent); PYHOT_ERR_TIMEOUT when the deadline passes, its
 * step saying what was slow: "connect" (not accepted), "send" (the request
 * was not read), "receive" (read, not answered); PYHOT_ERR_FAILED for a
 * malformed answer.
 */
int pyhot_client_call(pid_t pid, const char *sock, const struct pyhot_client_req *req,
		      unsigned int timeout_ms, struct json_object **resp,
		      struct pyhot_err *err) PYHOT_MUST_CHECK;

/* "/proc/PID/root" + sock: where we reach the agent's socket. 0, or
 * -PYHOT_ERR_FAILED (ENAMETOOLONG) with err set. */
int pyhot_client_root_path(pid_t pid, const char *sock, char *full, size_t len,
			   struct pyhot_err *err) PYHOT_MUST_CHECK;

/* The same with the socket's full path on our side (full) given; sock is
 * the name used in messages. The same checks: the directory of full must
 * be the euid of pid's, the listener pid itself. For tests. */
int pyhot_client_call_at(pid_t pid, const char *full, const char *sock,
			 const struct pyhot_client_req *req, unsigned int timeout_ms,
			 struct json_object **resp, struct pyhot_err *err) PYHOT_MUST_CHECK;

/*
 * The same request in steps, for a caller that has several under way in
 * one thread (steps.c): pyhot_client_start() judges and connects as
 * pyhot_client_call_at() does and sends what the socket takes at once;
 * then, whenever poll() finds the connection's fd ready for
 * pyhot_client_conn_events() or pyhot_client_conn_remaining() is 0,
 * pyhot_client_conn_continue() goes on: 1 when the answer is whole
 * (*resp, the caller puts it), 0 not yet, or the errors of
 * pyhot_client_call() (the deadline counts from the start). Close it
 * whatever the outcome; after a failed start it is closed already.
 */
struct pyhot_client_conn {
	pid_t pid;
	int fd;
	unsigned int timeout_ms;
	long long t0, deadline;     /* CLOCK_MONOTONIC, ms */
	unsigned char *frame;       /* the request, flen bytes, sent of them */
	size_t flen, sent;
	unsigned char hdr[4];       /* the answer's length, hgot bytes of it */
	size_t hgot;
	unsigned char *body;        /* the answer, blen bytes, bgot of them */
	uint32_t blen;
	size_t bgot;
};

int pyhot_client_start(pid_t pid, const char *full, const char *sock,
		       const struct pyhot_client_req *req, unsigned int timeout_ms,
		       struct pyhot_client_conn *c, struct pyhot_err *err) PYHOT_MUST_CHECK;
short pyhot_client_conn_events(const struct pyhot_client_conn *c);
int pyhot_client_conn_remaining(const struct pyhot_client_conn *c);
int pyhot_client_conn_continue(struct pyhot_client_conn *c, struct json_object **resp,
			       struct pyhot_err *err) PYHOT_MUST_CHECK;
void pyhot_client_conn_close(struct pyhot_client_conn *c);

/* The rest of it in one poll() loop: 1 answered, or < 0 as
 * pyhot_client_conn_continue(). */
int pyhot_client_conn_wait(struct pyhot_client_conn *c, struct json_object **resp,
			   struct pyhot_err *err) PYHOT_MUST_CHECK;

/* poll() failed with errno e while c was under way: err set (step "send"
 * or "receive", where c is); returns -PYHOT_ERR_FAILED. */
int pyhot_client_conn_poll_failed(const struct pyhot_client_conn *c, int e,
				  struct pyhot_err *err);

/*
 * A connection an answered request asked the agent to keep ("keep": "1";
 * the answer says "kept": common/pyhot_proto.h), for the next request to
 * that agent: no connect and no judgement again (its peer was judged when
 * it connected). Zeroed: none.
 */
struct pyhot_client_kept {
	int held;
	int fd;
	long long at;               /* when the answer came (CLOCK_MONOTONIC ms) */
};

/* Keep c's connection in k when resp says the agent kept it (c then has
 * none to close); anything k held before is closed. */
void pyhot_client_keep(struct pyhot_client_conn *c, struct json_object *resp,
		       struct pyhot_client_kept *k);

/* Close what k holds. */
void pyhot_client_kept_close(struct pyhot_client_kept *k);

/*
 * pyhot_client_start() over k's connection, when it is younger than half
 * the agent's idle limit (PYHOT_KEEP_IDLE_MS) and still open; otherwise,
 * or when the agent closed it before reading this request (EPIPE or
 * ECONNRESET on the first send), over a new connection made and judged as
 * pyhot_client_start() does (full and sock for that). k holds nothing
 * after.
 */
int pyhot_client_start_on(struct pyhot_client_kept *k, pid_t pid, const char *full,
			  const char *sock, const struct pyhot_client_req *req,
			  unsigned int timeout_ms, struct pyhot_client_conn *c,
			  struct pyhot_err *err) PYHOT_MUST_CHECK;

/* ----- Trust (client_trust.c) ----- */

/* The step of a refusal to talk to what is not the target's agent. */
#define PYHOT_CLIENT_TRUST_STEP "trust"

/* "uid 1000 (mallory)", or "uid 1000" when the name is unknown. */
void pyhot_client_user_desc(unsigned int uid, char *buf, size_t len);

/* Whether st may be the agent's socket directory for user uid: a directory
 * owned by uid without group or other access. 0, or -1 with why filled
 * ("is owned by uid 1000 (mallory), not by the target's user, uid 0 (root)"). */
int pyhot_client_dir_judge(const struct stat *st, unsigned int uid, char *why,
			   size_t len);

/* Whether a peer (SO_PEERCRED, pid as we see it) is the target pid of user
 * uid. 0, or -1 with why filled. */
int pyhot_client_peer_judge(pid_t peer_pid, unsigned int peer_uid, pid_t pid,
			    unsigned int uid, char *why, size_t len);

/* Open the directory of full (sock: the path as the target sees it, for
 * messages) without following a symlink, judge it and the socket file in
 * it, and fill the address /proc/self/fd/N/NAME; *dirfd is N, to close
 * after connect(). A missing directory or socket fails as "no agent" does. */
int pyhot_client_sock_open(pid_t pid, const char *full, const char *sock,
			   unsigned int uid, struct sockaddr_un *sa, socklen_t *salen,
			   int *dirfd, struct pyhot_err *err) PYHOT_MUST_CHECK;

/* After connect(): the peer of fd must be pid, user uid. */
int pyhot_client_peer_check(int fd, pid_t pid, const char *sock, unsigned int uid,
			    struct pyhot_err *err) PYHOT_MUST_CHECK;

/* Non-zero when err says that nobody listens at the socket. */
int pyhot_client_no_agent(const struct pyhot_err *err);

/*
 * Turn an {"ok":false,"error":{...}} answer into err: kind "timeout" ->
 * PYHOT_ERR_TIMEOUT, "uncertain" -> PYHOT_ERR_UNCERTAIN, anything else
 * PYHOT_ERR_FAILED. Returns 0 when the answer is ok.
 */
int pyhot_client_resp_check(struct json_object *resp, pid_t pid, const char *step,
			    struct pyhot_err *err) PYHOT_MUST_CHECK;

/* Parse one response body (for tests and the client). NULL when it is not a
 * JSON object. */
struct json_object *pyhot_client_resp_parse(const char *buf, size_t len);

#endif /* PYHOT_CLIENT_H */
