/* cmd_exec.c: pyhot exec, run Python code in the target at a safe point. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json.h>

#include "cmd_util.h"
#include "pyhot_proto.h"

/* The most source exec sends: a request frame holds the code, the file
 * name (at most PATH_MAX) and a few keys, in PYHOT_FRAME_MAX. */
#define EXEC_CODE_MAX (PYHOT_FRAME_MAX - (64u << 10))

#define MIB(n) ((double)(n) / (1024.0 * 1024.0))

/* Read fd to its end into a NUL-terminated buffer (the caller frees it).
 * NULL with errno set; EFBIG when there is more than EXEC_CODE_MAX. */
static char *read_all_fd(int fd, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap), *nb;
	ssize_t got;

	if (!buf)
		return NULL;
	for (;;) {
		if (n + 1 == cap) {
			if (n > EXEC_CODE_MAX) {
				free(buf);
				errno = EFBIG;
				return NULL;
			}
			nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				errno = ENOMEM;
				return NULL;
			}
			buf = nb;
			cap *= 2;
		}
		got = read(fd, buf + n, cap - n - 1);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			int e = errno;

			free(buf);
			errno = e;
			return NULL;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	if (n > EXEC_CODE_MAX) {
		free(buf);
		errno = EFBIG;
		return NULL;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* What a file that is not a regular one is, for the message. */
static const char *file_kind(mode_t m)
{
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISCHR(m))
		return "a character device";
	if (S_ISBLK(m))
		return "a block device";
	if (S_ISSOCK(m))
		return "a socket";
	return "not a regular file";
}

/* Open FILE without blocking (a FIFO would wait for a writer for ever,
 * whatever --timeout says) and accept only a regular file that fits in one
 * request: judged before anything is done to the target. */
static int open_source(struct cli_ctx *c, int *out, struct pyhot_err *err)
{
	const struct cli_args *a = c->args;
	struct stat st;
	int fd, e;

	*out = -1;
	fd = open(a->file, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		e = errno;
		if (fd >= 0)
			close(fd);
		pyhot_err_set(err, PYHOT_ERR_FAILED, e, a->pid, "exec", "open('%s'): %s",
			      a->file, strerror(e));
		pyhot_err_hint(err, "give a readable Python file, or -c CODE; pid %d "
			       "is unchanged", (int)a->pid);
		return -PYHOT_ERR_FAILED;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		pyhot_err_set(err, PYHOT_ERR_FAILED, 0, a->pid, "exec", "'%s' is %s, not a "
			      "regular file", a->file, file_kind(st.st_mode));
		pyhot_err_hint(err, "give a Python source file, -c CODE, or - for standard "
			       "input; pid %d is unchanged", (int)a->pid);
		return -PYHOT_ERR_FAILED;
	}
	if ((unsigned long long)st.st_size > EXEC_CODE_MAX) {
		close(fd);
		pyhot_err_set(err, PYHOT_ERR_FAILED, EFBIG, a->pid, "exec", "'%s' is %.1f MiB; "
			      "exec sends at most %.1f MiB of source", a->file,
			      MIB(st.st_size), MIB(EXEC_CODE_MAX));
		pyhot_err_hint(err, "pid %d is unchanged (nothing was attached or sent)",
			       (int)a->pid);
		return -PYHOT_ERR_FAILED;
	}
	*out = fd;
	return 0;
}

/* The code to run and the file name its tracebacks show. */
static int load_code(struct cli_ctx *c, char **code, char *fname, size_t fname_len,
		     struct pyhot_err *err)
{
	const struct cli_args *a = c->args;
	size_t len = 0;
	int fd, e, r;

	if (a->code) {
		*code = strdup(a->code);
		snprintf(fname, fname_len, "<pyhot-exec>");
		if (!*code)
			return pyhot_err_set(err, PYHOT_ERR_FAILED, ENOMEM, a->pid, "exec",
					     "out of memory");
		return 0;
	}
	if (strcmp(a->file, "-") == 0) {
		fd = STDIN_FILENO;
		snprintf(fname, fname_len, "<stdin>");
	} else {
		r = open_source(c, &fd, err);
		if (r < 0)
			return r;
		if (!realpath(a->file, fname) || strlen(fname) >= fname_len)
			snprintf(fname, fname_len, "%s", a->file);
	}
	*code = read_all_fd(fd, &len);
	e = errno;
	if (fd != STDIN_FILENO)
		close(fd);
	if (!*code && e == EFBIG) {
		pyhot_err_set(err, PYHOT_ERR_FAILED, e, a->pid, "exec", "'%s' is more than "
			      "%.1f MiB, the most source exec sends", a->file,
			      MIB(EXEC_CODE_MAX));
		pyhot_err_hint(err, "pid %d is unchanged (nothing was attached or sent)",
			       (int)a->pid);
		return -PYHOT_ERR_FAILED;
	}
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

/* A string member of o and its length (what the code printed may hold
 * NUL bytes), or NULL. */
static const char *str_n(struct json_object *o, const char *key, size_t *len)
{
	struct json_object *v;

	*len = 0;
	if (!o || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	*len = (size_t)json_object_get_string_len(v);
	return json_object_get_string(v);
}

/* What the code printed, and the value: on our stdout/stderr, or into the
 * JSON document. */
static void show_output(struct cli_ctx *c, struct json_object *resp)
{
	size_t nout, nerr, nval;
	const char *out = str_n(resp, "stdout", &nout), *errs = str_n(resp, "stderr", &nerr);
	const char *value = str_n(resp, "value", &nval), *exc = cli_json_str(resp, "exception");

	if (c->out->json) {
		cli_out_set(c->out, "stdout", json_object_new_string_len(out ? out : "",
									 (int)nout));
		cli_out_set(c->out, "stderr", json_object_new_string_len(errs ? errs : "",
									 (int)nerr));
		cli_out_set(c->out, "value", value ? json_object_new_string_len(value, (int)nval)
			    : NULL);
		if (exc)
			cli_out_set(c->out, "exception", json_object_new_string(exc));
		return;
	}
	if (nout) {
		fwrite(out, 1, nout, c->out->out);
		if (out[nout - 1] != '\n' && !value)
			fputc('\n', c->out->out);
	}
	if (value) {
		if (nout && out[nout - 1] != '\n')
			fputc('\n', c->out->out);
		fwrite(value, 1, nval, c->out->out);
		fputc('\n', c->out->out);
	}
	fflush(c->out->out);
	if (nerr) {
		fwrite(errs, 1, nerr, c->out->err);
		if (errs[nerr - 1] != '\n')
			fputc('\n', c->out->err);
	}
}

/* The agent cut what the code printed to fit its answer: the code ran, and
 * the user must know that the output is not all of it. */
static int report_cut(struct cli_ctx *c, struct json_object *resp, struct pyhot_err *err)
{
	struct json_object *cut = NULL;
	pid_t pid = c->args->pid;
	long long total, kept;

	json_object_object_get_ex(resp, "output_cut", &cut);
	total = cli_json_int(cut, "total_bytes");
	kept = cli_json_int(cut, "kept_bytes");

	pyhot_err_set(err, PYHOT_ERR_FAILED, EFBIG, pid, "exec", "the code ran in pid %d, "
		      "but its output (%.1f MiB) is more than one answer carries (%.0f MiB): "
		      "only its first %.1f MiB were shown", (int)pid, MIB(total),
		      MIB(PYHOT_FRAME_MAX), MIB(kept));
	pyhot_err_hint(err, "what the code did stays done in pid %d; write a large "
		       "result to a file from the code instead of printing it", (int)pid);
	return -PYHOT_ERR_FAILED;
}

/* Explain an exec that timed out: what was slow, and whether it ran. */
static void explain_timeout(struct cli_ctx *c, struct json_object *resp,
			    struct pyhot_err *err)
{
	const struct cli_args *a = c->args;
	unsigned int waited = 2 * a->timeout_ms + 2000;

	if (cli_timeout_explain(c, err, resp != NULL, waited) != CLI_SLOW_SAFE_POINT)
		return;
	pyhot_err_hint(err, "the code did not run: no safe point in pid %d within "
		       "%.1f s (see pyhot stack %d); pid %d is unchanged", (int)a->pid,
		       a->timeout_ms / 1000.0, (int)a->pid, (int)a->pid);
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
	if (r == 0 && json_object_object_get_ex(resp, "output_cut", NULL))
		r = report_cut(c, resp, err);
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
		explain_timeout(c, resp, err);
	} else if (r < 0 && err->kind == PYHOT_ERR_UNCERTAIN) {
		err->hint[0] = '\0';
		pyhot_err_hint(err, "the code started but did not end within --timeout "
			       "(%.3f s%s); it may still be running: see pyhot stack %d",
			       a->timeout_ms / 1000.0,
			       cli_timeout_short(a->timeout_ms) ? ", too short: use --timeout 1 "
							      "or more" : "",
			       (int)a->pid);
	}
	if (resp)
		json_object_put(resp);
out_free:
	free(code);
	return r;
}
