/*
 * pyhot_proto.h: how the CLI, the injector and the agent inside the target
 * talk.
 *
 * The contract between the CLI (cli/), the injector (attach/: the boot
 * symbol and the memfd's name) and the payload's agent; it lives in common/
 * because all three include it. It uses libc only.
 *
 * Boot. The injector calls PYHOT_BOOT_SYMBOL(const char *arg) on a borrowed
 * thread. arg is "key=value" lines separated by '\n':
 *     sock=PATH        the socket path, as the target sees it (required)
 *     history=N        generations kept per module (optional)
 * The boot function creates the socket directory and binds the socket
 * synchronously (so that errors reach the injector), starts the agent thread
 * with every signal blocked, and returns one of PYHOT_BOOT_*. It never runs
 * Python and never takes the GIL.
 *
 * Socket. A Unix stream socket at PYHOT_SOCK_DIR_FMT/PYHOT_SOCK_NAME_FMT in
 * the target's mount namespace; the CLI reaches it through /proc/PID/root.
 * The directory is 0700 and owned by the target's euid, the socket 0600; the
 * agent also checks SO_PEERCRED (the target's euid or root).
 *
 * Frames. Each message is a 4-byte little-endian length followed by that
 * many bytes (at most PYHOT_FRAME_MAX). One request, one response, then the
 * agent closes the connection; unless the request has "keep": "1": then
 * the response has "kept": true and the agent reads one more request on the
 * connection (one that does not ask again closes it), for
 * PYHOT_KEEP_IDLE_MS at most; it then shuts its reading side before it
 * reads what came (a request sent after that fails with EPIPE: it was not
 * read). An older agent ignores the key, says nothing and closes.
 *   request:  verb '\0' (key '\0' value '\0')*   -- a key may repeat
 *   response: one JSON object, UTF-8:
 *     {"proto":1,"ok":true, ...verb-specific fields...}
 *     {"proto":1,"ok":false,"error":{"kind":"failed|timeout|uncertain",
 *        "step":"...","message":"...","traceback":"..."}}
 */
#ifndef PYHOT_PROTO_H
#define PYHOT_PROTO_H

#include <stdint.h>

#define PYHOT_PROTO_VERSION 1

#define PYHOT_BOOT_SYMBOL "pyhot_boot"
#define PYHOT_MEMFD_NAME  "pyhot-payload"
/* The boot argument's line "memfd=FD": the memfd the payload was loaded
 * from, which the boot function closes (checked by its name first). */
#define PYHOT_BOOT_MEMFD_KEY "memfd="

enum pyhot_boot_ret {
	PYHOT_BOOT_STARTED = 0,   /* agent thread started */
	PYHOT_BOOT_RUNNING = 1,   /* an agent was already running */
	/* negative: -errno of the step that failed (mkdir, bind, thread) */
};

#define PYHOT_SOCK_DIR_FMT  "/tmp/pyhot-%u"          /* euid of the target */
#define PYHOT_SOCK_NAME_FMT "agent-%d.sock"          /* pid as the target sees it */

#define PYHOT_FRAME_MAX (64u << 20)

/*
 * Verbs. "Safe point" verbs run Python: with the GIL held, from a pending
 * call on the main thread or from a thread of the agent's that takes the
 * GIL, whichever comes first (the thread waits for the GIL after
 * PYHOT_PENDING_GRACE_MS, none by default).
 *   ping     agent thread only; no Python.  -> {"pid","agent_uptime_s",
 *            "baseline": whether the engine's baseline is ready for the
 *            attach to return (every file pinned, the user's read),
 *            "python_version": "3.11.7", the first word of Py_GetVersion()}
 *            Request keys: "history" (the limit, attach --history),
 *            "wait_baseline_ms": answer once the baseline is ready, or
 *            after that long (at most PYHOT_PING_WAIT_MAX_MS: the agent
 *            thread serves nobody else meanwhile).
 *   status   safe point.  -> interpreter, main thread, agent counters
 *            agent.requests: requests read, this one included, failed ones
 *            too (refused peers count in "refused" only). via_pending_call,
 *            via_gil_thread, timeouts: how each safe-point request that
 *            got that far reached its safe point (the patch engine's
 *            baseline job at boot is not counted); their sum <= requests.
 *   detach   agent thread stops, the socket is removed; the payload stays
 *            mapped (it is -z nodelete) and a later boot starts it again.
 *   refresh  safe point: patch engine (payload/patch/pyhot_patch.h)
 *   rollback safe point: generation tracker (payload/patch/pyhot_patch.h)
 * Common request keys:
 *   timeout_ms   bound on reaching a safe point (default 5000)
 *   keep         "1": keep the connection for one more request (Frames)
 */
/* How long the agent keeps a connection for its next request ("keep"). */
#define PYHOT_KEEP_IDLE_MS 1000

#define PYHOT_PENDING_GRACE_MS 0
#define PYHOT_PING_WAIT_MAX_MS 100
#define PYHOT_DEFAULT_TIMEOUT_MS 5000

static inline uint32_t pyhot_frame_len_decode(const unsigned char b[4])
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
	       (uint32_t)b[3] << 24;
}

static inline void pyhot_frame_len_encode(unsigned char b[4], uint32_t len)
{
	b[0] = (unsigned char)len;
	b[1] = (unsigned char)(len >> 8);
	b[2] = (unsigned char)(len >> 16);
	b[3] = (unsigned char)(len >> 24);
}

#endif /* PYHOT_PROTO_H */
