/* procfs.c: /proc text parsers and target memory reads (see attach_int.h). */
#include "attach_int.h"
#include "pyhot_proto.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

int attach_read_file(const char *path, char **buf, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *b, *nb;
	ssize_t r;
	int fd, e;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	b = malloc(cap);
	if (!b) {
		close(fd);
		return -ENOMEM;
	}
	/* /proc files report size 0: read until EOF, growing the buffer. */
	for (;;) {
		if (cap - n < 2) {
			nb = realloc(b, cap * 2);
			if (!nb) {
				e = ENOMEM;
				goto out_free;
			}
			b = nb;
			cap *= 2;
		}
		r = read(fd, b + n, cap - n - 1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			e = errno;
			goto out_free;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	b[n] = '\0';
	*buf = b;
	*len = n;
	return 0;

out_free:
	free(b);
	close(fd);
	return -e;
}

/* The value after "Key:" at the start of a line, or NULL. */
static const char *status_field(const char *text, const char *key)
{
	size_t kl = strlen(key);
	const char *p = text;

	while (p && *p) {
		if (strncmp(p, key, kl) == 0 && p[kl] == ':') {
			p += kl + 1;
			while (*p == ' ' || *p == '\t')
				p++;
			return p;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return NULL;
}

int attach_parse_status(const char *text, struct attach_status *st)
{
	const char *v, *eol;
	char *end;

	memset(st, 0, sizeof(*st));
	st->seccomp = -1;
	v = status_field(text, "State");
	if (!v || !*v || *v == '\n')
		return -1;
	st->state = *v;
	v = status_field(text, "Uid");
	if (!v)
		return -1;
	st->uid = (uid_t)strtoul(v, &end, 10);
	if (end == v)
		return -1;
	v = end;
	st->euid = (uid_t)strtoul(v, &end, 10);
	if (end == v)
		st->euid = st->uid;
	v = status_field(text, "Tgid");
	if (v)
		st->tgid = (pid_t)strtol(v, NULL, 10);
	v = status_field(text, "TracerPid");
	if (v)
		st->tracer = (pid_t)strtol(v, NULL, 10);
	v = status_field(text, "Seccomp");
	if (v)
		st->seccomp = (int)strtol(v, NULL, 10);
	v = status_field(text, "CapEff");
	if (v)
		st->cap_eff = strtoull(v, NULL, 16);
	v = status_field(text, "SigPnd");
	if (v)
		st->sig_pnd = strtoull(v, NULL, 16);
	v = status_field(text, "ShdPnd");
	if (v)
		st->sig_pnd |= strtoull(v, NULL, 16);
	v = status_field(text, "SigBlk");
	if (v)
		st->sig_blk = strtoull(v, NULL, 16);
	v = status_field(text, "SigCgt");
	if (v)
		st->sig_cgt = strtoull(v, NULL, 16);
	/* NSpid lists the pid in each namespace from the outermost to the
	 * target's own: the last one is the pid it sees. */
	v = status_field(text, "NSpid");
	if (v) {
		eol = strchr(v, '\n');
		if (!eol)
			eol = v + strlen(v);
		while (v < eol) {
			long x = strtol(v, &end, 10);

			if (end == v)
				break;
			st->nspid = (pid_t)x;
			v = end;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
		}
	}
	return 0;
}

int attach_maps_next(const char **cursor, struct attach_map *m)
{
	const char *p = *cursor, *eol, *q;
	char *end;
	int field;

	if (!p || !*p)
		return 0;
	eol = strchr(p, '\n');
	if (!eol)
		eol = p + strlen(p);
	*cursor = *eol ? eol + 1 : eol;
	memset(m, 0, sizeof(*m));
	/* start-end perms offset dev inode [path] */
	m->start = strtoul(p, &end, 16);
	if (end == p || *end != '-')
		return -1;
	q = end + 1;
	m->end = strtoul(q, &end, 16);
	if (end == q || *end != ' ' || m->end < m->start)
		return -1;
	q = end + 1;
	if (eol - q < 5 || q[4] != ' ')
		return -1;
	memcpy(m->perms, q, 4);
	q += 5;
	m->offset = strtoul(q, &end, 16);
	if (end == q || *end != ' ')
		return -1;
	q = end;
	/* dev, inode */
	for (field = 0; field < 2; field++) {
		while (q < eol && *q == ' ')
			q++;
		if (q >= eol)
			return -1;
		while (q < eol && *q != ' ')
			q++;
	}
	while (q < eol && *q == ' ')
		q++;
	m->path = q;
	m->pathlen = (size_t)(eol - q);
	return 1;
}

int attach_map_path_is(const struct attach_map *m, const char *s)
{
	return m->pathlen == strlen(s) && memcmp(m->path, s, m->pathlen) == 0;
}

int attach_map_is_payload(const struct attach_map *m)
{
	/* The memfd's name, with " (deleted)" on kernels that add it. */
	return m->offset == 0 &&
	       (attach_map_path_is(m, "/memfd:" PYHOT_MEMFD_NAME " (deleted)") ||
		attach_map_path_is(m, "/memfd:" PYHOT_MEMFD_NAME));
}

void attach_map_basename(const struct attach_map *m, char *buf, size_t len)
{
	const char *b = m->path, *p;
	size_t n;

	for (p = m->path; p < m->path + m->pathlen; p++) {
		if (*p == '/')
			b = p + 1;
	}
	n = (size_t)(m->path + m->pathlen - b);
	if (len == 0)
		return;
	if (n >= len)
		n = len - 1;
	memcpy(buf, b, n);
	buf[n] = '\0';
}

int attach_environ_opted_out(const char *buf, size_t len)
{
	static const char key[] = "PYTHON_DISABLE_REMOTE_DEBUG=";
	size_t i = 0, kl = sizeof(key) - 1;

	while (i < len) {
		const char *s = buf + i;
		size_t n = strnlen(s, len - i);

		if (n > kl && memcmp(s, key, kl) == 0)
			return 1;
		i += n + 1;
	}
	return 0;
}

static int is_disable_opt(const char *v)
{
	static const char opt[] = "disable_remote_debug";
	size_t ol = sizeof(opt) - 1;

	return strncmp(v, opt, ol) == 0 && (v[ol] == '\0' || v[ol] == '=');
}

int attach_cmdline_opted_out(const char *buf, size_t len)
{
	size_t i = 0;
	int argi = 0, want_x = 0, skip_next = 0;

	while (i < len) {
		const char *a = buf + i;
		size_t n = strnlen(a, len - i);

		i += n + 1;
		if (argi++ == 0)
			continue;      /* argv[0]: the interpreter */
		if (want_x) {
			want_x = 0;
			if (is_disable_opt(a))
				return 1;
			continue;
		}
		if (skip_next) {
			skip_next = 0;
			continue;
		}
		/* Options end at -c, -m, "-" or the script: the rest belongs to
		 * the program, whose own "-X" means nothing to Python. */
		if (a[0] != '-' || a[1] == '\0' || strcmp(a, "--") == 0)
			return 0;
		if (strcmp(a, "-X") == 0) {
			want_x = 1;
			continue;
		}
		if (strncmp(a, "-X", 2) == 0) {
			if (is_disable_opt(a + 2))
				return 1;
			continue;
		}
		if (strcmp(a, "-W") == 0 || strcmp(a, "--check-hash-based-pycs") == 0) {
			skip_next = 1;
			continue;
		}
		if (a[1] == '-' || a[1] == 'W')
			continue;
		/* Single-letter flags may be grouped ("-uc"): -c and -m take
		 * the rest of the line. */
		if (strchr(a + 1, 'c') || strchr(a + 1, 'm'))
			return 0;
	}
	return 0;
}

/* "3.11" at s: major and minor, and the end. */
static const char *parse_ver(const char *s, int *major, int *minor)
{
	char *end;
	long ma, mi;

	if (!isdigit((unsigned char)*s))
		return NULL;
	ma = strtol(s, &end, 10);
	if (*end != '.' || !isdigit((unsigned char)end[1]))
		return NULL;
	mi = strtol(end + 1, &end, 10);
	*major = (int)ma;
	*minor = (int)mi;
	return end;
}

int attach_libpython_version(const char *base, int *major, int *minor)
{
	const char *p;

	if (strncmp(base, "libpython", 9) != 0)
		return 0;
	p = parse_ver(base + 9, major, minor);
	if (!p)
		return 0;
	/* ABI flags (d, m, u, t for free-threaded) come before ".so". */
	while (*p && strchr("dmut", *p))
		p++;
	return strncmp(p, ".so", 3) == 0;
}

int attach_exe_python_version(const char *base, int *major, int *minor)
{
	const char *p;

	if (strncmp(base, "python", 6) != 0)
		return 0;
	p = base + 6;
	if (isdigit((unsigned char)p[0]) && p[1] == '\0') {
		*major = p[0] - '0';
		*minor = -1;
		return 1;
	}
	p = parse_ver(p, major, minor);
	if (!p)
		return 0;
	while (*p && strchr("dmut", *p))
		p++;
	return *p == '\0';
}

int attach_is_ldso(const char *base)
{
	return strncmp(base, "ld-linux", 8) == 0 ||
	       (strncmp(base, "ld-", 3) == 0 && strstr(base, ".so") != NULL);
}

int attach_is_libc(const char *base)
{
	return strcmp(base, "libc.so.6") == 0 ||
	       (strncmp(base, "libc-2.", 7) == 0 && strstr(base, ".so") != NULL);
}

int attach_parse_task_syscall(const char *text, struct attach_task_syscall *sc)
{
	const char *p = text;
	char *end;
	int i;

	memset(sc, 0, sizeof(*sc));
	sc->nr = -1;
	if (strncmp(text, "running", 7) == 0) {
		sc->running = 1;
		return 0;
	}
	sc->nr = strtol(p, &end, 10);
	if (end == p)
		return -1;
	if (sc->nr < 0)
		return 0;
	p = end;
	for (i = 0; i < 6; i++) {
		while (*p == ' ')
			p++;
		sc->args[i] = strtoul(p, &end, 16);
		if (end == p)
			return -1;
		p = end;
	}
	return 0;
}

char attach_parse_stat_state(const char *text)
{
	/* comm may hold spaces and parentheses: the state follows the last
	 * ')'. */
	const char *p = strrchr(text, ')');

	if (!p || p[1] != ' ' || !p[2])
		return 0;
	return p[2];
}

const char *attach_strerror(int e, char *buf, size_t len)
{
	snprintf(buf, len, "%s", strerror(e));
	/* "Operation not permitted" -> "operation not permitted"; keep
	 * acronyms such as "ELF" or "I/O". */
	if (len && isupper((unsigned char)buf[0]) && !isupper((unsigned char)buf[1]))
		buf[0] = (char)tolower((unsigned char)buf[0]);
	return buf;
}

int attach_mem_read(pid_t pid, unsigned long addr, void *buf, size_t len)
{
	struct iovec local = { buf, len };
	struct iovec remote = { (void *)addr, len };
	char path[64];
	ssize_t r;
	int fd, e;

	r = process_vm_readv(pid, &local, 1, &remote, 1, 0);
	if (r == (ssize_t)len)
		return 0;
	/* process_vm_readv may be filtered (seccomp) or the range may cross a
	 * page that is not readable: try /proc/PID/mem. */
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = pread(fd, buf, len, (off_t)addr);
	e = errno;
	close(fd);
	if (r < 0)
		return -e;
	return r == (ssize_t)len ? 0 : -EIO;
}
