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
static atomic_int bl_hurry;             /* a thread waits for the rest */
static struct pyhot_baseline_pass *bl_pass;   /* LISTED to KEPT; NULL when the list failed */

static void note(struct pyhot_err *err)
{
	pyhot_agent_note_error(err->msg);
	if (PyErr_Occurred()) {
		PyErr_Clear();   /* the engine must leave none; never let one escape */
	}
}

/* Waiters sleep on bl_cond (CLOCK_MONOTONIC) until bl_step moves: a ping
 * that waits for the baseline used to poll every 100 us, and each wake-up
 * took the CPU the reading thread needed. Re-made in a forked child. */
static pthread_mutex_t bl_lock;
static pthread_cond_t bl_cond;
static pthread_once_t bl_once = PTHREAD_ONCE_INIT;

/* After the user's files, the background pass gives the command that
 * waited for them this long to finish (on two CPUs, with a busy main
 * thread, its last millisecond queued behind our reading), unless a
 * thread waits for the rest. */
#define BL_REST_DELAY_MS 10

static void sync_init(void)
{
	pthread_condattr_t ca;

	pthread_mutex_init(&bl_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&bl_cond, &ca);
	pthread_condattr_destroy(&ca);
}

/* Wake every sleeper (sleep_until()) to look again. */
static void wake_all(void)
{
	pthread_once(&bl_once, sync_init);
	pthread_mutex_lock(&bl_lock);
	pthread_cond_broadcast(&bl_cond);
	pthread_mutex_unlock(&bl_lock);
}

static void set_step(int step)
{
	atomic_store(&bl_step, step);
	wake_all();
}

/* Whether the pass reached step (step >= 0), or, with hurry, a thread
 * waits for the rest. Under bl_lock or not: both are atomics. */
static int woken(int step, int hurry)
{
	return (step >= 0 && atomic_load(&bl_step) >= step) ||
	       (hurry && atomic_load(&bl_hurry));
}

/* Sleep until woken(step, hurry) or ms have passed. Returns woken(). */
static int sleep_until(int step, int hurry, long ms)
{
	struct timespec ts;
	double until = pyhot_now() + (double)ms / 1000.0, left;
	int r;

	pthread_once(&bl_once, sync_init);
	pthread_mutex_lock(&bl_lock);
	while (!(r = woken(step, hurry)) && (left = until - pyhot_now()) > 0) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += (time_t)left;
		ts.tv_nsec += (long)((left - (double)(time_t)left) * 1e9);
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&bl_cond, &bl_lock, &ts);
	}
	pthread_mutex_unlock(&bl_lock);
	return r;
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
	/* A pass that lets the command finish before it reads the rest
	 * (files_once()) goes on now. */
	atomic_store(&bl_hurry, 1);
	wake_all();
	while (!sleep_until(step, 0, 100))
		;
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
	set_step(BL_LISTED);
}

/* No GIL: pin and read the listed files, unless another thread does (then
 * wait for it). The list must be done. */
static void files_once(int background)
{
	if (atomic_exchange(&bl_files_claimed, 1)) {
		wait_step(BL_READ, 0);
		return;
	}
	if (bl_pass) {
		pyhot_patch_baseline_pin(bl_pass);
		pyhot_patch_baseline_read(bl_pass, 1);
	}
	set_step(BL_USER_READ);
	if (background) {
		(void)sleep_until(-1, 1, BL_REST_DELAY_MS);
	}
	if (bl_pass) {
		pyhot_patch_baseline_read(bl_pass, 0);
	}
	set_step(BL_READ);
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
	set_step(BL_KEPT);
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
		files_once(0);
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

	/* The lock may have been held by a thread the child does not have. */
	sync_init();
	atomic_store(&bl_hurry, 0);
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
	return sleep_until(BL_USER_READ, 0, ms < 0 ? 0 : ms);
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
		files_once(1);
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
		atomic_store(&bl_hurry, 0);
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
