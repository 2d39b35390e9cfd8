/*
 * steps.h: the one-process command run in children of ours, one per
 * process, all at once (for multi.c). Private to cli/.
 *
 * A step is a child that runs the command's cmd_*.c function on its own
 * cli_ctx, as main() would, with its stdout and stderr in pipes. A
 * two-phase step (refresh) runs its dry run, writes that document, and
 * waits on its go pipe: 'a' runs the refresh on the same context (no
 * second inspection of the target), anything else ends it.
 */
#ifndef PYHOT_STEPS_H
#define PYHOT_STEPS_H

#include <stddef.h>
#include <sys/types.h>

#include "cli.h"

struct json_object;

typedef int (*cli_cmd_fn)(struct cli_ctx *c, struct pyhot_err *err);

struct cli_step {
	pid_t pid;                  /* the target (set by the caller) */
	pid_t child;                /* ours, 0 once reaped (or never started) */
	int fd[2];                  /* its stdout and stderr; -1 when closed */
	int go;                     /* two-phase: the go pipe's end, or -1 */
	char *text[2];              /* what it wrote there */
	size_t len[2];
	int code;                   /* its exit code (of its last document) */
	int json;                   /* it was run with --json: */
	struct json_object *doc;    /* its (first) document, or NULL */
	struct json_object *doc2;   /* two-phase: the second, or NULL */
};

/* Start fn in a child for s->pid with the arguments b (pid set from s);
 * two_phase as above. 0, or -PYHOT_ERR_FAILED with err set (no child). */
int cli_step_start(struct cli_step *s, const struct cli_args *b, cli_cmd_fn fn,
		   int two_phase, struct pyhot_err *err) PYHOT_MUST_CHECK;

/* cli_step_start() for n steps; one that could not start has code 1 and
 * its reason as its stderr text. */
void cli_steps_start(struct cli_step *s, size_t n, const struct cli_args *b,
		     cli_cmd_fn fn, int two_phase);

/*
 * Read the steps' output. want 0: until each has closed both pipes, then
 * reap them (code: the exit status; doc, and doc2 after a second phase,
 * parsed for --json steps); want 1: until each has written its first
 * document or ended (code: that document's "exit").
 */
void cli_steps_collect(struct cli_step *s, size_t n, int want);

/* Two-phase steps that wrote their dry run: go on ('a') when apply, or
 * stop. Then cli_steps_collect(s, n, 0). */
void cli_steps_go(struct cli_step *s, size_t n, int apply);

/* The message of a step's error: its document's, its stderr, or a word
 * that it gave no report. */
const char *cli_step_message(const struct cli_step *s);

/* Free what a step holds (its child must be reaped). */
void cli_step_release(struct cli_step *s);

#endif /* PYHOT_STEPS_H */
