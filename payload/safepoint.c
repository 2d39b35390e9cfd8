/* safepoint.c: run a handler at a safe point, exactly once (see safepoint.h
 * and docs/safepoints.md). */
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

#include "clock.h"
#include "pyhot_proto.h"
#include "pyutil.h"

enum job_state {
	JOB_PENDING,     /* queued; nobody has claimed it */
	JOB_RUNNING,     /* claimed by the pending call or the GIL thread */
	JOB_DONE,        /* the handler returned; results are in the job */
	JOB_CANCELLED,   /* the caller gave up before anyone claimed it */
};

/*
 * One request's trip to a safe point. Everyone who may still touch the job
 * (the caller of pyhot_sp_call(), a queued pending call, a GIL thread)
 * holds a reference; the last one frees it.
 */
struct sp_job {
	atomic_int refs;
	atomic_int state;              /* enum job_state */
	pid_t pid;                     /* a job inherited through fork() is not ours */
	void (*before)(void);          /* run before the handler, or NULL */
	const struct pyhot_verb *verb;
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
 * thread keeps the GIL; past this many we start no more, and a request
 * waits for its pending call alone (and may time out).
 */
#define SP_MAX_GIL_THREADS 4
static atomic_int live_gil_threads;
static _Atomic int current_via;     /* enum pyhot_sp_via */
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
			      const struct pyhot_req *req, char *frame,
			      void (*before)(void))
{
	struct sp_job *job = calloc(1, sizeof(*job));
	pthread_condattr_t ca;

	if (!job) {
		return NULL;
	}
	atomic_init(&job->refs, 1);
	atomic_init(&job->state, JOB_PENDING);
	job->pid = getpid();
	job->before = before;
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

/* Run the handler with the GIL held; leave the thread's exception state as
 * it was. */
static void job_call(struct sp_job *job)
{
	PyObject *type, *value, *tb;   /* owned: whatever was set before us */
	char exc[1024];
	int prev_via;

	PyErr_Fetch(&type, &value, &tb);
	if (job->before) {
		job->before();
	}
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

/* Set the job's state and wake the caller waiting on it. */
static void job_set_state(struct sp_job *job, int state)
{
	pthread_mutex_lock(&job->lock);
	atomic_store(&job->state, state);
	pthread_cond_broadcast(&job->changed);
	pthread_mutex_unlock(&job->lock);
}

/* Claim the job and run it, unless someone else did or the caller gave up.
 * GIL held. */
static void job_run(struct sp_job *job, enum pyhot_sp_via via)
{
	int expected = JOB_PENDING;

	if (!atomic_compare_exchange_strong(&job->state, &expected, JOB_RUNNING)) {
		return;
	}
	/* Ours alone from here; set before RUNNING is published under the
	 * lock, so that a caller that sees RUNNING sees how it got there. */
	job->via = via;
	job->t_started = pyhot_now();
	/* Under the lock, so that the caller cannot miss the wake-up between
	 * its check and its wait. */
	job_set_state(job, JOB_RUNNING);
	if (via == PYHOT_SP_PENDING_CALL) {
		atomic_store(&main_ident, PyThread_get_thread_ident());
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
 * it: it inherits the caller's mask (the agent thread and the baseline
 * thread it starts are born with every signal blocked). */
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
 * SystemError on a thread state the caller does not have (fixed in 3.9).
 * Its flag, _PyRuntime.ceval.pending.finishing, is at a fixed offset in the
 * 3.8 ABI on x86_64 (computed from 3.8's internal headers;
 * test_status_during_shutdown in tests/integration/test_agent_inproc.py
 * fails without this guard). We read it and leave the pending call out once
 * it is set: racy, as we hold no lock, but the flag is set once, just before
 * the atexit functions, which are what take time. The GIL thread still gets
 * there. docs/safepoints.md tells more.
 */
#define PY38_PENDING_FINISHING_OFFSET 600

static pthread_once_t py38_runtime_once = PTHREAD_ONCE_INIT;
static const char *py38_runtime;   /* 3.8's _PyRuntime, or NULL */

static void py38_runtime_find(void)
{
	if (strncmp(Py_GetVersion(), "3.8.", 4) == 0) {
		py38_runtime = dlsym(RTLD_DEFAULT, "_PyRuntime");
	}
}

/* Whether the interpreter no longer takes pending calls from a thread
 * without the GIL (the agent thread and the baseline thread get here). */
static int pending_calls_closed(void)
{
	pthread_once(&py38_runtime_once, py38_runtime_find);
	return py38_runtime &&
	       *(const volatile int *)(py38_runtime + PY38_PENDING_FINISHING_OFFSET) != 0;
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

/* Wait until the job is claimed or until time `until`, queueing the pending
 * call again every `retry` seconds while the queue was full. */
static void wait_claimed(struct sp_job *job, double until, double retry,
			 int *queued)
{
	double now;

	while (job_state(job) == JOB_PENDING && (now = pyhot_now()) < until) {
		wait_while(job, JOB_PENDING, *queued ? until : earlier(until, now + retry));
		if (!*queued && job_state(job) == JOB_PENDING) {
			*queued = pending_add(job) == 0;
		}
	}
}

/* Give up on a job nobody claimed. 1 when cancelled: a late pending call or
 * GIL thread then sees CANCELLED and only drops its reference. 0 when it
 * was claimed after all. */
static int job_cancel(struct sp_job *job)
{
	int expected = JOB_PENDING;

	return atomic_compare_exchange_strong(&job->state, &expected, JOB_CANCELLED);
}

/* How the claimed job got to its safe point (set before RUNNING was
 * published under the lock). */
static enum pyhot_sp_via job_via(struct sp_job *job)
{
	enum pyhot_sp_via via;

	pthread_mutex_lock(&job->lock);
	via = job->via;
	pthread_mutex_unlock(&job->lock);
	return via;
}

/* The job was claimed: wait up to run_ms for the handler to end and hand
 * its results over. Returns the handler's rc, or -PYHOT_ERR_UNCERTAIN. */
static int job_finish(struct sp_job *job, long run_ms, char **fields,
		      struct pyhot_sp_info *info, struct pyhot_err *err)
{
	pid_t pid = getpid();

	wait_while(job, JOB_RUNNING, pyhot_now() + (double)run_ms / 1000.0);
	info->via = job_via(job);
	if (job_state(job) != JOB_DONE) {
		info->outcome = PYHOT_SP_UNFINISHED;
		pyhot_err_set(err, PYHOT_ERR_UNCERTAIN, 0, pid, job->verb->name,
			      "the handler started (%s) in pid %d but did not "
			      "finish in time", pyhot_sp_via_name(info->via), (int)pid);
		pyhot_err_hint(err, "it may still be running; check the target "
			       "before retrying");
		return -PYHOT_ERR_UNCERTAIN;
	}
	info->outcome = PYHOT_SP_FINISHED;
	info->wait_ms = (job->t_started - job->t_queued) * 1000.0;
	info->run_ms = (job->t_done - job->t_started) * 1000.0;
	*fields = jsonw_finish(&job->out);
	if (job->rc < 0 && err->kind == PYHOT_OK) {
		*err = job->err;
	}
	return job->rc;
}

int pyhot_sp_call(const struct pyhot_verb *verb, const struct pyhot_req *req,
		  char *frame, const struct pyhot_sp_opts *opts, char **fields,
		  struct pyhot_sp_info *info, struct pyhot_err *err)
{
	const char *step = verb->name;
	pid_t pid = getpid();
	struct sp_job *job;
	double t0 = pyhot_now(), deadline, grace;
	long grace_ms = opts->grace_ms < 0 ? PYHOT_PENDING_GRACE_MS : opts->grace_ms;
	long run_ms = opts->run_ms < 0 ? PYHOT_SP_RUN_TIMEOUT_MS : opts->run_ms;
	int queued, rc, gil_rc = 1;

	*fields = NULL;
	memset(info, 0, sizeof(*info));
	info->outcome = PYHOT_SP_NOT_QUEUED;
	info->via = PYHOT_SP_NONE;
	job = job_new(verb, req, frame, opts->before);
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
	deadline = t0 + (double)opts->timeout_ms / 1000.0;
	grace = earlier(t0 + (double)grace_ms / 1000.0, deadline);

	/* Phase 1: the pending call, retried while the queue is full. */
	queued = pending_add(job) == 0;
	wait_claimed(job, grace, 0.001, &queued);
	/* Phase 2: the main thread did not come by; take the GIL ourselves. */
	if (job_state(job) == JOB_PENDING && pyhot_now() < deadline) {
		gil_rc = gil_thread_start(job);
	}
	wait_claimed(job, deadline, 0.010, &queued);

	if (!job_cancel(job)) {
		rc = job_finish(job, run_ms, fields, info, err);
		goto out;
	}
	info->outcome = PYHOT_SP_TIMED_OUT;
	rc = pyhot_err_set(err, PYHOT_ERR_TIMEOUT, 0, pid, step,
			   "no safe point within %ld ms in pid %d: the main thread "
			   "holds the GIL and runs no Python (stuck in C?)%s",
			   opts->timeout_ms, (int)pid,
			   !queued ? "; no pending call could be queued" :
			   gil_rc < 0 ? "; no thread of ours could wait for the GIL" : "");
	pyhot_err_hint(err, "the target is unchanged; retry when the main "
		       "thread runs Python again, or raise timeout_ms");
out:
	job_unref(job);
	return rc;
}
