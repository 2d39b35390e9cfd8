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
#include "switch_interval.h"

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
	struct sp_job *gil_next;       /* on the GIL thread's list; gil_waiter.lock */
	int on_gil_list;               /* gil_waiter.lock */
	unsigned long gil_round;       /* the GIL thread's rounds begun when listed */
	int gil_busy;                  /* listed while a round was under way */
	atomic_int interval_short;     /* the switch interval is short for it */
	void (*before)(void);          /* run before the handler, or NULL */
	const struct pyhot_verb *verb;
	struct pyhot_req req;          /* points into frame */
	char *frame;
	struct jsonw out;              /* the handler's fields */
	struct pyhot_err err;
	int rc;
	enum pyhot_sp_via via;
	double t_queued, t_started, t_done;
	double claim_by;               /* the caller waits for a claim until then */
	double run_s;                  /* and for the handler that long from its start */
	pthread_mutex_t lock;
	pthread_cond_t changed;        /* DONE is signalled; RUNNING when the caller
	                                * must count run_s before claim_by (job_run()) */
};

/*
 * The GIL thread: one per process, started by the first job that needs it
 * and kept for the next ones, with its thread state (PyGILState_Ensure once,
 * then PyEval_RestoreThread / PyEval_SaveThread per round). Jobs are handed
 * to it through a list; each job on the list holds a reference. It may
 * block for as long as the main thread holds the GIL, and during
 * finalization take_gil may end it: its thread-specific value's destructor
 * then marks it gone, and the next job starts another.
 */
#define SP_MAX_GIL_JOBS 32   /* more waiting jobs: the main thread is stuck */

static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;            /* a job was handed over */
	struct sp_job *head;            /* jobs handed over, oldest first */
	int njobs;
	int alive;                      /* the thread runs (or is starting) */
	unsigned long rounds;           /* times it began waiting for the GIL */
	int in_round;                   /* waiting for the GIL or holding it */
} gil_waiter = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0, 0, 0, 0 };

/*
 * After a round that ran nothing (the main thread had claimed its jobs: it
 * runs Python, and we took the GIL from it), the jobs handed over during
 * that round are left to the main thread this long before we wait for the
 * GIL again: it runs their pending calls as soon as it has the GIL back.
 * Without it we would take the GIL again first, and a busy main thread's
 * request would be answered by us. Generous, for a loaded machine where
 * the main thread waits long to be scheduled: it is paid only when the
 * main thread stops running Python between two requests.
 */
#define SP_GIL_YIELD_S 0.1

static pthread_once_t gil_key_once = PTHREAD_ONCE_INIT;
static pthread_key_t gil_key;        /* set on the GIL thread: its exit is seen */
static int gil_key_rc;

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
	/* The jobs on the list are the parent's: leaked, never touched. */
	pthread_mutex_init(&gil_waiter.lock, NULL);
	pthread_cond_init(&gil_waiter.wake, NULL);
	gil_waiter.head = NULL;
	gil_waiter.njobs = 0;
	gil_waiter.alive = 0;
	gil_waiter.in_round = 0;
	pyhot_switch_interval_atfork_child();
	atomic_store(&current_via, PYHOT_SP_NONE);
	/* The thread that forked is the child's main thread now. */
	atomic_store(&main_ident, 0);
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

/* Put the switch interval back for job, once: the claimer does it, or the
 * caller when nobody claimed the job in time. */
static void job_interval_restore(struct sp_job *job)
{
	if (atomic_exchange(&job->interval_short, 0)) {
		pyhot_switch_interval_restore();
	}
}

/* Set the job's state and wake the caller waiting on it. */
static void job_set_state(struct sp_job *job, int state)
{
	pthread_mutex_lock(&job->lock);
	atomic_store(&job->state, state);
	pthread_cond_broadcast(&job->changed);
	pthread_mutex_unlock(&job->lock);
}

/* Wait while the job is in state `from` (PENDING or RUNNING), at most until
 * time t (CLOCK_MONOTONIC seconds). DONE is signalled, RUNNING when
 * job_run() says so. */
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

/* Claim the job and run it, unless someone else did or the caller gave up.
 * GIL held. 1 when it ran here. */
static int job_run(struct sp_job *job, enum pyhot_sp_via via)
{
	int expected = JOB_PENDING, claimed;

	/* Claimed under the lock, how and when set in the same hold: a
	 * caller that sees RUNNING and takes the lock sees them. */
	pthread_mutex_lock(&job->lock);
	claimed = atomic_compare_exchange_strong(&job->state, &expected, JOB_RUNNING);
	if (claimed) {
		job->via = via;
		job->t_started = pyhot_now();
	}
	pthread_mutex_unlock(&job->lock);
	if (!claimed) {
		return 0;
	}
	/* The program's own interval is back before its code can look. */
	job_interval_restore(job);
	pyhot_switch_interval_learn();
	/* The caller is woken only when its run window ends before the
	 * deadline it sleeps to (a short run_timeout_ms): otherwise it sleeps
	 * until DONE or that deadline, and counts the window from t_started
	 * then (job_finish()). A wake-up costs the agent thread and this one
	 * tens of microseconds each on a virtual machine, a tenth of a small
	 * refresh. */
	if (job->t_started + job->run_s < job->claim_by) {
		job_set_state(job, JOB_RUNNING);
	}
	if (via == PYHOT_SP_PENDING_CALL) {
		atomic_store(&main_ident, PyThread_get_thread_ident());
	}
	job_call(job);
	job->t_done = pyhot_now();
	job_set_state(job, JOB_DONE);
	return 1;
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

/* The GIL thread's end (normal or in take_gil at finalization): the next
 * job starts another. The jobs it held are leaked. */
static void gil_thread_gone(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&gil_waiter.lock);
	gil_waiter.alive = 0;
	gil_waiter.in_round = 0;
	pthread_mutex_unlock(&gil_waiter.lock);
}

static void gil_key_create(void)
{
	gil_key_rc = pthread_key_create(&gil_key, gil_thread_gone);
}

/* Unlink job from the GIL thread's list; 1 when it was on it (its
 * reference is then the caller's to drop). gil_waiter.lock held. */
static int gil_list_unlink(struct sp_job *job)
{
	struct sp_job **p;

	if (!job->on_gil_list) {
		return 0;
	}
	for (p = &gil_waiter.head; *p != job; p = &(*p)->gil_next) {
		;
	}
	*p = job->gil_next;
	job->gil_next = NULL;
	job->on_gil_list = 0;
	gil_waiter.njobs--;
	return 1;
}

/* The oldest job handed over before round `round` began, or NULL; the
 * reference becomes the caller's. */
static struct sp_job *gil_list_pop(unsigned long round)
{
	struct sp_job *job;

	pthread_mutex_lock(&gil_waiter.lock);
	job = gil_waiter.head;
	if (job && job->gil_round >= round) {
		job = NULL;
	}
	if (job) {
		(void)gil_list_unlink(job);
	}
	pthread_mutex_unlock(&gil_waiter.lock);
	return job;
}

/* Sleep until a job is handed over, then begin a round; returns its
 * number. */
static unsigned long gil_list_wait(void)
{
	unsigned long round;

	pthread_mutex_lock(&gil_waiter.lock);
	while (!gil_waiter.head) {
		pthread_cond_wait(&gil_waiter.wake, &gil_waiter.lock);
	}
	round = ++gil_waiter.rounds;
	gil_waiter.in_round = 1;
	pthread_mutex_unlock(&gil_waiter.lock);
	return round;
}

static void gil_round_end(void)
{
	pthread_mutex_lock(&gil_waiter.lock);
	gil_waiter.in_round = 0;
	pthread_mutex_unlock(&gil_waiter.lock);
}

/* Leave the first job to the main thread a moment (SP_GIL_YIELD_S) when it
 * was handed over during the previous round. */
static void gil_yield(void)
{
	struct sp_job *job;

	pthread_mutex_lock(&gil_waiter.lock);
	job = gil_waiter.head;
	if (job && job->gil_busy) {
		job_ref(job);   /* its caller may take it back meanwhile */
	} else {
		job = NULL;
	}
	pthread_mutex_unlock(&gil_waiter.lock);
	if (job) {
		wait_while(job, JOB_PENDING, pyhot_now() + SP_GIL_YIELD_S);
		job_unref(job);
	}
}

/* Drop the round's jobs without running them (Python is gone). */
static void gil_list_drop(unsigned long round)
{
	struct sp_job *job;

	while ((job = gil_list_pop(round))) {
		job_unref(job);
	}
}

/*
 * With the GIL held: run the jobs handed over before this round began
 * (those someone else claimed or the caller cancelled are only dropped).
 * A job handed over while we waited for the GIL, or held it, waits for the
 * next round: we may have got the GIL only because a busy main thread
 * dropped it after running its pending call, and that main thread would
 * run the new job's pending call as soon as it has the GIL back.
 */
static int gil_list_run(unsigned long round)
{
	struct sp_job *job;
	int ran = 0;

	while ((job = gil_list_pop(round))) {
		if (job->pid == getpid()) {
			ran += job_run(job, PYHOT_SP_GIL_THREAD);
		}
		job_unref(job);
	}
	return ran;
}

/*
 * The GIL thread's body. It waits for the GIL as soon as a job is handed
 * over: with the main thread blocked the GIL is free and it runs the job at
 * once; with the main thread running Python, its wait makes CPython ask the
 * main thread to drop the GIL after one switch interval, and the main
 * thread runs the pending call first (the job is then claimed here already).
 */
static void *sp_gil_thread(void *arg)
{
	PyThreadState *ts = NULL;   /* ours, kept from round to round */
	unsigned long round;
	int idle = 0;               /* the last round ran no job */

	(void)arg;
	pthread_setname_np(pthread_self(), "pyhot-gil");
	(void)pthread_setspecific(gil_key, &gil_waiter);
	for (;;) {
		round = gil_list_wait();
		if (idle) {
			gil_yield();
		}
		if (!Py_IsInitialized()) {
			gil_list_drop(round);
			gil_round_end();
			continue;
		}
		/* Either may end this thread when the interpreter finalizes. */
		if (ts) {
			PyEval_RestoreThread(ts);
		} else {
			(void)PyGILState_Ensure();
		}
		idle = gil_list_run(round) == 0;
		ts = PyEval_SaveThread();
		gil_round_end();
	}
	return NULL;
}

/* Start the GIL thread (gil_waiter.lock held). 0 or -errno. Signals stay
 * blocked in it: it inherits the caller's mask (the agent thread and the
 * baseline thread it starts are born with every signal blocked). */
static int gil_thread_start(void)
{
	pthread_attr_t attr;
	pthread_t t;
	int rc;

	pthread_once(&gil_key_once, gil_key_create);
	if (gil_key_rc) {
		return -gil_key_rc;
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* The default stack size: the handler runs Python (a refresh executes
	 * module bodies and decorators), as deep as a threading.Thread would. */
	rc = pthread_create(&t, &attr, sp_gil_thread, NULL);
	pthread_attr_destroy(&attr);
	if (rc) {
		return -rc;
	}
	gil_waiter.alive = 1;
	return 0;
}

/* Hand job to the GIL thread, starting it when there is none. 0, or
 * -errno when it could not start or too many jobs wait already. */
static int gil_give(struct sp_job *job)
{
	int rc = 0;
	struct sp_job **p;

	pthread_mutex_lock(&gil_waiter.lock);
	if (gil_waiter.njobs >= SP_MAX_GIL_JOBS) {
		rc = -EAGAIN;
	} else if (!gil_waiter.alive) {
		rc = gil_thread_start();
	}
	if (rc == 0) {
		job_ref(job);
		job->gil_round = gil_waiter.rounds;
		job->gil_busy = gil_waiter.in_round;
		for (p = &gil_waiter.head; *p; p = &(*p)->gil_next) {
			;
		}
		*p = job;
		job->on_gil_list = 1;
		gil_waiter.njobs++;
		pthread_cond_signal(&gil_waiter.wake);
	}
	pthread_mutex_unlock(&gil_waiter.lock);
	return rc;
}

/* Take job back from the GIL thread's list if it is still there (the
 * caller is done waiting). */
static void gil_take_back(struct sp_job *job)
{
	int was_listed;

	pthread_mutex_lock(&gil_waiter.lock);
	was_listed = gil_list_unlink(job);
	pthread_mutex_unlock(&gil_waiter.lock);
	if (was_listed) {
		job_unref(job);
	}
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

/* When the claimed job's handler started (set under the lock with the
 * claim: job_run()). */
static double job_started_at(struct sp_job *job)
{
	double t;

	pthread_mutex_lock(&job->lock);
	t = job->t_started;
	pthread_mutex_unlock(&job->lock);
	return t;
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
static int job_finish(struct sp_job *job, double t0, long run_ms, char **fields,
		      struct pyhot_sp_info *info, struct pyhot_err *err)
{
	pid_t pid = getpid();

	/* The run window counts from the handler's start, which the caller
	 * may have slept through (job_run()). */
	wait_while(job, JOB_RUNNING, job_started_at(job) + (double)run_ms / 1000.0);
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
	info->total_ms = (pyhot_now() - t0) * 1000.0;
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
	/* Before anyone can claim it (pending_add() publishes it). */
	job->claim_by = deadline;
	job->run_s = (double)run_ms / 1000.0;

	/* Phase 1: the pending call, retried while the queue is full; alone
	 * for the grace period, if there is one (by default there is none). */
	queued = pending_add(job) == 0;
	wait_claimed(job, grace, 0.001, &queued);
	/* Phase 2: our GIL thread waits for the GIL too, with the switch
	 * interval short: whichever of it and the main thread comes first
	 * claims the job. */
	if (job_state(job) == JOB_PENDING && pyhot_now() < deadline) {
		pyhot_switch_interval_learn_early();
		pyhot_switch_interval_lower();
		atomic_store(&job->interval_short, 1);
		gil_rc = gil_give(job);
	}
	wait_claimed(job, deadline, 0.010, &queued);
	job_interval_restore(job);
	if (gil_rc == 0) {
		gil_take_back(job);
	}

	if (!job_cancel(job)) {
		rc = job_finish(job, t0, run_ms, fields, info, err);
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
