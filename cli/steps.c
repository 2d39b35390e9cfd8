/* steps.c: the one-process command in children of ours (see steps.h). */
#include "steps.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json.h>

/* "error"."message" of a document, or NULL. */
static const char *error_message(struct json_object *doc)
{
	struct json_object *e = NULL;

	if (!doc || !json_object_object_get_ex(doc, "error", &e))
		return NULL;
	return cli_json_str(e, "message");
}

/* The command on a context (r: what cli_ctx_init() returned, err its
 * error), as main() runs it: its report printed (with --json, one line),
 * its exit code returned. */
static int run_on(struct cli_ctx *c, int r, const struct cli_args *b, cli_cmd_fn fn,
		  struct pyhot_err *err)
{
	struct cli_out o;
	int code = 0;

	cli_out_init(&o, b);
	c->out = &o;
	if (r == 0)
		r = fn(c, err);
	if (r < 0)
		code = cli_out_error(&o, err);
	code = cli_out_finish(&o, code);
	cli_out_release(&o);
	c->out = NULL;
	fflush(stdout);
	fflush(stderr);
	return code;
}

/* In the child: the one-process command; with go >= 0, its dry run, then
 * the real one on the same context if the parent says 'a'. */
static int run_here(struct cli_args *b, cli_cmd_fn fn, int go)
{
	struct pyhot_err err;
	struct cli_ctx c;
	int code, r;
	char ch = 0;

	pyhot_err_init(&err);
	r = cli_ctx_init(&c, b, NULL, &err);   /* it only keeps the out */
	code = run_on(&c, r, b, fn, &err);
	if (go < 0 || code)
		return code;
	while (read(go, &ch, 1) < 0 && errno == EINTR)
		;
	if (ch != 'a')
		return code;
	b->dry_run = 0;
	pyhot_err_init(&err);
	return run_on(&c, 0, b, fn, &err);
}

int cli_step_start(struct cli_step *s, const struct cli_args *b, cli_cmd_fn fn,
		      int two_phase, struct pyhot_err *err)
{
	int out[2], errp[2], go[2] = { -1, -1 };
	struct cli_args mine = *b;

	s->fd[0] = s->fd[1] = s->go = -1;
	s->json = b->json;
	if (pipe2(out, O_CLOEXEC) < 0)
		goto out_errno;
	if (pipe2(errp, O_CLOEXEC) < 0)
		goto out_close_out;
	if (two_phase && pipe2(go, O_CLOEXEC) < 0)
		goto out_close_err;
	fflush(NULL);
	s->child = fork();
	if (s->child == 0) {
		dup2(out[1], 1);
		dup2(errp[1], 2);
		mine.pid = s->pid;
		mine.npids = 0;
		mine.tree = 0;
		_exit(run_here(&mine, fn, go[0]));
	}
	close(out[1]);
	close(errp[1]);
	if (go[0] >= 0)
		close(go[0]);
	if (s->child < 0) {
		s->child = 0;
		close(out[0]);
		close(errp[0]);
		if (go[1] >= 0)
			close(go[1]);
		goto out_errno;
	}
	s->fd[0] = out[0];
	s->fd[1] = errp[0];
	s->go = go[1];
	return 0;
out_close_err:
	close(errp[0]);
	close(errp[1]);
out_close_out:
	close(out[0]);
	close(out[1]);
out_errno:
	return pyhot_err_set(err, PYHOT_ERR_FAILED, errno, s->pid, "multi",
			     "pid %d: fork(): %s", (int)s->pid, strerror(errno));
}

/* Read what is there on one of a step's pipes; close it at its end. */
static void step_read(struct cli_step *s, int which)
{
	char buf[65536], *t;
	ssize_t n = read(s->fd[which], buf, sizeof(buf));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		close(s->fd[which]);
		s->fd[which] = -1;
		return;
	}
	t = realloc(s->text[which], s->len[which] + (size_t)n + 1);
	if (!t)
		return;   /* the output is cut; the exit code still tells */
	memcpy(t + s->len[which], buf, (size_t)n);
	s->len[which] += (size_t)n;
	t[s->len[which]] = '\0';
	s->text[which] = t;
}

/* Whether a step has written want documents (lines) on stdout. */
static int step_has_docs(const struct cli_step *s, int want)
{
	const char *p = s->text[0];
	int n = 0;

	while (p && (p = strchr(p, '\n'))) {
		n++;
		p++;
	}
	return n >= want;
}

/* The document that starts at text (one line), or NULL. */
static struct json_object *doc_parse(const char *text)
{
	const char *nl;
	char *line;
	struct json_object *doc;

	if (!text || !*text)
		return NULL;
	nl = strchr(text, '\n');
	line = strndup(text, nl ? (size_t)(nl - text) : strlen(text));
	doc = line ? json_tokener_parse(line) : NULL;
	free(line);
	return doc;
}

/*
 * Read the steps' output. want 0: until each has closed both pipes, then
 * reap them (code: the exit status); want 1: until each has written its
 * first document or ended (code: the document's "exit").
 */
void cli_steps_collect(struct cli_step *s, size_t n, int want)
{
	struct pollfd *pfd = calloc(2 * n + 1, sizeof(*pfd));
	size_t i, k, open_fds;
	int st, w;

	for (;;) {
		open_fds = 0;
		for (i = 0; pfd && i < n; i++)
			for (w = 0; w < 2; w++)
				if (s[i].fd[w] >= 0 && !(want && step_has_docs(&s[i], want))) {
					pfd[open_fds].fd = s[i].fd[w];
					pfd[open_fds].events = POLLIN;
					open_fds++;
				}
		if (!open_fds)
			break;
		if (poll(pfd, open_fds, -1) < 0 && errno != EINTR)
			break;
		for (k = 0; k < open_fds; k++) {
			if (!pfd[k].revents)
				continue;
			for (i = 0; i < n; i++)
				for (w = 0; w < 2; w++)
					if (s[i].fd[w] == pfd[k].fd)
						step_read(&s[i], w);
		}
	}
	free(pfd);
	for (i = 0; i < n; i++) {
		if (want && step_has_docs(&s[i], want)) {
			s[i].doc = s[i].json ? doc_parse(s[i].text[0]) : NULL;
			s[i].code = (int)cli_json_int(s[i].doc, "exit");
			continue;
		}
		for (w = 0; w < 2; w++)
			if (s[i].fd[w] >= 0) {
				close(s[i].fd[w]);
				s[i].fd[w] = -1;
			}
		if (s[i].go >= 0) {
			close(s[i].go);
			s[i].go = -1;
		}
		if (!s[i].child)
			continue;
		while (waitpid(s[i].child, &st, 0) < 0 && errno == EINTR)
			;
		s[i].code = WIFEXITED(st) ? WEXITSTATUS(st) : PYHOT_ERR_FAILED;
		s[i].child = 0;
		if (!s[i].json)
			continue;
		if (!s[i].doc) {
			s[i].doc = doc_parse(s[i].text[0]);
		} else if (!s[i].doc2 && strchr(s[i].text[0], '\n')) {
			s[i].doc2 = doc_parse(strchr(s[i].text[0], '\n') + 1);
		}
	}
}

/* Two-phase steps that wrote their dry run: go on ('a') or stop. */
void cli_steps_go(struct cli_step *s, size_t n, int apply)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i].go < 0)
			continue;
		if (apply && write(s[i].go, "a", 1) != 1)
			s[i].code = PYHOT_ERR_FAILED;
		close(s[i].go);
		s[i].go = -1;
	}
}

void cli_step_release(struct cli_step *s)
{
	free(s->text[0]);
	free(s->text[1]);
	if (s->doc)
		json_object_put(s->doc);
	if (s->doc2)
		json_object_put(s->doc2);
	memset(s, 0, sizeof(*s));
}

/*
 * Start fn in every step's process at once, with the arguments b; with
 * two_phase, each stops after its dry run (cli_steps_collect(.., 1), then
 * cli_steps_go()). A step that could not start has code 1 and its reason in
 * its stderr text.
 */
void cli_steps_start(struct cli_step *s, size_t n, const struct cli_args *b,
			cli_cmd_fn fn, int two_phase)
{
	struct pyhot_err err;
	size_t i;

	for (i = 0; i < n; i++) {
		pyhot_err_init(&err);
		if (cli_step_start(&s[i], b, fn, two_phase, &err) < 0) {
			s[i].code = PYHOT_ERR_FAILED;
			s[i].text[1] = strdup(err.msg);
		}
	}
}

/* The message of a step's error, from its document or its stderr. */
const char *cli_step_message(const struct cli_step *s)
{
	const char *m = error_message(s->doc);

	if (m)
		return m;
	if (s->text[1] && *s->text[1])
		return s->text[1];
	return "no answer (the step ended without a report)";
}

