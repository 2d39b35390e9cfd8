/* baseline_import.c: one module's baseline, recorded at its import (see
 * baseline_import.h). */
#include "baseline_import.h"

#include <stdlib.h>

#include "baseline.h"

int pyhot_patch_baseline_record(const char *module, const char *file,
				const char *stdlib_dir)
{
	char *src;
	size_t len;
	int rc;

	if (pyhot_baseline_find(module) || !pyhot_patch_is_user_file(file, stdlib_dir)) {
		return 0;
	}
	if (pyhot_patch_read_file(file, &src, &len) < 0) {
		return 0;   /* unreadable: the module gets no baseline, as at attach */
	}
	rc = pyhot_baseline_put(module, file, src, len);
	free(src);
	return rc;
}
