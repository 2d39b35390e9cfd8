/*
 * boot.h: the payload's boot (boot.c), exported for the injector and
 * called by the pyhot package's start_agent() (pymodule.c). Contract in
 * pyhot_proto.h: arg is "sock=PATH\nhistory=N"; returns PYHOT_BOOT_STARTED,
 * PYHOT_BOOT_RUNNING or -errno. Never runs Python, never takes the GIL.
 */
#ifndef PYHOT_BOOT_H
#define PYHOT_BOOT_H

int pyhot_boot(const char *arg) __attribute__((visibility("default")));

/*
 * In a child forked while the parent's agent was serving (and before this
 * child booted one): 1, else 0. No GIL needed.
 */
int pyhot_boot_forked_wanted(void);

/*
 * Boot this child's agent on PYHOT_SOCK_DIR_FMT/PYHOT_SOCK_NAME_FMT for its
 * own euid and pid, with the parent's history limit; the agent keeps the
 * baselines the child inherited. Returns as pyhot_boot(). Called by the
 * after-fork hook (fork_child.c), with the GIL held: it runs no Python.
 */
int pyhot_boot_forked(void);

#endif /* PYHOT_BOOT_H */
