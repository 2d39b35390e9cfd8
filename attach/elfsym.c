/* elfsym.c: symbols, first PT_LOAD and build id of ELF files (libelf). */
#include "attach_int.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct attach_elf {
	int fd;
	Elf *elf;
	Elf_Scn *symtab;          /* .dynsym, or .symtab when there is none */
	Elf_Scn *versym;          /* .gnu.version matching .dynsym, or NULL */
	Elf_Scn *gnu_hash;        /* .gnu.hash of .dynsym, or NULL */
	size_t strndx;
	unsigned long first_load;
	char path[256];
};

static int elf_lib_ok;

static void elf_lib_init(void)
{
	elf_lib_ok = elf_version(EV_CURRENT) != EV_NONE;
}

/* libelf's one-time set-up, once per process even with several threads
 * inspecting at once (cli/steps.h). */
static int elf_lib_ready(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, elf_lib_init);
	return elf_lib_ok ? 0 : -1;
}

int attach_elf_open(const char *path, struct attach_elf **out, pid_t pid,
		    struct pyhot_err *err)
{
	struct attach_elf *e;
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;
	GElf_Ehdr eh;
	GElf_Phdr ph;
	size_t i, phnum;
	char eb[128];
	int found_load = 0;

	*out = NULL;
	if (elf_lib_ready() < 0)
		return pyhot_err_set(err, PYHOT_ERR_ATTACH, 0, pid, "elf",
				     "elf_version(): %s", elf_errmsg(-1));
	e = calloc(1, sizeof(*e));
	if (!e)
		return pyhot_err_set(err, PYHOT_ERR_ATTACH, ENOMEM, pid, "elf",
				     "open('%s'): out of memory", path);
	snprintf(e->path, sizeof(e->path), "%s", path);
	e->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (e->fd < 0) {
		int saved = errno;

		free(e);
		return pyhot_err_set(err, PYHOT_ERR_ATTACH, saved, pid, "elf",
				     "open('%s'): %s", path,
				     attach_strerror(saved, eb, sizeof(eb)));
	}
	e->elf = elf_begin(e->fd, ELF_C_READ_MMAP, NULL);
	if (!e->elf || elf_kind(e->elf) != ELF_K_ELF || !gelf_getehdr(e->elf, &eh)) {
		pyhot_err_set(err, PYHOT_ERR_ATTACH, 0, pid, "elf",
			      "read('%s'): not an ELF file (%s)", path, elf_errmsg(-1));
		goto out_close;
	}
	if (elf_getshdrstrndx(e->elf, &e->strndx) != 0)
		e->strndx = 0;
	while ((scn = elf_nextscn(e->elf, scn)) != NULL) {
		if (!gelf_getshdr(scn, &sh))
			continue;
		if (sh.sh_type == SHT_DYNSYM)
			e->symtab = scn;
		else if (sh.sh_type == SHT_GNU_versym)
			e->versym = scn;
		else if (sh.sh_type == SHT_GNU_HASH)
			e->gnu_hash = scn;
	}
	if (!e->symtab) {
		/* A fixture or an executable without .dynsym: fall back to
		 * .symtab, which has no versions and no hash table. */
		e->versym = NULL;
		e->gnu_hash = NULL;
		while ((scn = elf_nextscn(e->elf, scn)) != NULL) {
			if (gelf_getshdr(scn, &sh) && sh.sh_type == SHT_SYMTAB)
				e->symtab = scn;
		}
	}
	if (elf_getphdrnum(e->elf, &phnum) == 0) {
		for (i = 0; i < phnum; i++) {
			if (gelf_getphdr(e->elf, (int)i, &ph) && ph.p_type == PT_LOAD) {
				e->first_load = ph.p_vaddr & ~(unsigned long)4095;
				found_load = 1;
				break;
			}
		}
	}
	if (!found_load) {
		pyhot_err_set(err, PYHOT_ERR_ATTACH, 0, pid, "elf",
			      "read('%s'): no PT_LOAD segment", path);
		goto out_close;
	}
	*out = e;
	return 0;

out_close:
	if (e->elf)
		elf_end(e->elf);
	close(e->fd);
	free(e);
	return -PYHOT_ERR_ATTACH;
}

void attach_elf_close(struct attach_elf *e)
{
	if (!e)
		return;
	elf_end(e->elf);
	close(e->fd);
	free(e);
}

/* What one symbol table entry is worth to a lookup of name: 0 no, 1 a
 * hidden version (memcpy@GLIBC_2.2.5), 2 the default one (memcpy@@...).
 * Several versions of one name may exist; the default one is not hidden. */
static int sym_match(struct attach_elf *e, Elf_Data *data, Elf_Data *vdata,
		     size_t link, size_t i, const char *name, GElf_Sym *sym)
{
	const char *sname;
	GElf_Versym vs = 0;

	if (!gelf_getsym(data, (int)i, sym) || sym->st_shndx == SHN_UNDEF ||
	    sym->st_value == 0)
		return 0;
	if (GELF_ST_TYPE(sym->st_info) != STT_FUNC &&
	    GELF_ST_TYPE(sym->st_info) != STT_GNU_IFUNC &&
	    GELF_ST_TYPE(sym->st_info) != STT_OBJECT)
		return 0;
	sname = elf_strptr(e->elf, link, sym->st_name);
	if (!sname || strcmp(sname, name) != 0)
		return 0;
	if (vdata)
		gelf_getversym(vdata, (int)i, &vs);
	return (vs & 0x8000) ? 1 : 2;
}

/* The GNU hash of a symbol name (the dynamic loader's dl_new_hash). */
static uint32_t gnu_hash_of(const char *name)
{
	uint32_t h = 5381;

	for (; *name; name++)
		h = h * 33 + (unsigned char)*name;
	return h;
}

/*
 * The candidates for name through .gnu.hash, as the dynamic loader finds
 * them: the bucket of its hash, then the chain until the entry whose low
 * bit ends it. Returns -2 for a table it cannot read (the caller scans
 * the whole symbol table instead). Layout: nbuckets, symoffset,
 * bloom_size, bloom_shift, bloom[bloom_size] (words of the object's class:
 * two 32-bit words each for ELFCLASS64), buckets[nbuckets], chain[].
 */
static int lookup_gnu_hash(struct attach_elf *e, Elf_Data *data, Elf_Data *vdata,
			   size_t link, size_t nsyms, const char *name,
			   GElf_Sym *best, int *found)
{
	Elf_Data *hd = elf_getdata(e->gnu_hash, NULL);
	const uint32_t *w;
	size_t nwords, nbuckets, symoffset, bloom_words, word_size, i;
	uint32_t h, h2;
	GElf_Sym sym;
	int m;

	word_size = gelf_getclass(e->elf) == ELFCLASS64 ? 2 : 1;
	if (!hd || !hd->d_buf || hd->d_size < 16)
		return -2;
	w = hd->d_buf;
	nwords = hd->d_size / 4;
	nbuckets = w[0];
	symoffset = w[1];
	bloom_words = (size_t)w[2] * word_size;
	if (!nbuckets || 4 + bloom_words + nbuckets > nwords)
		return -2;
	h = gnu_hash_of(name);
	i = w[4 + bloom_words + h % nbuckets];
	if (i < symoffset)
		return 0;   /* an empty bucket */
	for (; i < nsyms; i++) {
		size_t ci = 4 + bloom_words + nbuckets + (i - symoffset);

		if (ci >= nwords)
			return -2;
		h2 = w[ci];
		if ((h | 1) == (h2 | 1)) {
			m = sym_match(e, data, vdata, link, i, name, &sym);
			if (m) {
				*best = sym;
				*found = 1;
				if (m == 2)
					return 0;
			}
		}
		if (h2 & 1)
			break;
	}
	return 0;
}

int attach_elf_lookup(struct attach_elf *e, const char *name,
		      unsigned long *value, unsigned long *size)
{
	Elf_Data *data, *vdata = NULL;
	GElf_Shdr sh;
	GElf_Sym sym, best;
	size_t i, n;
	int found = 0, m;

	if (!e->symtab || !gelf_getshdr(e->symtab, &sh) || sh.sh_entsize == 0)
		return -1;
	data = elf_getdata(e->symtab, NULL);
	if (!data)
		return -1;
	if (e->versym)
		vdata = elf_getdata(e->versym, NULL);
	n = sh.sh_size / sh.sh_entsize;
	/* The hash table: the fifty names of an attach cost 1 ms as scans of
	 * libc's 3000 symbols, 0.1 ms through it. */
	if (!e->gnu_hash ||
	    lookup_gnu_hash(e, data, vdata, sh.sh_link, n, name, &best, &found) == -2) {
		found = 0;
		for (i = 1; i < n; i++) {
			m = sym_match(e, data, vdata, sh.sh_link, i, name, &sym);
			if (!m)
				continue;
			best = sym;
			found = 1;
			if (m == 2)
				break;
		}
	}
	if (!found)
		return -1;
	*value = best.st_value;
	*size = best.st_size;
	return 0;
}

/* The function of one symbol table (SHT_SYMTAB or SHT_DYNSYM) whose
 * [st_value, st_value + st_size) holds vaddr; NULL when none does. A
 * symbol without a size says nothing about where its function ends. */
static const char *func_in_table(struct attach_elf *e, Elf_Scn *scn,
				 unsigned long vaddr, unsigned long *start)
{
	Elf_Data *data;
	GElf_Shdr sh;
	GElf_Sym sym;
	size_t i, n;

	if (!gelf_getshdr(scn, &sh) || sh.sh_entsize == 0)
		return NULL;
	data = elf_getdata(scn, NULL);
	if (!data)
		return NULL;
	n = sh.sh_size / sh.sh_entsize;
	for (i = 1; i < n; i++) {
		if (!gelf_getsym(data, (int)i, &sym) || sym.st_shndx == SHN_UNDEF ||
		    sym.st_size == 0)
			continue;
		if (GELF_ST_TYPE(sym.st_info) != STT_FUNC &&
		    GELF_ST_TYPE(sym.st_info) != STT_GNU_IFUNC)
			continue;
		if (vaddr < sym.st_value || vaddr - sym.st_value >= sym.st_size)
			continue;
		*start = sym.st_value;
		return elf_strptr(e->elf, sh.sh_link, sym.st_name);
	}
	return NULL;
}

const char *attach_elf_func_at(struct attach_elf *e, unsigned long vaddr,
			       unsigned long *start)
{
	static const Elf64_Word order[] = { SHT_SYMTAB, SHT_DYNSYM };
	Elf_Scn *scn;
	GElf_Shdr sh;
	const char *name;
	size_t k;

	/* .symtab first: it has the static functions .dynsym leaves out. */
	for (k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
		scn = NULL;
		while ((scn = elf_nextscn(e->elf, scn)) != NULL) {
			if (!gelf_getshdr(scn, &sh) || sh.sh_type != order[k])
				continue;
			name = func_in_table(e, scn, vaddr, start);
			if (name && *name)
				return name;
		}
	}
	return NULL;
}

unsigned long attach_elf_first_load(const struct attach_elf *e)
{
	return e->first_load;
}

unsigned long attach_elf_exec_end(struct attach_elf *e)
{
	unsigned long end = 0;
	size_t i, phnum;
	GElf_Phdr ph;

	if (elf_getphdrnum(e->elf, &phnum) != 0)
		return 0;
	for (i = 0; i < phnum; i++) {
		if (gelf_getphdr(e->elf, (int)i, &ph) && ph.p_type == PT_LOAD &&
		    (ph.p_flags & PF_X) && ph.p_vaddr + ph.p_memsz > end)
			end = ph.p_vaddr + ph.p_memsz;
	}
	return end;
}

size_t attach_elf_build_id(struct attach_elf *e, unsigned char *buf, size_t len)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;
	Elf_Data *data;
	GElf_Nhdr nh;
	size_t off, noff, doff, n;

	while ((scn = elf_nextscn(e->elf, scn)) != NULL) {
		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE)
			continue;
		data = elf_getdata(scn, NULL);
		if (!data)
			continue;
		off = 0;
		while ((off = gelf_getnote(data, off, &nh, &noff, &doff)) > 0) {
			if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
			    memcmp((char *)data->d_buf + noff, "GNU", 4) == 0) {
				n = nh.n_descsz < len ? nh.n_descsz : len;
				memcpy(buf, (char *)data->d_buf + doff, n);
				return n;
			}
		}
	}
	return 0;
}

int attach_elf_open_mapped(pid_t pid, const struct attach_map *m,
			   struct attach_elf **out, struct pyhot_err *err)
{
	struct pyhot_err first;
	char path[4200];
	int r;

	/* Through the target's root: the target may live in another mount
	 * namespace, where the same path names another file. */
	snprintf(path, sizeof(path), "/proc/%d/root%.*s", (int)pid,
		 (int)m->pathlen, m->path);
	pyhot_err_init(&first);
	r = attach_elf_open(path, out, pid, &first);
	if (r == 0)
		return 0;
	/* Replaced on disk since it was mapped ("(deleted)"): the mapping
	 * itself still names the old file. */
	snprintf(path, sizeof(path), "/proc/%d/map_files/%lx-%lx", (int)pid,
		 m->start, m->end);
	if (attach_elf_open(path, out, pid, NULL) == 0)
		return 0;
	return pyhot_err_set(err, first.kind, first.sys_errno, pid, "elf", "%s",
			     first.msg + strlen("elf: "));
}

size_t attach_elf_remote_build_id(pid_t pid, unsigned long base, unsigned char *buf,
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
