/*
 * baseline_import.h: record one module's baseline as it is imported
 * (baseline_import.c), so that a process that runs pyhot from its start
 * compares every refresh against the source each module was loaded from,
 * not against the file as it was at the first refresh.
 */
#ifndef PYHOT_PATCH_BASELINE_IMPORT_H
#define PYHOT_PATCH_BASELINE_IMPORT_H

/*
 * Record file as the baseline of module unless it has one, or the file is
 * not the user's (stdlib_dir, the directory of os.py, or site-packages;
 * see pyhot_patch_is_user_file()). Plain C: reads the file, runs no Python.
 * 0 (recorded or skipped), or -1 out of memory.
 */
int pyhot_patch_baseline_record(const char *module, const char *file,
				const char *stdlib_dir);

#endif /* PYHOT_PATCH_BASELINE_IMPORT_H */
