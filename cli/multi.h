/*
 * multi.h: one command over several processes at once: status, refresh,
 * rollback and exec with several pids or --tree PID. Private to cli/.
 *
 * Each process is served by a step (steps.h): the one-process command
 * (its cmd_*.c function, with its own cli_ctx) with its output into
 * streams of its own, in a thread of ours, or for a refresh of a process
 * that has an agent, its request sent from this thread among the others'
 * (one poll() for every answer); every agent is asked at the same time and
 * nothing of the one-process code is copied. A refresh is all or nothing
 * over the processes: a dry run in every one first (nothing is applied
 * unless every plan succeeds), then the refresh in every one; when one of those fails,
 * the processes already changed are rolled back (the rollback verb, for
 * each module a generation was recorded for). status, rollback and exec
 * run independently in each process. docs/trees.md has the rules and the
 * exit codes.
 */
#ifndef PYHOT_MULTI_H
#define PYHOT_MULTI_H

#include "cli.h"
#include "steps.h"

/* Whether a names several processes (CLI_CMD_MULTI with more than one pid,
 * or --tree PID, even when the tree is one process). */
int cli_multi_wanted(const struct cli_args *a);

/*
 * Run a->cmd, whose one-process function is fn (and, for refresh,
 * cli_cmd_rollback to undo), in the processes a names, and report per
 * process into o (text on stdout, or "processes" in the JSON document).
 * Returns 0 when it succeeded everywhere; otherwise a negative exit code
 * with err saying in how many processes and which failed (each one's own
 * error is in the report).
 */
int cli_multi_run(const struct cli_args *a, struct cli_out *o, cli_cmd_fn fn,
		  struct pyhot_err *err) PYHOT_MUST_CHECK;

/* The exit code of several processes' codes (n > 0): 0 when all are 0;
 * else 4 (uncertain) when one is; else the first that is not 0. */
int cli_multi_exit_code(const int *codes, size_t n);

#endif /* PYHOT_MULTI_H */
