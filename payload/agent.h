/*
 * agent.h: the agent thread, which serves one request per connection on the
 * socket that pyhot_boot() bound. Private to the payload.
 *
 * Requests and responses are in pyhot_proto.h. On top of its common keys, a
 * safe-point request may carry (all optional, for tests and tuning):
 *   grace_ms        how long the pending call alone is given before the
 *                   GIL thread waits for the GIL too (default
 *                   PYHOT_PENDING_GRACE_MS: none)
 *   run_timeout_ms  bound on a handler that has started (default
 *                   PYHOT_SP_RUN_TIMEOUT_MS); past it the result is
 *                   "uncertain"
 */
#ifndef PYHOT_AGENT_H
#define PYHOT_AGENT_H

/* Body of the agent thread. arg is unused. The state it serves from
 * (listening socket, counters) is pyhot_agent (agent_state.h). */
void *pyhot_agent_main(void *arg);

#endif /* PYHOT_AGENT_H */
