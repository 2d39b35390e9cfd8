/*
 * copies.h: find the copy of this payload that was loaded first in the
 * process (copies.c). Private to the payload.
 *
 * The payload may be loaded twice into one process: injected by `pyhot
 * attach` (from a memfd) and imported as the pyhot package's extension
 * (pyhot/_pyhot.abi3.so, the same file). Each copy would have its own
 * agent, baseline and history. So every entry point (pyhot_boot,
 * PyInit__pyhot) first asks for the first copy loaded and, when it is
 * another one, calls the same function there: two copies with the same
 * build id have the same layout, so the function sits at the same offset
 * from each copy's load address. One agent and one engine state serve
 * every way in. docs/hooks.md ("One engine per process") says more.
 */
#ifndef PYHOT_COPIES_H
#define PYHOT_COPIES_H

#include <stddef.h>

/*
 * The distance from this copy to the first copy loaded (same build id) in
 * bytes: 0 when this copy is the first (or the only one). Walks the loaded
 * objects with dl_iterate_phdr (the loader's lock, no Python, no malloc):
 * safe on the injector's borrowed thread, which is never inside the loader.
 */
ptrdiff_t pyhot_copies_first_delta(void);

/* fn moved by delta: the same function in the first copy. */
#define PYHOT_COPIES_AT(fn, delta) \
	((__typeof__(&(fn)))(void *)((char *)(void *)&(fn) + (delta)))

#endif /* PYHOT_COPIES_H */
