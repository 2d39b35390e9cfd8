/* payload_path.c: where the payload .so is (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAYLOAD_NAME "pyhot-payload.so"

int cli_payload_find_in(const char *env, const char *exe, char *buf, size_t len,
			struct pyhot_err *err)
{
	char dir[PATH_MAX], a[PATH_MAX + 64], b[PATH_MAX + 64];
	const char *slash;
	int e;

	if (env && *env) {
		if (access(env, R_OK) == 0) {
			if ((size_t)snprintf(buf, len, "%s", env) >= len)
				return pyhot_err_set(err, PYHOT_ERR_ATTACH, ENAMETOOLONG, 0,
						     "payload", "path too long: %s", env);
			return 0;
		}
		e = errno;
		pyhot_err_set(err, PYHOT_ERR_ATTACH, e, 0, "payload",
			      "PYHOT_PAYLOAD=%s: %s", env, strerror(e));
		pyhot_err_hint(err, "point PYHOT_PAYLOAD at a built pyhot-payload.so "
			       "(make builds build/pyhot-payload.so), or unset it");
		return -PYHOT_ERR_ATTACH;
	}
	slash = exe ? strrchr(exe, '/') : NULL;
	if (!slash) {
		pyhot_err_set(err, PYHOT_ERR_ATTACH, 0, 0, "payload",
			      "cannot tell where pyhot is installed (%s)", exe ? exe : "?");
		pyhot_err_hint(err, "set PYHOT_PAYLOAD to the path of pyhot-payload.so");
		return -PYHOT_ERR_ATTACH;
	}
	if ((size_t)(slash - exe) >= sizeof(dir))
		return pyhot_err_set(err, PYHOT_ERR_ATTACH, ENAMETOOLONG, 0, "payload",
				     "path too long: %s", exe);
	memcpy(dir, exe, (size_t)(slash - exe));
	dir[slash - exe] = '\0';
	snprintf(a, sizeof(a), "%s/" PAYLOAD_NAME, dir);
	snprintf(b, sizeof(b), "%s/../lib/pyhot/" PAYLOAD_NAME, dir);
	if (access(a, R_OK) == 0 && strlen(a) < len) {
		memcpy(buf, a, strlen(a) + 1);
		return 0;
	}
	if (access(b, R_OK) == 0 && strlen(b) < len) {
		memcpy(buf, b, strlen(b) + 1);
		return 0;
	}
	pyhot_err_set(err, PYHOT_ERR_ATTACH, ENOENT, 0, "payload",
		      "no " PAYLOAD_NAME " at %s nor at %s", a, b);
	pyhot_err_hint(err, "build it with make, install it with make install, "
		       "or set PYHOT_PAYLOAD to its path");
	return -PYHOT_ERR_ATTACH;
}

int cli_payload_find(char *buf, size_t len, struct pyhot_err *err)
{
	char exe[PATH_MAX];
	ssize_t n;

	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		n = 0;
	exe[n] = '\0';
	if (cli_payload_find_in(getenv("PYHOT_PAYLOAD"), n ? exe : NULL, buf, len, err) < 0)
		return -PYHOT_ERR_ATTACH;
	return cli_payload_check_build(buf, err);
}
