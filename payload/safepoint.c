/* safepoint.c: run a handler at a safe point, exactly once (see safepoint.h). */
#include <Python.h>

#include "safepoint.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "pyhot_patch.h"
#include "pyhot_proto.h"
#include "pyutil.h"

enum job_state {
	JOB_PENDING,     /* queued; nobody has claimed it */
	JOB_RUNNING,     /* claimed by the pending call or the GIL thread */
	JOB_DONE,        /* the handler returned; results are in the job */
	JOB_CANCELLED,   /* the agent gave up before anyone claimed it */
};

/*
 * One request's trip to a safe point. Everyone who may still touch the job
 * (the agent thread, a queued pending call, a GIL thread) holds a
 * reference; the last one frees it.
 */
struct sp_job {
	atomic_int refs;
	atomic_int state;              /* enum job_state */
	pid_t pid;                     /* a job inherited through fork() is not ours */
	const struct pyhot_verb *verb; /* &baseline_verb: the baseline only */
	struct pyhot_req req;          /* points into frame */
	char *frame;
	struct jsonw out;              /* the handler's fields */
	struct pyhot_err err;
	int rc;
	enum pyhot_sp_via via;
	double t_queued, t_started, t_done;
	pthread_mutex_t lock;
	pthread_cond_t changed;        /* RUNNING and DONE are signalled */
};

/*
 * GIL threads that are still alive. One blocks for as long as the main
 * thread keeps the GIL; past this many we stop adding more and report
 * timeouts.
 */
#define SP_MAX_GIL_THREADS 4
/* How long a handler that has started is waited for, by default; request
 * key run_timeout_ms. */
#define SP_RUN_TIMEOUT_MS 60000

static atomic_int live_gil_threads;
static atomic_int baseline_done;    /* taken, or being taken */
static atomic_int baseline_ready;   /* taken */
static _Atomic int current_via;            /* enum pyhot_sp_via */
static atomic_ulong main_ident;

const char *pyhot_sp_via_name(enum pyhot_sp_via via)
{
	switch (via) {
	case PYHOT_SP_PENDING_CALL: return "pending-call";
	case PYHOT_SP_GIL_THREAD:   return "gil-thread";
	case PYHOT_SP_NONE:         break;
	}
	return "none";
}

enum pyhot_sp_via pyhot_sp_current_via(void)
{
	return (enum pyhot_sp_via)atomic_load(&current_via);
}

unsigned long pyhot_sp_main_ident(void)
{
	return atomic_load(&main_ident);
}

void pyhot_sp_atfork_child(void)
{
	atomic_store(&live_gil_threads, 0);
	atomic_store(&current_via, PYHOT_SP_NONE);
}

static struct sp_job *job_new(const struct pyhot_verb *verb,
			      const struct pyhot_req *req, char *frame)
{
	struct sp_job *job = calloc(1, sizeof(*job));
	pthread_condattr_t ca;

	if (!job) {
		return NULL;
	}
	atomic_init(&job->refs, 1);
	atomic_init(&job->state, JOB_PENDING);
	job->pid = getpid();
	job->verb = verb;
	if (req) {
		job->req = *req;
	}
	job->frame = frame;
	jsonw_init(&job->out);
	pyhot_err_init(&job->err);
	pthread_mutex_init(&job->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&job->changed, &ca);
	pthread_condattr_destroy(&ca);
	job->t_queued = pyhot_now();
	return job;
}

static void job_ref(struct sp_job *job)
{
	atomic_fetch_add(&job->refs, 1);
}

static void job_unref(struct sp_job *job)
{
	if (atomic_fetch_sub(&job->refs, 1) != 1) {
		return;
	}
	pthread_cond_destroy(&job->changed);
	pthread_mutex_destroy(&job->lock);
	jsonw_release(&job->out);
	free(job->frame);
	free(job);
}

/* Record the engine's baseline once per boot. GIL held. */
static void baseline_maybe(void)
{
	struct pyhot_err err;

	if (atomic_exchange(&baseline_done, 1)) {
		return;
	}
	pyhot_err_init(&err);
	if (pyhot_patch_baseline_take(&err) < 0) {
		pyhot_agent_note_error(err.msg);
	}
	if (PyErr_Occurred()) {
		PyErr_Clear();   /* the engine must leave none; never let one escape */
	}
	atomic_store(&baseline_ready, 1);
}

int pyhot_sp_baseline_ready(void)
{
	return atomic_load(&baseline_ready);
}

/* The baseline job: job_call() takes the baseline before any handler, so
 * the handler itself has nothing to do. */
static int baseline_noop(const struct pyhot_req *req, struct jsonw *out,
			 struct pyhot_err *err)
{
	return 0;
}

static const struct pyhot_verb baseline_verb = {
	"baseline", PYHOT_VERB_PYTHON, baseline_noop
};

/* Whether the job is a request's, for the agent's counters: the baseline
 * job of the boot is not (status then adds up: via_* + timeouts <=
 * requests). */
static int job_counted(const struct sp_job *job)
{
	return job->verb != &baseline_verb;
}

/* Run the handler with the GIL held; leave the thread's exception state as
 * it was. */
static void job_call(struct sp_job *job)
{
	PyObject *type, *value, *tb;   /* owned: whatever was set before us */
	char exc[1024];
	int prev_via;

	PyErr_Fetch(&type, &value, &tb);
	baseline_maybe();
	prev_via = atomic_exchange(&current_via, (int)job->via);
	job->rc = job->verb->fn(&job->req, &job->out, &job->err);
	atomic_store(&current_via, prev_via);
	pyhot_py_exc_take(exc, sizeof(exc));
	if (exc[0]) {
		/* A handler bug: report it, never raise it into the host. */
		job->rc = pyhot_err_set(&job->err, PYHOT_ERR_FAILED, 0, getpid(),
					job->verb->name,
					"unhandled python exception: %s", exc);
	} else if (job->rc < 0 && job->err.kind == PYHOT_OK) {
		job->rc = pyhot_err_set(&job->err, PYHOT_ERR_FAILED, 0, getpid(),
					job->verb->name, "failed without a message");
	}
	PyErr_Restore(type, value, tb);
}

/* Set the job's state and wake the agent thread waiting on it. */
static void job_set_state(struct sp_job *job, int state)
{
	pthread_mutex_lock(&job->lock);
	atomic_store(&job->state, state);
	pthread_cond_broadcast(&job->changed);
	pthread_mutex_unlock(&job->lock);
}

/* Claim the job and run it, unless someone else did or the agent gave up.
 * GIL held. */
static void job_run(struct sp_job *job, enum pyhot_sp_via via)
{
	int expected = JOB_PENDING;

	if (!atomic_compare_exchange_strong(&job->state, &expected, JOB_RUNNING)) {
		return;
	}
	/* Under the lock, so that the agent cannot miss the wake-up between
	 * its check and its wait. */
	job_set_state(job, JOB_RUNNING);
	job->via = via;
	job->t_started = pyhot_now();
	if (via == PYHOT_SP_PENDING_CALL) {
		atomic_store(&main_ident, PyThread_get_thread_ident());
	}
	if (job_counted(job)) {
		atomic_fetch_add(via == PYHOT_SP_PENDING_CALL ? &pyhot_agent.via_pending
							      : &pyhot_agent.via_gil, 1);
	}
	job_call(job);
	job->t_done = pyhot_now();
	job_set_state(job, JOB_DONE);
}

/*
 * The pending call: runs on the main thread, GIL held, from the eval loop.
 * Never raises (returning -1 would raise into the host's code).
 */
static int sp_pending(void *arg)
{
	int saved_errno = errno;
	struct sp_job *job = arg;

	/* A job queued before fork() belongs to the parent: its lock may be
	 * held by a thread the child does not have. Leak it. */
	if (job->pid == getpid()) {
		if (Py_IsInitialized()) {
			job_run(job, PYHOT_SP_PENDING_CALL);
		}
		job_unref(job);
	}
	errno = saved_errno;
	return 0;
}

/* The GIL thread: takes the GIL when the main thread has released it. It may
 * block for as long as someone else holds the GIL, and during finalization
 * take_gil may end it right there (the job's reference is then leaked). */
static void *sp_gil_thread(void *arg)
{
	struct sp_job *job = arg;
	PyGILState_STATE g;

	pthread_setname_np(pthread_self(), "pyhot-gil");
	if (atomic_load(&job->state) == JOB_PENDING && Py_IsInitialized()) {
		g = PyGILState_Ensure();
		job_run(job, PYHOT_SP_GIL_THREAD);
		PyGILState_Release(g);
	}
	atomic_fetch_sub(&live_gil_threads, 1);
	job_unref(job);
	return NULL;
}

/* Start a GIL thread for job. Returns 0 or -errno. Signals stay blocked in
 * it: it inherits the agent thread's mask (every signal blocked). */
static int gil_thread_start(struct sp_job *job)
{
	pthread_attr_t attr;
	pthread_t t;
	int rc;

	if (atomic_fetch_add(&live_gil_threads, 1) >= SP_MAX_GIL_THREADS) {
		atomic_fetch_sub(&live_gil_threads, 1);
		return -EAGAIN;
	}
	job_ref(job);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* The default stack size: the handler runs Python (a refresh executes
	 * module bodies and decorators), as deep as a threading.Thread would. */
	rc = pthread_create(&t, &attr, sp_gil_thread, job);
	pthread_attr_destroy(&attr);
	if (rc) {
		atomic_fetch_sub(&live_gil_threads, 1);
		job_unref(job);
		return -rc;
	}
	return 0;
}

/*
 * CPython 3.8 aborts the process ("Fatal Python error") when
 * Py_AddPendingCall() is called without the GIL once shutdown has begun
 * (_Py_FinishPendingCalls() ran, before the atexit functions): it builds a
 * SystemError on a thread state the caller does not have (fixed in 3.9a6,
 * python/cpython gh-81308). Its flag, _PyRuntime.ceval.pending.finishing,
 * is at a fixed offset in the 3.8 ABI on x86_64 (computed from 3.8's
 * internal headers; test_status_during_shutdown in
 * tests/integration/test_agent_inproc.py fails without this guard). We read it and leave the pending call out once it is set: racy,
 * as we hold no lock, but the flag is set once, just before the atexit
 * functions, which are what take time. The GIL thread still gets there.
 */
#define PY38_PENDING_FINISHING_OFFSET 600

static int pending_calls_closed(void)
{
	static const char *runtime;     /* 3.8's _PyRuntime, or NULL */
	static int checked;

	if (!checked) {
		if (strncmp(Py_GetVersion(), "3.8.", 4) == 0) {
			runtime = dlsym(RTLD_DEFAULT, "_PyRuntime");
		}
		checked = 1;   /* only the agent thread gets here */
	}
	return runtime &&
	       *(const volatile int *)(runtime + PY38_PENDING_FINISHING_OFFSET) != 0;
}

/* Queue the pending call; 0, or -1 when the queue is full (or Python is not
 * there, or is shutting down). */
static int pending_add(struct sp_job *job)
{
	if (pending_calls_closed()) {
		return -1;
	}
	job_ref(job);
	if (Py_IsInitialized() && Py_AddPendingCall(sp_pending, job) == 0) {
		return 0;
	}
	job_unref(job);
	return -1;
}

/* Wait while the job is in state `from` (PENDING or RUNNING), at most until
 * time t (CLOCK_MONOTONIC seconds). Both transitions are signalled. */
static void wait_while(struct sp_job *job, int from, double t)
{
	struct timespec ts;

	ts.tv_sec = (time_t)t;
	ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_nsec = 999999999L;
	}
	pthread_mutex_lock(&job->lock);
	while (atomic_load(&job->state) == from &&
	       pthread_cond_timedwait(&job->changed, &job->lock, &ts) != ETIMEDOUT) {
		;
	}
	pthread_mutex_unlock(&job->lock);
}

/* The payload links libc only: no fmin() from libm. */
static double earlier(double a, double b)
{
	return a < b ? a : b;
}

static int job_state(struct sp_job *job)
{
	return atomic_load(&job->state);
}

int pyhot_sp_call(const struct pyhot_verb *verb, const struct pyhot_req *req,
		  char *frame, long timeout_ms, char **fields,
		  struct pyhot_sp_info *info, struct pyhot_err *err)
{
	const char *step = verb->name;
	pid_t pid = getpid();
	struct sp_job *job;
	double t0 = pyhot_now(), deadline, grace, now;
	long run_ms, grace_ms;
	int queued, expected, rc, gil_rc = 1;

	*fields = NULL;
	memset(info, 0, sizeof(*info));
	run_ms = pyhot_req_get_ulong(req, "run_timeout_ms", SP_RUN_TIMEOUT_MS);
	grace_ms = pyhot_req_get_ulong(req, "grace_ms", PYHOT_PENDING_GRACE_MS);
	if (grace_ms < 0) {
		grace_ms = PYHOT_PENDING_GRACE_MS;
	}
	if (verb == &baseline_verb) {
		/* The attach waits for it: take the GIL at once rather than
		 * after the main thread's grace period. */
		grace_ms = 0;
	}
	job = job_new(verb, req, frame);
	if (!job) {
		free(frame);
		return pyhot_err_set(err, PYHOT_ERR_FAILED, ENOMEM, pid, step,
				     "out of memory in pid %d", (int)pid);
	}
	if (!Py_IsInitialized()) {
		job_unref(job);
		return pyhot_err_set(err, PYHOT_ERR_FAILED, 0, pid, step,
				     "python is not initialized in pid %d (finalizing?)",
				     (int)pid);
	}
	deadline = t0 + (double)timeout_ms / 1000.0;
	grace = t0 + (double)grace_ms / 1000.0;
	if (grace > deadline) {
		grace = deadline;
	}

	/* Phase 1: the pending call, retried while the queue is full. */
	queued = pending_add(job) == 0;
	while (job_state(job) == JOB_PENDING && (now = pyhot_now()) < grace) {
		wait_while(job, JOB_PENDING, queued ? grace : earlier(grace, now + 0.001));
		if (!queued && job_state(job) == JOB_PENDING) {
			queued = pending_add(job) == 0;
		}
	}
	/* Phase 2: the main thread did not come by; take the GIL ourselves. */
	if (job_state(job) == JOB_PENDING && pyhot_now() < deadline) {
		gil_rc = gil_thread_start(job);
	}
	while (job_state(job) == JOB_PENDING && (now = pyhot_now()) < deadline) {
		wait_while(job, JOB_PENDING, queued ? deadline : earlier(deadline, now + 0.010));
		if (!queued && job_state(job) == JOB_PENDING) {
			queued = pending_add(job) == 0;
		}
	}

	expected = JOB_PENDING;
	if (atomic_compare_exchange_strong(&job->state, &expected, JOB_CANCELLED)) {
		/* Nobody will run it now: a late pending call or GIL thread
		 * sees CANCELLED and only drops its reference. */
		if (job_counted(job)) {
			atomic_fetch_add(&pyhot_agent.timeouts, 1);
		}
		pyhot_err_set(err, PYHOT_ERR_TIMEOUT, 0, pid, step,
			      "no safe point within %ld ms in pid %d: the main thread "
			      "holds the GIL and runs no Python (stuck in C?)%s",
			      timeout_ms, (int)pid,
			      !queued ? "; no pending call could be queued" :
			      gil_rc < 0 ? "; no thread of ours could wait for the GIL" : "");
		pyhot_err_hint(err, "the target is unchanged; retry when the main "
			       "thread runs Python again, or raise timeout_ms");
		rc = -PYHOT_ERR_TIMEOUT;
		goto out;
	}

	/* Claimed: the handler runs or ran. Give it run_timeout_ms to end. */
	wait_while(job, JOB_RUNNING,
		   pyhot_now() + (double)(run_ms < 0 ? SP_RUN_TIMEOUT_MS : run_ms) / 1000.0);
	if (job_state(job) != JOB_DONE) {
		rc = pyhot_err_set(err, PYHOT_ERR_UNCERTAIN, 0, pid, step,
				   "the handler started (%s) in pid %d but did not "
				   "finish in time", pyhot_sp_via_name(job->via),
				   (int)pid);
		pyhot_err_hint(err, "it may still be running; check the target "
			       "before retrying");
		goto out;
	}

	info->via = job->via;
	info->wait_ms = (job->t_started - job->t_queued) * 1000.0;
	info->run_ms = (job->t_done - job->t_started) * 1000.0;
	*fields = jsonw_finish(&job->out);
	rc = job->rc;
	if (rc < 0 && err->kind == PYHOT_OK) {
		*err = job->err;
	}
out:
	job_unref(job);
	return rc;
}

static void *baseline_thread(void *arg)
{
	struct pyhot_sp_info info;
	struct pyhot_req req;
	struct pyhot_err err;
	char *fields = NULL;

	pthread_setname_np(pthread_self(), "pyhot-baseline");
	memset(&req, 0, sizeof(req));
	req.verb = baseline_verb.name;
	pyhot_err_init(&err);
	if (pyhot_sp_call(&baseline_verb, &req, NULL, PYHOT_DEFAULT_TIMEOUT_MS,
			  &fields, &info, &err) < 0) {
		pyhot_agent_note_error(err.msg);
	}
	free(fields);
	return NULL;
}

void pyhot_sp_baseline_soon(void)
{
	pthread_attr_t attr;
	pthread_t t;

	atomic_store(&baseline_done, 0);
	atomic_store(&baseline_ready, 0);
	/* A thread of its own, so that the agent serves requests meanwhile;
	 * whichever safe point comes first takes the baseline, once. */
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256u << 10);
	/* If that fails, the first safe-point request takes it instead. */
	(void)pthread_create(&t, &attr, baseline_thread, NULL);
	pthread_attr_destroy(&attr);
}
