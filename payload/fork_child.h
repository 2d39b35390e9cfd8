/*
 * fork_child.h: an agent for every child forked from a process that has one
 * (docs/trees.md). Private to the payload.
 *
 * os.register_at_fork(after_in_child=...) is registered once per process,
 * at the agent's first safe point. CPython runs that hook in the child of
 * os.fork() (and of multiprocessing's fork start method, which calls it),
 * on the thread that forked, with the GIL held, right after its own
 * after-fork work: the first moment the child runs Python. The hook boots
 * an agent on agent-<child pid>.sock when the parent's agent was running at
 * the fork (boot.c records that in its pthread_atfork child handler). The
 * parent's baselines and history are the child's own copy: nothing resets
 * them.
 *
 * Not in: a fork+exec by subprocess (it runs no Python hook, except with
 * preexec_fn, which the hook recognises and skips), os.posix_spawn, a fork
 * by C code that does not call PyOS_AfterFork_Child().
 */
#ifndef PYHOT_FORK_CHILD_H
#define PYHOT_FORK_CHILD_H

/* Register the after-fork hook unless this process (or the parent it was
 * forked from) already did. GIL held; leaves no Python exception set; a
 * failure is noted in the agent's last error and changes nothing else. */
void pyhot_fork_hook_register(void);

#endif /* PYHOT_FORK_CHILD_H */
