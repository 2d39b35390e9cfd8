/* names.c: native addresses named after the function that holds them (see
 * attach_names.h). */
#include "attach_names.h"
#include "attach_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAMES_MAX_OBJECTS 64

/* One mapped ELF object: its first mapping (file offset 0) and its file. */
struct names_obj {
	struct attach_map first;
	struct attach_elf *elf;   /* NULL when it could not be opened */
	unsigned long bias;       /* run-time address minus link-time address */
	int tried;
};

struct attach_names {
	pid_t pid;
	char *maps;
	size_t nobj;
	struct names_obj obj[NAMES_MAX_OBJECTS];
};

struct attach_names *attach_names_new(pid_t pid, const char *maps)
{
	struct attach_names *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->pid = pid;
	n->maps = strdup(maps ? maps : "");
	if (!n->maps) {
		free(n);
		return NULL;
	}
	return n;
}

void attach_names_free(struct attach_names *n)
{
	size_t i;

	if (!n)
		return;
	for (i = 0; i < n->nobj; i++)
		attach_elf_close(n->obj[i].elf);
	free(n->maps);
	free(n);
}

/* The mapping holding ip, and the first mapping (offset 0) of the same
 * file, which sits below it. 0 when ip is in no file mapping. */
static int find_maps(const char *maps, unsigned long ip, struct attach_map *hit,
		     struct attach_map *first)
{
	struct attach_map m, last_first;
	const char *cur = maps;
	int r, have_first = 0;

	memset(&last_first, 0, sizeof(last_first));
	while ((r = attach_maps_next(&cur, &m)) != 0) {
		if (r < 0)
			continue;
		if (m.pathlen && m.offset == 0) {
			last_first = m;
			have_first = 1;
		}
		if (ip < m.start || ip >= m.end)
			continue;
		if (!m.pathlen || m.path[0] == '[')
			return 0;
		*hit = m;
		if (have_first && last_first.pathlen == m.pathlen &&
		    memcmp(last_first.path, m.path, m.pathlen) == 0)
			*first = last_first;
		else
			*first = m;
		return 1;
	}
	return 0;
}

/* The object whose first mapping is first, opened once. */
static struct names_obj *object_of(struct attach_names *n, const struct attach_map *first)
{
	struct names_obj *o;
	size_t i;

	for (i = 0; i < n->nobj; i++)
		if (n->obj[i].first.start == first->start)
			return &n->obj[i];
	if (n->nobj == NAMES_MAX_OBJECTS)
		return NULL;
	o = &n->obj[n->nobj++];
	memset(o, 0, sizeof(*o));
	o->first = *first;
	return o;
}

static void obj_open(struct attach_names *n, struct names_obj *o)
{
	if (o->tried)
		return;
	o->tried = 1;
	if (attach_elf_open_mapped(n->pid, &o->first, &o->elf, NULL) < 0) {
		o->elf = NULL;
		return;
	}
	o->bias = o->first.start - attach_elf_first_load(o->elf);
}

void attach_names_get(struct attach_names *n, unsigned long ip, int return_addr,
		      char *buf, size_t len, char *map, size_t maplen)
{
	struct attach_map hit, first;
	struct names_obj *o;
	unsigned long vaddr, start;
	const char *fn = NULL;
	char base[256];

	snprintf(buf, len, "??");
	snprintf(map, maplen, "?");
	if (!n || !find_maps(n->maps, ip, &hit, &first))
		return;
	snprintf(map, maplen, "%.*s", (int)hit.pathlen, hit.path);
	attach_map_basename(&hit, base, sizeof(base));
	o = object_of(n, &first);
	if (o)
		obj_open(n, o);
	if (!o || !o->elf) {
		/* No file to read: the offset in the file, which is the
		 * link-time address in the usual layout. */
		snprintf(buf, len, "%s+0x%lx", base, ip - hit.start + hit.offset);
		return;
	}
	vaddr = ip - o->bias;
	fn = attach_elf_func_at(o->elf, return_addr ? vaddr - 1 : vaddr, &start);
	if (fn)
		snprintf(buf, len, "%s+0x%lx", fn, vaddr - start);
	else
		snprintf(buf, len, "%s+0x%lx", base, vaddr);
}
