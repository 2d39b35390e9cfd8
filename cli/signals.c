/* signals.c: the terminal signals while threads of ours may inject (see
 * signals.h). */
#include "signals.h"

#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "pyhot_attach.h"

static void terminal_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGQUIT);
}

/* Sent by cli_signals_release() to end signal_main(): not a cancellation,
 * whose first use loads libgcc_s (a quarter of a millisecond). */
#define SIGNALS_WAKE SIGRTMIN

static atomic_int signals_over;

static void *signal_main(void *arg)
{
	sigset_t set, one;
	int sig;

	(void)arg;
	terminal_signals(&set);
	sigaddset(&set, SIGNALS_WAKE);
	while (sigwait(&set, &sig) != 0)
		;
	/* Ours comes only once signals_over is set; one before is someone
	 * else's, whose default ends the command: as the others, it does
	 * once the injection under way is over. */
	if (sig == SIGNALS_WAKE && atomic_load(&signals_over))
		return NULL;
	pyhot_inject_quiesce();
	sigemptyset(&one);
	sigaddset(&one, sig);
	signal(sig, SIG_DFL);
	kill(getpid(), sig);
	pthread_sigmask(SIG_UNBLOCK, &one, NULL);   /* it ends the command here */
	for (;;)
		pause();
	return NULL;
}

void cli_signals_hold(struct cli_signals *g)
{
	sigset_t set;

	if (g->held)
		return;
	terminal_signals(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGNALS_WAKE);
	pthread_sigmask(SIG_BLOCK, &set, &g->old_mask);   /* the steps inherit it */
	atomic_store(&signals_over, 0);
	g->held = 1;
	g->started = pthread_create(&g->thread, NULL, signal_main, NULL) == 0;
}

void cli_signals_release(struct cli_signals *g)
{
	if (!g->held)
		return;
	if (g->started) {
		atomic_store(&signals_over, 1);
		pthread_kill(g->thread, SIGNALS_WAKE);
		pthread_join(g->thread, NULL);
	}
	pthread_sigmask(SIG_SETMASK, &g->old_mask, NULL);
	memset(g, 0, sizeof(*g));
}
