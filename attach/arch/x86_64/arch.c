/* arch.c (x86_64): registers, calls and system calls (see arch.h). */
#include "arch.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>

/* The kernel's own restart codes (include/linux/errno.h), never seen by a
 * program but left in rax of a thread stopped in a system call. */
#define K_ERESTARTSYS 512
#define K_ERESTARTNOINTR 513
#define K_ERESTARTNOHAND 514
#define K_ERESTART_RESTARTBLOCK 516

/* The kernel's x86_64 signal frame (arch/x86/include/uapi/asm/sigcontext.h,
 * ucontext.h; struct rt_sigframe). glibc's ucontext_t differs (a 128-byte
 * sigset_t), hence our own. */
struct k_sigcontext {
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t di, si, bp, bx, dx, ax, cx, sp, ip, flags;
	uint16_t cs, gs, fs, ss;
	uint64_t err, trapno, oldmask, cr2;
	uint64_t fpstate;
	uint64_t reserved1[8];
};

struct k_stack {
	uint64_t ss_sp;           /* our saved errno */
	int32_t ss_flags;
	int32_t pad;
	uint64_t ss_size;         /* our completion signal, or 0 */
};

struct k_ucontext {
	uint64_t uc_flags;
	uint64_t uc_link;         /* unused by x86_64: our errno location */
	struct k_stack uc_stack;  /* ignored (an invalid ss_flags): our data */
	struct k_sigcontext uc_mcontext;
	uint64_t uc_sigmask;
};

struct k_rt_sigframe {
	uint64_t pretcode;        /* the stub's address; then the call's result */
	struct k_ucontext uc;
	unsigned char info[128];
};

_Static_assert(sizeof(struct k_rt_sigframe) == ARCH_FRAME_LEN, "signal frame size");
_Static_assert(offsetof(struct k_ucontext, uc_link) == 8, "stub reads uc_link at 8");
_Static_assert(offsetof(struct k_ucontext, uc_stack) == 16, "stub reads ss_sp at 16");
_Static_assert(offsetof(struct k_ucontext, uc_stack.ss_size) == 32, "stub reads ss_size at 32");

#define UC_FP_XSTATE 0x1
#define UC_SIGCONTEXT_SS 0x2
#define UC_STRICT_RESTORE_SS 0x4
/* An ss_flags mode sigaltstack() rejects: rt_sigreturn then leaves the
 * thread's alternate stack as it is (the injector cannot read it). */
#define SS_MODE_INVALID 3
#define FP_XSTATE_MAGIC1 0x46505853u
#define FP_XSTATE_MAGIC2 0x46505845u
/* struct _fpx_sw_bytes sits in the unused tail of the 512-byte legacy area. */
#define FPX_SW_OFFSET 464

static const unsigned char stub_code[ARCH_STUB_LEN] = {
	0x48, 0x89, 0x44, 0x24, 0xf8,   /* mov %rax,-0x8(%rsp): the result */
	0x48, 0x8b, 0x4c, 0x24, 0x08,   /* mov 0x8(%rsp),%rcx: errno location */
	0x48, 0x85, 0xc9,               /* test %rcx,%rcx */
	0x74, 0x06,                     /* je 1f */
	0x8b, 0x54, 0x24, 0x10,         /* mov 0x10(%rsp),%edx: saved errno */
	0x89, 0x11,                     /* mov %edx,(%rcx) */
	0x8b, 0x74, 0x24, 0x20,         /* 1: mov 0x20(%rsp),%esi: the signal */
	0x85, 0xf6,                     /* test %esi,%esi */
	0x74, 0x10,                     /* je 2f */
	0xb8, 0xba, 0x00, 0x00, 0x00,   /* mov $186,%eax (gettid) */
	0x0f, 0x05,                     /* syscall */
	0x89, 0xc7,                     /* mov %eax,%edi */
	0xb8, 0xc8, 0x00, 0x00, 0x00,   /* mov $200,%eax (tkill) */
	0x0f, 0x05,                     /* syscall */
	0xb8, 0x0f, 0x00, 0x00, 0x00,   /* 2: mov $15,%eax (rt_sigreturn) */
	0x0f, 0x05,                     /* syscall */
};

/* Where the stub is when its signal stops it: after the tkill. */
#define STUB_SIGNALLED 0x2d

const unsigned char *arch_stub_code(void)
{
	return stub_code;
}

void arch_frame_fill(unsigned char *frame, const arch_regs_t *resume, unsigned long mask,
		     unsigned long fpstate_addr, unsigned long errno_loc, int errno_val,
		     int done_sig)
{
	struct k_rt_sigframe f;
	struct k_sigcontext *sc = &f.uc.uc_mcontext;

	memset(&f, 0, sizeof(f));
	f.uc.uc_flags = UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS;
	f.uc.uc_link = errno_loc;
	f.uc.uc_stack.ss_sp = (uint64_t)(uint32_t)errno_val;
	f.uc.uc_stack.ss_flags = SS_MODE_INVALID;
	f.uc.uc_stack.ss_size = (uint64_t)done_sig;
	f.uc.uc_sigmask = mask;
	sc->r8 = resume->r8;
	sc->r9 = resume->r9;
	sc->r10 = resume->r10;
	sc->r11 = resume->r11;
	sc->r12 = resume->r12;
	sc->r13 = resume->r13;
	sc->r14 = resume->r14;
	sc->r15 = resume->r15;
	sc->di = resume->rdi;
	sc->si = resume->rsi;
	sc->bp = resume->rbp;
	sc->bx = resume->rbx;
	sc->dx = resume->rdx;
	sc->ax = resume->rax;
	sc->cx = resume->rcx;
	sc->sp = resume->rsp;
	sc->ip = resume->rip;
	sc->flags = resume->eflags;
	sc->cs = (uint16_t)resume->cs;
	sc->ss = (uint16_t)resume->ss;
	sc->fpstate = fpstate_addr;
	memcpy(frame, &f, sizeof(f));
}

size_t arch_fpstate_finish(unsigned char *buf, size_t len)
{
	struct {
		uint32_t magic1, extended_size;
		uint64_t xfeatures;
		uint32_t xstate_size, padding[7];
	} sw;
	uint32_t magic2 = FP_XSTATE_MAGIC2;
	uint64_t xcr0;

	if (len < FPX_SW_OFFSET + sizeof(sw) || len > 0xffffffffu - ARCH_FPSTATE_TRAILER)
		return 0;
	/* In the ptrace image these bytes hold XCR0, the features it covers;
	 * a signal frame wants them described (struct _fpx_sw_bytes) and a
	 * trailer after the image. */
	memcpy(&xcr0, buf + FPX_SW_OFFSET, sizeof(xcr0));
	memset(&sw, 0, sizeof(sw));
	sw.magic1 = FP_XSTATE_MAGIC1;
	sw.extended_size = (uint32_t)(len + ARCH_FPSTATE_TRAILER);
	sw.xfeatures = xcr0;
	sw.xstate_size = (uint32_t)len;
	memcpy(buf + FPX_SW_OFFSET, &sw, sizeof(sw));
	memcpy(buf + len, &magic2, sizeof(magic2));
	return len + ARCH_FPSTATE_TRAILER;
}

int arch_setup_frame_call(arch_regs_t *regs, const arch_regs_t *resume, unsigned long fn,
			  const unsigned long *args, int nargs, unsigned long frame_addr)
{
	if (nargs < 0 || nargs > ARCH_MAX_CALL_ARGS)
		return -1;
	*regs = *resume;
	/* frame_addr % 16 == 8: a function's entry, the return address just
	 * pushed. */
	regs->rsp = frame_addr;
	regs->rip = fn;
	regs->rax = 0;
	regs->orig_rax = (unsigned long)-1;
	regs->rdi = nargs > 0 ? args[0] : 0;
	regs->rsi = nargs > 1 ? args[1] : 0;
	regs->rdx = nargs > 2 ? args[2] : 0;
	regs->rcx = nargs > 3 ? args[3] : 0;
	regs->r8 = nargs > 4 ? args[4] : 0;
	regs->r9 = nargs > 5 ? args[5] : 0;
	return 0;
}

int arch_at_stub_sigreturn(const arch_regs_t *r, unsigned long stub)
{
	return r->orig_rax == ARCH_SYS_SIGRETURN && r->rip == stub + ARCH_STUB_LEN;
}

int arch_at_stub_signal(const arch_regs_t *r, unsigned long stub)
{
	return r->rip == stub + STUB_SIGNALLED;
}

enum arch_resume arch_resume_regs(const arch_regs_t *stopped, int handler_pending,
				  arch_regs_t *resume)
{
	long nr = (long)stopped->orig_rax, ret = (long)stopped->rax;

	*resume = *stopped;
	resume->orig_rax = (unsigned long)-1;
	if (nr < 0)
		return ARCH_RESUME_AS_IS;
	switch (-ret) {
	case K_ERESTARTSYS:
	case K_ERESTARTNOINTR:
	case K_ERESTARTNOHAND:
	case K_ERESTART_RESTARTBLOCK:
		/* restart_syscall's arguments are in the kernel's restart
		 * block, which rt_sigreturn clears. */
		if (nr == SYS_restart_syscall)
			return ARCH_RESUME_LOST;
		if (handler_pending && (-ret == K_ERESTARTNOHAND ||
					-ret == K_ERESTART_RESTARTBLOCK)) {
			resume->rax = (unsigned long)-EINTR;
			return ARCH_RESUME_EINTR;
		}
		resume->rax = (unsigned long)nr;
		resume->rip -= ARCH_SYSCALL_INSN_LEN;
		return ARCH_RESUME_RESTART;
	}
	return ARCH_RESUME_AS_IS;
}

unsigned long arch_get_ip(const arch_regs_t *r)
{
	return r->rip;
}

unsigned long arch_get_sp(const arch_regs_t *r)
{
	return r->rsp;
}

long arch_raw_syscall(long nr, long a0, long a1, long a2, long a3)
{
	register long r10 __asm__("r10") = a3;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a0), "S"(a1), "d"(a2), "r"(r10)
			 : "rcx", "r11", "memory");
	return ret;
}

unsigned long arch_get_tp(const arch_regs_t *r)
{
	return r->fs_base;
}

unsigned long arch_errno_got_slot(const unsigned char *code, unsigned long fn)
{
	static const unsigned char endbr64[] = { 0xf3, 0x0f, 0x1e, 0xfa };
	static const unsigned char mov_rip_rax[] = { 0x48, 0x8b, 0x05 };
	/* add %fs:0x0,%rax; ret */
	static const unsigned char add_fs_ret[] = { 0x64, 0x48, 0x03, 0x04, 0x25,
						    0x00, 0x00, 0x00, 0x00, 0xc3 };
	size_t at = 0;
	int32_t rel;

	if (memcmp(code, endbr64, sizeof(endbr64)) == 0)
		at = sizeof(endbr64);
	if (memcmp(code + at, mov_rip_rax, sizeof(mov_rip_rax)) != 0 ||
	    memcmp(code + at + 7, add_fs_ret, sizeof(add_fs_ret)) != 0)
		return 0;
	memcpy(&rel, code + at + 3, sizeof(rel));
	/* rip-relative: from the end of the 7-byte mov */
	return fn + at + 7 + (unsigned long)(long)rel;
}

long arch_get_syscall_nr(const arch_regs_t *r)
{
	return (long)r->orig_rax;
}

long arch_get_syscall_ret(const arch_regs_t *r)
{
	return (long)r->rax;
}

unsigned long arch_get_syscall_arg(const arch_regs_t *r, int i)
{
	switch (i) {
	case 0: return r->rdi;
	case 1: return r->rsi;
	case 2: return r->rdx;
	case 3: return r->r10;
	case 4: return r->r8;
	case 5: return r->r9;
	}
	return 0;
}

int arch_is_syscall_insn(const unsigned char *insn, size_t len)
{
	return len == ARCH_SYSCALL_INSN_LEN && insn[0] == 0x0f && insn[1] == 0x05;
}

void arch_rewind_syscall(arch_regs_t *r)
{
	r->rax = r->orig_rax;
	r->rip -= ARCH_SYSCALL_INSN_LEN;
}

unsigned int arch_syscall_flags(long nr, int *mask_arg, int *mask_indirect)
{
	*mask_arg = -1;
	*mask_indirect = 0;
	switch (nr) {
	case SYS_futex:
	case SYS_nanosleep:
	case SYS_clock_nanosleep:
	case SYS_read:
	case SYS_readv:
	case SYS_write:
	case SYS_poll:
	case SYS_select:
	case SYS_wait4:
	case SYS_waitid:
	case SYS_accept:
	case SYS_accept4:
	case SYS_recvfrom:
	case SYS_recvmsg:
	case SYS_connect:
	case SYS_pause:
	case SYS_restart_syscall:
		return ARCH_SC_RESTARTS;
	case SYS_pselect6:
		*mask_arg = 5;
		*mask_indirect = 1;
		return ARCH_SC_RESTARTS | ARCH_SC_SIGMASK;
	case SYS_ppoll:
		*mask_arg = 3;
		return ARCH_SC_RESTARTS | ARCH_SC_SIGMASK;
	case SYS_rt_sigsuspend:
		*mask_arg = 0;
		return ARCH_SC_RESTARTS | ARCH_SC_SIGMASK;
	case SYS_epoll_wait:
	case SYS_rt_sigtimedwait:
	case SYS_semop:
	case SYS_semtimedop:
	case SYS_io_getevents:
		return ARCH_SC_EINTR;
	case SYS_epoll_pwait:
	case SYS_epoll_pwait2:
		*mask_arg = 4;
		return ARCH_SC_EINTR | ARCH_SC_SIGMASK;
	}
	return 0;
}

const char *arch_syscall_name(long nr)
{
	switch (nr) {
	case SYS_futex:           return "futex";
	case SYS_nanosleep:       return "nanosleep";
	case SYS_clock_nanosleep: return "clock_nanosleep";
	case SYS_read:            return "read";
	case SYS_readv:           return "readv";
	case SYS_write:           return "write";
	case SYS_poll:            return "poll";
	case SYS_select:          return "select";
	case SYS_pselect6:        return "pselect6";
	case SYS_ppoll:           return "ppoll";
	case SYS_wait4:           return "wait4";
	case SYS_waitid:          return "waitid";
	case SYS_accept:          return "accept";
	case SYS_accept4:         return "accept4";
	case SYS_recvfrom:        return "recvfrom";
	case SYS_recvmsg:         return "recvmsg";
	case SYS_connect:         return "connect";
	case SYS_pause:           return "pause";
	case SYS_restart_syscall: return "restart_syscall";
	case SYS_rt_sigsuspend:   return "rt_sigsuspend";
	case SYS_epoll_wait:      return "epoll_wait";
	case SYS_epoll_pwait:     return "epoll_pwait";
	case SYS_epoll_pwait2:    return "epoll_pwait2";
	case SYS_rt_sigtimedwait: return "rt_sigtimedwait";
	case SYS_semop:           return "semop";
	case SYS_semtimedop:      return "semtimedop";
	case SYS_io_getevents:    return "io_getevents";
	}
	return NULL;
}
