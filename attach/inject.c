/*
 * inject.c: load the payload into a live process on one borrowed thread:
 * stop a thread at a safe point, make the remote calls, give it back (the
 * contract is in pyhot_attach.h; docs/injection.md says what each step
 * guards against).
 */
#include "attach_inject.h"
#include "attach_int.h"
#include "attach_unwind.h"
#include "pyhot_log.h"
#include "pyhot_proto.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEFAULT_TIMEOUT_MS 2000u
#define MAX_FRAMES 64
/* A remote call (dlopen of the payload, its boot) gets this long before we
 * call the target's state uncertain. */
#define CALL_TIMEOUT_MS 10000.0
#define RETRY_NAP_NS 1000000L
/* glibc before 2.34: __libc_dlopen_mode() wants __RTLD_DLOPEN. */
#define LIBC_RTLD_DLOPEN 0x80000000ul
#define REMOTE_RTLD_NOW 0x2ul
#define REMOTE_MFD_CLOEXEC 0x1ul

/* A system call stop, told apart with PTRACE_O_TRACESYSGOOD. */
#define SYSCALL_STOP (SIGTRAP | 0x80)

/* One borrowed thread and what must be given back to it. */
struct hijack {
	struct attach_thread th;
	arch_regs_t resume;           /* what it goes on with (arch_resume_regs()) */
	unsigned char *xstate;        /* the XSTATE image, then the frame's trailer */
	size_t xstate_len;            /* as the kernel returned it */
	int have_xstate;
	uint64_t sigmask;
	int have_sigmask;
	int mask_blocked;             /* our mask is set: it must be given back */
	unsigned long scratch;        /* data goes below this, growing down */
	unsigned long scratch_floor;  /* the signal frame lies below this */
	unsigned long frame;          /* the signal frame (arch.h); the calls'
					 stack starts below it */
	unsigned long fpstate;        /* its vector state image */
	int at_stub;                  /* stopped in the stub, its call over */
	int calls_started;            /* a remote call ran: the target may be changed */
	unsigned long errno_loc;      /* the thread's errno, put back by the stub */
	int saved_errno;
	int have_errno;
};

/* ----- the stopped thread ----- */

struct safety {
	const struct inj *in;
	char *why;
	size_t len;
	int safe;
};

static int frame_check(unsigned long ip, int n, void *ctx)
{
	struct safety *s = ctx;
	const char *what;

	/* Above frame 0 the IP is a return address, which may be the first
	 * byte after a function that ends in a call. */
	what = inject_forbidden_at(s->in, n ? ip - 1 : ip);
	if (!what)
		return 0;
	snprintf(s->why, s->len, "in %s (frame #%d)", what, n);
	s->safe = 0;
	return 1;
}

/* Walk the stopped thread's stack: is any frame in a function our calls
 * would need the locks of? Returns 1 when safe, 0 with *why filled. */
static int stack_is_safe(struct inj *in, struct attach_thread *th, char *why,
			 size_t len)
{
	struct safety s = { in, why, len, 1 };
	const char *what;
	int n;

	/* Frame 0 from the registers: checked even if unwinding fails. */
	what = inject_forbidden_at(in, arch_get_ip(&th->regs));
	if (what) {
		snprintf(why, len, "in %s", what);
		return 0;
	}
	n = attach_unwind(in->unw, th->tid, MAX_FRAMES, frame_check, &s);
	if (n < 0)
		PYHOT_TRACE("ptrace", "tid %d: unwind failed (%d); frame 0 only",
			    (int)th->tid, n);
	else
		PYHOT_TRACE("ptrace", "tid %d: %d frames checked", (int)th->tid, n);
	return s.safe;
}

static int mem_write(pid_t pid, pid_t tid, unsigned long addr, const void *buf,
		     size_t len)
{
	struct iovec local = { (void *)(uintptr_t)buf, len };
	struct iovec remote = { (void *)addr, len };
	size_t off;

	if (process_vm_writev(pid, &local, 1, &remote, 1, 0) == (ssize_t)len)
		return 0;
	/* process_vm_writev refused (seccomp, or a read-only page would need
	 * FOLL_FORCE): go word by word through ptrace. */
	for (off = 0; off < len; off += sizeof(long)) {
		unsigned long a = addr + off;
		long word = 0;
		size_t n = len - off < sizeof(long) ? len - off : sizeof(long);

		if (n < sizeof(long)) {
			errno = 0;
			word = ptrace(PTRACE_PEEKDATA, tid, (void *)a, NULL);
			if (errno)
				return -errno;
		}
		memcpy(&word, (const char *)buf + off, n);
		if (ptrace(PTRACE_POKEDATA, tid, (void *)a, (void *)word) < 0)
			return -errno;
	}
	return 0;
}

/* Copy data onto the borrowed thread's stack, below the red zone and the
 * previous data: memory no frame of the thread is using. */
static int push_data(struct hijack *h, const void *data, size_t len,
		     unsigned long *addr, struct pyhot_err *err)
{
	unsigned long a = (h->scratch - len) & ~15ul;
	char eb[128];
	int r;

	if (a < h->scratch_floor)
		return pyhot_err_set(err, PYHOT_ERR_ATTACH, E2BIG, h->th.pid, "inject",
				     "data for the remote calls exceeds %lu bytes",
				     h->scratch - h->scratch_floor);
	r = mem_write(h->th.pid, h->th.tid, a, data, len);
	if (r < 0)
		return pyhot_err_set(err, PYHOT_ERR_ATTACH, -r, h->th.pid, "inject",
				     "write(stack of thread %d, 0x%lx, %zu): %s",
				     (int)h->th.tid, a, len,
				     attach_strerror(-r, eb, sizeof(eb)));
	h->scratch = a;
	*addr = a;
	return 0;
}

/* A ptrace request on the borrowed thread failed in the middle of a call. */
static int lost_control(struct inj *in, struct hijack *h, const char *name)
{
	h->th.stopped = 1;
	return pyhot_err_set(in->err, PYHOT_ERR_UNCERTAIN, errno, in->pid, "inject",
			     "lost control of thread %d during %s()", (int)h->th.tid, name);
}

/* A fault that ends a remote call, as opposed to a stop to step over. */
static int is_fault(int sig)
{
	return sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE ||
	       sig == SIGTRAP || sig == SIGSYS;
}

/* One stop of the borrowed thread during a call: 1 when the call is over
 * (h->at_stub) or faulted (*sig), 0 to resume it with *resume_sig,
 * or an error. */
static int call_stop(struct inj *in, struct hijack *h, const char *name, int status,
		     int *sig, int *resume_sig, int *stops)
{
	arch_regs_t regs;
	int event = status >> 16;

	*sig = WSTOPSIG(status);
	*resume_sig = 0;
	if (*sig == SYSCALL_STOP) {
		if (attach_get_regs(h->th.tid, &regs) < 0)
			return lost_control(in, h, name);
		if (!arch_at_stub_sigreturn(&regs, in->stub))
			return 0;
		h->at_stub = 1;
		return 1;
	}
	if (!event && *sig == in->done_sig) {
		if (attach_get_regs(h->th.tid, &regs) < 0)
			return lost_control(in, h, name);
		if (arch_at_stub_signal(&regs, in->stub)) {
			/* Detaching or the next call drops the signal. */
			h->at_stub = 1;
			return 1;
		}
	}
	if (event != PTRACE_EVENT_STOP && is_fault(*sig))
		return 1;
	/* A group stop, or an asynchronous signal that got past the mask
	 * (SIGKILL aside, none should): let the call finish; a group stop
	 * resumes after we detach. */
	if (++*stops > 64)
		return lost_control(in, h, name);
	*resume_sig = event ? 0 : *sig;
	return 0;
}

/* Let the borrowed thread run the call set up in its registers until the
 * stub says it is over (h->at_stub) or it faults (*sig). The stub's
 * completion signal stops it (PTRACE_CONT); a target that handles both
 * signals we could use is run under PTRACE_SYSCALL instead, to the stub's
 * rt_sigreturn. Either costs nothing when nobody traces. Returns 0, or an
 * error with the thread's state recorded in h->th. */
static int run_call(struct inj *in, struct hijack *h, const char *name, int *sig)
{
	enum __ptrace_request run = in->done_sig ? PTRACE_CONT : PTRACE_SYSCALL;
	pid_t tid = h->th.tid;
	double deadline;
	char eb[128];
	int status, r, resume_sig = 0, stops = 0;

	h->at_stub = 0;
	if (ptrace(run, tid, NULL, NULL) < 0) {
		r = errno;
		return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, r, in->pid, "inject",
				     "ptrace(PTRACE_CONT, %d) for %s(): %s", (int)tid,
				     name, attach_strerror(r, eb, sizeof(eb)));
	}
	attach_test_step("call started");
	h->th.stopped = 0;
	h->calls_started = 1;
	deadline = attach_now_ms() + CALL_TIMEOUT_MS;
	for (;;) {
		r = attach_wait(&in->chld, tid, &status, deadline);
		if (r == 0) {
			/* Stop it where it is: what it holds now is unknown. */
			if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) == 0 &&
			    attach_wait(&in->chld, tid, &status,
					attach_now_ms() + 1000.0) == 1 &&
			    WIFSTOPPED(status))
				h->th.stopped = 1;
			return pyhot_err_set(in->err, PYHOT_ERR_UNCERTAIN, ETIMEDOUT,
					     in->pid, "inject", "%s() in pid %d did not "
					     "return within %.0f ms", name, (int)in->pid,
					     CALL_TIMEOUT_MS);
		}
		if (r < 0 || WIFEXITED(status) || WIFSIGNALED(status)) {
			h->th.gone = 1;
			h->th.seized = 0;
			return pyhot_err_set(in->err, PYHOT_ERR_UNCERTAIN, ESRCH, in->pid,
					     "inject", "pid %d exited during the call of "
					     "%s()", (int)in->pid, name);
		}
		if (!WIFSTOPPED(status))
			continue;
		attach_test_step("stop during a call");
		r = call_stop(in, h, name, status, sig, &resume_sig, &stops);
		if (r < 0)
			return r;
		if (r == 1)
			break;
		if (ptrace(run, tid, NULL, (void *)(long)resume_sig) < 0)
			return lost_control(in, h, name);
		attach_test_step("call resumed");
	}
	h->th.stopped = 1;
	return 0;
}

/* Block every asynchronous signal for the calls, once the thread can put
 * its own mask back (the frame's rt_sigreturn does): no handler runs on
 * top of our call. The synchronous faults stay unblocked: a blocked fault
 * would reset its handler to SIG_DFL (force_sig_info). */
static int block_signals(struct inj *in, struct hijack *h)
{
	uint64_t block = ~0ull;
	char eb[128];
	int e;

	block &= ~(1ull << (SIGSEGV - 1));
	block &= ~(1ull << (SIGBUS - 1));
	block &= ~(1ull << (SIGILL - 1));
	block &= ~(1ull << (SIGFPE - 1));
	block &= ~(1ull << (SIGTRAP - 1));
	block &= ~(1ull << (SIGSYS - 1));
	if (in->done_sig)
		block &= ~(1ull << (in->done_sig - 1));
	if (ptrace(PTRACE_SETSIGMASK, h->th.tid, (void *)sizeof(block), &block) < 0) {
		e = errno;
		return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, e, in->pid, "inject",
				     "ptrace(PTRACE_SETSIGMASK, %d): %s", (int)h->th.tid,
				     attach_strerror(e, eb, sizeof(eb)));
	}
	h->mask_blocked = 1;
	attach_test_step("signals blocked");
	return 0;
}

/*
 * Call fn(args) on the borrowed thread: it returns into the stub, which
 * stores the result in the frame and stops at its rt_sigreturn. Returns 0
 * and *ret, or an error: the call faulted, took too long or the process
 * died (PYHOT_ERR_UNCERTAIN). Should we die at any point, the thread
 * finishes the call and restores itself through the frame.
 */
static int remote_call(struct inj *in, struct hijack *h, const char *name,
		       unsigned long fn, const unsigned long *args, int nargs,
		       unsigned long *ret)
{
	arch_regs_t regs;
	siginfo_t si;
	char eb[128];
	int r, sig = 0;
	pid_t tid = h->th.tid;

	if (arch_setup_frame_call(&regs, &h->resume, fn, args, nargs, h->frame) != 0)
		return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, EINVAL, in->pid, "inject",
				     "%s(): too many arguments", name);
	/* The return address: the stub. The previous call left its result
	 * in that word. */
	r = mem_write(in->pid, tid, h->frame, &in->stub, sizeof(in->stub));
	if (r == 0)
		r = attach_set_regs(tid, &regs);
	if (r < 0)
		return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, -r, in->pid, "inject",
				     "set up call of %s() in thread %d: %s", name,
				     (int)tid, attach_strerror(-r, eb, sizeof(eb)));
	/* From here the thread's registers are ours; it can restore itself. */
	h->th.regs_dirty = 1;
	h->at_stub = 0;
	attach_test_step("call registers set");
	if (!h->mask_blocked && (r = block_signals(in, h)) != 0)
		return r;
	r = run_call(in, h, name, &sig);
	if (r < 0)
		return r;
	if (h->at_stub) {
		if (attach_mem_read(in->pid, h->frame, ret, sizeof(*ret)) != 0)
			return lost_control(in, h, name);
		return 0;
	}
	if (attach_get_regs(tid, &regs) < 0 || ptrace(PTRACE_GETSIGINFO, tid, NULL, &si) < 0)
		return lost_control(in, h, name);
	return pyhot_err_set(in->err, PYHOT_ERR_UNCERTAIN, 0, in->pid, "inject",
			     "%s() in pid %d faulted: signal %d (%s) at ip 0x%lx, "
			     "address %p", name, (int)in->pid, sig, strsignal(sig),
			     arch_get_ip(&regs), si.si_addr);
}

/* The borrowed thread's errno location: what its __errno_location()
 * computes (the GOT slot's offset added to the TCB's self pointer at
 * %fs:0), read from memory, or else the function called remotely. */
static int errno_location(struct inj *in, struct hijack *h, unsigned long *loc)
{
	unsigned long off, self;

	if (in->errno_got &&
	    attach_mem_read(in->pid, in->errno_got, &off, sizeof(off)) == 0 &&
	    attach_mem_read(in->pid, arch_get_tp(&h->th.regs), &self, sizeof(self)) == 0) {
		*loc = self + off;
		return 0;
	}
	return remote_call(in, h, "__errno_location", in->fn_errno, NULL, 0, loc);
}

/* The target's errno after a failed libc call, read through its own
 * __errno_location(). Returns 0 when unknown. */
static int remote_errno(struct inj *in, struct hijack *h)
{
	struct pyhot_err scratch;
	unsigned long loc;
	int e = 0;

	pyhot_err_init(&scratch);
	/* A failure here must not become the reported error. */
	{
		struct pyhot_err *keep = in->err;

		in->err = &scratch;
		if (errno_location(in, h, &loc) != 0 ||
		    attach_mem_read(in->pid, loc, &e, sizeof(e)) != 0)
			e = 0;
		in->err = keep;
	}
	return e;
}

/* The target's dlerror() text, or "" when there is none. */
static void remote_dlerror(struct inj *in, struct hijack *h, char *buf, size_t len)
{
	struct pyhot_err scratch, *keep = in->err;
	unsigned long p = 0;
	size_t off = 0;

	buf[0] = '\0';
	if (!in->fn_dlerror || len == 0)
		return;
	pyhot_err_init(&scratch);
	in->err = &scratch;
	if (remote_call(in, h, "dlerror", in->fn_dlerror, NULL, 0, &p) != 0 || !p) {
		in->err = keep;
		return;
	}
	in->err = keep;
	/* Read in small pieces: the string may end just before an unmapped
	 * page. */
	while (off + 1 < len) {
		size_t n = len - 1 - off < 64 ? len - 1 - off : 64;

		if (attach_mem_read(in->pid, p + off, buf + off, n) != 0)
			break;
		if (memchr(buf + off, '\0', n))
			return;
		off += n;
	}
	buf[off] = '\0';
}

/* Write the payload, from the descriptor it was checked through, into the
 * memfd the target just created. */
static int write_payload(struct inj *in, int remote_fd)
{
	char path[64], eb[128], chunk[65536];
	int dst, ret = 0;
	ssize_t n, w, off;
	off_t pos = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)in->pid, remote_fd);
	dst = open(path, O_WRONLY | O_CLOEXEC);
	if (dst < 0) {
		int e = errno;

		return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, e, in->pid, "inject",
				     "open('%s'): %s", path,
				     attach_strerror(e, eb, sizeof(eb)));
	}
	for (;;) {
		n = pread(in->payload_fd, chunk, sizeof(chunk), pos);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n < 0) {
				int e = errno;

				ret = pyhot_err_set(in->err, PYHOT_ERR_ATTACH, e, in->pid,
						    "inject", "read('%s'): %s",
						    in->opts->payload_path,
						    attach_strerror(e, eb, sizeof(eb)));
			}
			break;
		}
		pos += n;
		for (off = 0; off < n; off += w) {
			w = write(dst, chunk + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR) {
				w = 0;
				continue;
			}
			if (w <= 0) {
				int e = w < 0 ? errno : EIO;

				ret = pyhot_err_set(in->err, PYHOT_ERR_ATTACH, e, in->pid,
						    "inject", "write('%s'): %s", path,
						    attach_strerror(e, eb, sizeof(eb)));
				goto out_dst;
			}
		}
	}
out_dst:
	close(dst);
	return ret;
}

/* Put the return stub (arch.h) after libc's code, unless it is there
 * already. Bytes there are zeros, the stub, or a mix of both (an injector
 * killed while writing it). */
static int install_stub(struct inj *in, struct hijack *h)
{
	const unsigned char *code = arch_stub_code();
	unsigned char cur[ARCH_STUB_LEN];
	char eb[128];
	size_t i;
	int r, same = 1;

	r = attach_mem_read(in->pid, in->stub, cur, sizeof(cur));
	for (i = 0; r == 0 && i < sizeof(cur); i++) {
		if (cur[i] == code[i])
			continue;
		same = 0;
		if (cur[i] != 0)
			return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, 0, in->pid, "inject",
					     "the bytes after libc's code in pid %d "
					     "(0x%lx) are in use", (int)in->pid, in->stub);
	}
	if (r == 0 && same)
		return 0;
	/* A private copy of that page (FOLL_FORCE through ptrace), in this
	 * process only. */
	if (r == 0)
		r = mem_write(in->pid, h->th.tid, in->stub, code, ARCH_STUB_LEN);
	attach_test_step("stub written");
	if (r < 0)
		return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, -r, in->pid, "inject",
				     "write the return stub at 0x%lx: %s", in->stub,
				     attach_strerror(-r, eb, sizeof(eb)));
	return 0;
}

/* (Re)write the signal frame: the registers to resume with, the thread's
 * own mask, its vector state and, once known, its errno. */
static int write_frame(struct inj *in, struct hijack *h)
{
	unsigned char frame[ARCH_FRAME_LEN];
	char eb[128];
	int r;

	arch_frame_fill(frame, &h->resume, h->sigmask, h->fpstate,
			h->have_errno ? h->errno_loc : 0, h->saved_errno, in->done_sig);
	r = mem_write(in->pid, h->th.tid, h->frame, frame, sizeof(frame));
	attach_test_step("frame written");
	if (r < 0)
		return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, -r, in->pid, "inject",
				     "write(stack of thread %d, 0x%lx): %s", (int)h->th.tid,
				     h->frame, attach_strerror(-r, eb, sizeof(eb)));
	return 0;
}

/* Below the data area: the vector state image, then the frame. */
static int build_frame(struct inj *in, struct hijack *h)
{
	unsigned char *img;
	size_t len;
	char eb[128];
	int r;

	/* A copy: h->xstate stays as ptrace gave it, for restore_by_ptrace(). */
	img = malloc(h->xstate_len + ARCH_FPSTATE_TRAILER);
	if (!img)
		return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, ENOMEM, in->pid,
				     "inject", "out of memory");
	memcpy(img, h->xstate, h->xstate_len);
	len = arch_fpstate_finish(img, h->xstate_len);
	if (!len) {
		free(img);
		return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, 0, in->pid, "inject",
				     "thread %d: unexpected XSTATE layout (%zu bytes)",
				     (int)h->th.tid, h->xstate_len);
	}
	h->fpstate = (h->scratch_floor - len) & ~(unsigned long)(ARCH_FPSTATE_ALIGN - 1);
	/* 8 modulo 16: the stack of a function just called. */
	h->frame = ((h->fpstate - ARCH_FRAME_LEN) & ~15ul) - 8;
	r = mem_write(in->pid, h->th.tid, h->fpstate, img, len);
	free(img);
	if (r < 0)
		return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, -r, in->pid, "inject",
				     "write(stack of thread %d, 0x%lx, %zu): %s",
				     (int)h->th.tid, h->fpstate, len,
				     attach_strerror(-r, eb, sizeof(eb)));
	return write_frame(in, h);
}

/* Save what the calls will clobber and build the frame that gives it back.
 * Nothing of the thread changes here but the stack below its red zone.
 * Returns 0 or an error (the caller releases). */
static int hijack_begin(struct inj *in, struct hijack *h)
{
	struct iovec iov;
	char eb[128];
	int e;

	/* A handler about to run would have made the kernel return EINTR
	 * rather than restart some calls: so must we. */
	if (arch_resume_regs(&h->th.regs, attach_thread_pending(&h->th, 1),
			     &h->resume) == ARCH_RESUME_LOST)
		return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, EINVAL, in->pid, "inject",
				     "thread %d is in restart_syscall", (int)h->th.tid);
	h->scratch = arch_get_sp(&h->th.regs) - ARCH_RED_ZONE;
	h->scratch_floor = h->scratch - (BOOT_ARG_MAX + 4096);
	h->xstate = malloc(ARCH_XSTATE_MAX);
	if (!h->xstate)
		return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, ENOMEM, in->pid,
				     "inject", "out of memory");
	iov.iov_base = h->xstate;
	iov.iov_len = ARCH_XSTATE_MAX;
	if (ptrace(PTRACE_GETREGSET, h->th.tid, (void *)ARCH_XSTATE_REGSET, &iov) < 0) {
		e = errno;
		return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, e, in->pid, "inject",
				     "ptrace(PTRACE_GETREGSET, %d, XSTATE): %s",
				     (int)h->th.tid, attach_strerror(e, eb, sizeof(eb)));
	}
	/* Restore with the size the kernel returned, not the buffer's. */
	h->xstate_len = iov.iov_len;
	h->have_xstate = 1;
	attach_test_step("vector state read");
	if (ptrace(PTRACE_GETSIGMASK, h->th.tid, (void *)sizeof(h->sigmask),
		   &h->sigmask) < 0) {
		e = errno;
		return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, e, in->pid, "inject",
				     "ptrace(PTRACE_GETSIGMASK, %d): %s", (int)h->th.tid,
				     attach_strerror(e, eb, sizeof(eb)));
	}
	h->have_sigmask = 1;
	if (ptrace(PTRACE_SETOPTIONS, h->th.tid, NULL, (void *)PTRACE_O_TRACESYSGOOD) < 0) {
		e = errno;
		return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, e, in->pid, "inject",
				     "ptrace(PTRACE_SETOPTIONS, %d): %s", (int)h->th.tid,
				     attach_strerror(e, eb, sizeof(eb)));
	}
	e = install_stub(in, h);
	if (e == 0)
		e = build_frame(in, h);
	return e;
}

/* Give back by ptrace what hijack_begin() saved, for a thread stopped
 * anywhere but at the stub's rt_sigreturn (a fault, a timeout). The first
 * error wins; every step is tried. */
static int restore_by_ptrace(struct inj *in, struct hijack *h)
{
	struct iovec iov;
	char eb[128];
	int e, ret = 0;

	/* dlopen and friends set errno even when they succeed; the thread
	 * may be between a failed call and reading errno. */
	if (h->have_errno &&
	    mem_write(in->pid, h->th.tid, h->errno_loc, &h->saved_errno,
		      sizeof(h->saved_errno)) != 0)
		ret = pyhot_err_set(in->err, PYHOT_ERR_UNCERTAIN, 0, in->pid, "inject",
				    "restore errno of thread %d failed", (int)h->th.tid);
	if (h->have_xstate) {
		iov.iov_base = h->xstate;
		iov.iov_len = h->xstate_len;
		if (ptrace(PTRACE_SETREGSET, h->th.tid, (void *)ARCH_XSTATE_REGSET,
			   &iov) < 0) {
			e = errno;
			if (!ret)
				ret = pyhot_err_set(in->err, PYHOT_ERR_UNCERTAIN, e, in->pid,
						    "inject", "restore vector registers "
						    "of thread %d: %s", (int)h->th.tid,
						    attach_strerror(e, eb, sizeof(eb)));
		}
	}
	attach_test_step("restore by ptrace");
	if (h->mask_blocked &&
	    ptrace(PTRACE_SETSIGMASK, h->th.tid, (void *)sizeof(h->sigmask),
		   &h->sigmask) < 0) {
		e = errno;
		ret = pyhot_err_set(in->err, PYHOT_ERR_UNCERTAIN, e, in->pid, "inject",
				    "restore the signal mask of thread %d: %s",
				    (int)h->th.tid, attach_strerror(e, eb, sizeof(eb)));
	}
	/* The general registers last (on release), a restart rewound. */
	h->th.regs = h->resume;
	return ret;
}

/* Give the thread back, then detach. Stopped in the stub it restores
 * itself, as it would without us: detaching (with no signal) lets it run
 * on to its rt_sigreturn. Anywhere else (a fault, a timeout) ptrace puts back what was
 * saved. */
static int hijack_end(struct inj *in, struct hijack *h)
{
	int ret = 0;

	if (h->th.seized && !h->th.gone && h->th.stopped) {
		if (h->at_stub)
			h->th.regs_dirty = 0;
		else if (h->th.regs_dirty || h->mask_blocked)
			ret = restore_by_ptrace(in, h);
	}
	if (attach_thread_release(&h->th, in->err) != 0 && !ret)
		ret = -PYHOT_ERR_UNCERTAIN;
	free(h->xstate);
	h->xstate = NULL;
	return ret;
}

static int remote_string(struct hijack *h, const char *s, unsigned long *addr,
			 struct pyhot_err *err)
{
	return push_data(h, s, strlen(s) + 1, addr, err);
}

/* memfd_create(PYHOT_MEMFD_NAME, MFD_CLOEXEC) in the target: *fd. */
static int remote_memfd(struct inj *in, struct hijack *h, int *fd)
{
	unsigned long a[2], name_addr, rv;
	char eb[128];
	int ret, e;

	ret = remote_string(h, PYHOT_MEMFD_NAME, &name_addr, in->err);
	if (ret)
		return ret;
	a[0] = name_addr;
	a[1] = REMOTE_MFD_CLOEXEC;
	ret = remote_call(in, h, "memfd_create", in->fn_memfd, a, 2, &rv);
	if (ret)
		return ret;
	*fd = (int)rv;
	if (*fd < 0) {
		e = remote_errno(in, h);
		return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, e, in->pid, "inject",
				     "memfd_create('%s') in pid %d: %s", PYHOT_MEMFD_NAME,
				     (int)in->pid,
				     e ? attach_strerror(e, eb, sizeof(eb)) : "failed");
	}
	PYHOT_TRACE("ptrace", "memfd_create -> fd %d in pid %d", *fd, (int)in->pid);
	return 0;
}

/* dlopen("/proc/self/fd/FD", RTLD_NOW) in the target (__libc_dlopen_mode
 * before glibc 2.34): *handle. */
static int remote_dlopen(struct inj *in, struct hijack *h, int fd,
			 unsigned long *handle)
{
	unsigned long a[2], path_addr;
	char path[64], dlerr[512];
	int ret;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ret = remote_string(h, path, &path_addr, in->err);
	if (ret)
		return ret;
	a[0] = path_addr;
	a[1] = REMOTE_RTLD_NOW | (in->old_dlopen ? LIBC_RTLD_DLOPEN : 0);
	ret = remote_call(in, h, in->old_dlopen ? "__libc_dlopen_mode" : "dlopen",
			  in->fn_dlopen, a, 2, handle);
	if (ret)
		return ret;
	if (!*handle) {
		remote_dlerror(in, h, dlerr, sizeof(dlerr));
		ret = pyhot_err_set(in->err, PYHOT_ERR_ATTACH, 0, in->pid, "inject",
				    "dlopen('%s') in pid %d: %s", in->opts->payload_path,
				    (int)in->pid, dlerr[0] ? dlerr : "failed");
		pyhot_err_hint(in->err, "the payload must match the target's "
			       "architecture and libc");
		return ret;
	}
	PYHOT_TRACE("ptrace", "dlopen -> handle 0x%lx", *handle);
	return 0;
}

/* dlsym(handle, boot_symbol) in the target: *boot. */
static int remote_dlsym_boot(struct inj *in, struct hijack *h, unsigned long handle,
			     unsigned long *boot)
{
	unsigned long a[2], name_addr;
	char dlerr[512];
	int ret;

	ret = remote_string(h, in->opts->boot_symbol, &name_addr, in->err);
	if (ret)
		return ret;
	a[0] = handle;
	a[1] = name_addr;
	ret = remote_call(in, h, "dlsym", in->fn_dlsym, a, 2, boot);
	if (ret)
		return ret;
	if (!*boot) {
		remote_dlerror(in, h, dlerr, sizeof(dlerr));
		return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, 0, in->pid, "inject",
				     "dlsym('%s') in pid %d: %s", in->opts->boot_symbol,
				     (int)in->pid, dlerr[0] ? dlerr : "not found");
	}
	return 0;
}

/* Where the payload dlopen() just loaded has its boot function, without a
 * remote call: glibc's handle is the object's struct link_map, whose first
 * member (l_addr, public in <link.h>) is the load bias; the build id mapped
 * at that bias must be ours. Anything unexpected: a remote dlsym(). */
static int payload_boot_addr(struct inj *in, struct hijack *h, unsigned long handle,
			     unsigned long *boot)
{
	unsigned long bias, first_load;
	unsigned char rid[64];
	size_t rlen;

	if (in->build_id_len &&
	    attach_mem_read(in->pid, handle, &bias, sizeof(bias)) == 0) {
		rlen = attach_elf_remote_build_id(in->pid, bias + in->first_load, rid,
						  sizeof(rid), &first_load);
		if (rlen == in->build_id_len && memcmp(rid, in->build_id, rlen) == 0 &&
		    first_load == in->first_load) {
			*boot = bias + in->boot_value;
			return 0;
		}
	}
	PYHOT_TRACE("ptrace", "dlopen handle 0x%lx: no link_map with our build id; "
		    "dlsym()", handle);
	return remote_dlsym_boot(in, h, handle, boot);
}

/* Load the payload through the memfd *fd (the caller closes it when
 * >= 0): *boot is its boot function in the target. */
static int load_payload(struct inj *in, struct hijack *h, int *fd, unsigned long *boot)
{
	unsigned long handle = 0;
	int ret;

	ret = remote_memfd(in, h, fd);
	if (ret == 0)
		ret = write_payload(in, *fd);
	if (ret == 0)
		ret = remote_dlopen(in, h, *fd, &handle);
	if (ret == 0)
		ret = payload_boot_addr(in, h, handle, boot);
	return ret;
}

/* boot(arg) in the target; what it returns goes into in->res. */
static int call_boot(struct inj *in, struct hijack *h, unsigned long boot,
		     unsigned long arg_addr)
{
	unsigned long a[1] = { arg_addr }, rv;
	long boot_ret;
	int ret;

	ret = remote_call(in, h, in->opts->boot_symbol, boot, a, 1, &rv);
	if (ret)
		return ret;
	/* The boot function returns an int: sign-extend it. */
	boot_ret = (long)(int)(unsigned int)rv;
	in->res->boot_ret = boot_ret;
	PYHOT_TRACE("ptrace", "%s() -> %ld%s", in->opts->boot_symbol, boot_ret,
		    in->res->reused ? " (payload was mapped already)" : "");
	return 0;
}

/* close(fd) in the target. ret is the calls' result so far: on an error
 * path the first error stays the reported one. */
static int remote_close(struct inj *in, struct hijack *h, int fd, int ret)
{
	struct pyhot_err scratch, *keep = in->err;
	unsigned long a[1] = { (unsigned long)fd }, rv;

	if (ret) {
		pyhot_err_init(&scratch);
		in->err = &scratch;
	}
	if (remote_call(in, h, "close", in->fn_close, a, 1, &rv) != 0 && !ret)
		ret = -in->err->kind;
	in->err = keep;
	return ret;
}

/* The boot argument: the caller's, plus "memfd=FD" when the payload came
 * through a memfd, which the boot function closes (one remote call less
 * with the thread stopped). */
static int push_boot_arg(struct inj *in, struct hijack *h, int fd, unsigned long *addr)
{
	const char *arg = in->opts->boot_arg ? in->opts->boot_arg : "";
	size_t n = strlen(arg);
	char *full;
	int ret;

	if (fd < 0)
		return remote_string(h, arg, addr, in->err);
	full = malloc(n + 32);
	if (!full)
		return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, ENOMEM, in->pid, "inject",
				     "out of memory");
	snprintf(full, n + 32, "%s%s" PYHOT_BOOT_MEMFD_KEY "%d\n", arg,
		 n && arg[n - 1] != '\n' ? "\n" : "", fd);
	ret = remote_string(h, full, addr, in->err);
	free(full);
	return ret;
}

/* The calls themselves, on a hijacked thread: load the payload unless it
 * is mapped already, then call its boot function (which closes the memfd). */
static int do_calls(struct inj *in, struct hijack *h)
{
	unsigned long arg_addr, boot;
	int fd = -1, ret = 0;

	if (in->boot_addr) {
		boot = in->boot_addr;
		in->res->reused = 1;
	} else {
		ret = load_payload(in, h, &fd, &boot);
	}
	if (ret == 0)
		ret = push_boot_arg(in, h, fd, &arg_addr);
	if (ret == 0) {
		ret = call_boot(in, h, boot, arg_addr);
		/* The boot function has it (even if the call failed midway:
		 * closing again could close some other file of the target's). */
		fd = -1;
	}
	if (fd >= 0)
		ret = remote_close(in, h, fd, ret);
	return ret;
}

/* After a failure: did the target die under us? A stopped tracee whose
 * ptrace requests fail with ESRCH was woken by SIGKILL; /proc may still
 * show it for a moment while its threads exit. */
static int target_died(struct inj *in)
{
	double until = attach_now_ms() + 200.0;
	struct timespec nap = { 0, 1000000 };

	if (!attach_pid_alive(in->pid))
		return 1;
	if (in->err->sys_errno != ESRCH)
		return 0;
	while (attach_now_ms() < until) {
		nanosleep(&nap, NULL);
		if (!attach_pid_alive(in->pid))
			return 1;
	}
	return 0;
}

/* Why the stopped thread is not at a safe point: parked in a call with a
 * temporary signal mask, or a frame in a function our calls would need the
 * locks of. Returns 0 when it is safe, 1 with why filled. */
static int thread_unsafe(struct inj *in, struct attach_thread *th, char *why,
			 size_t len)
{
	long nr = arch_get_syscall_nr(&th->regs);
	arch_regs_t resume;
	unsigned int flags;
	int mask_arg, indirect;

	why[0] = '\0';
	if (arch_resume_regs(&th->regs, 0, &resume) == ARCH_RESUME_LOST) {
		snprintf(why, len, "in restart_syscall (its restart state would be lost)");
		return 1;
	}
	flags = nr >= 0 ? arch_syscall_flags(nr, &mask_arg, &indirect) : 0;
	if ((flags & ARCH_SC_SIGMASK) && mask_arg >= 0) {
		unsigned long m = arch_get_syscall_arg(&th->regs, mask_arg);

		if (m && indirect && attach_mem_read(in->pid, m, &m, sizeof(m)) != 0)
			m = 1;
		if (m) {
			snprintf(why, len, "in %s with a temporary signal mask",
				 arch_syscall_name(nr));
			return 1;
		}
	}
	if (!stack_is_safe(in, th, why, len)) {
		PYHOT_TRACE("ptrace", "tid %d not at a safe point: %s", (int)th->tid, why);
		return 1;
	}
	return 0;
}

/* Keep the longest stop of a thread for the result. */
static void note_stop(struct inj *in, const struct attach_thread *th)
{
	double ms = attach_thread_stopped_ms(th);

	if (ms > in->res->stopped_ms)
		in->res->stopped_ms = ms;
}

/* Give back, untouched, a thread that was not at a safe point. Returns 0
 * to try another, or an error. */
static int pass_thread(struct inj *in, struct hijack *h)
{
	int ret;

	note_stop(in, &h->th);
	ret = attach_thread_release(&h->th, in->err);
	if (ret)
		return ret;
	/* A thread that vanished in between, or a killed target, shows up
	 * on the next look at /proc. */
	if (!attach_pid_alive(in->pid))
		return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, ESRCH, in->pid,
				     "attach", "pid %d exited during attach",
				     (int)in->pid);
	return 0;
}

/* The root cause of a failure in a target that died under us is the exit,
 * not the ptrace request that noticed it. Before any remote call ran, we
 * cannot have caused it; after, we may have. */
static int blame_exit(struct inj *in, const struct hijack *h)
{
	if (!h->calls_started) {
		pyhot_err_init(in->err);
		pyhot_err_set(in->err, PYHOT_ERR_ATTACH, ESRCH, in->pid, "attach",
			      "pid %d exited during attach", (int)in->pid);
	} else if (in->err->kind != PYHOT_ERR_UNCERTAIN) {
		pyhot_err_init(in->err);
		pyhot_err_set(in->err, PYHOT_ERR_UNCERTAIN, ESRCH, in->pid,
			      "inject", "pid %d exited while the payload was "
			      "being loaded", (int)in->pid);
	}
	return -(int)in->err->kind;
}

/* Borrow the thread at a safe point: save what the calls clobber (its
 * errno too), make the calls, give everything back. */
static int borrow_thread(struct inj *in, struct hijack *h)
{
	int ret, r;

	ret = hijack_begin(in, h);
	if (ret == 0)
		ret = errno_location(in, h, &h->errno_loc);
	if (ret == 0 && attach_mem_read(in->pid, h->errno_loc, &h->saved_errno,
					sizeof(h->saved_errno)) == 0) {
		/* From now on the stub puts errno back after each call. */
		h->have_errno = 1;
		ret = write_frame(in, h);
	}
	if (ret == 0)
		ret = do_calls(in, h);
	r = hijack_end(in, h);
	if (!ret)
		ret = r;
	note_stop(in, &h->th);
	/* A target that died under us is an attach failure, not a stopped
	 * thread to restore. */
	if (ret && target_died(in))
		return blame_exit(in, h);
	return ret;
}

/* Try one thread. Returns 1 when injected (or failed after the calls
 * began: err says), 0 when the thread was not at a safe point (released
 * untouched), or a negative error. */
static int try_thread(struct inj *in, struct candidate *c, unsigned int wait_ms)
{
	struct hijack h;
	char why[96];
	const char *name;
	int r, ret;
	long nr;

	memset(&h, 0, sizeof(h));
	c->tries++;
	in->res->attempts++;
	r = attach_thread_stop(&h.th, &in->chld, in->pid, c->tid, wait_ms, in->err);
	if (r == 1) {
		snprintf(c->where, sizeof(c->where), "exited");
		return 0;
	}
	if (r < 0)
		return r;
	/* Test builds only: a target dying during attach gives a clean
	 * "pid N exited during attach" and leaves nothing behind. */
	if (attach_test_hook("kill-after-seize")) {
		PYHOT_TRACE("ptrace", "test hook: SIGKILL pid %d", (int)in->pid);
		kill(in->pid, SIGKILL);
	}
	if (thread_unsafe(in, &h.th, why, sizeof(why))) {
		snprintf(c->where, sizeof(c->where), "%s", why);
		return pass_thread(in, &h);
	}
	nr = arch_get_syscall_nr(&h.th.regs);
	name = nr >= 0 ? arch_syscall_name(nr) : NULL;
	if (nr >= 0)
		snprintf(c->where, sizeof(c->where), "in %s", name ? name : "a system call");
	else
		snprintf(c->where, sizeof(c->where), "running user code");
	PYHOT_TRACE("ptrace", "tid %d is at a safe point (%s)", (int)c->tid, c->where);
	in->res->tid = c->tid;
	ret = borrow_thread(in, &h);
	return ret ? ret : 1;
}

static void describe_threads(struct inj *in, char *buf, size_t len)
{
	size_t i, off = 0;
	int n;

	buf[0] = '\0';
	for (i = 0; i < in->ncands && off + 1 < len; i++) {
		const struct candidate *c = &in->cands[i];

		n = snprintf(buf + off, len - off, "%stid %d %s", i ? ", " : "",
			     (int)c->tid, c->where[0] ? c->where :
			     c->rank < 0 ? "not interruptible" : "not tried");
		if (n < 0)
			break;
		off += (size_t)n;
	}
}

/* List the threads again, best candidate first. */
static int list_threads(struct inj *in)
{
	pid_t pid = in->pid;
	int r;

	r = inject_cands_refresh(in);
	PYHOT_TRACE("ptrace", "%zu threads listed", in->ncands);
	if (r < 0) {
		if (!attach_pid_alive(pid))
			return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, ESRCH, pid, "attach",
					     "pid %d exited during attach", (int)pid);
		return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, -r, pid, "attach",
				     "list threads of pid %d failed", (int)pid);
	}
	if (in->ncands == 0 && in->opts->tid)
		return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, ESRCH, pid, "attach",
				     "pid %d has no thread %d", (int)pid,
				     (int)in->opts->tid);
	return 0;
}

/* One pass over the candidates. Returns 1 when injected, 0 when none was
 * at a safe point, or an error. */
static int try_candidates(struct inj *in, double deadline)
{
	size_t i;
	int r;

	for (i = 0; i < in->ncands; i++) {
		double left = deadline - attach_now_ms();

		if (in->cands[i].rank < 0)
			continue;
		/* Every candidate gets one try, however slow the machine was
		 * to get here. */
		if (left < 1 && in->cands[i].tries)
			break;
		if (left < 1)
			left = 1;
		r = try_thread(in, &in->cands[i], (unsigned int)left);
		if (r != 0)
			return r;
	}
	return 0;
}

/* Look for a thread at a safe point until timeout_ms have passed, and
 * inject through the first one found. */
static int find_thread_and_inject(struct inj *in, unsigned int timeout_ms)
{
	struct timespec nap = { 0, RETRY_NAP_NS };
	double deadline = attach_now_ms() + timeout_ms;
	char where[320];
	int r;

	for (;;) {
		r = list_threads(in);
		if (r == 0)
			r = try_candidates(in, deadline);
		if (r != 0)
			return r < 0 ? r : 0;
		if (attach_now_ms() + 1 >= deadline)
			break;
		nanosleep(&nap, NULL);
	}
	describe_threads(in, where, sizeof(where));
	pyhot_err_set(in->err, PYHOT_ERR_TIMEOUT, ETIMEDOUT, in->pid, "inject",
		      "no thread of pid %d was at a safe point within %u ms "
		      "(%u attempts): %s", (int)in->pid, timeout_ms, in->res->attempts,
		      where);
	pyhot_err_hint(in->err, "the threads were busy in the allocator, the loader or "
		       "thread creation; retry, or give a longer timeout");
	return -PYHOT_ERR_TIMEOUT;
}

static pthread_mutex_t inject_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int inject_quiescing;

void pyhot_inject_quiesce(void)
{
	/* The flag first: a thread that gets the lock before us (a mutex is
	 * not fair) gives it up without starting. */
	atomic_store(&inject_quiescing, 1);
	pthread_mutex_lock(&inject_lock);
}

int pyhot_inject(pid_t pid, const struct pyhot_inject_opts *opts,
		 struct pyhot_inject_result *res, struct pyhot_err *err)
{
	struct attach_watchdog wd;
	struct inj in;
	double start;
	int ret;

	memset(res, 0, sizeof(*res));
	if (!opts || !opts->payload_path || !opts->boot_symbol)
		return pyhot_err_set(err, PYHOT_ERR_USAGE, EINVAL, pid, "inject",
				     "payload path and boot symbol are required");
	if (opts->boot_arg && strlen(opts->boot_arg) >= BOOT_ARG_MAX)
		return pyhot_err_set(err, PYHOT_ERR_USAGE, E2BIG, pid, "inject",
				     "boot argument longer than %u bytes", BOOT_ARG_MAX);
	memset(&in, 0, sizeof(in));
	in.pid = pid;
	in.opts = opts;
	in.res = res;
	in.err = err;
	in.payload_fd = -1;
	start = attach_now_ms();

	/* One injection at a time in this process (several processes' commands
	 * run in threads, cli/steps.h): the watchdog is one static block, and
	 * ptrace and the SIGCHLD window belong to the calling thread. */
	pthread_mutex_lock(&inject_lock);
	if (atomic_load(&inject_quiescing)) {
		pthread_mutex_unlock(&inject_lock);
		return pyhot_err_set(err, PYHOT_ERR_ATTACH, EINTR, pid, "inject",
				     "pid %d: not attached: the command is ending on a "
				     "signal", (int)pid);
	}
	res->lock_wait_ms = attach_now_ms() - start;
	start = attach_now_ms();
	attach_test_hold();
	ret = inject_prep(&in);
	if (ret)
		goto out_free;
	PYHOT_TRACE("ptrace", "prepared in %.3f ms", attach_now_ms() - start);
	/* The thread survives our death (docs/injection.md), but a Ctrl-C,
	 * Ctrl-\ or Ctrl-Z should not cut an attach short or hold a borrowed
	 * thread: hold what a terminal sends until the thread is given back
	 * (and SIGCHLD, to sleep on). */
	if (attach_chld_block(&in.chld) != 0) {
		ret = pyhot_err_set(err, PYHOT_ERR_ATTACH, errno, pid, "attach",
				    "pthread_sigmask() failed");
		goto out_free;
	}
	/* A SIGSTOP cannot be blocked: a watchdog continues us while a
	 * thread is ours (watchdog.c). Without one (fork failed) the attach
	 * goes on as any tracer would. */
	if (attach_watchdog_start(&wd) != 0)
		PYHOT_TRACE("ptrace", "no watchdog: a SIGSTOP would hold the thread");
	/* The timeout bounds the search for a safe thread, not the reading
	 * of /proc and ELF files before it. */
	ret = find_thread_and_inject(&in, opts->timeout_ms ? opts->timeout_ms
							 : DEFAULT_TIMEOUT_MS);
	attach_watchdog_stop(&wd);
	attach_chld_restore(&in.chld);
out_free:
	if (in.payload_fd >= 0)
		close(in.payload_fd);
	attach_unwinder_free(in.unw);
	free(in.cands);
	free(in.forbid);
	pthread_mutex_unlock(&inject_lock);
	PYHOT_TRACE("ptrace", "inject pid %d: %s in %.3f ms, %u attempts, longest stop "
		    "%.3f ms", (int)pid, ret ? "failed" : "done", attach_now_ms() - start,
		    res->attempts, res->stopped_ms);
	return ret;
}
