/*
 * baseline_job.h: record the patch engine's baseline at the first safe point
 * after each boot (the engine needs the source as it was when we attached).
 * Private to the payload.
 */
#ifndef PYHOT_BASELINE_JOB_H
#define PYHOT_BASELINE_JOB_H

/*
 * Start the baseline job of this boot: a short-lived thread of its own runs
 * it through pyhot_sp_call() (by pending call or GIL thread, within
 * PYHOT_DEFAULT_TIMEOUT_MS) while the agent serves requests. Agent thread,
 * when it starts. keep: the agent of a forked child, whose baseline (and
 * import watch) the parent had taken: it stays, and no job starts; one the
 * parent was still taking at the fork is taken again (its thread is gone).
 * The same job registers the after-fork hook (fork_child.h).
 */
void pyhot_baseline_soon(int keep);

/*
 * Take the baseline unless this boot already took it (or is taking it).
 * GIL held, at a safe point; leaves no Python exception set. The agent runs
 * it before every safe-point handler, so that when the job of
 * pyhot_baseline_soon() times out, the first safe-point request takes it.
 */
void pyhot_baseline_take_once(void);

/* Whether the baseline of this boot is ready for the attach to return:
 * every module listed, each file's identity taken, the user's files read
 * (the standard library's and site-packages' may still be: an edit there
 * changes the identity and makes that baseline untrusted). `pyhot attach`
 * waits for it, so that an edit made after the attach returns is always
 * seen as a change. Any thread; no GIL. */
int pyhot_baseline_ready(void);

/* Wait (no GIL needed, no Python) until the baseline is ready or ms have
 * passed; returns pyhot_baseline_ready(). */
int pyhot_baseline_wait_ready(long ms);

/* After fork() in the child: a pass the parent's baseline thread was
 * pinning or reading is taken up again by the child's next safe point (the
 * thread is the parent's). */
void pyhot_baseline_atfork_child(void);

#endif /* PYHOT_BASELINE_JOB_H */
