/* cmd_exec.c: pyhot exec, run Python code in the target at a safe point. */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json.h>

#include "cmd_util.h"
#include "pyhot_proto.h"

/* Read all of f into a NUL-terminated buffer (the caller frees it). */
static char *read_stream(FILE *f, size_t *len)
{
	size_t cap = 4096, n = 0, got;
	char *buf = malloc(cap), *nb;

	if (!buf)
		return NULL;
	while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
		n += got;
		if (n + 1 == cap) {
			if (cap >= PYHOT_FRAME_MAX)
				break;
			nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				return NULL;
			}
			buf = nb;
			cap *= 2;
		}
	}
	if (ferror(f)) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* The code to run and the file name its tracebacks show. */
static int load_code(struct cli_ctx *c, char **code, char *fname, size_t fname_len,
		     struct pyhot_err *err)
{
	const struct cli_args *a = c->args;
	FILE *f;
	size_t len = 0;
	int e;

	if (a->code) {
		*code = strdup(a->code);
		snprintf(fname, fname_len, "<pyhot-exec>");
		if (!*code)
			return pyhot_err_set(err, PYHOT_ERR_FAILED, ENOMEM, a->pid, "exec",
					     "out of memory");
		return 0;
	}
	if (strcmp(a->file, "-") == 0) {
		f = stdin;
		snprintf(fname, fname_len, "<stdin>");
	} else {
		f = fopen(a->file, "re");
		if (!f) {
			e = errno;
			pyhot_err_set(err, PYHOT_ERR_FAILED, e, a->pid, "exec",
				      "open('%s'): %s", a->file, strerror(e));
			pyhot_err_hint(err, "give a readable Python file, or -c CODE; pid %d "
				       "is unchanged", (int)a->pid);
			return -PYHOT_ERR_FAILED;
		}
		if (!realpath(a->file, fname) || strlen(fname) >= fname_len)
			snprintf(fname, fname_len, "%s", a->file);
	}
	*code = read_stream(f, &len);
	e = errno;
	if (f != stdin)
		fclose(f);
	if (!*code)
		return pyhot_err_set(err, PYHOT_ERR_FAILED, e, a->pid, "exec",
				     "read('%s'): %s", a->file, strerror(e));
	if (strlen(*code) != len) {
		free(*code);
		*code = NULL;
		return pyhot_err_set(err, PYHOT_ERR_FAILED, 0, a->pid, "exec",
				     "'%s' contains a NUL byte: not Python source", a->file);
	}
	return 0;
}

/* What the code printed, and the value: on our stdout/stderr, or into the
 * JSON document. */
static void show_output(struct cli_ctx *c, struct json_object *resp)
{
	const char *out = cli_json_str(resp, "stdout"), *errs = cli_json_str(resp, "stderr");
	const char *value = cli_json_str(resp, "value"), *exc = cli_json_str(resp, "exception");

	if (c->out->json) {
		cli_out_set(c->out, "stdout", json_object_new_string(out ? out : ""));
		cli_out_set(c->out, "stderr", json_object_new_string(errs ? errs : ""));
		cli_out_set(c->out, "value", value ? json_object_new_string(value) : NULL);
		if (exc)
			cli_out_set(c->out, "exception", json_object_new_string(exc));
		return;
	}
	if (out && *out) {
		fputs(out, stdout);
		if (out[strlen(out) - 1] != '\n' && !value)
			fputc('\n', stdout);
	}
	if (value) {
		if (out && *out && out[strlen(out) - 1] != '\n')
			fputc('\n', stdout);
		printf("%s\n", value);
	}
	fflush(stdout);
	if (errs && *errs) {
		fputs(errs, stderr);
		if (errs[strlen(errs) - 1] != '\n')
			fputc('\n', stderr);
	}
}

int cli_cmd_exec(struct cli_ctx *c, struct pyhot_err *err)
{
	const struct cli_args *a = c->args;
	struct json_object *resp = NULL;
	const char *kv[4];
	char fname[PATH_MAX], *code = NULL;
	int r;

	r = load_code(c, &code, fname, sizeof(fname), err);
	if (r < 0)
		return r;
	/* Our stdout is the code's. */
	r = cli_attach_quiet(c, err);
	if (r < 0)
		goto out_free;
	kv[0] = "code";
	kv[1] = code;
	kv[2] = "filename";
	kv[3] = fname;
	r = cli_call(c, "exec", kv, 4, &resp, err);
	if (resp && (r == 0 || cli_json_str(resp, "exception")))
		show_output(c, resp);
	if (r < 0 && resp && cli_json_str(resp, "exception")) {
		const char *tb = cli_json_str(resp, "traceback");

		if (tb) {
			cli_out_detail(c->out, tb);
			if (c->out->json) {
				struct json_object *jerr = json_object_new_object();

				json_object_object_add(jerr, "traceback", json_object_new_string(tb));
				cli_out_set(c->out, "error", jerr);
			}
		}
		pyhot_err_hint(err, "the code raised; pid %d is unchanged apart from what "
			       "the code did before it raised", (int)a->pid);
	} else if (r < 0 && err->kind == PYHOT_ERR_TIMEOUT) {
		pyhot_err_hint(err, "the code did not run: no safe point in pid %d within "
			       "%.1f s (see pyhot stack %d); pid %d is unchanged", (int)a->pid,
			       a->timeout_ms / 1000.0, (int)a->pid, (int)a->pid);
	} else if (r < 0 && err->kind == PYHOT_ERR_UNCERTAIN) {
		err->hint[0] = '\0';
		pyhot_err_hint(err, "the code started but did not end within --timeout "
			       "(%.1f s); it may still be running: see pyhot stack %d",
			       a->timeout_ms / 1000.0, (int)a->pid);
	}
	if (resp)
		json_object_put(resp);
out_free:
	free(code);
	return r;
}
