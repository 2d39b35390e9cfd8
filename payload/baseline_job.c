/* baseline_job.c: the patch engine's baseline, taken once per boot at the
 * first safe point (see baseline_job.h). */
#include <Python.h>

#include "baseline_job.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent_state.h"
#include "fork_child.h"
#include "pyhot_patch.h"
#include "pyhot_proto.h"
#include "safepoint.h"

/* The thread only waits for the safe point: no Python runs on it. */
#define BASELINE_STACK_SIZE (256u << 10)

static atomic_int baseline_started;   /* taken, or being taken */
static atomic_int baseline_taken;

/* Take the baseline unless taken. wait: when another thread is taking it
 * (it reads the files with the GIL released), wait for it, GIL released
 * too, so that no request runs against a half-taken baseline. The job of
 * pyhot_baseline_soon() does not wait: a job whose handler gave the GIL
 * away could finish in the middle of the request's handler. */
static void take(int wait)
{
	struct pyhot_err err;

	if (atomic_exchange(&baseline_started, 1)) {
		if (wait && !atomic_load(&baseline_taken)) {
			Py_BEGIN_ALLOW_THREADS
			while (!atomic_load(&baseline_taken)) {
				usleep(1000);
			}
			Py_END_ALLOW_THREADS
		}
		return;
	}
	pyhot_err_init(&err);
	if (pyhot_patch_baseline_take(&err) < 0) {
		pyhot_agent_note_error(err.msg);
	}
	if (PyErr_Occurred()) {
		PyErr_Clear();   /* the engine must leave none; never let one escape */
	}
	pyhot_fork_hook_register();
	atomic_store(&baseline_taken, 1);
}

void pyhot_baseline_take_once(void)
{
	take(1);
}

int pyhot_baseline_ready(void)
{
	return atomic_load(&baseline_taken);
}

/* The job's handler: the baseline is all there is to do. */
static int baseline_handler(const struct pyhot_req *req, struct jsonw *out,
			    struct pyhot_err *err)
{
	take(0);
	return 0;
}

static const struct pyhot_verb baseline_verb = {
	"baseline", PYHOT_VERB_PYTHON, baseline_handler
};

static void *baseline_thread(void *arg)
{
	/* The attach waits for it: no grace period for the pending call
	 * alone, whatever the default. */
	const struct pyhot_sp_opts opts = {
		.timeout_ms = PYHOT_DEFAULT_TIMEOUT_MS,
		.grace_ms = 0,
		.run_ms = PYHOT_SP_RUN_TIMEOUT_MS,
		.before = NULL,
	};
	struct pyhot_sp_info info;
	struct pyhot_req req;
	struct pyhot_err err;
	char *fields = NULL;

	pthread_setname_np(pthread_self(), "pyhot-baseline");
	memset(&req, 0, sizeof(req));
	req.verb = baseline_verb.name;
	pyhot_err_init(&err);
	if (pyhot_sp_call(&baseline_verb, &req, NULL, &opts, &fields, &info,
			  &err) < 0) {
		pyhot_agent_note_error(err.msg);
	}
	free(fields);
	return NULL;
}

void pyhot_baseline_soon(int keep)
{
	pthread_attr_t attr;
	pthread_t t;

	if (keep && atomic_load(&baseline_taken)) {
		return;
	}
	atomic_store(&baseline_started, 0);
	atomic_store(&baseline_taken, 0);
	/* A thread of its own, so that the agent serves requests meanwhile;
	 * whichever safe point comes first takes the baseline, once. */
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, BASELINE_STACK_SIZE);
	/* If that fails, the first safe-point request takes it instead. */
	(void)pthread_create(&t, &attr, baseline_thread, NULL);
	pthread_attr_destroy(&attr);
}
