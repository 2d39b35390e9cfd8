/* arch.c (x86_64): registers, calls and system calls (see arch.h). */
#include "arch.h"

#include <sys/syscall.h>

unsigned long arch_get_ip(const arch_regs_t *r)
{
	return r->rip;
}

unsigned long arch_get_sp(const arch_regs_t *r)
{
	return r->rsp;
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

int arch_setup_call(arch_regs_t *regs, const arch_regs_t *saved,
		    unsigned long fn, const unsigned long *args, int nargs,
		    unsigned long sp, unsigned long *ret_slot)
{
	if (nargs < 0 || nargs > ARCH_MAX_CALL_ARGS)
		return -1;
	*regs = *saved;
	/* At function entry the ABI wants rsp % 16 == 8: a 16-byte aligned
	 * stack with the return address just pushed. */
	sp &= ~15ul;
	sp -= 8;
	*ret_slot = sp;
	regs->rsp = sp;
	regs->rip = fn;
	/* rax = 0: a variadic callee reads al as the number of vector
	 * arguments. */
	regs->rax = 0;
	/* -1: the kernel must not take the resumed thread for an interrupted
	 * system call and "restart" it over our registers. */
	regs->orig_rax = (unsigned long)-1;
	regs->rdi = nargs > 0 ? args[0] : 0;
	regs->rsi = nargs > 1 ? args[1] : 0;
	regs->rdx = nargs > 2 ? args[2] : 0;
	regs->rcx = nargs > 3 ? args[3] : 0;
	regs->r8 = nargs > 4 ? args[4] : 0;
	regs->r9 = nargs > 5 ? args[5] : 0;
	return 0;
}

int arch_call_returned(const arch_regs_t *r)
{
	return r->rip == 0;
}

unsigned long arch_call_result(const arch_regs_t *r)
{
	return r->rax;
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
