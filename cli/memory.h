/*
 * memory.h: the heap a command will use, made present before it runs.
 * Private to cli/.
 *
 * On a paravirtualised machine a page fault costs about 13 us (a trap to
 * the host and back); a command took 26 in its heap (a status, 104 KB)
 * and nine steps of a tree refresh about 130 more, as much as their
 * requests. One madvise(MADV_POPULATE_WRITE) makes the pages present in
 * one go, at well under a microsecond a page.
 */
#ifndef PYHOT_CLI_MEMORY_H
#define PYHOT_CLI_MEMORY_H

#include <stddef.h>

/* What a command allocates (its context, a request, an answer parsed). */
#define CLI_MEMORY_COMMAND (128UL * 1024)

/* What a step of a several-process command adds (steps.h). */
#define CLI_MEMORY_STEP (40UL * 1024)

/*
 * One malloc arena (a thread's own costs a 64 MB mapping and its page
 * faults, more than the steps' few allocations contend), then a block of
 * bytes taken from the heap, made present and given back to malloc, which
 * keeps it (trim threshold) for what comes. Without MADV_POPULATE_WRITE
 * (Linux before 5.14) the pages fault as before. Call it again with more
 * when more is known.
 */
void cli_memory_prepare(size_t bytes);

#endif /* PYHOT_CLI_MEMORY_H */
