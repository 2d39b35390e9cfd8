/*
 * verbs.h: the table of request verbs the agent serves.
 *
 * A handler fills the response object that the agent has opened (the agent
 * writes "proto" before and "ok"/"error" after). It returns 0, or a negative
 * pyhot_errkind with err filled; on failure it may still have written fields
 * (a "traceback", a "plan"), which stay in the response.
 *
 * PYHOT_VERB_PYTHON handlers run with the GIL held at a safe point, on
 * whatever thread got there (main thread pending call, or the agent's GIL
 * thread). They must leave no Python exception set: catch, report through
 * err (and a "traceback" field), clear. PYHOT_VERB_AGENT handlers run on the
 * agent thread and must not touch Python.
 */
#ifndef PYHOT_VERBS_H
#define PYHOT_VERBS_H

#include "jsonw.h"
#include "pyhot_err.h"
#include "request.h"

enum pyhot_verb_where {
	PYHOT_VERB_AGENT,    /* on the agent thread, no Python */
	PYHOT_VERB_PYTHON,   /* at a safe point, GIL held */
};

typedef int (*pyhot_verb_fn)(const struct pyhot_req *req, struct jsonw *out,
			     struct pyhot_err *err);

struct pyhot_verb {
	const char *name;
	enum pyhot_verb_where where;
	pyhot_verb_fn fn;
};

/* The table, ended by an entry whose name is NULL (verbs.c). */
extern const struct pyhot_verb pyhot_verbs[];

/* Look a verb up; NULL when unknown. */
const struct pyhot_verb *pyhot_verb_find(const char *name);

#endif /* PYHOT_VERBS_H */
