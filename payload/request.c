/* request.c: decode request frames (see request.h). */
#include "request.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int pyhot_req_parse(struct pyhot_req *r, char *buf, size_t len)
{
	size_t pos = 0;
	const char *strs[2 * PYHOT_REQ_MAX_ARGS + 1];
	size_t n = 0, i;

	memset(r, 0, sizeof(*r));
	if (len == 0 || buf[len - 1] != '\0')
		return -1;
	while (pos < len) {
		if (n == sizeof(strs) / sizeof(strs[0]))
			return -1;
		strs[n++] = buf + pos;
		pos += strlen(buf + pos) + 1;
	}
	if (n % 2 == 0 || strs[0][0] == '\0')
		return -1;
	r->verb = strs[0];
	for (i = 1; i < n; i += 2) {
		r->key[r->nargs] = strs[i];
		r->val[r->nargs] = strs[i + 1];
		r->nargs++;
	}
	return 0;
}

const char *pyhot_req_get(const struct pyhot_req *r, const char *key)
{
	return pyhot_req_nth(r, key, 0);
}

size_t pyhot_req_count(const struct pyhot_req *r, const char *key)
{
	size_t i, n = 0;

	for (i = 0; i < r->nargs; i++)
		n += strcmp(r->key[i], key) == 0;
	return n;
}

const char *pyhot_req_nth(const struct pyhot_req *r, const char *key, size_t n)
{
	size_t i;

	for (i = 0; i < r->nargs; i++) {
		if (strcmp(r->key[i], key) == 0 && n-- == 0)
			return r->val[i];
	}
	return NULL;
}

long pyhot_req_get_ulong(const struct pyhot_req *r, const char *key, long def)
{
	const char *v = pyhot_req_get(r, key);
	char *end;
	long n;

	if (!v)
		return def;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < 0)
		return -1;
	return n;
}
