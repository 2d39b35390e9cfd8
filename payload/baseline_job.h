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
 * when it starts.
 */
void pyhot_baseline_soon(void);

/*
 * Take the baseline unless this boot already took it (or is taking it).
 * GIL held, at a safe point; leaves no Python exception set. The agent runs
 * it before every safe-point handler, so that when the job of
 * pyhot_baseline_soon() times out, the first safe-point request takes it.
 */
void pyhot_baseline_take_once(void);

/* Whether the baseline of this boot is pinned (every module listed, each
 * file's identity taken; the texts may still be read): `pyhot attach` waits
 * for it, so that an edit made after the attach returns is always seen as
 * a change. Any thread; no GIL. */
int pyhot_baseline_ready(void);

/* Wait (no GIL needed, no Python) until the baseline is ready or ms have
 * passed; returns pyhot_baseline_ready(). */
int pyhot_baseline_wait_ready(long ms);

#endif /* PYHOT_BASELINE_JOB_H */
