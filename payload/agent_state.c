/* agent_state.c: the agent's state and counters (see agent_state.h). */
#include "agent_state.h"

#include <stdio.h>

#include "clock.h"

struct pyhot_agent pyhot_agent = {
	.listen_fd = -1,
	.conn_fd = -1,
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

void pyhot_agent_counters_reset(void)
{
	atomic_store(&pyhot_agent.requests, 0);
	atomic_store(&pyhot_agent.refused, 0);
	atomic_store(&pyhot_agent.dropped_idle, 0);
	atomic_store(&pyhot_agent.via_pending, 0);
	atomic_store(&pyhot_agent.via_gil, 0);
	atomic_store(&pyhot_agent.timeouts, 0);
	pyhot_agent_note_error("");
}

void pyhot_agent_note_error(const char *msg)
{
	int n;

	pthread_mutex_lock(&pyhot_agent.lock);
	n = snprintf(pyhot_agent.last_error, sizeof(pyhot_agent.last_error), "%s", msg);
	if (n > 0) {
		pyhot_err_fit(pyhot_agent.last_error, sizeof(pyhot_agent.last_error),
			      (size_t)n);
	}
	pthread_mutex_unlock(&pyhot_agent.lock);
}

void pyhot_agent_last_error(char *buf, size_t size)
{
	pthread_mutex_lock(&pyhot_agent.lock);
	snprintf(buf, size, "%s", pyhot_agent.last_error);
	pthread_mutex_unlock(&pyhot_agent.lock);
}

double pyhot_agent_uptime(void)
{
	return pyhot_now() - pyhot_agent.started;
}

void pyhot_agent_request_stop(void)
{
	atomic_store(&pyhot_agent.stop_requested, 1);
	/* A boot from now on waits for the thread to finish rather than
	 * report an agent that is going away. */
	atomic_store(&pyhot_agent.state, PYHOT_AGENT_STOPPING);
}
