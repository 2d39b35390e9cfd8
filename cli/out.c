/*
 * out.c: what the command prints. Human text goes to stdout (results) and
 * stderr (errors, -v detail); --json builds one object that is printed at
 * the end, whatever happened.
 */
#include "cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json.h>

#include "pyhot_log.h"

static int color_wanted(int fd)
{
	const char *nc = getenv("NO_COLOR");

	return isatty(fd) && !(nc && *nc);
}

const char *cli_color(int on, const char *which)
{
	if (!on)
		return "";
	if (strcmp(which, "red") == 0)
		return "\033[31m";
	if (strcmp(which, "green") == 0)
		return "\033[32m";
	if (strcmp(which, "yellow") == 0)
		return "\033[33m";
	if (strcmp(which, "bold") == 0)
		return "\033[1m";
	if (strcmp(which, "dim") == 0)
		return "\033[2m";
	return "\033[0m";
}

void cli_out_init(struct cli_out *o, const struct cli_args *a)
{
	memset(o, 0, sizeof(*o));
	o->json = a->json;
	o->verbose = a->verbose;
	o->quiet = a->quiet;
	o->cmd = a->cmd;
	o->pid = a->pid;
	o->out = stdout;
	o->err = stderr;
	o->color_out = !o->json && color_wanted(1);
	o->color_err = color_wanted(2);
	if (o->json) {
		o->doc = json_object_new_object();
		json_object_object_add(o->doc, "format", json_object_new_int(CLI_JSON_FORMAT));
		json_object_object_add(o->doc, "command",
				       json_object_new_string(cli_cmd_name(a->cmd)));
		if (a->pid)
			json_object_object_add(o->doc, "pid", json_object_new_int(a->pid));
	}
}

void cli_out_detail(struct cli_out *o, const char *text)
{
	size_t old = o->detail ? strlen(o->detail) : 0, n = strlen(text);
	char *d;

	if (o->json || !n)
		return;
	d = realloc(o->detail, old + n + 2);
	if (!d)
		return;
	memcpy(d + old, text, n);
	if (text[n - 1] != '\n')
		d[old + n++] = '\n';
	d[old + n] = '\0';
	o->detail = d;
}

void cli_out_release(struct cli_out *o)
{
	free(o->detail);
	o->detail = NULL;
	if (o->doc)
		json_object_put(o->doc);
	o->doc = NULL;
}

void cli_out_info(struct cli_out *o, const char *fmt, ...)
{
	va_list ap;

	if (o->json || o->quiet)
		return;
	va_start(ap, fmt);
	vfprintf(o->out, fmt, ap);
	va_end(ap);
	fputc('\n', o->out);
}

void cli_out_verbose(struct cli_out *o, const char *fmt, ...)
{
	va_list ap;

	if (!o->verbose)
		return;
	va_start(ap, fmt);
	fputs("pyhot: ", o->err);
	vfprintf(o->err, fmt, ap);
	va_end(ap);
	fputc('\n', o->err);
}

void cli_out_set(struct cli_out *o, const char *key, struct json_object *val)
{
	if (!o->doc) {
		json_object_put(val);
		return;
	}
	json_object_object_add(o->doc, key, val);
}

int cli_out_error(struct cli_out *o, const struct pyhot_err *err)
{
	int code = err->kind ? (int)err->kind : PYHOT_ERR_FAILED;

	fprintf(o->err, "%spyhot: %s%s\n", cli_color(o->color_err, "red"), err->msg,
		cli_color(o->color_err, "reset"));
	if (o->detail)
		fputs(o->detail, o->err);
	if (err->hint[0])
		fprintf(o->err, "hint: %s\n", err->hint);
	if (o->doc) {
		struct json_object *e = json_object_new_object();

		json_object_object_add(e, "kind", json_object_new_string(
			pyhot_errkind_name(err->kind ? err->kind : PYHOT_ERR_FAILED)));
		json_object_object_add(e, "step", json_object_new_string(err->step));
		json_object_object_add(e, "message", json_object_new_string(err->msg));
		json_object_object_add(e, "hint", json_object_new_string(err->hint));
		if (err->sys_errno)
			json_object_object_add(e, "errno", json_object_new_int(err->sys_errno));
		/* Fields a command put under "error" before failing stay. */
		{
			struct json_object *prev;

			if (json_object_object_get_ex(o->doc, "error", &prev) &&
			    json_object_is_type(prev, json_type_object)) {
				json_object_object_foreach(prev, k, v) {
					if (!json_object_object_get_ex(e, k, NULL))
						json_object_object_add(e, k, json_object_get(v));
				}
			}
		}
		json_object_object_add(o->doc, "error", e);
	}
	return code;
}

int cli_out_finish(struct cli_out *o, int code)
{
	if (!o->doc)
		return code;
	json_object_object_add(o->doc, "ok", json_object_new_boolean(code == 0));
	json_object_object_add(o->doc, "exit", json_object_new_int(code));
	if (o->keep) {
		*o->keep = json_object_get(o->doc);
		return code;
	}
	fputs(json_object_to_json_string_ext(o->doc, JSON_C_TO_STRING_PLAIN |
					     JSON_C_TO_STRING_NOSLASHESCAPE), o->out);
	fputc('\n', o->out);
	fflush(o->out);
	return code;
}

static struct timespec trace_t0;

static void trace_cb(void *ctx, const char *component, const char *fmt, va_list ap)
{
	struct timespec ts;
	double ms;

	(void)ctx;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ms = (double)(ts.tv_sec - trace_t0.tv_sec) * 1e3 +
	     (double)(ts.tv_nsec - trace_t0.tv_nsec) / 1e6;
	/* One line at a time: several steps may trace at once (steps.h). */
	flockfile(stderr);
	fprintf(stderr, "pyhot trace %9.3f ms [%s] ", ms, component);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	funlockfile(stderr);
}

void cli_trace_setup(void)
{
	const char *v = getenv("PYHOT_TRACE");

	if (!v || !*v || strcmp(v, "0") == 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &trace_t0);
	pyhot_log_set(trace_cb, NULL);
}
