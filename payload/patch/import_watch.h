/*
 * import_watch.h: the source of every module imported after the attach,
 * recorded as its loader loads it (import_watch.c). GIL held unless said.
 */
#ifndef PYHOT_PATCH_IMPORT_WATCH_H
#define PYHOT_PATCH_IMPORT_WATCH_H

/* Start recording (again, after a detach): wraps SourceLoader.get_code and
 * source_to_code of importlib once per process. Never fails: without the
 * wrappers, late modules simply have no baseline. */
void pyhot_import_watch_start(void);

#endif /* PYHOT_PATCH_IMPORT_WATCH_H */
