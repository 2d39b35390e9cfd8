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

/* Most integer arguments arch_setup_frame_call() can pass in registers. */
#define ARCH_MAX_CALL_ARGS 6

/* Length of the system call instruction (syscall = 0f 05). */
#define ARCH_SYSCALL_INSN_LEN 2

/* The system call a tracer sees at the end of each remote call. */
#define ARCH_SYS_SIGRETURN 15

/* A system call without libc: no errno written, no TLS touched (for code
 * that runs on another process's thread-local storage, watchdog.c).
 * Returns the kernel's value (-errno on failure). */
long arch_raw_syscall(long nr, long a0, long a1, long a2, long a3);

unsigned long arch_get_ip(const arch_regs_t *r);
unsigned long arch_get_sp(const arch_regs_t *r);
/* The thread pointer (fs base): the thread's TLS lies at fixed offsets
 * from it. */
unsigned long arch_get_tp(const arch_regs_t *r);

/*
 * glibc's __errno_location is `mov GOT(%rip),%rax; add %fs:0,%rax; ret`
 * (after an endbr64 with CET): errno lies at the thread pointer plus the
 * offset ld.so wrote into that GOT slot. Given the function's first
 * ARCH_ERRNO_CODE_LEN bytes of code, read at address fn, returns the GOT
 * slot's address, or 0 when the code is anything else (then the errno
 * location comes from a remote call of __errno_location).
 */
#define ARCH_ERRNO_CODE_LEN 24
unsigned long arch_errno_got_slot(const unsigned char *code, unsigned long fn);

/* The number of the system call the thread was stopped in (orig_rax), or
 * -1 when it was not in one. */
long arch_get_syscall_nr(const arch_regs_t *r);
/* What the system call returned so far (rax): -ERESTARTSYS and friends
 * while the kernel still means to restart it. */
long arch_get_syscall_ret(const arch_regs_t *r);
/* Argument i (0-based) of the interrupted system call. */
unsigned long arch_get_syscall_arg(const arch_regs_t *r, int i);

/*
 * The self-restoring call. Each remote call returns into a small stub in
 * the target that stores the result and makes an rt_sigreturn through a
 * signal frame the injector wrote on the thread's stack: the kernel then
 * puts back every register, the vector state and the signal mask, and the
 * thread goes on where it was stopped, with or without the injector.
 *
 * ARCH_STUB_LEN bytes of code (arch_stub_code()); it is entered with the
 * stack pointer at the frame's ucontext (the call's return popped the
 * frame's first word, the return address). It stores the call's result in
 * that first word, writes the saved errno back when the frame names an
 * errno location, sends the thread the frame's completion signal when
 * there is one (tkill: a stop for a tracer, nothing for a thread nobody
 * traces if the signal is ignored), and ends in the rt_sigreturn system
 * call, whose instruction ends at ARCH_STUB_LEN.
 */
#define ARCH_STUB_LEN 52
#define ARCH_STUB_ALIGN 32
const unsigned char *arch_stub_code(void);

/* The signal frame: ARCH_FRAME_LEN bytes, its fpstate (the XSTATE image,
 * 64-byte aligned, and 4 bytes of trailer) separately. */
#define ARCH_FRAME_LEN 440
#define ARCH_FPSTATE_ALIGN 64
#define ARCH_FPSTATE_TRAILER 4

/*
 * Fill frame (ARCH_FRAME_LEN bytes, to be written at an address that is 8
 * modulo 16) so that an rt_sigreturn through it resumes with the registers
 * resume, the signal mask mask and the vector state at fpstate_addr.
 * errno_loc (0: none) and errno_val are what the stub writes back;
 * done_sig (0: none) the signal it sends itself. The signal alternate
 * stack is left as it is.
 */
void arch_frame_fill(unsigned char *frame, const arch_regs_t *resume, unsigned long mask,
		     unsigned long fpstate_addr, unsigned long errno_loc, int errno_val,
		     int done_sig);

/* Turn an XSTATE image of len bytes (PTRACE_GETREGSET NT_X86_XSTATE) into
 * a signal frame's vector state, in place: buf has room for len +
 * ARCH_FPSTATE_TRAILER. Returns the length to write, or 0 when the image
 * is not one a signal frame can hold. */
size_t arch_fpstate_finish(unsigned char *buf, size_t len);

/*
 * Registers for a call of fn(args) that returns into the stub through the
 * frame at frame_addr (its first word must hold the stub's address):
 * resume with the stack pointer at the frame and the arguments set.
 * Returns 0, or -1 when nargs is too large.
 */
int arch_setup_frame_call(arch_regs_t *regs, const arch_regs_t *resume, unsigned long fn,
			  const unsigned long *args, int nargs, unsigned long frame_addr);

/* The thread is at the entry of the stub's rt_sigreturn, or stopped by the
 * stub's completion signal: its call is over. */
int arch_at_stub_sigreturn(const arch_regs_t *r, unsigned long stub);
int arch_at_stub_signal(const arch_regs_t *r, unsigned long stub);

/* What a stopped thread needs to resume where it was without the kernel's
 * help (an rt_sigreturn clears the "interrupted system call" state). */
enum arch_resume {
	ARCH_RESUME_AS_IS,        /* not in a system call, or it completed */
	ARCH_RESUME_RESTART,      /* rewound to run its system call again */
	ARCH_RESUME_EINTR,        /* returns -EINTR, for the pending handler */
	ARCH_RESUME_LOST,         /* in restart_syscall: its state would be lost */
};

/*
 * From the registers of a stopped thread, the ones it resumes with: a
 * system call the kernel meant to restart (-ERESTARTSYS, -ERESTARTNOINTR,
 * -ERESTARTNOHAND, -ERESTART_RESTARTBLOCK) is rewound to its syscall
 * instruction with its number back in the return register, as the kernel
 * does itself; a relative timeout then starts over. With handler_pending
 * (a signal with a handler will be delivered when it goes on), the two
 * the kernel then turns into EINTR (-ERESTARTNOHAND,
 * -ERESTART_RESTARTBLOCK) return -EINTR instead. No system call number is
 * left (the kernel must not restart anything on top).
 */
enum arch_resume arch_resume_regs(const arch_regs_t *stopped, int handler_pending,
				  arch_regs_t *resume);

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
