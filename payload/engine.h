/*
 * engine.h: the agent's view of the patch engine (payload/patch/), which may
 * not be linked in yet. Private to the payload.
 *
 * The references are weak and hidden: without the engine they resolve to
 * NULL at link time (no dynamic symbol is left for the loader to bind to
 * something else in the host), and callers skip them.
 */
#ifndef PYHOT_ENGINE_H
#define PYHOT_ENGINE_H

#include "pyhot_patch.h"

extern __typeof__(pyhot_patch_refresh) pyhot_patch_refresh
	__attribute__((weak, visibility("hidden")));
extern __typeof__(pyhot_patch_baseline_take) pyhot_patch_baseline_take
	__attribute__((weak, visibility("hidden")));
extern __typeof__(pyhot_patch_rollback) pyhot_patch_rollback
	__attribute__((weak, visibility("hidden")));
extern __typeof__(pyhot_patch_history_write) pyhot_patch_history_write
	__attribute__((weak, visibility("hidden")));
extern __typeof__(pyhot_patch_set_history_limit) pyhot_patch_set_history_limit
	__attribute__((weak, visibility("hidden")));

#endif /* PYHOT_ENGINE_H */
