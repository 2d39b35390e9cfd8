/*
 * attach_inject.h: private to attach/. The state of one pyhot_inject()
 * call, shared by inject.c (the stop, the remote calls) and inject_prep.c
 * (what is read before any thread is stopped).
 */
#ifndef PYHOT_ATTACH_INJECT_H
#define PYHOT_ATTACH_INJECT_H

#include <stddef.h>
#include <sys/types.h>

#include "attach_thread.h"
#include "pyhot_attach.h"
#include "pyhot_err.h"

/* The longest boot argument; the remote calls' data must fit below the
 * borrowed thread's stack pointer. */
#define BOOT_ARG_MAX (16u * 1024u)

struct attach_unwinder;

struct range {
	unsigned long lo, hi;
	const char *what;         /* a static string: "malloc", "ld.so" */
};

struct candidate {
	pid_t tid;
	int rank;                 /* lower is better; < 0: never interrupt */
	unsigned int tries;
	char where[96];           /* where it was last seen, for the timeout */
};

struct inj {
	pid_t pid;
	const struct pyhot_inject_opts *opts;
	struct pyhot_inject_result *res;
	struct pyhot_err *err;

	unsigned long fn_dlopen, fn_dlsym, fn_dlerror, fn_memfd, fn_close, fn_errno;
	unsigned long errno_got;  /* the GOT slot __errno_location adds to the
				     thread pointer (arch.h), or 0 */
	int old_dlopen;           /* __libc_dlopen_mode (glibc < 2.34) */
	unsigned long stub;       /* where the return stub goes: the unused
				     tail of libc's last code page */
	int done_sig;             /* the stub's completion signal: one the
				     target ignores (SIGURG, SIGWINCH); 0: a
				     call's end is its rt_sigreturn */

	struct range *forbid;
	size_t nforbid, capforbid;

	int payload_fd;               /* the payload file, checked; -1 when not open */
	unsigned long payload_base;   /* mapped payload, or 0 */
	unsigned long boot_value;     /* st_value of the boot symbol */
	unsigned long first_load;     /* the payload's first PT_LOAD p_vaddr, page-aligned */
	unsigned long boot_addr;      /* in the target, when reusing */
	unsigned char build_id[64];
	size_t build_id_len;

	struct attach_unwinder *unw;

	struct candidate *cands;
	size_t ncands;

	struct attach_chld chld;      /* the signal window of the whole attempt */
};

/*
 * Read the target's maps, libc and the payload: fills the functions to
 * call, the forbidden ranges, payload_base and boot_addr (payload mapped
 * already), the build id and the unwinder. The payload is opened once
 * (payload_fd, which the caller closes), checked (a regular file owned by
 * root or the invoking user, writable by nobody else) and read only
 * through that descriptor afterwards: a file swapped in between is never
 * used. Fails with PYHOT_ERR_ATTACH (the pid does not exist, /proc
 * unreadable, no glibc or a libc without the functions, a payload that
 * fails the checks, another build of the payload mapped).
 */
int inject_prep(struct inj *in) PYHOT_MUST_CHECK;

/* The function a borrowed thread must not be in ("malloc", "ld.so") that
 * holds ip, or NULL. */
const char *inject_forbidden_at(const struct inj *in, unsigned long ip);

/* List the target's threads again (only opts->tid when set), keeping what
 * was learnt of known ones, ranked best first from /proc without stopping
 * them. Returns 0 or -errno. */
int inject_cands_refresh(struct inj *in) PYHOT_MUST_CHECK;

#endif /* PYHOT_ATTACH_INJECT_H */
