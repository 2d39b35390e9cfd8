/*
 * arch.h (x86_64): what the generic injector needs to know about one
 * architecture. Another architecture is another folder with the same file
 * names; the Makefile picks the folder with -Iattach/arch/$(ARCH). Generic
 * code never tests __x86_64__.
 *
 * Registers travel as arch_regs_t through PTRACE_GETREGSET/SETREGSET
 * NT_PRSTATUS; the vector state through ARCH_XSTATE_REGSET.
 */
#ifndef PYHOT_ARCH_H
#define PYHOT_ARCH_H

#include <elf.h>
#include <stddef.h>
#include <sys/user.h>

typedef struct user_regs_struct arch_regs_t;

/* The regset that holds every vector register (x87, SSE, AVX, AVX-512,
 * AMX tiles...). The kernel tells the real size on GETREGSET; this bound is
 * larger than any XSAVE area a current CPU reports (AMX: about 11 KiB). */
#define ARCH_XSTATE_REGSET NT_X86_XSTATE
#define ARCH_XSTATE_MAX (64u * 1024u)

/* Bytes below the stack pointer that a leaf function may use without
 * moving it (the System V red zone): remote data goes below them. */
#define ARCH_RED_ZONE 128ul

/* Most integer arguments arch_setup_call() can pass in registers. */
#define ARCH_MAX_CALL_ARGS 6

/* Length of the system call instruction (syscall = 0f 05). */
#define ARCH_SYSCALL_INSN_LEN 2

unsigned long arch_get_ip(const arch_regs_t *r);
unsigned long arch_get_sp(const arch_regs_t *r);

/* The number of the system call the thread was stopped in (orig_rax), or
 * -1 when it was not in one. */
long arch_get_syscall_nr(const arch_regs_t *r);
/* What the system call returned so far (rax): -ERESTARTSYS and friends
 * while the kernel still means to restart it. */
long arch_get_syscall_ret(const arch_regs_t *r);
/* Argument i (0-based) of the interrupted system call. */
unsigned long arch_get_syscall_arg(const arch_regs_t *r, int i);

/*
 * Turn saved (the stopped thread's registers) into regs for a call of
 * fn(args[0..nargs-1]) that returns to address 0. sp is the highest address
 * the call's stack may use (already below the red zone and any data the
 * caller wrote). The call must not be taken for a system call restart, so
 * the syscall number is cleared. *ret_slot receives the address where the
 * caller must write the (zero) return address before resuming. Returns 0,
 * or -1 when nargs is too large.
 */
int arch_setup_call(arch_regs_t *regs, const arch_regs_t *saved,
		    unsigned long fn, const unsigned long *args, int nargs,
		    unsigned long sp, unsigned long *ret_slot);

/* The call returned: it came back to address 0. */
int arch_call_returned(const arch_regs_t *r);
/* What the call returned (the integer return register). */
unsigned long arch_call_result(const arch_regs_t *r);

/* The bytes of the system call instruction. */
int arch_is_syscall_insn(const unsigned char *insn, size_t len);

/*
 * Make the thread run its interrupted system call again instead of
 * returning -EINTR: ip moves back over the syscall instruction and the
 * number goes back into the return register (what the kernel does itself
 * for -ERESTARTNOHAND). Only for calls that are known to return -EINTR
 * after a ptrace stop (arch_syscall_flags() has ARCH_SC_EINTR).
 */
void arch_rewind_syscall(arch_regs_t *r);

/* What a blocking system call does when a ptrace stop interrupts it. */
enum {
	ARCH_SC_RESTARTS = 1 << 0,  /* the kernel restarts it by itself */
	ARCH_SC_EINTR = 1 << 1,     /* returns -EINTR after a ptrace stop */
	ARCH_SC_SIGMASK = 1 << 2,   /* swaps the signal mask while it blocks */
};

/*
 * Classify system call nr: 0 for anything not known to block. With
 * ARCH_SC_SIGMASK, *mask_arg receives the index of the argument that points
 * at the temporary mask (NULL means no swap); for pselect6 that argument
 * points at a {mask, size} pair, which *mask_indirect says.
 */
unsigned int arch_syscall_flags(long nr, int *mask_arg, int *mask_indirect);

/* A short name of system call nr ("futex", "epoll_wait"), or NULL. */
const char *arch_syscall_name(long nr);

#endif /* PYHOT_ARCH_H */
