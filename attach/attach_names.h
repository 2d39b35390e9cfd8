/*
 * attach_names.h: private to attach/. Name the native code addresses of a
 * process honestly (names.c): the function whose symbol holds the address,
 * or the object and the address's offset in it, never the nearest symbol
 * below (which, in a stripped file, is another function).
 */
#ifndef PYHOT_ATTACH_NAMES_H
#define PYHOT_ATTACH_NAMES_H

#include <stddef.h>
#include <sys/types.h>

struct attach_names;

/* Prepare for pid from its /proc/PID/maps text (copied). ELF files are
 * opened on first use and kept until attach_names_free(). NULL when out of
 * memory. */
struct attach_names *attach_names_new(pid_t pid, const char *maps);
void attach_names_free(struct attach_names *n);

/*
 * Name ip into buf: "func+0xOFF" when a symbol of .symtab or .dynsym holds
 * it, else "object+0xVADDR" (the link-time address, as addr2line and gdb
 * take it), "??" outside any file mapping. return_addr: ip is a return
 * address (every frame but the innermost), looked up one byte earlier so
 * that a call at the very end of a function is named after that function.
 * The mapping's path goes into map ("?" when none).
 */
void attach_names_get(struct attach_names *n, unsigned long ip, int return_addr,
		      char *buf, size_t len, char *map, size_t maplen);

#endif /* PYHOT_ATTACH_NAMES_H */
