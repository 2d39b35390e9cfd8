/*
 * unwind.c: a fast remote unwinder for the borrowed thread's safety check.
 *
 * libunwind-ptrace, left to itself, opens and maps the ELF file of every
 * object a frame is in and reads the target word by word with
 * PTRACE_PEEKDATA: 4 to 17 ms for a Python thread, all of it with the
 * thread stopped. Here the unwind tables (.eh_frame_hdr) of every mapped
 * object are located BEFORE the thread is stopped, from the target's own
 * memory (no file access, so other mount namespaces and deleted files do
 * not matter), and memory is read a page at a time with process_vm_readv
 * into a small cache that lives for one unwind. libunwind still does the
 * DWARF work (dwarf_search_unwind_table, as perf uses it); registers come
 * from libunwind-ptrace.
 */
#include "attach_unwind.h"
#include "attach_int.h"
#include "pyhot_log.h"

#include <elf.h>
#include <errno.h>
#include <libunwind-ptrace.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

/* Not in libunwind's public headers, but exported and stable; perf
 * declares it the same way. */
extern int UNW_OBJ(dwarf_search_unwind_table)(unw_addr_space_t as, unw_word_t ip,
					      unw_dyn_info_t *di, unw_proc_info_t *pi,
					      int need_unwind_info, void *arg);

#define PAGE 4096ul
#define CACHE_PAGES 32
#define DW_EH_PE_udata4 0x03
#define DW_EH_PE_sdata4 0x0b
#define DW_EH_PE_pcrel 0x10
#define DW_EH_PE_datarel 0x30

struct object {
	unsigned long start, end;     /* an executable mapping */
	unsigned long hdr;            /* its .eh_frame_hdr in the target */
	unsigned long fde_count;
};

struct page {
	unsigned long addr;           /* page address, 0 when empty */
	unsigned char data[PAGE];
};

struct attach_unwinder {
	pid_t pid;
	unw_addr_space_t as;
	struct object *objs;
	size_t nobjs, capobjs;
	/* Per unwind: */
	void *upt;
	const unw_word_t *fake_regs;  /* the warm-up's made-up ip and sp, or NULL */
	struct page *cache;
	unsigned int next_slot;
};

static int cache_read(struct attach_unwinder *u, unsigned long addr, unw_word_t *val)
{
	unsigned long pg = addr & ~(PAGE - 1), off = addr - pg;
	struct page *p = NULL;
	unsigned int i;

	/* A word across a page boundary: two reads. */
	if (off + sizeof(*val) > PAGE) {
		unsigned char buf[sizeof(*val)];
		size_t first = PAGE - off;
		unw_word_t a, b;

		if (cache_read(u, pg + PAGE - sizeof(a), &a) != 0 ||
		    cache_read(u, pg + PAGE, &b) != 0)
			return -1;
		memcpy(buf, (unsigned char *)&a + sizeof(a) - first, first);
		memcpy(buf + first, &b, sizeof(*val) - first);
		memcpy(val, buf, sizeof(*val));
		return 0;
	}
	for (i = 0; i < CACHE_PAGES; i++) {
		if (u->cache[i].addr == pg) {
			p = &u->cache[i];
			break;
		}
	}
	if (!p) {
		struct iovec local, remote;

		p = &u->cache[u->next_slot];
		u->next_slot = (u->next_slot + 1) % CACHE_PAGES;
		local.iov_base = p->data;
		local.iov_len = PAGE;
		remote.iov_base = (void *)pg;
		remote.iov_len = PAGE;
		p->addr = 0;
		if (process_vm_readv(u->pid, &local, 1, &remote, 1, 0) != (ssize_t)PAGE)
			return -1;
		p->addr = pg;
	}
	memcpy(val, p->data + off, sizeof(*val));
	return 0;
}

static int acc_find_proc_info(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t *pi,
			      int need_unwind_info, void *arg)
{
	struct attach_unwinder *u = arg;
	unw_dyn_info_t di;
	size_t i;

	for (i = 0; i < u->nobjs; i++) {
		const struct object *o = &u->objs[i];

		if (ip < o->start || ip >= o->end)
			continue;
		memset(&di, 0, sizeof(di));
		di.format = UNW_INFO_FORMAT_REMOTE_TABLE;
		di.start_ip = o->start;
		di.end_ip = o->end;
		/* The binary search table follows the 12-byte header; its
		 * entries are relative to the header ("datarel"). */
		di.u.rti.segbase = o->hdr;
		di.u.rti.table_data = o->hdr + 12;
		di.u.rti.table_len = o->fde_count * 8 / sizeof(unw_word_t);
		return UNW_OBJ(dwarf_search_unwind_table)(as, ip, &di, pi,
							  need_unwind_info, arg);
	}
	return -UNW_ENOINFO;
}

static void acc_put_unwind_info(unw_addr_space_t as, unw_proc_info_t *pi, void *arg)
{
	struct attach_unwinder *u = arg;

	/* dwarf_search_unwind_table() allocated it as for libunwind-ptrace's
	 * own lookups: give it back the same way. */
	_UPT_put_unwind_info(as, pi, u->upt);
}

static int acc_get_dyn_info_list_addr(unw_addr_space_t as, unw_word_t *dilap, void *arg)
{
	return -UNW_ENOINFO;
}

static int acc_access_mem(unw_addr_space_t as, unw_word_t addr, unw_word_t *val,
			  int write, void *arg)
{
	struct attach_unwinder *u = arg;

	if (write)
		return -UNW_EINVAL;   /* an unwind for a check never writes */
	if (cache_read(u, (unsigned long)addr, val) == 0)
		return 0;
	return _UPT_access_mem(as, addr, val, 0, u->upt);
}

static int acc_access_reg(unw_addr_space_t as, unw_regnum_t reg, unw_word_t *val,
			  int write, void *arg)
{
	struct attach_unwinder *u = arg;

	if (write)
		return -UNW_EINVAL;
	if (u->fake_regs) {
		*val = reg == UNW_REG_IP ? u->fake_regs[0] :
		       reg == UNW_REG_SP ? u->fake_regs[1] : 0;
		return 0;
	}
	return _UPT_access_reg(as, reg, val, 0, u->upt);
}

static int acc_access_fpreg(unw_addr_space_t as, unw_regnum_t reg, unw_fpreg_t *val,
			    int write, void *arg)
{
	return -UNW_EBADREG;
}

static int acc_resume(unw_addr_space_t as, unw_cursor_t *c, void *arg)
{
	return -UNW_EINVAL;
}

static int acc_get_proc_name(unw_addr_space_t as, unw_word_t addr, char *buf,
			     size_t len, unw_word_t *off, void *arg)
{
	return -UNW_ENOINFO;
}

static unw_accessors_t accessors = {
	.find_proc_info = acc_find_proc_info,
	.put_unwind_info = acc_put_unwind_info,
	.get_dyn_info_list_addr = acc_get_dyn_info_list_addr,
	.access_mem = acc_access_mem,
	.access_reg = acc_access_reg,
	.access_fpreg = acc_access_fpreg,
	.resume = acc_resume,
	.get_proc_name = acc_get_proc_name,
};

/* Locate the .eh_frame_hdr of the object loaded at base (its ELF header
 * is mapped there) and add the executable mapping [start, end). */
static void add_object(struct attach_unwinder *u, unsigned long base,
		       unsigned long start, unsigned long end)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph[64];
	unsigned char hdr[12];
	unsigned long first_load = 0, eh_vaddr = 0, bias;
	uint32_t count;
	size_t i, n;
	int have_load = 0;

	if (attach_mem_read(u->pid, base, &eh, sizeof(eh)) != 0 ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(Elf64_Phdr))
		return;
	n = eh.e_phnum < 64 ? eh.e_phnum : 64;
	if (attach_mem_read(u->pid, base + eh.e_phoff, ph, n * sizeof(ph[0])) != 0)
		return;
	for (i = 0; i < n; i++) {
		if (ph[i].p_type == PT_LOAD && !have_load) {
			first_load = ph[i].p_vaddr & ~(PAGE - 1);
			have_load = 1;
		} else if (ph[i].p_type == PT_GNU_EH_FRAME) {
			eh_vaddr = ph[i].p_vaddr;
		}
	}
	if (!have_load || !eh_vaddr)
		return;
	bias = base - first_load;
	if (attach_mem_read(u->pid, bias + eh_vaddr, hdr, sizeof(hdr)) != 0)
		return;
	/* version 1, eh_frame_ptr pcrel sdata4, fde_count udata4, table
	 * datarel sdata4: what every GNU toolchain writes. Anything else is
	 * left to libunwind's fallback. */
	if (hdr[0] != 1 || hdr[1] != (DW_EH_PE_pcrel | DW_EH_PE_sdata4) ||
	    hdr[2] != DW_EH_PE_udata4 || hdr[3] != (DW_EH_PE_datarel | DW_EH_PE_sdata4))
		return;
	memcpy(&count, hdr + 8, sizeof(count));
	if (u->nobjs == u->capobjs) {
		size_t cap = u->capobjs ? u->capobjs * 2 : 64;
		struct object *no = realloc(u->objs, cap * sizeof(*no));

		if (!no)
			return;
		u->objs = no;
		u->capobjs = cap;
	}
	u->objs[u->nobjs].start = start;
	u->objs[u->nobjs].end = end;
	u->objs[u->nobjs].hdr = bias + eh_vaddr;
	u->objs[u->nobjs].fde_count = count;
	u->nobjs++;
}

static int warm_cb(unsigned long ip, int n, void *ctx)
{
	return 0;
}

/*
 * Run libunwind once before any thread is stopped. Its first unwind pays
 * for lazy initialisation, symbol binding and cold code: about 1 ms here,
 * against 0.1 ms for the next one, all of it inside the borrowed thread's
 * stop otherwise. The registers are made up (ip: the first function of the
 * object with the most, sp: 0), so the walk ends at its first step; the
 * process is only read.
 */
static void warm_up(struct attach_unwinder *u)
{
	const struct object *big = NULL;
	unw_word_t regs[2];
	int32_t rel;
	size_t i;

	for (i = 0; i < u->nobjs; i++) {
		if (!big || u->objs[i].fde_count > big->fde_count)
			big = &u->objs[i];
	}
	/* The table's first entry: the function's start, relative to the
	 * header. */
	if (!big || !big->fde_count ||
	    attach_mem_read(u->pid, big->hdr + 12, &rel, sizeof(rel)) != 0)
		return;
	regs[0] = (unw_word_t)((long)big->hdr + rel) + 1;
	regs[1] = 0;
	u->fake_regs = regs;
	(void)attach_unwind(u, getpid(), 2, warm_cb, NULL);
	u->fake_regs = NULL;
}

/*
 * The page cache (131 KB) of the last unwinder, kept for the next: freeing
 * it unmapped it (glibc maps a block that large), and on this kind of
 * virtual machine the TLB flush of that munmap took 1 to 1.7 ms at the end
 * of every attach. One spare per process, never given back (the process
 * ends soon after, or attaches again); empty when two unwinders are freed
 * at once, the second is then freed for real.
 */
static _Atomic(struct page *) spare_cache;

static struct page *cache_get(void)
{
	struct page *c = atomic_exchange(&spare_cache, NULL);
	unsigned int i;

	if (!c)
		return calloc(CACHE_PAGES, sizeof(*c));
	for (i = 0; i < CACHE_PAGES; i++)
		c[i].addr = 0;
	return c;
}

static void cache_put(struct page *c)
{
	if (c)
		free(atomic_exchange(&spare_cache, c));
}

int attach_unwinder_new(pid_t pid, const char *maps, struct attach_unwinder **out)
{
	struct attach_unwinder *u;
	struct attach_map m;
	const char *cur = maps, *base_path = NULL;
	size_t base_len = 0;
	unsigned long base = 0;
	int r;

	*out = NULL;
	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->pid = pid;
	u->cache = cache_get();
	u->as = unw_create_addr_space(&accessors, 0);
	if (!u->cache || !u->as) {
		attach_unwinder_free(u);
		return -ENOMEM;
	}
	unw_set_caching_policy(u->as, UNW_CACHE_GLOBAL);
	while ((r = attach_maps_next(&cur, &m)) != 0) {
		if (r < 0 || !m.pathlen)
			continue;
		/* The object's first mapping (file offset 0) holds its ELF
		 * header; the executable mappings of the same file follow. */
		if (m.offset == 0) {
			base = m.start;
			base_path = m.path;
			base_len = m.pathlen;
		}
		if (m.perms[2] != 'x' || !base_path || base_len != m.pathlen ||
		    memcmp(base_path, m.path, m.pathlen) != 0)
			continue;
		add_object(u, base, m.start, m.end);
	}
	warm_up(u);
	PYHOT_TRACE("ptrace", "unwinder: %zu objects with unwind tables", u->nobjs);
	*out = u;
	return 0;
}

void attach_unwinder_free(struct attach_unwinder *u)
{
	if (!u)
		return;
	if (u->as)
		unw_destroy_addr_space(u->as);
	cache_put(u->cache);
	free(u->objs);
	free(u);
}

int attach_unwind(struct attach_unwinder *u, pid_t tid, int max_frames,
		  int (*cb)(unsigned long ip, int n, void *ctx), void *ctx)
{
	unw_cursor_t cur;
	unw_word_t ip;
	unsigned int i;
	int n = 0, r;

	/* The stack changes between stops: forget the pages of the last
	 * unwind. */
	for (i = 0; i < CACHE_PAGES; i++)
		u->cache[i].addr = 0;
	u->upt = _UPT_create(tid);
	if (!u->upt)
		return -ENOMEM;
	r = unw_init_remote(&cur, u->as, u);
	if (r < 0)
		goto out_destroy;
	while (n < max_frames) {
		if (unw_get_reg(&cur, UNW_REG_IP, &ip) < 0 || ip == 0)
			break;
		r = cb((unsigned long)ip, n, ctx);
		n++;
		if (r)
			break;
		if (unw_step(&cur) <= 0)
			break;
	}
	r = n;
out_destroy:
	_UPT_destroy(u->upt);
	u->upt = NULL;
	return r;
}
