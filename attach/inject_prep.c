/*
 * inject_prep.c: what the injector learns before it stops any thread: the
 * target's libc functions and the code ranges a borrowed thread must not
 * be in, the payload (and whether it is mapped already), and the target's
 * threads ranked from /proc.
 */
#include "attach_inject.h"
#include "attach_int.h"
#include "attach_unwind.h"
#include "pyhot_log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CANDIDATES 4096

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

const char *inject_forbidden_at(const struct inj *in, unsigned long ip)
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

/* Where __errno_location finds errno, read before any thread is stopped
 * (arch_errno_got_slot()): a borrowed thread's errno location is then its
 * thread pointer's TCB plus that slot's value, with no remote call. The
 * slot is written once by ld.so when libc loads (and is read-only after). */
static void learn_errno_got(struct inj *in)
{
	unsigned char code[ARCH_ERRNO_CODE_LEN];
	unsigned long slot, off;

	in->errno_got = 0;
	if (attach_mem_read(in->pid, in->fn_errno, code, sizeof(code)) != 0)
		return;
	slot = arch_errno_got_slot(code, in->fn_errno);
	if (slot && attach_mem_read(in->pid, slot, &off, sizeof(off)) == 0)
		in->errno_got = slot;
	PYHOT_TRACE("elf", "__errno_location: %s", in->errno_got ?
		    "thread pointer plus a GOT slot" : "a remote call");
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
	learn_errno_got(in);
	/* The return stub (arch.h) needs ARCH_STUB_LEN bytes of executable
	 * memory no code uses: the padding after libc's code, in its last
	 * page. No system call in the target is needed to make it. */
	v = (attach_elf_exec_end(e) + ARCH_STUB_ALIGN - 1) & ~(unsigned long)(ARCH_STUB_ALIGN - 1);
	if (v && v + ARCH_STUB_LEN <= ((attach_elf_exec_end(e) + 4095) & ~4095ul))
		in->stub = bias + v;
	if (!in->stub) {
		ret = pyhot_err_set(in->err, PYHOT_ERR_ATTACH, 0, in->pid, "attach",
				    "libc '%.*s' of pid %d has no room after its code for "
				    "the %d-byte return stub", (int)libc->pathlen,
				    libc->path, (int)in->pid, ARCH_STUB_LEN);
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

/* Open the payload once and check the open file: code run as the target
 * must come from a file only root or the invoking user can change. */
static int open_payload(struct inj *in)
{
	const char *path = in->opts->payload_path;
	struct stat st;
	char eb[128];
	int e;

	if (attach_test_hook("stop-before-payload-open"))
		raise(SIGSTOP);
	in->payload_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (in->payload_fd < 0) {
		e = errno;
		return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, e, in->pid, "inject",
				     "open('%s'): %s", path, attach_strerror(e, eb, sizeof(eb)));
	}
	if (fstat(in->payload_fd, &st) != 0) {
		e = errno;
		return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, e, in->pid, "payload",
				     "fstat('%s'): %s", path, attach_strerror(e, eb, sizeof(eb)));
	}
	if (!S_ISREG(st.st_mode))
		return pyhot_err_set(in->err, PYHOT_ERR_ATTACH, EINVAL, in->pid, "payload",
				     "'%s' is not a regular file", path);
	if (st.st_uid != 0 && st.st_uid != getuid()) {
		pyhot_err_set(in->err, PYHOT_ERR_ATTACH, EPERM, in->pid, "payload",
			      "'%s' belongs to uid %u, neither root nor uid %u", path,
			      (unsigned int)st.st_uid, (unsigned int)getuid());
		pyhot_err_hint(in->err, "the payload runs inside the target: use a file "
			       "owned by root or by you");
		return -PYHOT_ERR_ATTACH;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		pyhot_err_set(in->err, PYHOT_ERR_ATTACH, EPERM, in->pid, "payload",
			      "'%s' is writable by others (mode %04o)", path,
			      (unsigned int)(st.st_mode & 07777));
		pyhot_err_hint(in->err, "the payload runs inside the target: chmod go-w '%s'",
			       path);
		return -PYHOT_ERR_ATTACH;
	}
	return 0;
}

/* The build id read through our descriptor against the caller's. */
static int check_build_id(struct inj *in)
{
	char hex[2 * sizeof(in->build_id) + 1];
	size_t i;

	if (!in->opts->build_id)
		return 0;
	for (i = 0; i < in->build_id_len; i++)
		snprintf(hex + 2 * i, 3, "%02x", in->build_id[i]);
	hex[2 * in->build_id_len] = '\0';
	if (strcmp(hex, in->opts->build_id) == 0)
		return 0;
	pyhot_err_set(in->err, PYHOT_ERR_ATTACH, 0, in->pid, "payload",
		      "'%s' has build id %s, not %s: it changed after pyhot checked it",
		      in->opts->payload_path, in->build_id_len ? hex : "none",
		      in->opts->build_id);
	pyhot_err_hint(in->err, "nothing was loaded into pid %d; something replaced the "
		       "payload during the attach: check who can write to its directory",
		       (int)in->pid);
	return -PYHOT_ERR_ATTACH;
}

/* The local payload: its boot symbol and build id; when it is already
 * mapped in the target, check it is the same file and where boot is. */
static int prep_payload(struct inj *in)
{
	struct attach_elf *e = NULL;
	unsigned char rid[64];
	unsigned long sz, first_load = 0;
	char fdpath[64];
	size_t rlen;
	int ret;

	ret = open_payload(in);
	if (ret)
		return ret;
	/* The same open file, not the path again. */
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", in->payload_fd);
	if (attach_elf_open(fdpath, &e, in->pid, in->err) != 0) {
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
	in->first_load = attach_elf_first_load(e);
	ret = check_build_id(in);
	if (ret)
		goto out_close;
	if (!in->payload_base)
		goto out_close;
	rlen = attach_elf_remote_build_id(in->pid, in->payload_base, rid, sizeof(rid),
					  &first_load);
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

/* A signal whose default action is to ignore it and that the target has
 * no handler for: the stub's completion signal stops the borrowed thread
 * for us, and is dropped when nobody traces it. None for a target under a
 * seccomp filter, which might refuse the stub's tkill: its calls end at
 * the rt_sigreturn stop (PTRACE_SYSCALL), which comes before any filter. */
static void pick_done_signal(struct inj *in)
{
	static const int choices[] = { SIGURG, SIGWINCH };
	struct attach_status st;
	char path[64], *text = NULL;
	size_t len, i;

	in->done_sig = 0;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)in->pid);
	if (attach_read_file(path, &text, &len) != 0)
		return;
	if (attach_parse_status(text, &st) == 0 && st.seccomp == 0) {
		for (i = 0; i < sizeof(choices) / sizeof(choices[0]); i++) {
			if (!(st.sig_cgt & (1ull << (choices[i] - 1)))) {
				in->done_sig = choices[i];
				break;
			}
		}
	}
	free(text);
}

int inject_prep(struct inj *in)
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
		if (!in->payload_base && attach_map_is_payload(&m))
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
	pick_done_signal(in);
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
int inject_cands_refresh(struct inj *in)
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
