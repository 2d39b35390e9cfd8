/*
 * test_attach_arch.c: the architecture contract (attach/arch/<arch>/arch.h)
 * through its generic functions only, so that the same test holds for any
 * architecture folder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "arch.h"

/* The errno location the injector computes (arch_errno_got_slot()) for
 * this very process's libc: its GOT slot's value plus the TCB's self
 * pointer must be what __errno_location() returns; other code is refused. */
static void test_errno_got_slot(void **state)
{
	int *(*fn)(void);
	unsigned char junk[ARCH_ERRNO_CODE_LEN];
	unsigned long slot, off, self;

	*(void **)&fn = dlsym(RTLD_DEFAULT, "__errno_location");
	assert_non_null(fn);
	slot = arch_errno_got_slot((const unsigned char *)(uintptr_t)fn,
				   (unsigned long)(uintptr_t)fn);
	assert_true(slot != 0);
	memcpy(&off, (const void *)(uintptr_t)slot, sizeof(off));
	memcpy(&self, __builtin_thread_pointer(), sizeof(self));
	assert_true(self + off == (unsigned long)(uintptr_t)fn());
	memset(junk, 0x90, sizeof(junk));
	assert_true(arch_errno_got_slot(junk, 0x1000) == 0);
}

/* The watchdog's system calls: the kernel's value, -errno on failure, and
 * errno untouched. */
static void test_raw_syscall(void **state)
{
	errno = 1234;
	assert_int_equal(arch_raw_syscall(SYS_getpid, 0, 0, 0, 0), getpid());
	assert_int_equal(arch_raw_syscall(SYS_close, -1, 0, 0, 0), -EBADF);
	assert_int_equal(errno, 1234);
}

static void test_setup_call(void **state)
{
	arch_regs_t saved, regs;
	unsigned long args[ARCH_MAX_CALL_ARGS] = { 1, 2, 3, 4, 5, 6 };
	unsigned long frame = 0x7ffd00001008ul;

	memset(&saved, 0x5a, sizeof(saved));
	/* The callee sees the stack as after a call: its return address (the
	 * frame's first word) pushed on an aligned stack. */
	assert_int_equal(arch_setup_frame_call(&regs, &saved, 0x401000, args, 2, frame), 0);
	assert_int_equal(arch_get_ip(&regs), 0x401000);
	assert_int_equal(arch_get_sp(&regs), frame);
	assert_int_equal((arch_get_sp(&regs) + 8) % 16, 0);
	/* Not to be taken for an interrupted system call. */
	assert_int_equal(arch_get_syscall_nr(&regs), -1);
	assert_int_equal(arch_setup_frame_call(&regs, &saved, 0x401000, args,
					       ARCH_MAX_CALL_ARGS + 1, frame), -1);
}

static void test_syscall_classes(void **state)
{
	int arg, ind;

	assert_int_equal(arch_syscall_flags(SYS_futex, &arg, &ind), ARCH_SC_RESTARTS);
	assert_int_equal(arch_syscall_flags(SYS_read, &arg, &ind), ARCH_SC_RESTARTS);
	assert_int_equal(arch_syscall_flags(SYS_clock_nanosleep, &arg, &ind),
			 ARCH_SC_RESTARTS);
	assert_int_equal(arch_syscall_flags(SYS_epoll_wait, &arg, &ind), ARCH_SC_EINTR);
	assert_true(arch_syscall_flags(SYS_ppoll, &arg, &ind) & ARCH_SC_SIGMASK);
	assert_int_equal(arg, 3);
	assert_int_equal(ind, 0);
	assert_true(arch_syscall_flags(SYS_pselect6, &arg, &ind) & ARCH_SC_SIGMASK);
	assert_int_equal(arg, 5);
	assert_int_equal(ind, 1);
	assert_int_equal(arch_syscall_flags(SYS_epoll_pwait, &arg, &ind),
			 ARCH_SC_EINTR | ARCH_SC_SIGMASK);
	assert_int_equal(arch_syscall_flags(SYS_getpid, &arg, &ind), 0);
	assert_string_equal(arch_syscall_name(SYS_futex), "futex");
	assert_string_equal(arch_syscall_name(SYS_epoll_wait), "epoll_wait");
	assert_null(arch_syscall_name(SYS_getpid));
}

#ifdef __x86_64__
/* The kernel's restart codes, as a thread stopped in a system call shows
 * them in rax (include/linux/errno.h). */
#define K_ERESTARTSYS 512
#define K_ERESTARTNOINTR 513
#define K_ERESTARTNOHAND 514
#define K_ERESTART_RESTARTBLOCK 516

static void stopped_in(arch_regs_t *r, long nr, long ret)
{
	memset(r, 0x11, sizeof(*r));
	r->orig_rax = (unsigned long)nr;
	r->rax = (unsigned long)ret;
	r->rip = 0x401002;   /* just after its syscall instruction */
}

/* What a thread resumes with after rt_sigreturn, which clears the kernel's
 * own restart: a restartable call is rewound (ip on the syscall, rax its
 * number); with a handler pending, the calls the kernel would fail with
 * EINTR return -EINTR; restart_syscall is refused; anything else as is. */
static void test_resume_regs(void **state)
{
	static const long codes[] = { K_ERESTARTSYS, K_ERESTARTNOINTR, K_ERESTARTNOHAND,
				      K_ERESTART_RESTARTBLOCK };
	arch_regs_t st, r;
	size_t i;

	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		stopped_in(&st, SYS_read, -codes[i]);
		assert_int_equal(arch_resume_regs(&st, 0, &r), ARCH_RESUME_RESTART);
		assert_int_equal(r.rip, 0x401000);
		assert_int_equal(r.rax, SYS_read);
		assert_int_equal((long)r.orig_rax, -1);
		assert_int_equal(r.rdi, st.rdi);
		assert_int_equal(r.rsp, st.rsp);
		assert_int_equal(arch_resume_regs(&st, 1, &r),
				 codes[i] == K_ERESTARTNOHAND || codes[i] == K_ERESTART_RESTARTBLOCK ?
				 ARCH_RESUME_EINTR : ARCH_RESUME_RESTART);
		if (codes[i] == K_ERESTARTNOHAND || codes[i] == K_ERESTART_RESTARTBLOCK) {
			assert_int_equal((long)r.rax, -EINTR);
			assert_int_equal(r.rip, 0x401002);
		}
	}
	stopped_in(&st, SYS_restart_syscall, -K_ERESTART_RESTARTBLOCK);
	assert_int_equal(arch_resume_regs(&st, 0, &r), ARCH_RESUME_LOST);
	stopped_in(&st, SYS_read, 1);          /* the call completed */
	assert_int_equal(arch_resume_regs(&st, 0, &r), ARCH_RESUME_AS_IS);
	assert_int_equal(r.rip, 0x401002);
	assert_int_equal(r.rax, 1);
	stopped_in(&st, -1, 7);                /* running user code */
	assert_int_equal(arch_resume_regs(&st, 1, &r), ARCH_RESUME_AS_IS);
	assert_int_equal(r.rax, 7);
}

/* The stray-EINTR rewind: ip back over the syscall, rax its number again
 * (left at -EINTR the call would run as syscall -4: ENOSYS). */
static void test_rewind_syscall(void **state)
{
	arch_regs_t r;
	unsigned char insn[2] = { 0x0f, 0x05 };

	stopped_in(&r, SYS_epoll_wait, -EINTR);
	arch_rewind_syscall(&r);
	assert_int_equal(r.rip, 0x401000);
	assert_int_equal(r.rax, SYS_epoll_wait);
	assert_true(arch_is_syscall_insn(insn, sizeof(insn)));
	insn[1] = 0x04;
	assert_false(arch_is_syscall_insn(insn, sizeof(insn)));
}
#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_setup_call),
		cmocka_unit_test(test_errno_got_slot),
		cmocka_unit_test(test_raw_syscall),
		cmocka_unit_test(test_syscall_classes),
#ifdef __x86_64__
		cmocka_unit_test(test_resume_regs),
		cmocka_unit_test(test_rewind_syscall),
#endif
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
