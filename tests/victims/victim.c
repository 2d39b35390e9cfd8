/*
 * victim.c: small targets for the live tests. "Set up, say ready, wait,
 * verify": each mode prints "ready ..." on stdout, runs until a line
 * arrives on stdin (or stdin closes), then checks that nothing the
 * injector touched shows (EINTR returned to a blocked call, changed
 * registers, a changed signal mask) and prints "ok ..." or "fail: ...".
 * Every victim dies by itself after ALARM_S seconds, so that a broken
 * test never leaves one behind.
 *
 *   victim threads   threads parked in nanosleep, read, futex, poll,
 *                    epoll_wait, ppoll with a signal mask, a busy loop and a
 *                    blocking read that holds a pattern in general and
 *                    vector registers
 *   victim malloc    one thread doing nothing but malloc and free
 *   victim deep      two threads blocked in read() with a function the
 *                    injector needs the locks of further up the stack:
 *                    one in dlopen() (libblock.so's constructor reads), one
 *                    in fork() (its atfork handler reads)
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define ALARM_S 120

static atomic_int quit;
static atomic_int failures;
static char fail_msg[1024];
static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void fail(const char *fmt, ...)
{
	va_list ap;
	size_t n;

	pthread_mutex_lock(&fail_lock);
	n = strlen(fail_msg);
	if (n < sizeof(fail_msg) - 2) {
		va_start(ap, fmt);
		vsnprintf(fail_msg + n, sizeof(fail_msg) - n, fmt, ap);
		va_end(ap);
		n = strlen(fail_msg);
		if (n < sizeof(fail_msg) - 2)
			strcat(fail_msg, "; ");
	}
	pthread_mutex_unlock(&fail_lock);
	atomic_fetch_add(&failures, 1);
}

static pid_t gettid_(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* Each thread blocks a signal set of its own; it must find it unchanged. */
static void mask_set(int k, sigset_t *want)
{
	sigemptyset(want);
	sigaddset(want, SIGUSR2);
	sigaddset(want, SIGRTMIN + 1 + k);
	pthread_sigmask(SIG_BLOCK, want, NULL);
	pthread_sigmask(SIG_BLOCK, NULL, want);
}

static void mask_check(const char *who, const sigset_t *want)
{
	sigset_t now;
	int s;

	pthread_sigmask(SIG_BLOCK, NULL, &now);
	for (s = 1; s < NSIG; s++) {
		if (sigismember(&now, s) != sigismember(want, s)) {
			fail("%s: signal mask changed (signal %d)", who, s);
			return;
		}
	}
}

enum { T_SLEEP, T_READ, T_FUTEX, T_POLL, T_EPOLL, T_BUSY, T_REGS, T_PPOLL, T_N };
static const char *const tname[T_N] = { "sleep", "read", "futex", "poll", "epoll",
					"busy", "regs", "ppoll" };
static int wake_pipe[T_N][2];
static atomic_int tids[T_N];
static atomic_int ready_count;
static atomic_uint futex_word;
static atomic_int eintr[T_N];
static volatile unsigned long busy_counter;

/* Each thread puts this in its errno before it blocks and finds it there
 * after a call that succeeded: the injector (and what it loads) must give
 * the borrowed thread its errno back. */
#define ERRNO_SENTINEL 4242

static void errno_check(const char *who)
{
	if (errno != ERRNO_SENTINEL)
		fail("%s: errno changed to %d (%s) across the injection", who, errno,
		     strerror(errno));
}

/* A blocked call that failed: EINTR is counted (the caller reports it),
 * any other errno is a failure of its own (a restarted call whose number
 * was left at -EINTR returns ENOSYS). */
static void call_failed(int k, const char *what)
{
	int e = errno;

	if (e == EINTR)
		atomic_fetch_add(&eintr[k], 1);
	else
		fail("%s: %s failed: %s", tname[k], what, strerror(e));
	errno = ERRNO_SENTINEL;
}

#ifdef __x86_64__
/*
 * long regs_read(int fd, void *buf, const void *pat, void *ymm_out,
 *                unsigned long *gpr_out)
 * Loads ymm0-15 from pat and fixed patterns into rbx, rbp, r8-r10,
 * r12-r15, then read(fd, buf, 1) with the syscall instruction and stores
 * what the registers hold afterwards. The kernel keeps all of them but
 * rax, rcx and r11; so must the injector.
 */
long regs_read(int fd, void *buf, const void *pat, void *ymm_out,
	       unsigned long *gpr_out);
__asm__(
	".text\n"
	".globl regs_read\n"
	".type regs_read,@function\n"
	"regs_read:\n"
	"	push %rbx\n	push %rbp\n	push %r12\n	push %r13\n"
	"	push %r14\n	push %r15\n"
	"	push %rcx\n	push %r8\n"
	"	vmovdqu 0(%rdx), %ymm0\n	vmovdqu 32(%rdx), %ymm1\n"
	"	vmovdqu 64(%rdx), %ymm2\n	vmovdqu 96(%rdx), %ymm3\n"
	"	vmovdqu 128(%rdx), %ymm4\n	vmovdqu 160(%rdx), %ymm5\n"
	"	vmovdqu 192(%rdx), %ymm6\n	vmovdqu 224(%rdx), %ymm7\n"
	"	vmovdqu 256(%rdx), %ymm8\n	vmovdqu 288(%rdx), %ymm9\n"
	"	vmovdqu 320(%rdx), %ymm10\n	vmovdqu 352(%rdx), %ymm11\n"
	"	vmovdqu 384(%rdx), %ymm12\n	vmovdqu 416(%rdx), %ymm13\n"
	"	vmovdqu 448(%rdx), %ymm14\n	vmovdqu 480(%rdx), %ymm15\n"
	"	movabs $0x1111111111111111, %rbx\n"
	"	movabs $0x2222222222222222, %rbp\n"
	"	movabs $0x3333333333333333, %r8\n"
	"	movabs $0x4444444444444444, %r9\n"
	"	movabs $0x5555555555555555, %r10\n"
	"	movabs $0x6666666666666666, %r12\n"
	"	movabs $0x7777777777777777, %r13\n"
	"	movabs $0x8888888888888888, %r14\n"
	"	movabs $0x9999999999999999, %r15\n"
	"	mov $1, %edx\n"
	"	xor %eax, %eax\n"
	"	syscall\n"
	"	mov 8(%rsp), %r11\n"
	"	vmovdqu %ymm0, 0(%r11)\n	vmovdqu %ymm1, 32(%r11)\n"
	"	vmovdqu %ymm2, 64(%r11)\n	vmovdqu %ymm3, 96(%r11)\n"
	"	vmovdqu %ymm4, 128(%r11)\n	vmovdqu %ymm5, 160(%r11)\n"
	"	vmovdqu %ymm6, 192(%r11)\n	vmovdqu %ymm7, 224(%r11)\n"
	"	vmovdqu %ymm8, 256(%r11)\n	vmovdqu %ymm9, 288(%r11)\n"
	"	vmovdqu %ymm10, 320(%r11)\n	vmovdqu %ymm11, 352(%r11)\n"
	"	vmovdqu %ymm12, 384(%r11)\n	vmovdqu %ymm13, 416(%r11)\n"
	"	vmovdqu %ymm14, 448(%r11)\n	vmovdqu %ymm15, 480(%r11)\n"
	"	mov 0(%rsp), %r11\n"
	"	mov %rbx, 0(%r11)\n	mov %rbp, 8(%r11)\n	mov %r8, 16(%r11)\n"
	"	mov %r9, 24(%r11)\n	mov %r10, 32(%r11)\n	mov %r12, 40(%r11)\n"
	"	mov %r13, 48(%r11)\n	mov %r14, 56(%r11)\n	mov %r15, 64(%r11)\n"
	"	mov %rdi, 72(%r11)\n	mov %rsi, 80(%r11)\n"
	"	add $16, %rsp\n"
	"	pop %r15\n	pop %r14\n	pop %r13\n	pop %r12\n"
	"	pop %rbp\n	pop %rbx\n"
	"	vzeroupper\n"
	"	ret\n"
	".size regs_read, .-regs_read\n");

static void regs_thread_body(int fd)
{
	static const unsigned long want[9] = {
		0x1111111111111111ul, 0x2222222222222222ul, 0x3333333333333333ul,
		0x4444444444444444ul, 0x5555555555555555ul, 0x6666666666666666ul,
		0x7777777777777777ul, 0x8888888888888888ul, 0x9999999999999999ul,
	};
	unsigned char pat[512], out[512];
	unsigned long gpr[11];
	char c;
	long r;
	int i;

	for (i = 0; i < 512; i++)
		pat[i] = (unsigned char)(i * 7 + 3);
	do {
		memset(out, 0, sizeof(out));
		memset(gpr, 0, sizeof(gpr));
		r = regs_read(fd, &c, pat, out, gpr);
		if (r == -EINTR)
			atomic_fetch_add(&eintr[T_REGS], 1);
		if (memcmp(pat, out, sizeof(pat)) != 0) {
			for (i = 0; i < 512 && pat[i] == out[i]; i++)
				;
			fail("regs: ymm%d changed across the blocking read", i / 32);
		}
		if (memcmp(gpr, want, sizeof(want)) != 0)
			fail("regs: a general register changed across the blocking read");
		if (gpr[9] != (unsigned long)fd || gpr[10] != (unsigned long)&c)
			fail("regs: rdi/rsi changed across the blocking read");
	} while (r == -EINTR);
}
#else
static void regs_thread_body(int fd)
{
	char c;

	while (read(fd, &c, 1) < 0 && errno == EINTR)
		atomic_fetch_add(&eintr[T_REGS], 1);
}
#endif

static void *thread_main(void *arg)
{
	int k = (int)(intptr_t)arg, fd = wake_pipe[k][0], ep, r;
	struct timespec ts = { 0, 200 * 1000 * 1000 };
	struct epoll_event ev;
	struct pollfd pfd;
	sigset_t want;
	char c;

	mask_set(k, &want);
	atomic_store(&tids[k], gettid_());
	atomic_fetch_add(&ready_count, 1);
	switch (k) {
	case T_SLEEP:
		while (!atomic_load(&quit)) {
			if (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL) == EINTR)
				atomic_fetch_add(&eintr[k], 1);
		}
		break;
	case T_READ:
		errno = ERRNO_SENTINEL;
		while (read(fd, &c, 1) < 0)
			call_failed(k, "read");
		errno_check(tname[k]);
		break;
	case T_FUTEX:
		while (!atomic_load(&quit)) {
			if (syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, 0, NULL,
				    NULL, 0) < 0 && errno == EINTR)
				atomic_fetch_add(&eintr[k], 1);
		}
		break;
	case T_POLL:
		pfd.fd = fd;
		pfd.events = POLLIN;
		errno = ERRNO_SENTINEL;
		while (poll(&pfd, 1, -1) < 0)
			call_failed(k, "poll");
		errno_check(tname[k]);
		break;
	case T_EPOLL:
		ep = epoll_create1(EPOLL_CLOEXEC);
		ev.events = EPOLLIN;
		ev.data.fd = fd;
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
		errno = ERRNO_SENTINEL;
		r = epoll_wait(ep, &ev, 1, -1);
		while (r != 1 || ev.data.fd != fd) {
			if (r < 0)
				call_failed(k, "epoll_wait");
			else
				fail("epoll: epoll_wait returned %d (fd %d), not fd %d ready",
				     r, ev.data.fd, fd);
			r = epoll_wait(ep, &ev, 1, -1);
		}
		errno_check(tname[k]);
		close(ep);
		break;
	case T_BUSY:
		errno = ERRNO_SENTINEL;
		while (!atomic_load(&quit))
			busy_counter++;
		errno_check(tname[k]);
		break;
	case T_REGS:
		regs_thread_body(fd);
		break;
	case T_PPOLL:
		/* ppoll with a temporary mask: the injector must leave this
		 * thread alone (its PTRACE_SETSIGMASK would make the temporary
		 * mask stick). */
		pfd.fd = fd;
		pfd.events = POLLIN;
		{
			sigset_t tmp = want;

			sigdelset(&tmp, SIGUSR2);
			while (ppoll(&pfd, 1, NULL, &tmp) < 0) {
				if (errno == EINTR)
					atomic_fetch_add(&eintr[k], 1);
			}
		}
		break;
	}
	mask_check(tname[k], &want);
	return NULL;
}

static atomic_int usr1_count, usr1_on_call;
/* Where the main thread's stack is while it waits in read(): a handler
 * interrupting that read finds the stack pointer a few hundred bytes
 * below; one that interrupts a remote call of the injector, which runs
 * below the red zone and the injector's data, finds it kilobytes below.
 * The injector blocks signals during its calls: that must never happen. */
static volatile uintptr_t main_sp_mark;

static void on_usr1(int sig, siginfo_t *si, void *ctx)
{
#ifdef __x86_64__
	const ucontext_t *uc = ctx;
	uintptr_t sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
#else
	uintptr_t sp = 0;
#endif

	atomic_fetch_add(&usr1_count, 1);
	if (main_sp_mark && sp < main_sp_mark && main_sp_mark - sp > 4096)
		atomic_fetch_add(&usr1_on_call, 1);
}

static int run_threads(void)
{
	struct sigaction sa;
	pthread_t th[T_N];
	sigset_t want;
	char line[64];
	int k, e = 0;

	/* The live tests aim bursts of SIGUSR1 at the main thread while they
	 * borrow it: the handler must run as usual, and SA_RESTART keeps its
	 * read() going. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_usr1;
	sa.sa_flags = SA_RESTART | SA_SIGINFO;
	sigaction(SIGUSR1, &sa, NULL);
	mask_set(T_N, &want);
	for (k = 0; k < T_N; k++) {
		if (pipe2(wake_pipe[k], O_CLOEXEC) < 0 ||
		    pthread_create(&th[k], NULL, thread_main, (void *)(intptr_t)k) != 0) {
			printf("fail: setup\n");
			return 1;
		}
	}
	while (atomic_load(&ready_count) < T_N)
		usleep(1000);
	/* Let each thread reach its blocking call before saying ready. */
	usleep(20000);
	printf("ready main=%d", (int)getpid());
	for (k = 0; k < T_N; k++)
		printf(" %s=%d", tname[k], atomic_load(&tids[k]));
	printf("\n");
	fflush(stdout);

	/* The main thread is a blocked read too. */
	main_sp_mark = (uintptr_t)line;
	errno = ERRNO_SENTINEL;
	while (read(0, line, sizeof(line)) < 0) {
		if (errno == EINTR)
			e++;
		else
			fail("main: read failed: %s", strerror(errno));
		errno = ERRNO_SENTINEL;
	}
	errno_check("main");
	atomic_store(&quit, 1);
	for (k = 0; k < T_N; k++) {
		if (write(wake_pipe[k][1], "q", 1) != 1)
			fail("wake %s", tname[k]);
	}
	atomic_store(&futex_word, 1);
	syscall(SYS_futex, &futex_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	for (k = 0; k < T_N; k++)
		pthread_join(th[k], NULL);
	main_sp_mark = 0;
	if (e)
		fail("main: read saw EINTR %d times", e);
	if (atomic_load(&usr1_on_call))
		fail("main: the SIGUSR1 handler ran on top of a remote call %d times",
		     atomic_load(&usr1_on_call));
	for (k = 0; k < T_N; k++) {
		if (atomic_load(&eintr[k]))
			fail("%s: saw EINTR %d times", tname[k], atomic_load(&eintr[k]));
	}
	mask_check("main", &want);
	if (atomic_load(&failures)) {
		printf("fail: %s\n", fail_msg);
		return 1;
	}
	printf("ok busy=%lu usr1=%d\n", busy_counter, atomic_load(&usr1_count));
	return 0;
}

static int run_malloc(void)
{
	struct pollfd pfd = { 0, POLLIN, 0 };
	unsigned long i, sum = 0;
	unsigned int seed = 1;
	void *keep[64] = { 0 };

	printf("ready main=%d\n", (int)getpid());
	fflush(stdout);
	for (i = 0;; i++) {
		size_t sz = 16 + (size_t)(rand_r(&seed) % 65536);
		unsigned int slot = (unsigned int)rand_r(&seed) % 64;

		/* Mostly inside malloc and free: the injector must wait for
		 * a moment outside them, or give up cleanly. */
		free(keep[slot]);
		keep[slot] = malloc(sz);
		if (keep[slot])
			((char *)keep[slot])[0] = (char)i;
		sum += sz;
		if ((i & 4095) == 0 && poll(&pfd, 1, 0) > 0)
			break;
	}
	for (i = 0; i < 64; i++)
		free(keep[i]);
	printf("ok allocated=%lu\n", sum);
	return 0;
}

static int deep_pipe[2][2];
static atomic_int deep_tid[2];
static atomic_int in_fork;
static char block_lib[512];

/* The atfork handler of the fork thread: it blocks inside fork(). */
static void deep_prepare(void)
{
	char c;

	if (atomic_load(&in_fork) && read(deep_pipe[1][0], &c, 1) < 0)
		fail("fork: read in the atfork handler: %s", strerror(errno));
}

static void *deep_main(void *arg)
{
	int k = (int)(intptr_t)arg;
	void *h;
	pid_t child;

	atomic_store(&deep_tid[k], gettid_());
	if (k == 0) {
		h = dlopen(block_lib, RTLD_NOW);
		if (!h)
			fail("dlopen('%s'): %s", block_lib, dlerror());
		return NULL;
	}
	atomic_store(&in_fork, 1);
	child = fork();
	if (child == 0)
		_exit(0);
	atomic_store(&in_fork, 0);
	if (child < 0 || waitpid(child, NULL, 0) != child)
		fail("fork: %s", strerror(errno));
	return NULL;
}

static int run_deep(const char *argv0)
{
	char line[64], env[32];
	const char *slash = strrchr(argv0, '/');
	pthread_t th[2];
	int k;

	snprintf(block_lib, sizeof(block_lib), "%.*slibblock.so",
		 slash ? (int)(slash - argv0 + 1) : 0, argv0);
	for (k = 0; k < 2; k++) {
		if (pipe2(deep_pipe[k], O_CLOEXEC) < 0) {
			printf("fail: setup\n");
			return 1;
		}
	}
	snprintf(env, sizeof(env), "%d", deep_pipe[0][0]);
	setenv("VICTIM_BLOCK_FD", env, 1);
	pthread_atfork(deep_prepare, NULL, NULL);
	for (k = 0; k < 2; k++) {
		if (pthread_create(&th[k], NULL, deep_main, (void *)(intptr_t)k) != 0) {
			printf("fail: setup\n");
			return 1;
		}
	}
	while (!atomic_load(&deep_tid[0]) || !atomic_load(&deep_tid[1]))
		usleep(1000);
	/* Let both reach their read. */
	usleep(50000);
	printf("ready main=%d dlopen=%d fork=%d\n", (int)getpid(),
	       atomic_load(&deep_tid[0]), atomic_load(&deep_tid[1]));
	fflush(stdout);
	while (read(0, line, sizeof(line)) < 0 && errno == EINTR)
		;
	for (k = 0; k < 2; k++) {
		if (write(deep_pipe[k][1], "q", 1) != 1)
			fail("wake %d", k);
	}
	for (k = 0; k < 2; k++)
		pthread_join(th[k], NULL);
	if (atomic_load(&failures)) {
		printf("fail: %s\n", fail_msg);
		return 1;
	}
	printf("ok\n");
	return 0;
}

int main(int argc, char **argv)
{
	alarm(ALARM_S);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 1 && strcmp(argv[1], "threads") == 0)
		return run_threads();
	if (argc > 1 && strcmp(argv[1], "malloc") == 0)
		return run_malloc();
	if (argc > 1 && strcmp(argv[1], "deep") == 0)
		return run_deep(argv[0]);
	fprintf(stderr, "usage: victim threads|malloc|deep\n");
	return 2;
}
