/* format_history.c: the generation tracker's answers as text (see cli.h). */
#include "cli.h"

#include <string.h>
#include <time.h>

#include <json.h>

static struct json_object *member(struct json_object *o, const char *key,
				  enum json_type type)
{
	struct json_object *v = NULL;

	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, type))
		return NULL;
	return v;
}

/* "3 changed, 1 added" from a summary object ("no change" when empty). */
static void summary_text(char *buf, size_t len, struct json_object *summary)
{
	static const char *const keys[] = { "changed", "added", "removed", "failed", NULL };
	size_t used = 0;
	int i;

	buf[0] = '\0';
	for (i = 0; keys[i] && used < len; i++) {
		long long n = cli_json_int(summary, keys[i]);

		if (n)
			used += (size_t)snprintf(buf + used, len - used, "%s%lld %s",
						 used ? ", " : "", n, keys[i]);
	}
	if (!buf[0])
		snprintf(buf, len, "no change");
}

static void human_bytes(char *buf, size_t len, long long n)
{
	if (n < 10 * 1024)
		snprintf(buf, len, "%lld bytes", n);
	else if (n < 10 * 1024 * 1024)
		snprintf(buf, len, "%.1f KiB", (double)n / 1024);
	else
		snprintf(buf, len, "%.1f MiB", (double)n / (1024 * 1024));
}

void cli_fmt_history(FILE *f, struct json_object *resp, int verbose, int color)
{
	struct json_object *h = member(resp, "history", json_type_object);
	struct json_object *gens = member(h, "generations", json_type_array);
	size_t i, n = gens ? json_object_array_length(gens) : 0;
	char bytes[32];

	if (!h)
		return;
	human_bytes(bytes, sizeof(bytes), cli_json_int(h, "bytes"));
	fprintf(f, "generations: %zu (newest first; %lld kept per module; the history "
		"holds %s)\n", n, cli_json_int(h, "limit"), bytes);
	for (i = 0; i < n; i++) {
		struct json_object *g = json_object_array_get_idx(gens, i);
		struct json_object *applied = member(g, "applied", json_type_boolean);
		const char *kind = cli_json_str(g, "kind"), *hash = cli_json_str(g, "hash");
		double t = json_object_get_double(member(g, "time", json_type_double));
		time_t secs = (time_t)t;
		char when[32] = "?", what[160], state[64] = "";
		struct tm tm;

		if (localtime_r(&secs, &tm))
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
		summary_text(what, sizeof(what), member(g, "summary", json_type_object));
		if (kind && strcmp(kind, "rollback") == 0)
			snprintf(state, sizeof(state), "back to %lld",
				 cli_json_int(g, "restores"));
		else if (applied && json_object_get_boolean(applied))
			snprintf(state, sizeof(state), "applied");
		else if (cli_json_int(g, "rolled_back_by"))
			snprintf(state, sizeof(state), "rolled back by %lld",
				 cli_json_int(g, "rolled_back_by"));
		fprintf(f, "  %s%4lld%s  %s  %-8s  %-24s  %.12s  %s%s%s\n",
			cli_color(color, "bold"), cli_json_int(g, "number"),
			cli_color(color, "reset"), when, kind ? kind : "?",
			cli_json_str(g, "module") ? cli_json_str(g, "module") : "?",
			hash ? hash : "-", what, *state ? "; " : "", state);
		if (verbose) {
			struct json_object *chs = member(g, "changes", json_type_array);
			size_t j, m = chs ? json_object_array_length(chs) : 0;
			char line[1024];

			for (j = 0; j < m; j++) {
				cli_fmt_change(line, sizeof(line),
					       json_object_array_get_idx(chs, j), color);
				fprintf(f, "      %s\n", line);
			}
		}
	}
}

void cli_fmt_leaks(FILE *f, struct json_object *resp, pid_t pid)
{
	struct json_object *leaks = member(resp, "leaks", json_type_array);
	size_t i, n = leaks ? json_object_array_length(leaks) : 0;

	if (!leaks)
		return;
	if (n == 0) {
		fprintf(f, "leaks: none (after gc.collect() in pid %d, nothing from a past "
			"generation is alive)\n", (int)pid);
		return;
	}
	fprintf(f, "leaks: %zu object%s from past generations still alive in pid %d:\n",
		n, n == 1 ? "" : "s", (int)pid);
	for (i = 0; i < n; i++) {
		struct json_object *l = json_object_array_get_idx(leaks, i);
		struct json_object *by = member(l, "held_by", json_type_array);
		size_t j, m = by ? json_object_array_length(by) : 0;

		fprintf(f, "  generation %lld: %s %s\n", cli_json_int(l, "generation"),
			cli_json_str(l, "type") ? cli_json_str(l, "type") : "?",
			cli_json_str(l, "name") ? cli_json_str(l, "name") : "?");
		for (j = 0; j < m; j++)
			fprintf(f, "      held by %s\n",
				json_object_get_string(json_object_array_get_idx(by, j)));
		if (m == 0)
			fprintf(f, "      held by nothing gc can see (C code, or a running frame)\n");
	}
}

void cli_fmt_rollback(FILE *f, struct json_object *resp, pid_t pid, int verbose,
		      int color)
{
	struct json_object *mods = member(resp, "modules", json_type_array);
	struct json_object *m = mods && json_object_array_length(mods) > 0 ?
				json_object_array_get_idx(mods, 0) : NULL;
	struct json_object *chs = member(m, "changes", json_type_array);
	struct json_object *undone = member(resp, "undone", json_type_array);
	struct json_object *dry = member(resp, "dry_run", json_type_boolean);
	int dry_run = dry && json_object_get_boolean(dry);
	size_t i, n = chs ? json_object_array_length(chs) : 0;
	char line[1024], list[256] = "", what[160];
	size_t used = 0;

	fprintf(f, "%s%s%s (%s)\n", cli_color(color, "bold"),
		cli_json_str(m, "module") ? cli_json_str(m, "module") : "?",
		cli_color(color, "reset"),
		cli_json_str(m, "file") ? cli_json_str(m, "file") : "?");
	for (i = 0; i < n; i++) {
		cli_fmt_change(line, sizeof(line), json_object_array_get_idx(chs, i), color);
		fprintf(f, "%s\n", line);
	}
	for (i = 0; undone && i < json_object_array_length(undone) && used < sizeof(list); i++)
		used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s",
					 i ? ", " : "", json_object_get_string(
						 json_object_array_get_idx(undone, i)));
	summary_text(what, sizeof(what), member(m, "summary", json_type_object));
	if (dry_run) {
		fprintf(f, "would roll back %s in pid %d to generation %lld, undoing %s: %s "
			"(dry run: nothing was changed)\n", cli_json_str(m, "module"),
			(int)pid, cli_json_int(resp, "restored"), list, what);
		return;
	}
	fprintf(f, "rolled back %s in pid %d to generation %lld, undoing %s: %s; "
		"recorded as generation %lld\n", cli_json_str(m, "module"), (int)pid,
		cli_json_int(resp, "restored"), list, what, cli_json_int(m, "generation"));
	if (verbose)
		fprintf(f, "the file on disk is unchanged: 'pyhot refresh %d %s' applies "
			"it again\n", (int)pid, cli_json_str(m, "module"));
}
