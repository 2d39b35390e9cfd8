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
#include "clock.h"
#include "fork_child.h"
#include "pyhot_patch.h"
#include "pyhot_proto.h"
#include "safepoint.h"

/* The thread waits for the safe point and reads files: no Python runs on
 * it. */
#define BASELINE_STACK_SIZE (256u << 10)

/*
 * The baseline of a boot goes through these steps, once (the engine's
 * list, pin, read and keep; pyhot_patch.h). The job lists at the first
 * safe point, the baseline thread pins and reads without the GIL, and
 * the next safe point keeps (pyhot_baseline_take_once()). `pyhot attach`
 * waits for PINNED only.
 */
enum bl_step {
	BL_NONE,
	BL_LISTING,   /* a thread holding the GIL lists */
	BL_LISTED,    /* the pass waits for its files */
	BL_USER_READ, /* ... pinned, the user's read: the others are read now */
	BL_READ,      /* ... waits to be kept */
	BL_KEPT,      /* done for this boot */
};

static atomic_int bl_step;              /* enum bl_step */
static atomic_int bl_files_claimed;     /* a thread pins and reads */
static struct pyhot_baseline_pass *bl_pass;   /* LISTED to KEPT; NULL when the list failed */

static void note(struct pyhot_err *err)
{
	pyhot_agent_note_error(err->msg);
	if (PyErr_Occurred()) {
		PyErr_Clear();   /* the engine must leave none; never let one escape */
	}
}

/* Wait, GIL released when held, until the pass reached step. */
static void wait_step(int step, int gil_held)
{
	PyThreadState *ts = NULL;

	if (atomic_load(&bl_step) >= step) {
		return;
	}
	if (gil_held) {
		ts = PyEval_SaveThread();
	}
	while (atomic_load(&bl_step) < step) {
		usleep(200);
	}
	if (gil_held) {
		PyEval_RestoreThread(ts);
	}
}

/* GIL held: list, unless this boot's pass did (then wait for the list). */
static void list_once(void)
{
	struct pyhot_err err;
	int expected = BL_NONE;

	if (!atomic_compare_exchange_strong(&bl_step, &expected, BL_LISTING)) {
		wait_step(BL_LISTED, 1);
		return;
	}
	pyhot_err_init(&err);
	bl_pass = pyhot_patch_baseline_list(&err);
	if (!bl_pass) {
		note(&err);
	}
	/* The first safe point: children forked from now on get an agent. */
	pyhot_fork_hook_register();
	atomic_store(&bl_step, BL_LISTED);
}

/* No GIL: pin and read the listed files, unless another thread does (then
 * wait for it). The list must be done. */
static void files_once(void)
{
	if (atomic_exchange(&bl_files_claimed, 1)) {
		wait_step(BL_READ, 0);
		return;
	}
	if (bl_pass) {
		pyhot_patch_baseline_pin(bl_pass);
		pyhot_patch_baseline_read(bl_pass, 1);
	}
	atomic_store(&bl_step, BL_USER_READ);
	if (bl_pass) {
		pyhot_patch_baseline_read(bl_pass, 0);
	}
	atomic_store(&bl_step, BL_READ);
}

/* GIL held: keep what was read (the GIL makes it once). */
static void keep_once(void)
{
	struct pyhot_err err;

	if (atomic_load(&bl_step) != BL_READ) {
		return;
	}
	pyhot_err_init(&err);
	if (bl_pass && pyhot_patch_baseline_keep(bl_pass, &err) < 0) {
		note(&err);
	}
	bl_pass = NULL;
	atomic_store(&bl_step, BL_KEPT);
}

void pyhot_baseline_take_once(void)
{
	PyThreadState *ts;

	if (atomic_load(&bl_step) == BL_KEPT) {
		return;
	}
	list_once();
	if (atomic_load(&bl_step) < BL_READ) {
		ts = PyEval_SaveThread();
		files_once();
		PyEval_RestoreThread(ts);
	}
	keep_once();
}

int pyhot_baseline_ready(void)
{
	return atomic_load(&bl_step) >= BL_USER_READ;
}

void pyhot_baseline_atfork_child(void)
{
	int step = atomic_load(&bl_step);

	if (step == BL_LISTING) {
		/* listing with the GIL given away in the parent: start over */
		bl_pass = NULL;
		atomic_store(&bl_files_claimed, 0);
		atomic_store(&bl_step, BL_NONE);
	} else if (step >= BL_LISTED && step < BL_READ) {
		atomic_store(&bl_files_claimed, 0);
		atomic_store(&bl_step, BL_LISTED);
	}
}

int pyhot_baseline_wait_ready(long ms)
{
	double until = pyhot_now() + (double)ms / 1000.0;

	while (!pyhot_baseline_ready() && pyhot_now() < until) {
		usleep(100);
	}
	return pyhot_baseline_ready();
}

/* The job's handler: the baseline is all there is to do. */
static int baseline_handler(const struct pyhot_req *req, struct jsonw *out,
			    struct pyhot_err *err)
{
	list_once();
	return 0;
}

static const struct pyhot_verb baseline_verb = {
	"baseline", PYHOT_VERB_PYTHON, baseline_handler
};

static void *baseline_thread(void *arg)
{
	/* The attach waits for the list: no grace period for the pending
	 * call alone, whatever the default. */
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
	/* Listed (by this job or a request's): the files, without the GIL.
	 * Not listed (no safe point came): the first request does it all. */
	if (atomic_load(&bl_step) >= BL_LISTED) {
		files_once();
	}
	return NULL;
}

void pyhot_baseline_soon(int keep)
{
	pthread_attr_t attr;
	pthread_t t;

	/* A forked child keeps the baseline it inherited (a pass the parent
	 * was taking is taken up again: pyhot_baseline_atfork_child()). */
	if (keep && atomic_load(&bl_step) == BL_KEPT) {
		return;
	}
	/* A new boot (after a detach) records the modules imported while
	 * no agent ran. A pass still under way serves this boot too. */
	if (atomic_load(&bl_step) == BL_KEPT) {
		atomic_store(&bl_files_claimed, 0);
		atomic_store(&bl_step, BL_NONE);
	}
	/* A thread of its own, so that the agent serves requests meanwhile;
	 * whichever safe point comes first takes the baseline, once. */
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, BASELINE_STACK_SIZE);
	/* If that fails, the first safe-point request takes it instead. */
	(void)pthread_create(&t, &attr, baseline_thread, NULL);
	pthread_attr_destroy(&attr);
}
