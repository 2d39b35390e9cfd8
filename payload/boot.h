/*
 * boot.h: the payload's boot (boot.c), exported for the injector and
 * called by the pyhot package's start_agent() (pymodule.c). Contract in
 * pyhot_proto.h: arg is "sock=PATH\nhistory=N"; returns PYHOT_BOOT_STARTED,
 * PYHOT_BOOT_RUNNING or -errno. Never runs Python, never takes the GIL.
 */
#ifndef PYHOT_BOOT_H
#define PYHOT_BOOT_H

int pyhot_boot(const char *arg) __attribute__((visibility("default")));

#endif /* PYHOT_BOOT_H */
