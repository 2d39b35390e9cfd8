/*
 * proctree.h: parents and descendants of processes, read from /proc (for
 * ps's PPID column and tree, and for --tree PID). Private to cli/.
 * Nothing is stopped or traced; a process that goes away meanwhile is
 * simply not there.
 */
#ifndef PYHOT_PROCTREE_H
#define PYHOT_PROCTREE_H

#include <stddef.h>
#include <sys/types.h>

#include "pyhot_err.h"

/* The parent pid of pid (field 4 of /proc/PID/stat), 0 when unknown. */
pid_t cli_proc_ppid(pid_t pid);

/* The parent pid from the text of /proc/PID/stat (the command name may
 * hold spaces and parentheses: read after the last ')'), 0 if malformed. */
pid_t cli_proc_parse_ppid(const char *stat_text);

/* Every process of /proc (not threads), sorted by pid, each with its
 * parent. The caller frees *pids and *ppids. */
int cli_proc_list(pid_t **pids, pid_t **ppids, size_t *n,
		  struct pyhot_err *err) PYHOT_MUST_CHECK;

/*
 * The descendants of root among the n processes of pids/ppids (as
 * cli_proc_list() gives them), breadth first, each generation by pid,
 * written to out (root not included); returns how many, at most max.
 */
size_t cli_proc_descendants(const pid_t *pids, const pid_t *ppids, size_t n,
			    pid_t root, pid_t *out, size_t max);

/*
 * The descendants of root, breadth first, into out (at most max): read
 * from the children files of root's threads and theirs when the kernel
 * has them (only the tree is read), else from every process's parent.
 * Returns how many, or a negative error code with err set.
 */
int cli_proc_tree(pid_t root, pid_t *out, size_t max,
		  struct pyhot_err *err) PYHOT_MUST_CHECK;

#endif /* PYHOT_PROCTREE_H */
