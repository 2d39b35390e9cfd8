/* copies.c: the first copy of this payload in the process, by build id
 * (see copies.h). */
#include "copies.h"

#include <elf.h>
#include <link.h>
#include <stdint.h>
#include <string.h>

/* What a walk over the loaded objects is looking for and found. */
struct copies_walk {
	uintptr_t self_addr;         /* an address inside this copy */
	const unsigned char *id;     /* this copy's build id, once found */
	size_t idlen;
	ElfW(Addr) self_bias;
	int have_first;
	ElfW(Addr) first_bias;       /* the first object with the same id */
};

/* The GNU build id among an object's notes, or NULL. */
static const unsigned char *build_id(const struct dl_phdr_info *info, size_t *len)
{
	const ElfW(Nhdr) *nh;
	const char *p, *end;
	int i;

	for (i = 0; i < info->dlpi_phnum; i++) {
		if (info->dlpi_phdr[i].p_type != PT_NOTE) {
			continue;
		}
		p = (const char *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
		end = p + info->dlpi_phdr[i].p_memsz;
		while (p + sizeof(*nh) <= end) {
			nh = (const ElfW(Nhdr) *)(const void *)p;
			p += sizeof(*nh);
			if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 &&
			    memcmp(p, "GNU", 4) == 0) {
				*len = nh->n_descsz;
				return (const unsigned char *)p + 4;
			}
			p += ((nh->n_namesz + 3) & ~3u) + ((nh->n_descsz + 3) & ~3u);
		}
	}
	return NULL;
}

static int contains(const struct dl_phdr_info *info, uintptr_t addr)
{
	uintptr_t lo;
	int i;

	for (i = 0; i < info->dlpi_phnum; i++) {
		lo = info->dlpi_addr + info->dlpi_phdr[i].p_vaddr;
		if (info->dlpi_phdr[i].p_type == PT_LOAD && addr >= lo &&
		    addr < lo + info->dlpi_phdr[i].p_memsz) {
			return 1;
		}
	}
	return 0;
}

/* First walk: this copy's build id and load bias. */
static int find_self(struct dl_phdr_info *info, size_t size, void *data)
{
	struct copies_walk *w = data;

	if (!contains(info, w->self_addr)) {
		return 0;
	}
	w->id = build_id(info, &w->idlen);
	w->self_bias = info->dlpi_addr;
	return 1;
}

/* Second walk, in load order: the first object with the same build id. */
static int find_first(struct dl_phdr_info *info, size_t size, void *data)
{
	struct copies_walk *w = data;
	const unsigned char *id;
	size_t len;

	id = build_id(info, &len);
	if (!id || len != w->idlen || memcmp(id, w->id, len) != 0) {
		return 0;
	}
	w->have_first = 1;
	w->first_bias = info->dlpi_addr;
	return 1;
}

ptrdiff_t pyhot_copies_first_delta(void)
{
	struct copies_walk w;

	memset(&w, 0, sizeof(w));
	w.self_addr = (uintptr_t)(void *)&pyhot_copies_first_delta;
	if (!dl_iterate_phdr(find_self, &w) || !w.id) {
		return 0;   /* no build id: no copy can be recognised */
	}
	if (!dl_iterate_phdr(find_first, &w) || !w.have_first) {
		return 0;
	}
	return (ptrdiff_t)(w.first_bias - w.self_bias);
}
