/* target.c: what /proc says about a process, and whether to attach to it. */
#include "pyhot_attach.h"
#include "attach_int.h"
#include "pyhot_log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The exe's dynamic symbols say whether libpython is linked in, and
 * Py_Version (3.11+) which one. */
static void inspect_static_python(struct pyhot_target *t, const char *maps)
{
	struct attach_elf *e = NULL;
	struct attach_map m;
	const char *cur = maps;
	unsigned long val, size, base = 0, exe_start = 0;
	unsigned int hex;
	char path[64];
	int found = 0;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)t->pid);
	if (attach_elf_open(path, &e, t->pid, NULL) != 0)
		return;
	if (attach_elf_lookup(e, "Py_Initialize", &val, &size) == 0 ||
	    attach_elf_lookup(e, "Py_InitializeEx", &val, &size) == 0 ||
	    attach_elf_lookup(e, "PyEval_SaveThread", &val, &size) == 0)
		found = 1;
	if (!found)
		goto out_close;
	t->py_static = 1;
	t->py_major = 3;
	t->py_minor = -1;
	if (attach_elf_lookup(e, "Py_Version", &val, &size) != 0)
		goto out_close;
	while (attach_maps_next(&cur, &m) != 0) {
		if (m.pathlen && m.offset == 0 && attach_map_path_is(&m, t->exe)) {
			exe_start = m.start;
			found = 2;
			break;
		}
	}
	if (found != 2)
		goto out_close;
	base = exe_start - attach_elf_first_load(e);
	if (attach_mem_read(t->pid, base + val, &hex, sizeof(hex)) == 0) {
		/* PY_VERSION_HEX: 0x030B02F0 is 3.11.2 final. */
		t->py_major = (int)(hex >> 24);
		t->py_minor = (int)((hex >> 16) & 0xff);
	}
out_close:
	attach_elf_close(e);
}

static void read_comm(pid_t pid, char *buf, size_t len)
{
	char path[64], *text = NULL;
	size_t n;

	snprintf(buf, len, "?");
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	if (attach_read_file(path, &text, &n) != 0)
		return;
	if (n && text[n - 1] == '\n')
		text[n - 1] = '\0';
	snprintf(buf, len, "%s", text);
	free(text);
}

/* /proc/PID/status: state, tracer, uid, the pid in its namespace; and comm. */
static int read_status(struct pyhot_target *t, struct pyhot_err *err)
{
	struct attach_status st;
	pid_t pid = t->pid;
	char path[64], eb[128], *text = NULL;
	size_t len;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	r = attach_read_file(path, &text, &len);
	if (r == -ENOENT || r == -ESRCH) {
		pyhot_err_set(err, PYHOT_ERR_ATTACH, -r, pid, "attach",
			      "pid %d does not exist", (int)pid);
		pyhot_err_hint(err, "check the pid with: ps -p %d", (int)pid);
		return -PYHOT_ERR_ATTACH;
	}
	if (r < 0) {
		pyhot_err_set(err, PYHOT_ERR_ATTACH, -r, pid, "attach",
			      "read('%s'): %s", path, attach_strerror(-r, eb, sizeof(eb)));
		pyhot_err_hint(err, "is /proc mounted and readable?");
		return -PYHOT_ERR_ATTACH;
	}
	r = attach_parse_status(text, &st);
	free(text);
	if (r != 0)
		return pyhot_err_set(err, PYHOT_ERR_ATTACH, 0, pid, "attach",
				     "parse('%s'): no State or Uid line", path);
	t->state = st.state;
	t->tracer = st.tracer;
	t->uid = st.uid;
	t->euid = st.euid;
	t->tgid = st.tgid ? st.tgid : pid;
	t->nspid = st.nspid ? st.nspid : pid;
	read_comm(pid, t->comm, sizeof(t->comm));
	return 0;
}

/* The hint for a /proc file of pid we may not read: another user's
 * process, or one of ours that is not dumpable. */
static void proc_denied_hint(const struct pyhot_target *t, struct pyhot_err *err)
{
	if (t->uid == (uid_t)geteuid())
		pyhot_err_hint(err, "pid %d is not dumpable (setuid, or prctl(PR_SET_DUMPABLE, "
			       "0)): only root can look inside it" NO_PTRACE_WAY, (int)t->pid);
	else
		pyhot_err_hint(err, "run pyhot as uid %u or as root" NO_PTRACE_WAY,
			       (unsigned int)t->uid);
}

/* /proc/PID/exe, the executable as the target sees it. */
static int read_exe(struct pyhot_target *t, struct pyhot_err *err)
{
	pid_t pid = t->pid;
	char path[64], eb[128];
	ssize_t n;
	int e;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	n = readlink(path, t->exe, sizeof(t->exe) - 1);
	if (n >= 0) {
		t->exe[n] = '\0';
		return 0;
	}
	e = errno;
	if (e == ENOENT || e == ESRCH) {
		/* Exited between the status and the exe read. */
		pyhot_err_set(err, PYHOT_ERR_ATTACH, e, pid, "attach",
			      "pid %d exited during inspection", (int)pid);
		return -PYHOT_ERR_ATTACH;
	}
	pyhot_err_set(err, PYHOT_ERR_ATTACH, e, pid, "attach",
		      "readlink('%s'): %s", path, attach_strerror(e, eb, sizeof(eb)));
	if (e == EACCES || e == EPERM)
		proc_denied_hint(t, err);
	return -PYHOT_ERR_ATTACH;
}

/* /proc/PID/maps: a mapped payload, libpython and its version, or else a
 * libpython linked into the executable. */
static int inspect_maps(struct pyhot_target *t, struct pyhot_err *err)
{
	struct attach_map m;
	pid_t pid = t->pid;
	char path[64], eb[128], base[256], *text = NULL;
	const char *cur;
	size_t len;
	int r, major, minor;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	r = attach_read_file(path, &text, &len);
	if (r < 0) {
		pyhot_err_set(err, PYHOT_ERR_ATTACH, -r, pid, "attach",
			      "read('%s'): %s", path, attach_strerror(-r, eb, sizeof(eb)));
		if (r == -EACCES || r == -EPERM)
			proc_denied_hint(t, err);
		return -PYHOT_ERR_ATTACH;
	}
	cur = text;
	while ((r = attach_maps_next(&cur, &m)) != 0) {
		if (r < 0 || !m.pathlen)
			continue;
		if (!t->payload_base && attach_map_is_payload(&m))
			t->payload_base = m.start;
		attach_map_basename(&m, base, sizeof(base));
		if (!t->libpython[0] && attach_libpython_version(base, &major, &minor)) {
			t->py_major = major;
			t->py_minor = minor;
			snprintf(t->libpython, sizeof(t->libpython), "%.*s",
				 (int)m.pathlen, m.path);
		}
	}
	if (!t->libpython[0])
		inspect_static_python(t, text);
	free(text);
	return 0;
}

/* A static build that does not export Py_Version (before 3.11): its name
 * is the best we have. */
static void minor_from_exe_name(struct pyhot_target *t)
{
	const char *b = strrchr(t->exe, '/');
	int major, minor;

	if (attach_exe_python_version(b ? b + 1 : t->exe, &major, &minor) && major == 3)
		t->py_minor = minor;
}

/* PYTHON_DISABLE_REMOTE_DEBUG in the environment, or -X
 * disable_remote_debug on the command line. */
static void read_opt_out(struct pyhot_target *t)
{
	char path[64], *text = NULL;
	size_t len;

	snprintf(path, sizeof(path), "/proc/%d/environ", (int)t->pid);
	if (attach_read_file(path, &text, &len) == 0) {
		t->opted_out |= attach_environ_opted_out(text, len);
		free(text);
		text = NULL;
	}
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)t->pid);
	if (attach_read_file(path, &text, &len) == 0) {
		t->opted_out |= attach_cmdline_opted_out(text, len);
		free(text);
	}
}

/* What every inspection starts with: the pid checked, /proc/PID/status. */
static int inspect_status(pid_t pid, struct pyhot_target *t, struct pyhot_err *err)
{
	memset(t, 0, sizeof(*t));
	t->pid = pid;
	t->py_minor = -1;
	if (pid <= 0)
		return pyhot_err_set(err, PYHOT_ERR_ATTACH, EINVAL, pid, "attach",
				     "pid %d is not a valid process id", (int)pid);
	return read_status(t, err);
}

int pyhot_target_inspect_light(pid_t pid, struct pyhot_target *t,
			       struct pyhot_err *err)
{
	int r = inspect_status(pid, t, err);

	t->light = 1;
	if (r == 0 && t->state != 'Z' && t->state != 'X')
		read_opt_out(t);
	return r;
}

int pyhot_target_inspect(pid_t pid, struct pyhot_target *t, struct pyhot_err *err)
{
	int r = inspect_status(pid, t, err);

	if (r < 0)
		return r;
	/* A zombie has no exe, maps or memory: the state says it all. */
	if (t->state == 'Z' || t->state == 'X')
		return 0;
	r = read_exe(t, err);
	if (r == 0)
		r = inspect_maps(t, err);
	if (r < 0)
		return r;
	if (t->py_major == 3 && t->py_minor < 0)
		minor_from_exe_name(t);
	read_opt_out(t);
	PYHOT_TRACE("ptrace", "inspect pid %d: state %c tracer %d uid %u python %d.%d%s "
		    "opted_out %d payload_base 0x%lx exe %s", (int)pid, t->state,
		    (int)t->tracer, (unsigned int)t->uid, t->py_major, t->py_minor,
		    t->py_static ? " (static)" : "", t->opted_out, t->payload_base,
		    t->exe);
	return 0;
}

int pyhot_target_check(const struct pyhot_target *t, struct pyhot_err *err)
{
	pid_t pid = t->pid;
	char comm[64];

	if (t->state == 'Z' || t->state == 'X') {
		pyhot_err_set(err, PYHOT_ERR_ATTACH, 0, pid, "attach",
			      "pid %d is a zombie", (int)pid);
		pyhot_err_hint(err, "the process has exited; its parent has not "
			       "reaped it yet");
		return -PYHOT_ERR_ATTACH;
	}
	if (t->tracer) {
		read_comm(t->tracer, comm, sizeof(comm));
		pyhot_err_set(err, PYHOT_ERR_ATTACH, EPERM, pid, "attach",
			      "pid %d is traced by pid %d (%s)", (int)pid,
			      (int)t->tracer, comm);
		pyhot_err_hint(err, "detach the other tracer (%s) first", comm);
		return -PYHOT_ERR_ATTACH;
	}
	if (t->state == 'T' || t->state == 't') {
		pyhot_err_set(err, PYHOT_ERR_ATTACH, 0, pid, "attach",
			      "pid %d is stopped", (int)pid);
		pyhot_err_hint(err, "resume it first: kill -CONT %d", (int)pid);
		return -PYHOT_ERR_ATTACH;
	}
	/* A light inspection has not looked at the interpreter. */
	if (!t->light && t->py_major == 0) {
		pyhot_err_set(err, PYHOT_ERR_ATTACH, 0, pid, "attach",
			      "pid %d ('%s') is not CPython: no libpython mapped and "
			      "no Py_Initialize in its executable", (int)pid, t->exe);
		pyhot_err_hint(err, "give the pid of the python process itself, not "
			       "of a shell or launcher around it");
		return -PYHOT_ERR_ATTACH;
	}
	if (!t->light && (t->py_major < 3 ||
			  (t->py_major == 3 && t->py_minor >= 0 && t->py_minor < 8))) {
		pyhot_err_set(err, PYHOT_ERR_ATTACH, 0, pid, "attach",
			      "pid %d: CPython %d.%d is older than pyhot supports "
			      "(3.8 or newer)", (int)pid, t->py_major, t->py_minor);
		pyhot_err_hint(err, "run the program on CPython 3.8 or newer");
		return -PYHOT_ERR_ATTACH;
	}
	if (t->opted_out) {
		pyhot_err_set(err, PYHOT_ERR_ATTACH, 0, pid, "attach",
			      "pid %d opted out of remote debugging "
			      "(PYTHON_DISABLE_REMOTE_DEBUG or -X disable_remote_debug)",
			      (int)pid);
		pyhot_err_hint(err, "restart the program without "
			       "PYTHON_DISABLE_REMOTE_DEBUG and -X disable_remote_debug "
			       "to allow pyhot");
		return -PYHOT_ERR_ATTACH;
	}
	return 0;
}

int pyhot_target_exited(pid_t pid)
{
	char path[64], *text = NULL, state;
	size_t len;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	r = attach_read_file(path, &text, &len);
	if (r < 0)
		return r == -ENOENT || r == -ESRCH;
	state = attach_parse_stat_state(text);
	free(text);
	return state == 'Z' || state == 'X';
}
