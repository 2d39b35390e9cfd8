/*
 * libblock.c: a library whose constructor blocks. The "deep" victim
 * dlopen()s it from a thread, which then sits in read() with dlopen (and
 * the loader's lock) a few frames up its stack: a thread the injector must
 * not borrow, though frame 0 is a plain read. VICTIM_BLOCK_FD names the
 * pipe the constructor reads one byte from.
 */
#include <stdlib.h>
#include <unistd.h>

__attribute__((constructor)) static void block_in_constructor(void)
{
	const char *v = getenv("VICTIM_BLOCK_FD");
	char c;

	if (v && read(atoi(v), &c, 1) < 0)
		c = 0;
}
