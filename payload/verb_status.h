/*
 * verb_status.h: the "status" verb, behind `pyhot status`. Private to the
 * payload; a row of pyhot_verbs[] (verbs.c). A PYHOT_VERB_PYTHON handler:
 * GIL held at a safe point, no Python exception left set.
 */
#ifndef PYHOT_VERB_STATUS_H
#define PYHOT_VERB_STATUS_H

#include "jsonw.h"
#include "pyhot_err.h"
#include "request.h"

/*
 * "status": what the agent knows about its target, fields as pyhot_proto.h
 * defines them: "interpreter", "main_thread", "threads", "agent" (its
 * counters) and the generation tracker's "history" (request key "leaks":
 * "1" also looks for objects a refresh should have freed). Best effort: a
 * field that cannot be read is null, never a failure; only the history may
 * fail.
 */
int pyhot_verb_status(const struct pyhot_req *req, struct jsonw *out,
		      struct pyhot_err *err);

#endif /* PYHOT_VERB_STATUS_H */
