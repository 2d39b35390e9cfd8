/* verbs.c: the table of verbs the agent serves, and the two small ones that
 * run on the agent thread (see verbs.h and pyhot_proto.h). */
#include <Python.h>

#include "verbs.h"

#include <string.h>
#include <unistd.h>

#include "agent_state.h"
#include "baseline_job.h"
#include "pyhot_proto.h"
#include "pyhot_patch.h"
#include "verb_exec.h"
#include "verb_interrupt.h"
#include "verb_stack.h"
#include "verb_status.h"

/* ping: agent thread, no Python. */
static int verb_ping(const struct pyhot_req *req, struct jsonw *out,
		     struct pyhot_err *err)
{
	long history = pyhot_req_get_ulong(req, "history", 0);
	long wait_ms = pyhot_req_get_ulong(req, "wait_baseline_ms", 0);
	const char *version = Py_GetVersion();

	/* `pyhot attach --history N` on an agent already there */
	if (history > 0) {
		pyhot_patch_set_history_limit(history);
	}
	/* `pyhot attach` waits for the baseline: answering once it is there
	 * saves the command a round trip per poll, and the target the CPU. */
	if (wait_ms > 0) {
		pyhot_baseline_wait_ready(wait_ms < PYHOT_PING_WAIT_MAX_MS ? wait_ms :
					  PYHOT_PING_WAIT_MAX_MS);
	}
	jsonw_key_int(out, "pid", getpid());
	jsonw_key_double(out, "agent_uptime_s", pyhot_agent_uptime());
	jsonw_key_bool(out, "baseline", pyhot_baseline_ready());
	/* Py_GetVersion() runs no Python: it formats compile-time strings into
	 * a static buffer, without the GIL. "3.11.7 (main, ...)" -> "3.11.7". */
	jsonw_key(out, "python_version");
	jsonw_strn(out, version, strcspn(version, " \t\n"));
	return 0;
}

/* detach: agent thread. The agent removes its socket before it replies and
 * its thread ends after; the payload stays loaded for a later boot. Safe-point
 * jobs are not in flight here: the agent reads several connections at once
 * but answers one request at a time, and a job it gave up on was cancelled
 * (or runs on without touching the agent). Connections not answered yet are
 * closed without an answer. */
static int verb_detach(const struct pyhot_req *req, struct jsonw *out,
		       struct pyhot_err *err)
{
	pyhot_agent_request_stop();
	pyhot_patch_watch_stop();   /* the loader's originals go back */
	jsonw_key_bool(out, "detached", 1);
	return 0;
}

const struct pyhot_verb pyhot_verbs[] = {
	{ "ping",    PYHOT_VERB_AGENT,  verb_ping },
	{ "status",  PYHOT_VERB_PYTHON, pyhot_verb_status },
	{ "detach",  PYHOT_VERB_AGENT,  verb_detach },
	{ "refresh", PYHOT_VERB_PYTHON, pyhot_patch_refresh },
	{ "rollback", PYHOT_VERB_PYTHON, pyhot_patch_rollback },
	{ "stack",   PYHOT_VERB_PYTHON, pyhot_verb_stack },
	{ "exec",    PYHOT_VERB_PYTHON, pyhot_verb_exec },
	{ "interrupt", PYHOT_VERB_PYTHON, pyhot_verb_interrupt },
	{ NULL, PYHOT_VERB_AGENT, NULL },
};

const struct pyhot_verb *pyhot_verb_find(const char *name)
{
	const struct pyhot_verb *v;

	for (v = pyhot_verbs; v->name; v++) {
		if (strcmp(v->name, name) == 0) {
			return v;
		}
	}
	return NULL;
}
