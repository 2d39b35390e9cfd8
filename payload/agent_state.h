/*
 * agent_state.h: the agent's state and counters, shared by the boot, the
 * agent thread, the verbs and the baseline job. Private to the payload.
 *
 * There is one agent per process. pyhot_boot() (boot.c) binds the socket and
 * starts the agent thread (agent.c), which reads several connections at once
 * (one request each) and answers them one at a time until a "detach"
 * request. The state lives in a single static struct so that
 * a late pending call or GIL thread never points into memory that goes away:
 * the payload is -z nodelete, this struct is never freed. agent_state.c calls
 * no other file of the payload.
 */
#ifndef PYHOT_AGENT_STATE_H
#define PYHOT_AGENT_STATE_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/un.h>

#include "pyhot_err.h"

enum pyhot_agent_state {
	PYHOT_AGENT_IDLE,       /* no agent: pyhot_boot() may start one */
	PYHOT_AGENT_RUNNING,    /* the agent thread serves (or is starting) */
	PYHOT_AGENT_STOPPING,   /* detached: the thread is on its way out */
};

struct pyhot_agent {
	_Atomic int state;          /* enum pyhot_agent_state */
	atomic_int stop_requested;  /* "detach": stop after this request */
	pid_t pid;                  /* getpid() when the agent started */
	pid_t forked_from;          /* in a child forked while the parent's
				     * agent served: the parent's pid (its
				     * baselines and history are ours), else 0 */
	int listen_fd;              /* -1 when not listening */
	_Atomic int conn_fd;        /* the connection being answered, or -1 (the
				     * others are agent.c's, which closes them
				     * in a forked child itself) */
	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t sock_dev;             /* the socket file we bound, so that we */
	ino_t sock_ino;             /* never unlink someone else's */
	double started;             /* CLOCK_MONOTONIC seconds */

	/*
	 * Counters, read by "status" on another thread. The agent thread
	 * counts a request's safe point when pyhot_sp_call() returns, so the
	 * request being answered is not in via_* yet: "status" adds its own.
	 */
	atomic_ulong requests;      /* requests read, the one being answered included */
	atomic_ulong refused;       /* peers refused by SO_PEERCRED */
	atomic_ulong dropped_idle;  /* connections dropped before a whole
				     * request came (silent or slow clients) */
	atomic_ulong via_pending;   /* safe points reached by a pending call */
	atomic_ulong via_gil;       /* ... by a thread of ours taking the GIL */
	atomic_ulong timeouts;      /* no safe point within the timeout */

	pthread_mutex_t lock;       /* guards last_error */
	char last_error[PYHOT_ERR_MSG_MAX];   /* "" when none */
};

extern struct pyhot_agent pyhot_agent;

/* Zero the counters and forget the last error (a new boot). */
void pyhot_agent_counters_reset(void);

/* Remember the message of an error sent to a client (for "status"). */
void pyhot_agent_note_error(const char *msg);

/* Copy the last error into buf (NUL-terminated, "" when none). */
void pyhot_agent_last_error(char *buf, size_t size);

/* Seconds since the agent started. */
double pyhot_agent_uptime(void);

/* Ask the agent thread to stop after the current request: it closes the
 * listening socket and removes the socket file before it replies. Called by
 * the "detach" verb on the agent thread. */
void pyhot_agent_request_stop(void);

#endif /* PYHOT_AGENT_STATE_H */
