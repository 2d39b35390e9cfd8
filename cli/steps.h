/*
 * steps.h: the one-process command run for several processes at once (for
 * multi.c). Private to cli/.
 *
 * A step runs the command's cmd_*.c function on its own cli_ctx, as main()
 * would, with its output into streams of its own (the cli_out's out and
 * err) that the caller prints or parses. A two-phase step (refresh) runs
 * its dry run and waits; cli_steps_go() then has it run the refresh on the
 * same context (no second inspection of the target), or end.
 *
 * Where it runs: a step whose target has an agent already (assume_agent,
 * below) and whose command comes in two halves (struct cli_cmd_split, as
 * refresh does) has no thread: the caller's thread sends every such
 * step's request, then waits for all their answers in one poll() (an
 * "inline" step). Any other step, and an inline one that found nobody at
 * its agent's socket, is a thread of ours that runs the whole command
 * (an attach among it). A thread cost 50 to 300 us of CPU to create on
 * a virtual machine with two CPUs, a third of what it then did, and nine
 * of them made a refresh over nine processes 2.6 times one; the
 * requests of nine from one thread take about 3 ms. Forked children, the
 * first way, cost 3 to 4 ms of page copying each. Steps share nothing but
 * read-only arguments; the injector serialises attaches itself
 * (pyhot_inject()).
 */
#ifndef PYHOT_STEPS_H
#define PYHOT_STEPS_H

#include <pthread.h>
#include <semaphore.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "cli.h"
#include "signals.h"

struct json_object;

typedef int (*cli_cmd_fn)(struct cli_ctx *c, struct pyhot_err *err);

struct cli_step {
	pid_t pid;                  /* the target (set by the caller) */
	const struct pyhot_target *seen;  /* it as the caller inspected it, or NULL */
	int assume_agent;           /* when its socket is there, no ping first
	                             * (cli_steps_start()) */
	struct cli_signals *signals;  /* held before its thread starts (set by the caller) */
	pthread_t thread;
	struct cli_gate *gate;      /* where it waits for the others' attaches, or NULL */
	void *stack;                /* its stack and guard, or NULL */
	size_t stack_map;           /* non-zero: it unmaps this much from stack (the
	                             * block of cli_steps_start(): see cli_steps_release()) */
	int running;                /* thread started and not joined yet */
	sem_t planned;              /* posted when the first phase is over */
	sem_t go;                   /* two-phase: posted by cli_steps_go() */
	int planned_seen;           /* we waited for planned */
	int awaits_go;              /* set by the thread before planned */
	int apply;                  /* cli_steps_go()'s word, before go */
	cli_cmd_fn fn;
	const struct cli_cmd_split *split;  /* fn in halves, or NULL */
	struct cli_args args;       /* the command's, for this pid */
	struct cli_ctx ctx;         /* made by the first phase, kept for the second */
	int ctx_made;               /* ctx made by the caller (inline, or starting over) */
	struct pyhot_err err;       /* the error of its current phase */
	int two_phase;              /* a dry run first; cli_steps_go() goes on */
	int inline_call;            /* no thread: its requests go from the caller's */
	int calling;                /* inline: call under way (out open) */
	struct cli_call call;
	struct cli_out out;         /* a run's report, from its start to its end */
	long err_from;              /* its stderr's length when the run started */
	FILE *f[2];                 /* its stdout and stderr streams, or NULL */
	char *text[2];              /* what it wrote there (NUL-terminated) */
	size_t len[2];
	char *warnings;             /* its stderr but its error's report (what
	                             * the caller prints beside its own report
	                             * of the step), or NULL */
	int code;                   /* its exit code (of its last document) */
	int json;                   /* it was run with --json: */
	struct json_object *doc;    /* its (first) document, or NULL */
	struct json_object *doc2;   /* two-phase: the second, or NULL */
};

/* Start fn in a thread for s->pid with the arguments b (pid set from s);
 * two_phase as above. 0, or -PYHOT_ERR_FAILED with err set (no thread).
 * s->assume_agent means nothing here (cli_steps_start()). */
int cli_step_start(struct cli_step *s, const struct cli_args *b, cli_cmd_fn fn,
		   int two_phase, struct pyhot_err *err) PYHOT_MUST_CHECK;

/*
 * cli_step_start() for n steps, or inline (above) where split is given
 * and the step has assume_agent: a step whose target has an agent's socket
 * (and is not stopped, traced or opted out) makes its first request at
 * once, reading no more of it than /proc/PID/status, without the ping that
 * would find the agent (a third of a tree refresh's requests: its report
 * shows no "attach"). Should nobody listen there (a stale socket), it
 * starts over in a thread as a step that does not assume: it attaches,
 * then asks. One that could not start has code 1 and its reason as its
 * stderr text. With gate (cli_gate_init(gate, n)), each
 * step's command waits after its attach until every step has attached or
 * given up (cli.h, struct cli_gate); an inline step passes it at once.
 */
void cli_steps_start(struct cli_step *s, size_t n, const struct cli_args *b,
		     cli_cmd_fn fn, const struct cli_cmd_split *split, int two_phase,
		     struct cli_gate *gate);

/*
 * Wait for the steps' threads and the inline steps' answers, and take
 * their output. want 0: the command is over (code: its exit code; for
 * --json steps doc, and doc2 after a second phase, the documents as
 * objects, never printed; the streams closed); want 1: the first phase is
 * over (code: its document's "exit"; the streams stay open for the
 * second).
 */
void cli_steps_collect(struct cli_step *s, size_t n, int want);

/* Two-phase steps whose dry run succeeded: run the command itself on the
 * same context when apply, else nothing. Then cli_steps_collect(s, n, 0). */
void cli_steps_go(struct cli_step *s, size_t n, int apply);

/* The message of a step's error: its document's, its stderr, or a word
 * that it gave no report. */
const char *cli_step_message(const struct cli_step *s);

/* Free what a step holds, joining its thread first. A step started by
 * cli_step_start() alone only. */
void cli_step_release(struct cli_step *s);

/* The same for the n steps of cli_steps_start(): every thread joined
 * before any stack is unmapped (their stacks are one mapping). */
void cli_steps_release(struct cli_step *s, size_t n);

#endif /* PYHOT_STEPS_H */
