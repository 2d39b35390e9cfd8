/*
 * attach_int.h: private to attach/. The /proc parsers take text so that the
 * unit tests can feed them fixtures; the ELF helpers read the target's files
 * through /proc/PID/root. Not a stable interface.
 */
#ifndef PYHOT_ATTACH_INT_H
#define PYHOT_ATTACH_INT_H

#include <stddef.h>
#include <sys/types.h>

#include "pyhot_err.h"

/* ----- /proc text (procfs.c) ----- */

/* Read a whole /proc file into a malloc'd, NUL-terminated buffer (*len
 * excludes the NUL). Returns 0 or -errno. */
int attach_read_file(const char *path, char **buf, size_t *len) PYHOT_MUST_CHECK;

struct attach_status {
	char state;               /* first letter of State:, 0 if absent */
	pid_t tracer;             /* TracerPid */
	uid_t uid;                /* real uid (first field of Uid:) */
	uid_t euid;               /* effective uid (its second; uid when absent) */
	pid_t tgid;               /* Tgid:, 0 if absent */
	pid_t nspid;              /* last field of NSpid:, 0 if absent */
	int seccomp;              /* Seccomp: 0 none, 1 strict, 2 filter; -1 absent */
	unsigned long long cap_eff;  /* CapEff */
	unsigned long long sig_pnd;  /* SigPnd | ShdPnd: pending signals */
	unsigned long long sig_blk;  /* SigBlk */
	unsigned long long sig_cgt;  /* SigCgt: signals with a handler */
};

/* Parse /proc/PID/status text. Returns 0, or -1 when State: or Uid: is
 * missing. */
int attach_parse_status(const char *text, struct attach_status *st) PYHOT_MUST_CHECK;

struct attach_map {
	unsigned long start, end, offset;
	char perms[5];
	const char *path;         /* points into the text; not NUL-terminated */
	size_t pathlen;           /* 0 for an anonymous mapping */
};

/* Parse the maps line at *cursor and advance *cursor to the next one.
 * Returns 1 for a mapping, 0 at the end of text, -1 on a malformed line
 * (which is skipped). */
int attach_maps_next(const char **cursor, struct attach_map *m);

/* The mapping's path equals s (NUL-terminated). */
int attach_map_path_is(const struct attach_map *m, const char *s);
/* The mapping is the first one (file offset 0) of a payload loaded from
 * its memfd (PYHOT_MEMFD_NAME). */
int attach_map_is_payload(const struct attach_map *m);
/* The basename of the mapping's path, copied into buf. */
void attach_map_basename(const struct attach_map *m, char *buf, size_t len);

/* PYTHON_DISABLE_REMOTE_DEBUG is set to a non-empty value in an environ
 * block (NUL-separated). */
int attach_environ_opted_out(const char *buf, size_t len);
/* The interpreter's own options (before -c, -m or the script) in a cmdline
 * block (NUL-separated) hold -X disable_remote_debug. */
int attach_cmdline_opted_out(const char *buf, size_t len);

/* "libpython3.11.so.1.0", "libpython3.8d.so", "libpython2.7.so": the
 * version. Returns 1 on a match. */
int attach_libpython_version(const char *base, int *major, int *minor);
/* "python3.11", "python3", "python2.7": the version; *minor = -1 when the
 * name has none. Returns 1 on a match. */
int attach_exe_python_version(const char *base, int *major, int *minor);

/* The ld.so and libc basenames glibc uses. */
int attach_is_ldso(const char *base);
int attach_is_libc(const char *base);

/* /proc/PID/task/TID/syscall: "running", "-1 sp pc" (in user code) or
 * "nr a1 .. a6 sp pc". */
struct attach_task_syscall {
	int running;              /* "running": on a CPU right now */
	long nr;                  /* -1 when in user code or running */
	unsigned long args[6];
};
int attach_parse_task_syscall(const char *text, struct attach_task_syscall *sc) PYHOT_MUST_CHECK;

/* The state letter in /proc/PID/task/TID/stat text ("123 (comm) S ..."),
 * or 0. */
char attach_parse_stat_state(const char *text);

/* strerror(e) with a lowercase first letter, for "<step>: ...: <cause>". */
const char *attach_strerror(int e, char *buf, size_t len);

/* ----- The watchdog of a stopped injector (watchdog.c) ----- */

struct attach_watchdog {
	pid_t pid;                 /* the child, or -1 */
};

/* Start a child that continues us (SIGCONT) whenever it sees us stopped.
 * 0, or -errno (then there is none: the attach goes on without). Call it
 * with the terminal's signals blocked (attach_chld_block()). */
int attach_watchdog_start(struct attach_watchdog *wd);

/* End it and reap it; if it continued us, stop ourselves now (SIGSTOP), as
 * whoever stopped us meant. Returns 1 then, else 0. */
int attach_watchdog_stop(struct attach_watchdog *wd);

/* ----- ELF files (elfsym.c) ----- */

struct attach_elf;

/* Open path (a local path, or /proc/PID/root/...) with libelf. Fails with
 * PYHOT_ERR_ATTACH naming the file. */
int attach_elf_open(const char *path, struct attach_elf **out, pid_t pid,
		    struct pyhot_err *err) PYHOT_MUST_CHECK;
void attach_elf_close(struct attach_elf *e);

/* Look a defined function or object up in .dynsym (or .symtab when there is
 * no .dynsym), preferring the default version. Returns 0 and fills
 * value/size, or -1 when absent. */
int attach_elf_lookup(struct attach_elf *e, const char *name,
		      unsigned long *value, unsigned long *size) PYHOT_MUST_CHECK;

/* The name of the function whose symbol (.symtab first, then .dynsym; a
 * function symbol with a size) holds the link-time address vaddr, and its
 * start in *start; NULL when no symbol holds it (a static function of a
 * stripped file). Never the nearest symbol below: that one names another
 * function. The name lives as long as e. */
const char *attach_elf_func_at(struct attach_elf *e, unsigned long vaddr,
			       unsigned long *start);

/* The page-aligned p_vaddr of the first PT_LOAD: a mapping with file offset
 * 0 starts at this address plus the load bias. */
unsigned long attach_elf_first_load(const struct attach_elf *e);

/* The end (p_vaddr + p_memsz) of the last executable PT_LOAD, or 0. The
 * rest of its last page is mapped executable and holds no code. */
unsigned long attach_elf_exec_end(struct attach_elf *e);

/* The GNU build id, or 0 bytes when there is none. */
size_t attach_elf_build_id(struct attach_elf *e, unsigned char *buf, size_t len);

/* The GNU build id of the ELF object mapped at base in pid, read from the
 * target's memory (the file may be a memfd we cannot open), and the
 * page-aligned p_vaddr of its first PT_LOAD in *first_load. Returns the
 * id's length, or 0 when it cannot be read. */
size_t attach_elf_remote_build_id(pid_t pid, unsigned long base, unsigned char *buf,
				  size_t len, unsigned long *first_load);

/* Open the file behind a mapping of pid: /proc/PID/root/<path>, then
 * /proc/PID/map_files/<start>-<end>. */
int attach_elf_open_mapped(pid_t pid, const struct attach_map *m,
			   struct attach_elf **out, struct pyhot_err *err) PYHOT_MUST_CHECK;

/* ----- Target memory (procfs.c) ----- */

/* Read len bytes at addr of pid (process_vm_readv, then /proc/PID/mem).
 * Returns 0 or -errno. */
int attach_mem_read(pid_t pid, unsigned long addr, void *buf, size_t len) PYHOT_MUST_CHECK;

/* Where ptrace is refused, the way in that needs none (README: From inside the program). */
#define NO_PTRACE_WAY "; or start the program under pyhot, which needs no ptrace: " \
	"python -m pyhot run script.py (or call pyhot.start_agent() in it)"

#endif /* PYHOT_ATTACH_INT_H */
