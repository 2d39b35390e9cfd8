/*
 * inject.c: load the payload into a live process on one borrowed thread
 * (see pyhot_attach.h for the contract and design-notes.md for the
 * hazards each step guards against).
 */
#include "pyhot_attach.h"
#include "attach_int.h"
#include "attach_thread.h"
#include "attach_unwind.h"
#include "pyhot_log.h"
#include "pyhot_proto.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
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
#define BOOT_ARG_MAX (16u * 1024u)
#define RETRY_NAP_NS 1000000L
#define MAX_CANDIDATES 4096
#define MEMFD_MAP_NAME "/memfd:" PYHOT_MEMFD_NAME " (deleted)"
/* glibc before 2.34: __libc_dlopen_mode() wants __RTLD_DLOPEN. */
#define LIBC_RTLD_DLOPEN 0x80000000ul
#define REMOTE_RTLD_NOW 0x2ul
#define REMOTE_MFD_CLOEXEC 0x1ul

/*
 * The test hook (for tests/live and tests/integration only): with
 * PYHOT_TEST_HOOK=kill-after-seize in the injector's environment, the
 * injector SIGKILLs the target right after the borrowed thread stops, so
 * that the tests can check that a target dying during attach gives a clean
 * "pid N exited during attach" and leaves nothing behind.
 */
#define TEST_HOOK_ENV "PYHOT_TEST_HOOK"

struct range {
	unsigned long lo, hi;
	const char *what;         /* a static string: "malloc", "ld.so" */
};

/* Functions that must not be on the borrowed thread's stack: they hold
 * the malloc arena lock, the loader lock or are half-way through creating
 * a thread or a process, and our dlopen would need the same. */
static const char *const forbidden_names[] = {
	"malloc", "free", "calloc", "realloc", "reallocarray", "memalign",
	"posix_memalign", "aligned_alloc", "valloc", "pvalloc", "malloc_trim",
	"malloc_usable_size", "malloc_stats", "malloc_info", "mallinfo",
	"mallinfo2", "mallopt", "cfree", "__libc_malloc", "__libc_free",
	"__libc_calloc", "__libc_realloc", "__libc_memalign", "__libc_valloc",
	"__libc_pvalloc",
	"dlopen", "dlclose", "dlsym", "dlvsym", "dladdr", "dladdr1", "dlinfo",
	"dlmopen", "dlerror", "dl_iterate_phdr", "__libc_dlopen_mode",
	"__libc_dlsym", "__libc_dlvsym", "__libc_dlclose",
	"pthread_create", "fork", "_Fork", "vfork", "__libc_fork",
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
	int old_dlopen;           /* __libc_dlopen_mode (glibc < 2.34) */

	struct range *forbid;
	size_t nforbid, capforbid;

	unsigned long payload_base;   /* mapped payload, or 0 */
	unsigned long boot_value;     /* st_value of the boot symbol */
	unsigned long boot_addr;      /* in the target, when reusing */
	unsigned char build_id[64];
	size_t build_id_len;

	struct attach_unwinder *unw;

	struct candidate *cands;
	size_t ncands;
};

/* One borrowed thread and what must be given back to it. */
struct hijack {
	struct attach_thread th;
	arch_regs_t saved;            /* = th.regs, kept for the calls */
	unsigned char *xstate;
	size_t xstate_len;
	int have_xstate;
	uint64_t sigmask;
	int have_sigmask;
	unsigned long scratch;        /* data goes below this, growing down */
	unsigned long scratch_floor;
	int calls_started;            /* a remote call ran: the target may be changed */
	unsigned long errno_loc;      /* the thread's errno, put back at the end */
	int saved_errno;
	int have_errno;
};

static int forbid_add(struct inj *in, unsigned long lo, unsigned long hi,
		      const char *what)
{
	struct range *n;

	if (in->nforbid == in->capforbid) {
		size_t cap = in->capforbid ? in->capforbid * 2 : 64;

		n = realloc(in->forbid, cap * sizeof(*n));
		if (!n)
			return -1;
		in->forbid = n;
		in->capforbid = cap;
	}
	in->forbid[in->nforbid].lo = lo;
	in->forbid[in->nforbid].hi = hi;
	in->forbid[in->nforbid].what = what;
	in->nforbid++;
	return 0;
}

static const char *forbidden_at(const struct inj *in, unsigned long ip)
{
	size_t i;

	for (i = 0; i < in->nforbid; i++) {
		if (ip >= in->forbid[i].lo && ip < in->forbid[i].hi)
			return in->forbid[i].what;
	}
	return NULL;
}

static int lookup_biased(struct attach_elf *e, unsigned long bias, const char *name,
			 unsigned long *addr)
{
	unsigned long v, sz;

	if (attach_elf_lookup(e, name, &v, &sz) != 0)
		return -1;
	*addr = bias + v;
	return 0;
}

/* The target's libc: the functions we call and the ranges we avoid. */
static int prep_libc(struct inj *in, const struct attach_map *libc)
{
	struct attach_elf *e = NULL;
	unsigned long bias, v, sz;
	size_t i;
	int ret = 0;

	if (attach_elf_open_mapped(in->pid, libc, &e, in->err) != 0)
		return -PYHOT_ERR_ATTACH;
	bias = libc->start - attach_elf_first_load(e);
	if (lookup_biased(e, bias, "dlopen", &in->fn_dlopen) != 0) {
		in->old_dlopen = 1;
		if (lookup_biased(e, bias, "__libc_dlopen_mode", &in->fn_dlopen) != 0)
			in->fn_dlopen = 0;
	}
	if (lookup_biased(e, bias, "dlsym", &in->fn_dlsym) != 0 &&
	    lookup_biased(e, bias, "__libc_dlsym", &in->fn_dlsym) != 0)
		in->fn_dlsym = 0;
	if (lookup_biased(e, bias, "dlerror", &in->fn_dlerror) != 0)
		in->fn_dlerror = 0;
	if (lookup_biased(e, bias, "memfd_create", &in->fn_memfd) != 0)
		in->fn_memfd = 0;
	if (lookup_biased(e, bias, "close", &in->fn_close) != 0)
		in->fn_close = 0;
	if (lookup_biased(e, bias, "__errno_location", &in->fn_errno) != 0)
		in->fn_errno = 0;
	if (!in->fn_dlopen || !in->fn_dlsym || !in->fn_memfd || !in->fn_close ||
	    !in->fn_errno) {
		ret = pyhot_err_set(in->err, PYHOT_ERR_ATTACH, 0, in->pid, "attach",
				    "libc '%.*s' of pid %d lacks %s", (int)libc->pathlen,
				    libc->path, (int)in->pid,
				    !in->fn_dlopen ? "dlopen and __libc_dlopen_mode" :
				    !in->fn_dlsym ? "dlsym and __libc_dlsym" :
				    !in->fn_memfd ? "memfd_create (glibc 2.27 or newer)" :
				    !in->fn_close ? "close" : "__errno_location");
		pyhot_err_hint(in->err, "pyhot needs a glibc 2.27 or newer target");
		goto out_close;
	}
	for (i = 0; i < sizeof(forbidden_names) / sizeof(forbidden_names[0]); i++) {
		if (attach_elf_lookup(e, forbidden_names[i], &v, &sz) != 0)
			continue;
		if (forbid_add(in, bias + v, bias + v + (sz ? sz : 1),
			       forbidden_names[i]) != 0) {
			ret = pyhot_err_set(in->err, PYHOT_ERR_ATTACH, ENOMEM, in->pid,
					    "attach", "out of memory");
			goto out_close;
		}
	}
	PYHOT_TRACE("elf", "libc %.*s bias 0x%lx dlopen 0x%lx%s dlsym 0x%lx "
		    "memfd_create 0x%lx, %zu ranges to avoid", (int)libc->pathlen,
		    libc->path, bias, in->fn_dlopen,
		    in->old_dlopen ? " (__libc_dlopen_mode)" : "", in->fn_dlsym,
		    in->fn_memfd, in->nforbid);
out_close:
	attach_elf_close(e);
	return ret;
}

/* The build id of the payload mapped at base, read from target memory. */
static size_t remote_build_id(pid_t pid, unsigned long base, unsigned char *buf,
			      size_t len, unsigned long *first_load)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph[32];
	unsigned char notes[512];
	size_t i, n, off;
	int have_load = 0;
	unsigned long bias = 0, note_vaddr = 0, note_size = 0;

	if (attach_mem_read(pid, base, &eh, sizeof(eh)) != 0 ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh.e_phentsize != sizeof(Elf64_Phdr))
		return 0;
	n = eh.e_phnum < 32 ? eh.e_phnum : 32;
	if (attach_mem_read(pid, base + eh.e_phoff, ph, n * sizeof(ph[0])) != 0)
		return 0;
	for (i = 0; i < n; i++) {
		if (ph[i].p_type == PT_LOAD && !have_load) {
			*first_load = ph[i].p_vaddr & ~4095ul;
			bias = base - *first_load;
			have_load = 1;
		}
		if (ph[i].p_type == PT_NOTE && !note_vaddr) {
			note_vaddr = ph[i].p_vaddr;
			note_size = ph[i].p_memsz;
		}
	}
	if (!have_load || !note_vaddr)
		return 0;
	if (note_size > sizeof(notes))
		note_size = sizeof(notes);
	if (attach_mem_read(pid, bias + note_vaddr, notes, note_size) != 0)
		return 0;
	for (off = 0; off + sizeof(Elf64_Nhdr) <= note_size;) {
		Elf64_Nhdr nh;
		size_t name_off, desc_off;

		memcpy(&nh, notes + off, sizeof(nh));
		name_off = off + sizeof(nh);
		desc_off = name_off + ((nh.n_namesz + 3) & ~3u);
		if (desc_off + nh.n_descsz > note_size)
			break;
		if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
		    memcmp(notes + name_off, "GNU", 4) == 0) {
			n = nh.n_descsz < len ? nh.n_descsz : len;
			memcpy(buf, notes + desc_off, n);
			return n;
		}
		off = desc_off + ((nh.n_descsz + 3) & ~3u);
	}
	return 0;
}

/* The local payload: its boot symbol and build id; when it is already
 * mapped in the target, check it is the same file and where boot is. */
static int prep_payload(struct inj *in)
{
	struct attach_elf *e = NULL;
	unsigned char rid[64];
	unsigned long sz, first_load = 0;
	size_t rlen;
	int ret = 0;

	if (attach_elf_open(in->opts->payload_path, &e, in->pid, in->err) != 0) {
		pyhot_err_hint(in->err, "reinstall pyhot, or point PYHOT_PAYLOAD at "
			       "pyhot-payload.so");
		return -PYHOT_ERR_ATTACH;
	}
	if (attach_elf_lookup(e, in->opts->boot_symbol, &in->boot_value, &sz) != 0) {
		ret = pyhot_err_set(in->err, PYHOT_ERR_ATTACH, 0, in->pid, "attach",
				    "payload '%s' does not export '%s'",
				    in->opts->payload_path, in->opts->boot_symbol);
		goto out_close;
	}
	in->build_id_len = attach_elf_build_id(e, in->build_id, sizeof(in->build_id));
	if (!in->payload_base)
		goto out_close;
	rlen = remote_build_id(in->pid, in->payload_base, rid, sizeof(rid), &first_load);
	/* Calling into another build at our symbol's offset would jump into
	 * the middle of some function: refuse unless the ids match. */
	if (!in->build_id_len || rlen != in->build_id_len ||
	    memcmp(rid, in->build_id, rlen) != 0) {
		ret = pyhot_err_set(in->err, PYHOT_ERR_ATTACH, 0, in->pid, "attach",
				    "pid %d already has a different pyhot payload loaded "
				    "(at 0x%lx)", (int)in->pid, in->payload_base);
		pyhot_err_hint(in->err, "use the pyhot that first attached to it, or "
			       "restart the target");
		goto out_close;
	}
	in->boot_addr = in->payload_base - first_load + in->boot_value;
	PYHOT_TRACE("elf", "payload already mapped at 0x%lx: boot at 0x%lx",
		    in->payload_base, in->boot_addr);
out_close:
	attach_elf_close(e);
	return ret;
}

static int prep(struct inj *in)
{
	struct attach_map m, libc;
	char path[64], base[256], eb[128], *maps = NULL;
	const char *cur;
	size_t len;
	int r, have_libc = 0, ret;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)in->pid);
	r = attach_read_file(path, &maps, &len);
	if (r < 0) {
		if (r == -ENOENT || r == -ESRCH)
			return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, -r, in->pid,
					     "attach", "pid %d does not exist",
					     (int)in->pid);
		if (r == -EACCES || r == -EPERM) {
			char what[96];

			snprintf(what, sizeof(what), "read('%s')", path);
			return attach_diagnose_eperm(in->pid, what, in->err);
		}
		return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, -r, in->pid, "attach",
				     "read('%s'): %s", path,
				     attach_strerror(-r, eb, sizeof(eb)));
	}
	cur = maps;
	while ((r = attach_maps_next(&cur, &m)) != 0) {
		if (r < 0 || !m.pathlen || m.path[0] != '/')
			continue;
		if (m.offset == 0 && !in->payload_base &&
		    (attach_map_path_is(&m, MEMFD_MAP_NAME) ||
		     attach_map_path_is(&m, "/memfd:" PYHOT_MEMFD_NAME)))
			in->payload_base = m.start;
		attach_map_basename(&m, base, sizeof(base));
		if (attach_is_ldso(base)) {
			if (forbid_add(in, m.start, m.end, "ld.so") != 0) {
				ret = pyhot_err_set(in->err, PYHOT_ERR_ATTACH, ENOMEM,
						    in->pid, "attach", "out of memory");
				goto out_free;
			}
		} else if (!have_libc && m.offset == 0 && attach_is_libc(base)) {
			libc = m;
			have_libc = 1;
		}
	}
	if (!have_libc) {
		ret = pyhot_err_set(in->err, PYHOT_ERR_ATTACH, 0, in->pid, "attach",
				    "pid %d has no glibc mapped (libc.so.6)", (int)in->pid);
		pyhot_err_hint(in->err, "pyhot needs a dynamically linked glibc target");
		goto out_free;
	}
	ret = prep_libc(in, &libc);
	if (ret)
		goto out_free;
	ret = prep_payload(in);
	if (ret)
		goto out_free;
	r = attach_unwinder_new(in->pid, maps, &in->unw);
	if (r < 0)
		ret = pyhot_err_set(in->err, PYHOT_ERR_ATTACH, -r, in->pid, "attach",
				    "prepare the unwinder: %s",
				    attach_strerror(-r, eb, sizeof(eb)));
out_free:
	free(maps);
	return ret;
}

/* ----- candidates ----- */

/* Rank thread tid from /proc without stopping it: a thread parked in a
 * call the kernel restarts is the cheapest to borrow and cannot be holding
 * a user-space lock it is about to release. */
static void cand_rank(struct inj *in, struct candidate *c)
{
	struct attach_task_syscall sc;
	char path[96], *text = NULL;
	size_t len;
	char state = 0;
	unsigned int flags;
	int mask_arg, indirect;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)in->pid, (int)c->tid);
	if (attach_read_file(path, &text, &len) == 0) {
		state = attach_parse_stat_state(text);
		free(text);
		text = NULL;
	}
	if (state == 'Z' || state == 'X' || state == 'D' || state == 0) {
		/* Uninterruptible sleep would keep our stop waiting. */
		c->rank = -1;
		snprintf(c->where, sizeof(c->where), "in state %c", state ? state : '?');
		return;
	}
	c->rank = 3;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", (int)in->pid,
		 (int)c->tid);
	if (attach_read_file(path, &text, &len) != 0)
		return;
	if (attach_parse_task_syscall(text, &sc) != 0) {
		free(text);
		return;
	}
	free(text);
	if (sc.running || sc.nr < 0) {
		c->rank = 1;
		return;
	}
	flags = arch_syscall_flags(sc.nr, &mask_arg, &indirect);
	if ((flags & ARCH_SC_SIGMASK) && mask_arg >= 0 && sc.args[mask_arg]) {
		/* The kernel holds a temporary signal mask for this call and
		 * puts the thread's own back when it returns; our
		 * PTRACE_SETSIGMASK would make the temporary one stick. Not
		 * even interrupted: ppoll and friends are common in loops. */
		c->rank = -2;
		snprintf(c->where, sizeof(c->where), "in %s with a temporary signal mask",
			 arch_syscall_name(sc.nr));
		return;
	}
	if (flags & ARCH_SC_RESTARTS)
		c->rank = 0;
	else if (flags & ARCH_SC_EINTR)
		c->rank = 2;
}

static int cand_cmp(const void *a, const void *b)
{
	const struct candidate *x = a, *y = b;

	if (x->rank != y->rank)
		return x->rank - y->rank;
	if (x->tries != y->tries)
		return x->tries < y->tries ? -1 : 1;
	return x->tid - y->tid;
}

/* Refresh the thread list, keeping what we learnt of known threads. */
static int cands_refresh(struct inj *in)
{
	char path[64];
	struct dirent *d;
	struct candidate *n, *old = in->cands;
	size_t nold = in->ncands, cap = 16, cnt = 0, i;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)in->pid);
	dir = opendir(path);
	if (!dir)
		return -errno;
	n = calloc(cap, sizeof(*n));
	if (!n) {
		closedir(dir);
		return -ENOMEM;
	}
	while ((d = readdir(dir)) != NULL && cnt < MAX_CANDIDATES) {
		pid_t tid = (pid_t)atoi(d->d_name);
		struct candidate *c;

		if (tid <= 0)
			continue;
		if (in->opts->tid && tid != in->opts->tid)
			continue;
		if (cnt == cap) {
			struct candidate *nn = realloc(n, cap * 2 * sizeof(*n));

			if (!nn) {
				free(n);
				closedir(dir);
				return -ENOMEM;
			}
			n = nn;
			cap *= 2;
		}
		c = &n[cnt++];
		memset(c, 0, sizeof(*c));
		c->tid = tid;
		for (i = 0; i < nold; i++) {
			if (old[i].tid == tid) {
				*c = old[i];
				break;
			}
		}
	}
	closedir(dir);
	free(old);
	in->cands = n;
	in->ncands = cnt;
	for (i = 0; i < cnt; i++)
		cand_rank(in, &in->cands[i]);
	qsort(in->cands, in->ncands, sizeof(*in->cands), cand_cmp);
	return 0;
}

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
	what = forbidden_at(s->in, n ? ip - 1 : ip);
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
	what = forbidden_at(in, arch_get_ip(&th->regs));
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

/*
 * Call fn(args) on the borrowed thread and wait until it returns to address
 * 0 (a SIGSEGV with si_addr 0 that we swallow). Returns 0 and *ret, or an
 * error: the call faulted elsewhere, took too long or the process died
 * (PYHOT_ERR_UNCERTAIN).
 */
static int remote_call(struct inj *in, struct hijack *h, const char *name,
		       unsigned long fn, const unsigned long *args, int nargs,
		       unsigned long *ret)
{
	arch_regs_t regs;
	unsigned long slot, zero = 0;
	siginfo_t si;
	double deadline;
	char eb[128];
	int status, r, sig, event, stops = 0;
	pid_t tid = h->th.tid;

	if (arch_setup_call(&regs, &h->saved, fn, args, nargs, h->scratch, &slot) != 0)
		return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, EINVAL, in->pid, "inject",
				     "%s(): too many arguments", name);
	r = mem_write(in->pid, tid, slot, &zero, sizeof(zero));
	if (r == 0)
		r = attach_set_regs(tid, &regs);
	if (r < 0)
		return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, -r, in->pid, "inject",
				     "set up call of %s() in thread %d: %s", name,
				     (int)tid, attach_strerror(-r, eb, sizeof(eb)));
	/* From here the thread's registers are ours: release must put the
	 * saved ones back. */
	h->th.regs_dirty = 1;
	if (ptrace(PTRACE_CONT, tid, NULL, NULL) < 0) {
		r = errno;
		return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, r, in->pid, "inject",
				     "ptrace(PTRACE_CONT, %d) for %s(): %s", (int)tid,
				     name, attach_strerror(r, eb, sizeof(eb)));
	}
	h->th.stopped = 0;
	h->calls_started = 1;
	deadline = attach_now_ms() + CALL_TIMEOUT_MS;
	for (;;) {
		r = attach_wait(tid, &status, deadline);
		if (r == 0) {
			/* Stop it where it is: what it holds now is unknown. */
			if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) == 0 &&
			    attach_wait(tid, &status, attach_now_ms() + 1000.0) == 1 &&
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
		sig = WSTOPSIG(status);
		event = status >> 16;
		if (event == PTRACE_EVENT_STOP || (sig != SIGSEGV && sig != SIGBUS &&
						   sig != SIGILL && sig != SIGFPE &&
						   sig != SIGTRAP && sig != SIGSYS)) {
			/* A group stop, or an asynchronous signal that got past
			 * the mask (SIGKILL aside, none should): let the call
			 * finish; a group stop resumes after we detach. */
			if (++stops > 64 ||
			    ptrace(PTRACE_CONT, tid, NULL,
				   (void *)(long)(event ? 0 : sig)) < 0)
				goto fault;
			continue;
		}
		break;
	}
	h->th.stopped = 1;
	r = attach_get_regs(tid, &regs);
	if (r < 0 || ptrace(PTRACE_GETSIGINFO, tid, NULL, &si) < 0)
		goto fault;
	if (sig == SIGSEGV && arch_call_returned(&regs) && si.si_addr == NULL) {
		*ret = arch_call_result(&regs);
		return 0;
	}
	return pyhot_err_set(in->err, PYHOT_ERR_UNCERTAIN, 0, in->pid, "inject",
			     "%s() in pid %d faulted: signal %d (%s) at ip 0x%lx, "
			     "address %p", name, (int)in->pid, sig, strsignal(sig),
			     arch_get_ip(&regs), si.si_addr);
fault:
	h->th.stopped = 1;
	return pyhot_err_set(in->err, PYHOT_ERR_UNCERTAIN, errno, in->pid, "inject",
			     "lost control of thread %d during %s()", (int)tid, name);
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
		if (remote_call(in, h, "__errno_location", in->fn_errno, NULL, 0, &loc) != 0 ||
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

/* Write the payload file into the memfd the target just created. */
static int write_payload(struct inj *in, int remote_fd)
{
	char path[64], eb[128], chunk[65536];
	int src, dst, ret = 0;
	ssize_t n, w, off;

	src = open(in->opts->payload_path, O_RDONLY | O_CLOEXEC);
	if (src < 0) {
		int e = errno;

		return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, e, in->pid, "inject",
				     "open('%s'): %s", in->opts->payload_path,
				     attach_strerror(e, eb, sizeof(eb)));
	}
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)in->pid, remote_fd);
	dst = open(path, O_WRONLY | O_CLOEXEC);
	if (dst < 0) {
		int e = errno;

		ret = pyhot_err_set(in->err, PYHOT_ERR_ATTACH, e, in->pid, "inject",
				    "open('%s'): %s", path,
				    attach_strerror(e, eb, sizeof(eb)));
		goto out_src;
	}
	for (;;) {
		n = read(src, chunk, sizeof(chunk));
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
out_src:
	close(src);
	return ret;
}

/* Save what the calls will clobber and block signals for them. Returns 0
 * or an error (the caller releases). */
static int hijack_begin(struct inj *in, struct hijack *h)
{
	struct iovec iov;
	uint64_t block;
	char eb[128];
	int e;

	h->saved = h->th.regs;
	h->scratch = arch_get_sp(&h->saved) - ARCH_RED_ZONE;
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
	if (ptrace(PTRACE_GETSIGMASK, h->th.tid, (void *)sizeof(h->sigmask),
		   &h->sigmask) < 0) {
		e = errno;
		return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, e, in->pid, "inject",
				     "ptrace(PTRACE_GETSIGMASK, %d): %s", (int)h->th.tid,
				     attach_strerror(e, eb, sizeof(eb)));
	}
	h->have_sigmask = 1;
	/* Every signal but the synchronous faults: a handler must not run on
	 * top of our call, and a blocked fault would reset its handler to
	 * SIG_DFL (force_sig_info) -- the SIGSEGV at address 0 is how our
	 * calls return. */
	block = ~0ull;
	block &= ~(1ull << (SIGSEGV - 1));
	block &= ~(1ull << (SIGBUS - 1));
	block &= ~(1ull << (SIGILL - 1));
	block &= ~(1ull << (SIGFPE - 1));
	block &= ~(1ull << (SIGTRAP - 1));
	block &= ~(1ull << (SIGSYS - 1));
	if (ptrace(PTRACE_SETSIGMASK, h->th.tid, (void *)sizeof(block), &block) < 0) {
		e = errno;
		return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, e, in->pid, "inject",
				     "ptrace(PTRACE_SETSIGMASK, %d): %s", (int)h->th.tid,
				     attach_strerror(e, eb, sizeof(eb)));
	}
	return 0;
}

/* Give the thread back what hijack_begin() saved, then detach. The first
 * error wins; every step is tried. */
static int hijack_end(struct inj *in, struct hijack *h)
{
	struct iovec iov;
	char eb[128];
	int e, ret = 0;

	if (h->th.seized && !h->th.gone && h->th.stopped) {
		/* dlopen and friends set errno even when they succeed; the
		 * thread may be between a failed call and reading errno. */
		if (h->have_errno &&
		    mem_write(in->pid, h->th.tid, h->errno_loc, &h->saved_errno,
			      sizeof(h->saved_errno)) != 0)
			ret = pyhot_err_set(in->err, PYHOT_ERR_UNCERTAIN, 0, in->pid,
					    "inject", "restore errno of thread %d failed",
					    (int)h->th.tid);
		if (h->have_xstate) {
			iov.iov_base = h->xstate;
			iov.iov_len = h->xstate_len;
			if (ptrace(PTRACE_SETREGSET, h->th.tid, (void *)ARCH_XSTATE_REGSET,
				   &iov) < 0) {
				e = errno;
				ret = pyhot_err_set(in->err, PYHOT_ERR_UNCERTAIN, e, in->pid,
						    "inject", "restore vector registers "
						    "of thread %d: %s", (int)h->th.tid,
						    attach_strerror(e, eb, sizeof(eb)));
			}
		}
		if (h->have_sigmask &&
		    ptrace(PTRACE_SETSIGMASK, h->th.tid, (void *)sizeof(h->sigmask),
			   &h->sigmask) < 0) {
			e = errno;
			ret = pyhot_err_set(in->err, PYHOT_ERR_UNCERTAIN, e, in->pid,
					    "inject", "restore the signal mask of thread "
					    "%d: %s", (int)h->th.tid,
					    attach_strerror(e, eb, sizeof(eb)));
		}
		/* The general registers last, orig_rax and rax included, so
		 * that the kernel restarts the interrupted system call. */
		h->th.regs = h->saved;
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

/* The calls themselves, on a hijacked thread. */
static int do_calls(struct inj *in, struct hijack *h)
{
	unsigned long a[3], name_addr, path_addr, arg_addr, rv, handle, boot;
	char path[64], dlerr[512];
	int fd = -1, ret, e;
	long boot_ret;

	ret = remote_string(h, in->opts->boot_arg ? in->opts->boot_arg : "", &arg_addr,
			    in->err);
	if (ret)
		return ret;
	if (in->boot_addr) {
		boot = in->boot_addr;
		in->res->reused = 1;
		goto call_boot;
	}
	ret = remote_string(h, PYHOT_MEMFD_NAME, &name_addr, in->err);
	if (ret)
		return ret;
	a[0] = name_addr;
	a[1] = REMOTE_MFD_CLOEXEC;
	ret = remote_call(in, h, "memfd_create", in->fn_memfd, a, 2, &rv);
	if (ret)
		return ret;
	fd = (int)rv;
	if (fd < 0) {
		char eb[128];

		e = remote_errno(in, h);
		return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, e, in->pid, "inject",
				     "memfd_create('%s') in pid %d: %s", PYHOT_MEMFD_NAME,
				     (int)in->pid,
				     e ? attach_strerror(e, eb, sizeof(eb)) : "failed");
	}
	PYHOT_TRACE("ptrace", "memfd_create -> fd %d in pid %d", fd, (int)in->pid);
	ret = write_payload(in, fd);
	if (ret)
		goto out_close;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ret = remote_string(h, path, &path_addr, in->err);
	if (ret)
		goto out_close;
	a[0] = path_addr;
	a[1] = REMOTE_RTLD_NOW | (in->old_dlopen ? LIBC_RTLD_DLOPEN : 0);
	ret = remote_call(in, h, in->old_dlopen ? "__libc_dlopen_mode" : "dlopen",
			  in->fn_dlopen, a, 2, &handle);
	if (ret)
		goto out_close;
	if (!handle) {
		remote_dlerror(in, h, dlerr, sizeof(dlerr));
		ret = pyhot_err_set(in->err, PYHOT_ERR_ATTACH, 0, in->pid, "inject",
				    "dlopen('%s') in pid %d: %s", in->opts->payload_path,
				    (int)in->pid, dlerr[0] ? dlerr : "failed");
		pyhot_err_hint(in->err, "the payload must match the target's "
			       "architecture and libc");
		goto out_close;
	}
	PYHOT_TRACE("ptrace", "dlopen -> handle 0x%lx", handle);
	ret = remote_string(h, in->opts->boot_symbol, &name_addr, in->err);
	if (ret)
		goto out_close;
	a[0] = handle;
	a[1] = name_addr;
	ret = remote_call(in, h, "dlsym", in->fn_dlsym, a, 2, &boot);
	if (ret)
		goto out_close;
	if (!boot) {
		remote_dlerror(in, h, dlerr, sizeof(dlerr));
		ret = pyhot_err_set(in->err, PYHOT_ERR_ATTACH, 0, in->pid, "inject",
				    "dlsym('%s') in pid %d: %s", in->opts->boot_symbol,
				    (int)in->pid, dlerr[0] ? dlerr : "not found");
		goto out_close;
	}
call_boot:
	a[0] = arg_addr;
	ret = remote_call(in, h, in->opts->boot_symbol, boot, a, 1, &rv);
	if (ret)
		goto out_close;
	/* The boot function returns an int: sign-extend it. */
	boot_ret = (long)(int)(unsigned int)rv;
	in->res->boot_ret = boot_ret;
	PYHOT_TRACE("ptrace", "%s() -> %ld%s", in->opts->boot_symbol, boot_ret,
		    in->res->reused ? " (payload was mapped already)" : "");
out_close:
	if (fd >= 0) {
		struct pyhot_err scratch, *keep = in->err;

		/* On an error path the first error stays the reported one. */
		if (ret) {
			pyhot_err_init(&scratch);
			in->err = &scratch;
		}
		a[0] = (unsigned long)fd;
		if (remote_call(in, h, "close", in->fn_close, a, 1, &rv) != 0 && !ret)
			ret = -in->err->kind;
		in->err = keep;
	}
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

static int hook_enabled(const char *name)
{
	const char *v = getenv(TEST_HOOK_ENV);

	return v && strcmp(v, name) == 0;
}

/* Try one thread. Returns 1 when injected (or failed after the calls
 * began: err says), 0 when the thread was not at a safe point (released
 * untouched), or a negative error. */
static int try_thread(struct inj *in, struct candidate *c, unsigned int wait_ms)
{
	struct hijack h;
	char why[96];
	double ms;
	int r, ret, mask_arg, indirect;
	unsigned int flags;
	long nr;

	memset(&h, 0, sizeof(h));
	c->tries++;
	in->res->attempts++;
	r = attach_thread_stop(&h.th, in->pid, c->tid, wait_ms, in->err);
	if (r == 1) {
		snprintf(c->where, sizeof(c->where), "exited");
		return 0;
	}
	if (r < 0)
		return r;
	if (hook_enabled("kill-after-seize")) {
		PYHOT_TRACE("ptrace", "test hook: SIGKILL pid %d", (int)in->pid);
		kill(in->pid, SIGKILL);
	}
	why[0] = '\0';
	nr = arch_get_syscall_nr(&h.th.regs);
	flags = nr >= 0 ? arch_syscall_flags(nr, &mask_arg, &indirect) : 0;
	if ((flags & ARCH_SC_SIGMASK) && mask_arg >= 0) {
		unsigned long m = arch_get_syscall_arg(&h.th.regs, mask_arg);

		if (m && indirect && attach_mem_read(in->pid, m, &m, sizeof(m)) != 0)
			m = 1;
		if (m)
			snprintf(why, sizeof(why), "in %s with a temporary signal mask",
				 arch_syscall_name(nr));
	}
	if (!why[0] && !stack_is_safe(in, &h.th, why, sizeof(why)))
		PYHOT_TRACE("ptrace", "tid %d not at a safe point: %s", (int)c->tid, why);
	if (why[0]) {
		snprintf(c->where, sizeof(c->where), "%s", why);
		ms = attach_thread_stopped_ms(&h.th);
		if (ms > in->res->stopped_ms)
			in->res->stopped_ms = ms;
		ret = attach_thread_release(&h.th, in->err);
		if (ret)
			return ret;
		/* A thread that vanished in between, or a killed target,
		 * shows up on the next look at /proc. */
		if (!attach_pid_alive(in->pid))
			return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, ESRCH, in->pid,
					     "attach", "pid %d exited during attach",
					     (int)in->pid);
		return 0;
	}
	if (nr >= 0)
		snprintf(c->where, sizeof(c->where), "in %s",
			 arch_syscall_name(nr) ? arch_syscall_name(nr) : "a system call");
	else
		snprintf(c->where, sizeof(c->where), "running user code");
	PYHOT_TRACE("ptrace", "tid %d is at a safe point (%s)", (int)c->tid, c->where);
	in->res->tid = c->tid;
	ret = hijack_begin(in, &h);
	if (ret == 0)
		ret = remote_call(in, &h, "__errno_location", in->fn_errno, NULL, 0,
				  &h.errno_loc);
	if (ret == 0 && attach_mem_read(in->pid, h.errno_loc, &h.saved_errno,
					sizeof(h.saved_errno)) == 0)
		h.have_errno = 1;
	if (ret == 0)
		ret = do_calls(in, &h);
	/* A target that died under us is an attach failure, not a stopped
	 * thread to restore. */
	r = hijack_end(in, &h);
	if (!ret)
		ret = r;
	ms = attach_thread_stopped_ms(&h.th);
	if (ms > in->res->stopped_ms)
		in->res->stopped_ms = ms;
	if (ret && target_died(in)) {
		/* The root cause is the exit, not the ptrace request that
		 * noticed it. Before any remote call ran, we cannot have
		 * caused it; after, we may have. */
		if (!h.calls_started) {
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

int pyhot_inject(pid_t pid, const struct pyhot_inject_opts *opts,
		 struct pyhot_inject_result *res, struct pyhot_err *err)
{
	struct inj in;
	sigset_t old;
	struct timespec nap = { 0, RETRY_NAP_NS };
	double start, deadline;
	unsigned int timeout;
	char where[320];
	size_t i;
	int ret = 0, r;

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
	timeout = opts->timeout_ms ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
	start = attach_now_ms();

	ret = prep(&in);
	if (ret)
		goto out_free;
	/* The timeout bounds the search for a safe thread, not the reading
	 * of /proc and ELF files before it. */
	deadline = attach_now_ms() + timeout;
	PYHOT_TRACE("ptrace", "prepared in %.3f ms", attach_now_ms() - start);
	/* If pyhot is interrupted while a call is under way, the thread
	 * returns to address 0 and the target dies: hold SIGINT, SIGTERM and
	 * SIGHUP until the thread is given back (and SIGCHLD, to sleep on). */
	if (attach_chld_block(&old) != 0) {
		ret = pyhot_err_set(err, PYHOT_ERR_ATTACH, errno, pid, "attach",
				    "pthread_sigmask() failed");
		goto out_free;
	}
	for (;;) {
		r = cands_refresh(&in);
		PYHOT_TRACE("ptrace", "%zu threads listed", in.ncands);
		if (r < 0) {
			if (!attach_pid_alive(pid))
				ret = pyhot_err_set(err, PYHOT_ERR_ATTACH, ESRCH, pid,
						    "attach", "pid %d exited during attach",
						    (int)pid);
			else
				ret = pyhot_err_set(err, PYHOT_ERR_ATTACH, -r, pid,
						    "attach", "list threads of pid %d failed",
						    (int)pid);
			goto out_sigmask;
		}
		if (in.ncands == 0 && opts->tid) {
			ret = pyhot_err_set(err, PYHOT_ERR_ATTACH, ESRCH, pid, "attach",
					    "pid %d has no thread %d", (int)pid,
					    (int)opts->tid);
			goto out_sigmask;
		}
		for (i = 0; i < in.ncands; i++) {
			double left = deadline - attach_now_ms();

			if (in.cands[i].rank < 0)
				continue;
			/* Every candidate gets one try, however slow the
			 * machine was to get here. */
			if (left < 1 && in.cands[i].tries)
				break;
			if (left < 1)
				left = 1;
			r = try_thread(&in, &in.cands[i], (unsigned int)left);
			if (r == 1) {
				ret = 0;
				goto out_sigmask;
			}
			if (r < 0) {
				ret = r;
				goto out_sigmask;
			}
		}
		if (attach_now_ms() + 1 >= deadline)
			break;
		nanosleep(&nap, NULL);
	}
	describe_threads(&in, where, sizeof(where));
	ret = pyhot_err_set(err, PYHOT_ERR_TIMEOUT, ETIMEDOUT, pid, "inject",
			    "no thread of pid %d was at a safe point within %u ms "
			    "(%u attempts): %s", (int)pid, timeout, res->attempts, where);
	pyhot_err_hint(err, "the threads were busy in the allocator, the loader or "
		       "thread creation; retry, or give a longer timeout");

out_sigmask:
	attach_chld_restore(&old);
out_free:
	attach_unwinder_free(in.unw);
	free(in.cands);
	free(in.forbid);
	PYHOT_TRACE("ptrace", "inject pid %d: %s in %.3f ms, %u attempts, longest stop "
		    "%.3f ms", (int)pid, ret ? "failed" : "done", attach_now_ms() - start,
		    res->attempts, res->stopped_ms);
	return ret;
}
