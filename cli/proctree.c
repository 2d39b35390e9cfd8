/* proctree.c: parents and descendants from /proc (see proctree.h). */
#include "proctree.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cmd_util.h"

pid_t cli_proc_parse_ppid(const char *stat_text)
{
	const char *p = strrchr(stat_text, ')');
	char state;
	int ppid;

	if (!p || sscanf(p + 1, " %c %d", &state, &ppid) != 2 || ppid < 0)
		return 0;
	return (pid_t)ppid;
}

pid_t cli_proc_ppid(pid_t pid)
{
	char path[64], text[1024];

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	cli_read_text(path, text, sizeof(text), 0);
	return cli_proc_parse_ppid(text);
}

static int cmp_pid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

	return (x > y) - (x < y);
}

/* The pids of /proc, sorted. */
static int list_pids(pid_t **out, size_t *n, struct pyhot_err *err)
{
	pid_t *pids = NULL, pid, *np;
	size_t cap = 0;
	struct dirent *de;
	DIR *d = opendir("/proc");

	*n = 0;
	if (!d)
		return pyhot_err_set(err, PYHOT_ERR_FAILED, errno, 0, "proc",
				     "opendir('/proc'): %s", strerror(errno));
	while ((de = readdir(d))) {
		if (cli_parse_pid(de->d_name, &pid) < 0)
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 256;
			np = realloc(pids, cap * sizeof(*pids));
			if (!np) {
				closedir(d);
				free(pids);
				return pyhot_err_set(err, PYHOT_ERR_FAILED, ENOMEM, 0,
						     "proc", "out of memory");
			}
			pids = np;
		}
		pids[(*n)++] = pid;
	}
	closedir(d);
	qsort(pids, *n, sizeof(*pids), cmp_pid);
	*out = pids;
	return 0;
}

int cli_proc_list(pid_t **pids, pid_t **ppids, size_t *n, struct pyhot_err *err)
{
	size_t i;
	int r = list_pids(pids, n, err);

	if (r < 0)
		return r;
	*ppids = calloc(*n ? *n : 1, sizeof(**ppids));
	if (!*ppids) {
		free(*pids);
		*pids = NULL;
		return pyhot_err_set(err, PYHOT_ERR_FAILED, ENOMEM, 0, "proc",
				     "out of memory");
	}
	for (i = 0; i < *n; i++)
		(*ppids)[i] = cli_proc_ppid((*pids)[i]);
	return 0;
}

size_t cli_proc_descendants(const pid_t *pids, const pid_t *ppids, size_t n,
			    pid_t root, pid_t *out, size_t max)
{
	size_t got = 0, done = 0, i;
	pid_t parent = root;

	/* out doubles as the queue: the parents still to expand follow
	 * the ones expanded; pids are sorted, so each generation is too. */
	for (;;) {
		for (i = 0; i < n && got < max; i++)
			if (ppids[i] == parent && pids[i] != root)
				out[got++] = pids[i];
		if (done == got)
			return got;
		parent = out[done++];
	}
}

/* The children of pid's threads, from /proc/PID/task/TID/children
 * (CONFIG_PROC_CHILDREN), appended to out. With check, -1 when the kernel
 * has no such file. */
static int children_of(pid_t pid, int check, pid_t *out, size_t *got, size_t max)
{
	char path[96], text[4096], *p, *end;
	struct dirent *de;
	pid_t tid, kid;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
	if (check && access(path, R_OK) < 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return 0;   /* gone meanwhile */
	while ((de = readdir(d)) && *got < max) {
		if (cli_parse_pid(de->d_name, &tid) < 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)tid);
		cli_read_text(path, text, sizeof(text), 0);
		for (p = text; *p && *got < max; p = end) {
			long v = strtol(p, &end, 10);

			if (end == p)
				break;
			kid = (pid_t)v;
			if (kid > 0)
				out[(*got)++] = kid;
		}
	}
	closedir(d);
	return 0;
}

int cli_proc_tree(pid_t root, pid_t *out, size_t max, struct pyhot_err *err)
{
	pid_t *pids = NULL, *ppids = NULL;
	size_t got = 0, done = 0, n = 0;
	int r;

	if (children_of(root, 1, out, &got, max) == 0) {
		while (done < got)
			(void)children_of(out[done++], 0, out, &got, max);
		return (int)got;
	}
	r = cli_proc_list(&pids, &ppids, &n, err);
	if (r < 0)
		return r;
	got = cli_proc_descendants(pids, ppids, n, root, out, max);
	free(pids);
	free(ppids);
	return (int)got;
}
