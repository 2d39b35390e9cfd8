/* verbs.c: the verbs the agent serves (see verbs.h and pyhot_proto.h). */
#include <Python.h>

#include "verbs.h"

#include <dirent.h>
#include <dlfcn.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "agent_state.h"
#include "baseline_job.h"
#include "pyhot_patch.h"
#include "pyutil.h"
#include "safepoint.h"
#include "verb_cli.h"

/* ping: agent thread, no Python. */
static int verb_ping(const struct pyhot_req *req, struct jsonw *out,
		     struct pyhot_err *err)
{
	long history = pyhot_req_get_ulong(req, "history", 0);
	const char *version = Py_GetVersion();

	/* `pyhot attach --history N` on an agent already there */
	if (history > 0) {
		pyhot_patch_set_history_limit(history);
	}
	jsonw_key_int(out, "pid", getpid());
	jsonw_key_double(out, "agent_uptime_s", pyhot_agent_uptime());
	jsonw_key_bool(out, "baseline", pyhot_baseline_ready());
	/* Py_GetVersion() runs no Python: it formats compile-time strings into
	 * a static buffer, without the GIL. "3.11.7 (main, ...)" -> "3.11.7". */
	jsonw_key(out, "python_version");
	jsonw_strn(out, version, strcspn(version, " \t\n"));
	return 0;
}

/* detach: agent thread. The agent removes its socket before it replies and
 * its thread ends after; the payload stays loaded for a later boot. Safe-point
 * jobs are not in flight here: the agent serves one request at a time, and a
 * job it gave up on was cancelled (or runs on without touching the agent). */
static int verb_detach(const struct pyhot_req *req, struct jsonw *out,
		       struct pyhot_err *err)
{
	pyhot_agent_request_stop();
	jsonw_key_bool(out, "detached", 1);
	return 0;
}

/* status, "interpreter": which CPython this is and how it is linked. */
static void status_interpreter(struct jsonw *out)
{
	PyObject *hex;            /* borrowed */
	PyObject *impl;           /* borrowed */
	PyObject *name = NULL;    /* owned */
	Dl_info py, exe;
	long v;
	int shared;

	jsonw_key(out, "interpreter");
	jsonw_object_begin(out);
	jsonw_key_str(out, "version", Py_GetVersion());
	jsonw_key(out, "hexversion");
	hex = PySys_GetObject("hexversion");
	v = hex ? PyLong_AsLong(hex) : -1;
	if (v == -1) {
		PyErr_Clear();
		jsonw_null(out);
	} else {
		jsonw_int(out, v);
	}
	impl = PySys_GetObject("implementation");
	name = impl ? PyObject_GetAttrString(impl, "name") : NULL;
	pyhot_json_key_pystr(out, "implementation", name);
	Py_XDECREF(name);
	PyErr_Clear();
	pyhot_json_key_pystr(out, "executable", PySys_GetObject("executable"));

	/* Static when the interpreter's code is in the main executable (Debian's
	 * /usr/bin/python3.11); AT_PHDR lies in the executable's first mapping. */
	if (dladdr((void *)&Py_GetVersion, &py) &&
	    dladdr((void *)getauxval(AT_PHDR), &exe)) {
		shared = py.dli_fbase != exe.dli_fbase;
		jsonw_key_str(out, "build", shared ? "shared" : "static");
		jsonw_key_str(out, "libpython", shared ? py.dli_fname : NULL);
	}
	jsonw_object_end(out);
}

/* The main thread's ident: where we stand when we came by pending call,
 * else threading's idea of it (only if threading is already imported:
 * importing it from another thread would make that thread "main" in old
 * versions), else what an earlier pending call saw. Returns 0 if unknown. */
static unsigned long main_thread_ident(void)
{
	PyObject *modules;        /* borrowed */
	PyObject *threading;      /* borrowed */
	PyObject *main = NULL;    /* owned */
	PyObject *ident = NULL;   /* owned */
	unsigned long id = 0;

	if (pyhot_sp_current_via() == PYHOT_SP_PENDING_CALL) {
		return PyThread_get_thread_ident();
	}
	modules = PyImport_GetModuleDict();
	threading = modules ? PyDict_GetItemString(modules, "threading") : NULL;
	if (!threading) {
		goto out;
	}
	main = PyObject_CallMethod(threading, "main_thread", NULL);
	if (!main) {
		goto out;
	}
	ident = PyObject_GetAttrString(main, "ident");
	if (ident && PyLong_Check(ident)) {
		id = PyLong_AsUnsignedLong(ident);
	}
out:
	Py_XDECREF(ident);
	Py_XDECREF(main);
	PyErr_Clear();
	return id ? id : pyhot_sp_main_ident();
}

/* {"file", "line", "function"} of a frame object (borrowed). */
static void frame_write(struct jsonw *out, PyObject *frame)
{
	PyObject *code = NULL;    /* owned */
	PyObject *file = NULL;    /* owned */
	PyObject *func = NULL;    /* owned */
	PyObject *line = NULL;    /* owned */
	long n;

	code = PyObject_GetAttrString(frame, "f_code");
	if (code) {
		file = PyObject_GetAttrString(code, "co_filename");
		func = PyObject_GetAttrString(code, "co_name");
	}
	line = PyObject_GetAttrString(frame, "f_lineno");
	PyErr_Clear();
	jsonw_object_begin(out);
	pyhot_json_key_pystr(out, "file", file);
	jsonw_key(out, "line");
	n = line && PyLong_Check(line) ? PyLong_AsLong(line) : -1;
	if (n < 0) {
		jsonw_null(out);
	} else {
		jsonw_int(out, n);
	}
	pyhot_json_key_pystr(out, "function", func);
	jsonw_object_end(out);
	Py_XDECREF(line);
	Py_XDECREF(func);
	Py_XDECREF(file);
	Py_XDECREF(code);
	PyErr_Clear();
}

/* sys._current_frames(): {ident: frame}, a new reference, or NULL (the
 * error cleared). */
static PyObject *current_frames(void)
{
	PyObject *fn = PySys_GetObject("_current_frames");   /* borrowed */
	PyObject *frames = fn ? PyObject_CallObject(fn, NULL) : NULL;   /* owned */

	if (frames && !PyDict_Check(frames)) {
		Py_CLEAR(frames);
	}
	PyErr_Clear();
	return frames;
}

/* status, "main_thread" and "threads". */
static void status_threads(struct jsonw *out)
{
	PyObject *frames = current_frames();   /* owned */
	PyObject *key = NULL;     /* owned */
	PyObject *frame = NULL;   /* borrowed */
	unsigned long ident = main_thread_ident();

	if (frames && ident && (key = PyLong_FromUnsignedLong(ident))) {
		frame = PyDict_GetItem(frames, key);
	}
	PyErr_Clear();

	jsonw_key(out, "main_thread");
	jsonw_object_begin(out);
	jsonw_key_str(out, "via", pyhot_sp_via_name(pyhot_sp_current_via()));
	jsonw_key(out, "ident");
	if (ident) {
		jsonw_int(out, (long long)ident);
	} else {
		jsonw_null(out);
	}
	jsonw_key(out, "frame");
	if (frame) {
		frame_write(out, frame);
	} else {
		jsonw_null(out);
	}
	jsonw_object_end(out);

	/* Python threads that run Python (ours, waiting for nothing, have no
	 * frame and do not count). */
	jsonw_key(out, "threads");
	if (frames) {
		jsonw_int(out, (long long)PyDict_Size(frames));
	} else {
		jsonw_null(out);
	}
	Py_XDECREF(key);
	Py_XDECREF(frames);
}

static long os_thread_count(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	long n = 0;

	if (!d) {
		return -1;
	}
	while ((e = readdir(d))) {
		n += e->d_name[0] != '.';
	}
	closedir(d);
	return n;
}

/* status, "agent": its counters, as pyhot_proto.h defines them. */
static void status_agent(struct jsonw *out)
{
	char last[sizeof(pyhot_agent.last_error)];
	unsigned long via_pending = atomic_load(&pyhot_agent.via_pending);
	unsigned long via_gil = atomic_load(&pyhot_agent.via_gil);

	/* The agent counts a request's safe point once it returns: this
	 * request, at its safe point now, counts itself (pyhot_proto.h). */
	switch (pyhot_sp_current_via()) {
	case PYHOT_SP_PENDING_CALL:
		via_pending++;
		break;
	case PYHOT_SP_GIL_THREAD:
		via_gil++;
		break;
	case PYHOT_SP_NONE:
		break;
	}
	pyhot_agent_last_error(last, sizeof(last));
	jsonw_key(out, "agent");
	jsonw_object_begin(out);
	jsonw_key_int(out, "pid", getpid());
	jsonw_key_double(out, "uptime_s", pyhot_agent_uptime());
	jsonw_key_str(out, "socket", pyhot_agent.sock);
	jsonw_key_int(out, "os_threads", os_thread_count());
	jsonw_key_int(out, "requests", (long long)atomic_load(&pyhot_agent.requests));
	jsonw_key_int(out, "refused", (long long)atomic_load(&pyhot_agent.refused));
	jsonw_key_int(out, "via_pending_call", (long long)via_pending);
	jsonw_key_int(out, "via_gil_thread", (long long)via_gil);
	jsonw_key_int(out, "timeouts", (long long)atomic_load(&pyhot_agent.timeouts));
	jsonw_key_str(out, "last_error", last[0] ? last : NULL);
	jsonw_key_bool(out, "engine", 1);   /* always linked in */
	jsonw_object_end(out);
}

/* status: safe point, GIL held. Best effort: a field that cannot be read
 * is null, never a failure. */
static int verb_status(const struct pyhot_req *req, struct jsonw *out,
		       struct pyhot_err *err)
{
	const char *leaks = pyhot_req_get(req, "leaks");

	status_interpreter(out);
	status_threads(out);
	status_agent(out);
	return pyhot_patch_history_write(out, leaks && strcmp(leaks, "0") != 0, err);
}

const struct pyhot_verb pyhot_verbs[] = {
	{ "ping",    PYHOT_VERB_AGENT,  verb_ping },
	{ "status",  PYHOT_VERB_PYTHON, verb_status },
	{ "detach",  PYHOT_VERB_AGENT,  verb_detach },
	{ "refresh", PYHOT_VERB_PYTHON, pyhot_patch_refresh },
	{ "rollback", PYHOT_VERB_PYTHON, pyhot_patch_rollback },
	{ "stack",   PYHOT_VERB_PYTHON, pyhot_verb_stack },
	{ "exec",    PYHOT_VERB_PYTHON, pyhot_verb_exec },
	{ NULL, PYHOT_VERB_AGENT, NULL },
};

const struct pyhot_verb *pyhot_verb_find(const char *name)
{
	const struct pyhot_verb *v;

	for (v = pyhot_verbs; v->name; v++) {
		if (strcmp(v->name, name) == 0) {
			return v;
		}
	}
	return NULL;
}
