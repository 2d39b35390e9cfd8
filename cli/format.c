/* format.c: agent responses as text for people (see cli.h). */
#include "cli.h"

#include <string.h>

#include <json.h>

const char *cli_json_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

long long cli_json_int(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v))
		return 0;
	return json_object_get_int64(v);
}

static const char *action_color(const char *action)
{
	if (strcmp(action, "failed") == 0 || strcmp(action, "removed") == 0)
		return "red";
	if (strcmp(action, "added") == 0)
		return "green";
	if (strcmp(action, "changed") == 0)
		return "yellow";
	return "dim";
}

void cli_fmt_change(char *buf, size_t len, struct json_object *change, int color)
{
	const char *action = cli_json_str(change, "action"), *kind = cli_json_str(change, "kind");
	const char *name = cli_json_str(change, "name"), *detail = cli_json_str(change, "detail");

	if (!action)
		action = "?";
	snprintf(buf, len, "  %s%-8s%s %-9s %s%s%s%s", cli_color(color, action_color(action)),
		 action, cli_color(color, "reset"), kind ? kind : "", name ? name : "?",
		 detail && *detail ? " (" : "", detail && *detail ? detail : "",
		 detail && *detail ? ")" : "");
}

/*
 * The hooks that ran for a module (payload/patch/hooks.c: "hooks", each
 * {"name", "ok", "error"}), a line each. An after hook or a callback that
 * raised did not undo the refresh (a before hook that raised refused it:
 * that is an error response, not a report). The process-wide on_refresh
 * callbacks are in every module's list but ran once: shown with the first
 * module only (first nonzero).
 */
static void print_hooks(FILE *f, struct json_object *m, int first, int color)
{
	struct json_object *hooks = NULL, *h, *ok;
	size_t i, n;

	json_object_object_get_ex(m, "hooks", &hooks);
	n = hooks && json_object_is_type(hooks, json_type_array) ?
	    json_object_array_length(hooks) : 0;
	for (i = 0; i < n; i++) {
		const char *name, *error;

		h = json_object_array_get_idx(hooks, i);
		name = cli_json_str(h, "name");
		error = cli_json_str(h, "error");
		if (!first && name && strncmp(name, "on_refresh:", 11) == 0)
			continue;
		if (error && strncmp(error, "refresh: ", 9) == 0)
			error += 9;   /* the engine's step prefix, said by the line already */
		if ((!json_object_object_get_ex(h, "ok", &ok) || json_object_get_boolean(ok)) &&
		    !error) {
			fprintf(f, "  %shook%s     %s: ok\n", cli_color(color, "dim"),
				cli_color(color, "reset"), name ? name : "?");
			continue;
		}
		fprintf(f, "  %shook%s     %s: raised %s (the refresh stays applied; "
			"pyhot rollback undoes it)\n", cli_color(color, "red"),
			cli_color(color, "reset"), name ? name : "?", error ? error : "?");
	}
}

void cli_fmt_refresh(FILE *f, struct json_object *resp, pid_t pid, int verbose,
		     int color)
{
	struct json_object *mods = NULL, *dry, *summary, *changes;
	size_t i, j, n, nch;
	int dry_run = 0;
	long long tot[5] = { 0 };
	static const char *const keys[5] = { "changed", "added", "removed", "kept", "failed" };
	char line[1024];

	if (json_object_object_get_ex(resp, "dry_run", &dry))
		dry_run = json_object_get_boolean(dry);
	json_object_object_get_ex(resp, "modules", &mods);
	n = mods && json_object_is_type(mods, json_type_array) ?
	    json_object_array_length(mods) : 0;
	for (i = 0; i < n; i++) {
		struct json_object *m = json_object_array_get_idx(mods, i);
		const char *file = cli_json_str(m, "file");

		fprintf(f, "%s%s%s%s%s%s\n", cli_color(color, "bold"),
			cli_json_str(m, "module") ? cli_json_str(m, "module") : "?",
			cli_color(color, "reset"), file ? " (" : "", file ? file : "",
			file ? ")" : "");
		if (cli_json_str(m, "warning"))
			fprintf(f, "  %swarning:%s %s\n", cli_color(color, "yellow"),
				cli_color(color, "reset"), cli_json_str(m, "warning"));
		changes = NULL;
		json_object_object_get_ex(m, "changes", &changes);
		nch = changes && json_object_is_type(changes, json_type_array) ?
		      json_object_array_length(changes) : 0;
		for (j = 0; j < nch; j++) {
			struct json_object *ch = json_object_array_get_idx(changes, j);
			const char *action = cli_json_str(ch, "action");

			if (!verbose && action && strcmp(action, "kept") == 0)
				continue;
			cli_fmt_change(line, sizeof(line), ch, color);
			fprintf(f, "%s\n", line);
		}
		/* frames that keep running old code until they return */
		changes = NULL;
		json_object_object_get_ex(m, "running", &changes);
		nch = changes && json_object_is_type(changes, json_type_array) ?
		      json_object_array_length(changes) : 0;
		for (j = 0; j < nch; j++) {
			cli_fmt_change(line, sizeof(line),
				       json_object_array_get_idx(changes, j), color);
			fprintf(f, "%s\n", line);
		}
		print_hooks(f, m, i == 0, color);
		summary = NULL;
		json_object_object_get_ex(m, "summary", &summary);
		for (j = 0; j < 5; j++)
			tot[j] += cli_json_int(summary, keys[j]);
	}
	if (n == 0) {
		fprintf(f, "%s pid %d: no module changed since it was loaded or refreshed\n",
			dry_run ? "dry run," : "refresh:", (int)pid);
		return;
	}
	if (tot[0] + tot[1] + tot[2] + tot[3] + tot[4] == 0) {
		/* named modules whose files match what runs: nothing to do */
		fprintf(f, "%s pid %d: %zu module%s unchanged, nothing to do\n",
			dry_run ? "dry run," : "refresh:", (int)pid, n, n == 1 ? "" : "s");
		return;
	}
	fprintf(f, "%s %zu module%s in pid %d: %lld changed, %lld added, %lld removed, "
		"%lld kept, %lld failed%s\n",
		dry_run ? "would refresh" : "refreshed", n, n == 1 ? "" : "s", (int)pid,
		tot[0], tot[1], tot[2], tot[3], tot[4],
		dry_run ? " (dry run: nothing was changed)" : "");
}

static void print_value(FILE *f, const char *key, struct json_object *v, int depth)
{
	int indent = depth * 2;

	switch (json_object_get_type(v)) {
	case json_type_object:
		fprintf(f, "%*s%s:\n", indent, "", key);
		{
			json_object_object_foreach(v, k, sub)
				print_value(f, k, sub, depth + 1);
		}
		break;
	case json_type_array: {
		size_t i, n = json_object_array_length(v);
		int simple = 1;

		for (i = 0; i < n; i++) {
			enum json_type t = json_object_get_type(json_object_array_get_idx(v, i));

			if (t == json_type_object || t == json_type_array)
				simple = 0;
		}
		if (simple) {
			fprintf(f, "%*s%s: ", indent, "", key);
			for (i = 0; i < n; i++)
				fprintf(f, "%s%s", i ? ", " : "",
					json_object_get_string(json_object_array_get_idx(v, i)));
			fputc('\n', f);
			break;
		}
		fprintf(f, "%*s%s:\n", indent, "", key);
		for (i = 0; i < n; i++) {
			char idx[32];

			snprintf(idx, sizeof(idx), "[%zu]", i);
			print_value(f, idx, json_object_array_get_idx(v, i), depth + 1);
		}
		break;
	}
	case json_type_string: {
		const char *s = json_object_get_string(v);

		if (strchr(s, '\n')) {
			const char *p = s, *nl;

			fprintf(f, "%*s%s:\n", indent, "", key);
			while (*p) {
				nl = strchr(p, '\n');
				fprintf(f, "%*s%.*s\n", indent + 2, "",
					nl ? (int)(nl - p) : (int)strlen(p), p);
				p = nl ? nl + 1 : p + strlen(p);
			}
		} else {
			fprintf(f, "%*s%s: %s\n", indent, "", key, s);
		}
		break;
	}
	case json_type_null:
		fprintf(f, "%*s%s: -\n", indent, "", key);
		break;
	default:
		fprintf(f, "%*s%s: %s\n", indent, "", key, json_object_get_string(v));
		break;
	}
}

static struct json_object *obj_of(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_object))
		return NULL;
	return v;
}

static int has(struct json_object *o, const char *key)
{
	return o && json_object_object_get_ex(o, key, NULL);
}

static double dbl_of(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v))
		return 0;
	return json_object_get_double(v);
}

static const char *via_words(const char *via)
{
	if (!via)
		return "?";
	if (strcmp(via, "pending-call") == 0 || strcmp(via, "pending call") == 0)
		return "a pending call on the main thread";
	if (strcmp(via, "gil-thread") == 0)
		return "the agent's thread taking the GIL (main thread blocked)";
	return via;
}

/*
 * The agent's status (payload/verbs.c): "interpreter", "main_thread",
 * "threads", "agent", "safepoint". Known fields get a line each; whatever
 * else the agent sends is printed as "key: value" below, so that a newer
 * agent's fields are never hidden.
 */
void cli_fmt_status(FILE *f, struct json_object *resp, pid_t pid)
{
	struct json_object *interp = obj_of(resp, "interpreter");
	struct json_object *mt = obj_of(resp, "main_thread"), *frame = obj_of(mt, "frame");
	struct json_object *agent = obj_of(resp, "agent"), *sp = obj_of(resp, "safepoint");
	const char *build = cli_json_str(interp, "build"), *lp = cli_json_str(interp, "libpython");
	char ver[64];

	cli_fmt_version(ver, sizeof(ver), resp, NULL);
	fprintf(f, "pid %d: %s %s", (int)pid,
		cli_json_str(interp, "implementation") &&
		strcmp(cli_json_str(interp, "implementation"), "cpython") != 0 ?
		cli_json_str(interp, "implementation") : "CPython", ver);
	if (build)
		fprintf(f, " (%s libpython%s%s)", build, lp ? " " : "", lp ? lp : "");
	fputc('\n', f);
	if (cli_json_str(interp, "executable"))
		fprintf(f, "  executable:   %s\n", cli_json_str(interp, "executable"));
	if (mt) {
		fprintf(f, "  main thread:  ");
		if (frame)
			fprintf(f, "in %s at %s:%lld", cli_json_str(frame, "function") ?
				cli_json_str(frame, "function") : "?", cli_json_str(frame, "file") ?
				cli_json_str(frame, "file") : "?", cli_json_int(frame, "line"));
		else
			fprintf(f, "no Python frame");
		fputc('\n', f);
	}
	if (sp)
		fprintf(f, "  safe point:   reached through %s in %.1f ms, ran %.2f ms\n",
			via_words(cli_json_str(sp, "via")), dbl_of(sp, "wait_ms"),
			dbl_of(sp, "run_ms"));
	if (has(resp, "threads") || has(agent, "os_threads"))
		fprintf(f, "  threads:      %lld Python, %lld OS\n", cli_json_int(resp, "threads"),
			cli_json_int(agent, "os_threads"));
	if (agent) {
		fprintf(f, "  agent:        up %.1f s, %s\n", dbl_of(agent, "uptime_s"),
			cli_json_str(agent, "socket") ? cli_json_str(agent, "socket") : "?");
		fprintf(f, "  requests:     %lld (%lld by pending call, %lld by GIL thread), "
			"%lld timed out, %lld refused\n", cli_json_int(agent, "requests"),
			cli_json_int(agent, "via_pending_call"),
			cli_json_int(agent, "via_gil_thread"), cli_json_int(agent, "timeouts"),
			cli_json_int(agent, "refused"));
		if (has(agent, "engine"))
			fprintf(f, "  patch engine: %s\n", json_object_get_boolean(
					json_object_object_get(agent, "engine")) ? "yes" : "no");
		if (cli_json_str(agent, "last_error"))
			fprintf(f, "  last error:   %s\n", cli_json_str(agent, "last_error"));
	}
	json_object_object_foreach(resp, k, v) {
		static const char *const known[] = { "proto", "ok", "interpreter", "main_thread",
			"threads", "agent", "safepoint" };
		size_t i;
		int skip = 0;

		for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (strcmp(k, known[i]) == 0)
				skip = 1;
		if (!skip)
			print_value(f, k, v, 1);
	}
}

static int copy_version(char *buf, size_t len, const char *s)
{
	size_t n = 0;

	if (!s || !*s)
		return -1;
	while (s[n] && s[n] != ' ' && s[n] != '\n' && s[n] != '\t')
		n++;
	snprintf(buf, len, "%.*s", (int)n, s);
	return 0;
}

void cli_fmt_version(char *buf, size_t len, struct json_object *resp,
		     const struct pyhot_target *t)
{
	static const char *const groups[] = { "python", "interpreter" };
	struct json_object *g;
	size_t i;

	if (resp) {
		if (copy_version(buf, len, cli_json_str(resp, "python_version")) == 0 ||
		    copy_version(buf, len, cli_json_str(resp, "version")) == 0)
			return;
		for (i = 0; i < sizeof(groups) / sizeof(groups[0]); i++) {
			if (json_object_object_get_ex(resp, groups[i], &g) &&
			    copy_version(buf, len, cli_json_str(g, "version")) == 0)
				return;
		}
	}
	if (t && t->py_major && t->py_minor >= 0)
		snprintf(buf, len, "%d.%d", t->py_major, t->py_minor);
	else if (t && t->py_major)
		snprintf(buf, len, "%d.x", t->py_major);
	else
		snprintf(buf, len, "?");
}
