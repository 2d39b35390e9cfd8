/* switch_interval.c: shorten the GIL switch interval while a job waits (see
 * switch_interval.h and docs/safepoints.md). */
#include <Python.h>

#include "switch_interval.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

enum sw_access {
	SW_NONE,     /* not learnt yet, or nothing to do here */
	SW_FUNCS,    /* CPython's own getter and setter, callable without a
		      * thread state (3.8 to 3.11) */
	SW_FIELD,    /* the field itself (3.12: its setter needs a thread state) */
};

/*
 * CPython 3.12 on x86_64: PyInterpreterState.ceval.gil, the pointer to the
 * GIL whose first member is the interval. Taken from 3.12's internal
 * headers, and checked at run time before use (sw_field_check()).
 */
#define PY312_INTERP_GIL_OFFSET 0x180
/* The main interpreter's GIL lies inside its interpreter state. */
#define PY312_INTERP_SPAN (1u << 20)

static pthread_once_t funcs_once = PTHREAD_ONCE_INIT;
static pthread_once_t learn_once = PTHREAD_ONCE_INIT;
static _Atomic int access_kind = SW_NONE;   /* enum sw_access */
static unsigned long (*sw_get_fn)(void);
static void (*sw_set_fn)(unsigned long);
static volatile unsigned long *sw_field;

static pthread_mutex_t sw_lock = PTHREAD_MUTEX_INITIALIZER;
static int sw_users;       /* jobs waiting now; guarded by sw_lock */
static int sw_lowered;     /* we changed it; guarded by sw_lock */
static unsigned long sw_saved;   /* the program's value; guarded by sw_lock */

/* 3.12: find the field through the main interpreter and check it with the
 * GIL held: a value written by CPython's setter must show in it. */
static void sw_field_check(void)
{
	PyInterpreterState *(*main_interp)(void);
	uintptr_t interp, gil;
	unsigned long before;

	*(void **)&main_interp = dlsym(RTLD_DEFAULT, "PyInterpreterState_Main");
	if (!main_interp || !(interp = (uintptr_t)main_interp())) {
		return;
	}
	gil = *(const uintptr_t *)(interp + PY312_INTERP_GIL_OFFSET);
	if (gil < interp || gil >= interp + PY312_INTERP_SPAN ||
	    gil % sizeof(unsigned long) != 0) {
		return;
	}
	sw_field = (volatile unsigned long *)gil;
	before = sw_get_fn();
	sw_set_fn(before + 1);
	if (*sw_field == before + 1) {
		atomic_store(&access_kind, SW_FIELD);
	}
	sw_set_fn(before);
}

/* The setter and getter, and on 3.8 to 3.11 the way to use them: no GIL
 * needed. */
static void sw_learn_funcs(void)
{
	const char *v = Py_GetVersion();   /* a static string: no GIL needed */

	*(void **)&sw_get_fn = dlsym(RTLD_DEFAULT, "_PyEval_GetSwitchInterval");
	*(void **)&sw_set_fn = dlsym(RTLD_DEFAULT, "_PyEval_SetSwitchInterval");
	if (!sw_get_fn || !sw_set_fn) {
		return;
	}
	if (strncmp(v, "3.8.", 4) == 0 || strncmp(v, "3.9.", 4) == 0 ||
	    strncmp(v, "3.10.", 5) == 0 || strncmp(v, "3.11.", 5) == 0) {
		atomic_store(&access_kind, SW_FUNCS);
	}
}

/* 3.12: the field, checked with the GIL held. */
static void sw_learn_field(void)
{
	pthread_once(&funcs_once, sw_learn_funcs);
	if (sw_get_fn && sw_set_fn && strncmp(Py_GetVersion(), "3.12.", 5) == 0) {
		sw_field_check();
	}
}

void pyhot_switch_interval_learn_early(void)
{
	pthread_once(&funcs_once, sw_learn_funcs);
}

void pyhot_switch_interval_learn(void)
{
	pthread_once(&learn_once, sw_learn_field);
}

static unsigned long sw_get(enum sw_access kind)
{
	return kind == SW_FIELD ? *sw_field : sw_get_fn();
}

/* An aligned word store: what CPython's own setter does, without a lock. */
static void sw_set(enum sw_access kind, unsigned long us)
{
	if (kind == SW_FIELD) {
		*sw_field = us;
	} else {
		sw_set_fn(us);
	}
}

void pyhot_switch_interval_lower(void)
{
	enum sw_access kind = (enum sw_access)atomic_load(&access_kind);
	unsigned long now;

	pthread_mutex_lock(&sw_lock);
	if (sw_users++ == 0 && kind != SW_NONE) {
		now = sw_get(kind);
		sw_lowered = now > PYHOT_SWITCH_INTERVAL_US;
		if (sw_lowered) {
			sw_saved = now;
			sw_set(kind, PYHOT_SWITCH_INTERVAL_US);
		}
	}
	pthread_mutex_unlock(&sw_lock);
}

void pyhot_switch_interval_restore(void)
{
	enum sw_access kind = (enum sw_access)atomic_load(&access_kind);

	pthread_mutex_lock(&sw_lock);
	if (--sw_users == 0 && sw_lowered) {
		/* A value other than ours is the program's: leave it. */
		if (sw_get(kind) == PYHOT_SWITCH_INTERVAL_US) {
			sw_set(kind, sw_saved);
		}
		sw_lowered = 0;
	}
	pthread_mutex_unlock(&sw_lock);
}

void pyhot_switch_interval_atfork_child(void)
{
	enum sw_access kind = (enum sw_access)atomic_load(&access_kind);

	pthread_mutex_init(&sw_lock, NULL);
	/* A job of the parent's was waiting: the child has none. */
	if (sw_lowered && sw_get(kind) == PYHOT_SWITCH_INTERVAL_US) {
		sw_set(kind, sw_saved);
	}
	sw_users = 0;
	sw_lowered = 0;
}
