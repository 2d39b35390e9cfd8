/* verb_status.c: the "status" verb, what the agent knows about its target
 * (see verb_status.h). */
#include <Python.h>

#include "verb_status.h"

#include <dirent.h>
#include <dlfcn.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "agent_state.h"
#include "pyhot_patch.h"
#include "pythreads.h"
#include "pyutil.h"
#include "safepoint.h"

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

/* status, "main_thread" and "threads". */
static void status_threads(struct jsonw *out)
{
	PyObject *frames;         /* owned */
	PyObject *key = NULL;     /* owned */
	PyObject *frame = NULL;   /* borrowed */
	unsigned long ident = pyhot_main_thread_ident();
	char why[256];

	frames = pyhot_current_frames(why, sizeof(why));
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
		pyhot_frame_write(out, frame, PYHOT_FRAME_PLACE, NULL);
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
	jsonw_key_int(out, "dropped_idle",
		      (long long)atomic_load(&pyhot_agent.dropped_idle));
	jsonw_key_int(out, "via_pending_call", (long long)via_pending);
	jsonw_key_int(out, "via_gil_thread", (long long)via_gil);
	jsonw_key_int(out, "timeouts", (long long)atomic_load(&pyhot_agent.timeouts));
	jsonw_key_str(out, "last_error", last[0] ? last : NULL);
	jsonw_key_bool(out, "engine", 1);   /* always linked in */
	jsonw_object_end(out);
}

int pyhot_verb_status(const struct pyhot_req *req, struct jsonw *out,
		       struct pyhot_err *err)
{
	const char *leaks = pyhot_req_get(req, "leaks");

	status_interpreter(out);
	status_threads(out);
	status_agent(out);
	pyhot_patch_baseline_write(out);
	return pyhot_patch_history_write(out, leaks && strcmp(leaks, "0") != 0, err);
}
