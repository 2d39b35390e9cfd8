/*
 * libprobe.c: the payload the live tests inject. pyhot_boot() counts its
 * calls and returns the count, so that a test sees both that it ran and
 * that a reused payload kept its state; with "file=PATH" in the argument
 * it also appends "boot N" to PATH. It saves and restores errno, as the
 * real payload must: it runs on a borrowed thread; with "clobber-errno" in
 * the argument it leaves errno at EBADMSG instead, as dlopen() may, so
 * that a test sees whether the injector gives the thread its errno back.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int calls;

__attribute__((visibility("default"))) int pyhot_boot(const char *arg);

int pyhot_boot(const char *arg)
{
	int saved = errno, fd, n;
	char path[256], line[64];
	const char *p;
	size_t len;

	calls++;
	p = arg ? strstr(arg, "file=") : NULL;
	if (p) {
		p += 5;
		len = strcspn(p, "\n");
		if (len < sizeof(path)) {
			memcpy(path, p, len);
			path[len] = '\0';
			fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
			if (fd >= 0) {
				n = snprintf(line, sizeof(line), "boot %d\n", calls);
				if (write(fd, line, (size_t)n) < 0)
					calls += 0;
				close(fd);
			}
		}
	}
	errno = arg && strstr(arg, "clobber-errno") ? EBADMSG : saved;
	return calls;
}
