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

/* Whether the baseline of this boot is recorded: `pyhot attach` waits for
 * it, so that an edit made after the attach returns is always seen as a
 * change. Any thread; no GIL. */
int pyhot_baseline_ready(void);

#endif /* PYHOT_BASELINE_JOB_H */
