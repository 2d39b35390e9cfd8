/*
 * signals.h: the terminal signals while threads of ours may inject (for
 * steps.c and multi.c). Private to cli/.
 *
 * What the steps' threads must not take: SIGCHLD, which the injecting
 * thread sleeps on (one taken by another thread is lost to it), and what a
 * terminal or a kill sends, which would end the whole command with it, a
 * target's thread borrowed in the middle of an injection. A thread of its
 * own takes those (sigwait), waits for the injection under way to end and
 * lets the signal do what it does.
 *
 * Held only once a step needs a thread (cli_signals_hold()): a command
 * whose requests all go from the calling thread injects nowhere, and a
 * signal then ends it at once as it ends the one-process command.
 */
#ifndef PYHOT_SIGNALS_H
#define PYHOT_SIGNALS_H

#include <pthread.h>
#include <signal.h>

struct cli_signals {
	int held;                   /* the mask is ours and thread runs */
	int started;                /* thread was created */
	pthread_t thread;
	sigset_t old_mask;          /* the caller's, given back */
};

/* Block those signals in the calling thread (the one that creates the
 * steps' threads: they inherit its mask) and start the thread that takes
 * them. Once; nothing after the first call. */
void cli_signals_hold(struct cli_signals *g);

/* After every step's thread has ended: end that thread and give the
 * caller's mask back. Nothing when never held. */
void cli_signals_release(struct cli_signals *g);

#endif /* PYHOT_SIGNALS_H */
