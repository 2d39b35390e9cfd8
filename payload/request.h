/*
 * request.h: a decoded request frame (format in pyhot_proto.h).
 *
 * pyhot_req_parse() decodes in place: the strings point into the caller's
 * buffer, which must outlive the request.
 */
#ifndef PYHOT_REQUEST_H
#define PYHOT_REQUEST_H

#include <stddef.h>

#define PYHOT_REQ_MAX_ARGS 256

struct pyhot_req {
	const char *verb;
	size_t nargs;
	const char *key[PYHOT_REQ_MAX_ARGS];
	const char *val[PYHOT_REQ_MAX_ARGS];
};

/* Decode buf[0..len). Returns 0, or -1 when the frame is malformed (no verb,
 * a key without a value, a missing final NUL, too many arguments). */
int pyhot_req_parse(struct pyhot_req *r, char *buf, size_t len);

/* The first value of key, or NULL. */
const char *pyhot_req_get(const struct pyhot_req *r, const char *key);

/* How many times key appears, and its n-th value (NULL past the end). */
size_t pyhot_req_count(const struct pyhot_req *r, const char *key);
const char *pyhot_req_nth(const struct pyhot_req *r, const char *key, size_t n);

/* The value of key as a non-negative integer, or def when absent; -1 when
 * present but not a number. */
long pyhot_req_get_ulong(const struct pyhot_req *r, const char *key, long def);

#endif /* PYHOT_REQUEST_H */
