/*
 * client.h: the CLI's side of the agent socket (protocol in pyhot_proto.h).
 *
 * The agent listens at PYHOT_SOCK_DIR_FMT/PYHOT_SOCK_NAME_FMT inside the
 * target's mount namespace. The client reaches it through /proc/PID/root, so
 * a target in a container works as well; a path longer than sun_path is
 * reached by opening its directory with O_PATH and connecting to
 * /proc/self/fd/N/NAME. Every wait is a poll() bounded by a deadline.
 */
#ifndef PYHOT_CLIENT_H
#define PYHOT_CLIENT_H

#include <stddef.h>
#include <sys/types.h>

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
 * when no agent listens (see pyhot_client_no_agent()); PYHOT_ERR_TIMEOUT
 * when the deadline passes; PYHOT_ERR_FAILED for a malformed answer.
 */
int pyhot_client_call(pid_t pid, const char *sock, const struct pyhot_client_req *req,
		      unsigned int timeout_ms, struct json_object **resp,
		      struct pyhot_err *err) PYHOT_MUST_CHECK;

/* The same with the socket's full path on our side (full) given; sock is
 * the name used in messages. For tests (a path longer than sun_path). */
int pyhot_client_call_at(pid_t pid, const char *full, const char *sock,
			 const struct pyhot_client_req *req, unsigned int timeout_ms,
			 struct json_object **resp, struct pyhot_err *err) PYHOT_MUST_CHECK;

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
