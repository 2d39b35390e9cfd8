/*
 * sockfile.h: the agents' socket files in their directory: which are left
 * over by an agent that is gone. Private to the payload; no Python, no GIL.
 */
#ifndef PYHOT_SOCKFILE_H
#define PYHOT_SOCKFILE_H

#include <sys/un.h>

/* Is the socket file at sa left over by an agent that is gone? Only a
 * socket of our euid that refuses connections is. */
int pyhot_sock_is_stale(const struct sockaddr_un *sa);

/*
 * Remove, in the directory of the socket path own, the files
 * "agent-PID.sock" of processes that no longer exist (kill(PID, 0) says
 * ESRCH, or /proc says a zombie) and that are stale as above: forked workers that exited (nothing
 * else removes theirs). Never own, never another user's. Returns how many.
 */
int pyhot_sock_sweep_dead(const char *own);

#endif /* PYHOT_SOCKFILE_H */
