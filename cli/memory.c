/* memory.c: the command's heap made present at once (memory.h). */
#include "memory.h"

#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

void cli_memory_prepare(size_t bytes)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), lo, hi;
	char *p;

	mallopt(M_ARENA_MAX, 1);
	/* From the heap, not a mapping of its own; and kept when freed. */
	mallopt(M_MMAP_THRESHOLD, (int)(2 * bytes));
	mallopt(M_TRIM_THRESHOLD, (int)(4 * bytes));
	p = malloc(bytes);
	if (!p)
		return;
	lo = ((uintptr_t)p + page - 1) & ~(page - 1);
	hi = ((uintptr_t)p + bytes) & ~(page - 1);
	if (hi > lo)
		(void)madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE);
	free(p);
}
