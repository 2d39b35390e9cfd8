/* steps.c: the one-process command in threads of ours (see steps.h). */
#include "steps.h"

#include <errno.h>
#include <poll.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <json.h>

#include "pyhot_log.h"

/* "error"."message" of a document, or NULL. */
static const char *error_message(struct json_object *doc)
{
	struct json_object *e = NULL;

	if (!doc || !json_object_object_get_ex(doc, "error", &e))
		return NULL;
	return cli_json_str(e, "message");
}

/* Keep what the step wrote to its stderr since from: its warnings. */
static void warnings_take(struct cli_step *s, long from)
{
	long to;
	size_t had = s->warnings ? strlen(s->warnings) : 0;
	char *w;

	fflush(s->f[1]);
	to = ftell(s->f[1]);
	if (from < 0 || to <= from || !s->text[1])
		return;
	w = realloc(s->warnings, had + (size_t)(to - from) + 1);
	if (!w)
		return;
	memcpy(w + had, s->text[1] + from, (size_t)(to - from));
	w[had + (size_t)(to - from)] = '\0';
	s->warnings = w;
}

/* A run of the command on the step's context, in halves: its report goes
 * into the step's streams (with --json, one line) as main() would print
 * it. */
static void run_begin(struct cli_step *s)
{
	s->err_from = ftell(s->f[1]);
	cli_out_init(&s->out, &s->args);
	s->out.out = s->f[0];
	s->out.err = s->f[1];
	/* With --json, its document as an object: no text to parse back (a
	 * --json run always makes one: the first run's is doc). */
	if (s->json)
		s->out.keep = s->doc ? &s->doc2 : &s->doc;
	s->ctx.out = &s->out;
}

/* r: what the command returned (err its error). Its exit code. */
static int run_end(struct cli_step *s, int r, struct pyhot_err *err)
{
	int code = 0;

	/* Before the error's report, which the caller gives its own way. */
	warnings_take(s, s->err_from);
	if (r < 0)
		code = cli_out_error(&s->out, err);
	code = cli_out_finish(&s->out, code);
	cli_out_release(&s->out);
	s->ctx.out = NULL;
	fflush(s->f[0]);
	fflush(s->f[1]);
	return code;
}

/* The command on the context (r: what making it returned, err its error). */
static int run_on(struct cli_step *s, int r, struct pyhot_err *err)
{
	run_begin(s);
	if (r == 0)
		r = s->fn(&s->ctx, err);
	return run_end(s, r, err);
}

/* Its streams made anew, empty (a memory stream cannot be truncated: a
 * seek back leaves the old bytes after the new ones until it is closed).
 * 0, or -1 out of memory (then it has none: run_on() must not run). */
static int streams_renew(struct cli_step *s)
{
	int w;

	for (w = 0; w < 2; w++) {
		if (s->f[w])
			fclose(s->f[w]);
		free(s->text[w]);
		s->text[w] = NULL;
		s->len[w] = 0;
		/* The stream keeps these two addresses: the step's own. */
		s->f[w] = open_memstream(&s->text[w], &s->len[w]);
	}
	free(s->warnings);
	s->warnings = NULL;
	if (s->doc)
		json_object_put(s->doc);
	s->doc = NULL;
	return s->f[0] && s->f[1] ? 0 : -1;
}

/* A thread's step makes its context itself (the inspection reads and
 * parses the target's maps: in parallel, not in the caller's thread). What
 * cli_ctx_init_seen() returns, s->err saying why. */
static int step_context(struct cli_step *s)
{
	int r;

	pyhot_err_init(&s->err);
	r = cli_ctx_init_seen(&s->ctx, &s->args, NULL, s->seen, &s->err);
	s->ctx.attach_gate = s->gate;
	return r;
}

/* In the caller's thread: whether s goes inline, its agent taken to be
 * there without a ping. That needs no more of its target than
 * /proc/PID/status, unless none answers. 1 with its context made, or 0
 * (its thread makes one). */
static int step_assume(struct cli_step *s)
{
	pyhot_err_init(&s->err);
	if ((s->seen ? cli_ctx_init_seen(&s->ctx, &s->args, NULL, s->seen, &s->err)
		     : cli_ctx_init_light(&s->ctx, &s->args, NULL, &s->err)) < 0 ||
	    !cli_ctx_agent_expected(&s->ctx)) {
		memset(&s->ctx, 0, sizeof(s->ctx));
		return 0;
	}
	s->ctx.attach_gate = s->gate;
	s->ctx.agent_seen = 1;
	s->ctx_made = 1;
	return 1;
}

/* Nobody listened where its agent's socket was (a stale socket): what it
 * wrote goes, and it starts over as a step that does not assume, attaching
 * (which inspects the rest of a light context). 0, or -1 out of memory
 * (then it has no streams: it must not run again). */
static int start_over(struct cli_step *s)
{
	if (streams_renew(s) < 0)
		return -1;
	PYHOT_TRACE("multi", "pid %d: no agent at %s after all", (int)s->pid, s->ctx.sock);
	pyhot_err_init(&s->err);   /* the first error wins: the old one goes */
	s->ctx.agent_seen = 0;
	s->ctx.no_agent = 0;
	return 0;
}

/* A step's thread: it makes the context (unless the caller did: an inline
 * step that starts over) and runs the command (a dry run when two-phase);
 * a two-phase step whose dry run succeeded then waits for cli_steps_go()
 * and runs the command for real on that context. One thread for both
 * phases: a second thread per process cost as much as the request it
 * would make. */
static void *step_main(void *arg)
{
	struct cli_step *s = arg;
	int go_on;

	s->code = run_on(s, s->ctx_made ? 0 : step_context(s), &s->err);
	cli_ctx_gate_pass(&s->ctx, 0);   /* failed before it attached, or never does */
	/* Read before the post: the caller clears awaits_go once it has
	 * posted go, possibly before we look again. */
	go_on = s->two_phase && s->code == 0;
	s->awaits_go = go_on;
	sem_post(&s->planned);
	if (!go_on)
		return NULL;
	while (sem_wait(&s->go) < 0 && errno == EINTR)
		;
	if (!s->apply)
		return NULL;
	s->args.dry_run = 0;
	pyhot_err_init(&s->err);
	s->code = run_on(s, 0, &s->err);
	return NULL;
}

/* The streams' text (they stay usable when close is 0). */
static void step_take_text(struct cli_step *s, int close)
{
	int w;

	for (w = 0; w < 2; w++) {
		if (!s->f[w])
			continue;
		if (close) {
			fclose(s->f[w]);
			s->f[w] = NULL;
		} else {
			fflush(s->f[w]);
		}
	}
}

/* A step's stack: ours, so that the second phase runs on pages the first
 * already touched, and so that glibc does not give them back at each
 * thread's exit (madvise, then a TLB flush on every CPU: a third of the
 * command's time over nine processes on a virtual machine). As large as a
 * main thread's usual stack (only the pages used cost anything), with a
 * guard page below it as glibc's own stacks have. */
#define STEP_STACK_SIZE (8UL * 1024 * 1024)
#define STEP_GUARD_SIZE 4096UL

#define STEP_SLOT_SIZE (STEP_GUARD_SIZE + STEP_STACK_SIZE)

/* The top of a step's stack that a command's step uses (a refresh over a
 * process with an agent: 16 pages; an attach goes deeper). */
#define STEP_STACK_USED (96UL * 1024)

/*
 * n stacks, each above its guard page, in one mapping: one munmap at the
 * end instead of one per step (each a TLB flush). The part a step uses is
 * made present at once (MADV_POPULATE_WRITE, Linux 5.14): a page fault
 * costs 13 us on a paravirtualised machine, and nine steps took 144 of
 * them, more than their requests. Without it, the pages fault as usual.
 * NULL, errno set.
 */
static void *stacks_map(size_t n)
{
	size_t i;
	int e;
	char *m = mmap(NULL, n * STEP_SLOT_SIZE, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);

	if (m == MAP_FAILED)
		return NULL;
	for (i = 0; i < n; i++) {
		if (mprotect(m + i * STEP_SLOT_SIZE + STEP_GUARD_SIZE, STEP_STACK_SIZE,
			     PROT_READ | PROT_WRITE) < 0) {
			e = errno;
			munmap(m, n * STEP_SLOT_SIZE);
			errno = e;
			return NULL;
		}
		(void)madvise(m + (i + 1) * STEP_SLOT_SIZE - STEP_STACK_USED, STEP_STACK_USED,
			      MADV_POPULATE_WRITE);
	}
	return m;
}

static int thread_start(struct cli_step *s, struct pyhot_err *err)
{
	pthread_attr_t attr;
	int e;

	if (!s->stack) {
		s->stack = stacks_map(1);
		if (!s->stack)
			return pyhot_err_set(err, PYHOT_ERR_FAILED, errno, s->pid, "multi",
					     "pid %d: a thread stack: %s", (int)s->pid,
					     strerror(errno));
		s->stack_map = STEP_SLOT_SIZE;
	}
	if (s->signals)
		cli_signals_hold(s->signals);
	if (sem_init(&s->planned, 0, 0) < 0 || sem_init(&s->go, 0, 0) < 0)
		return pyhot_err_set(err, PYHOT_ERR_FAILED, errno, s->pid, "multi",
				     "pid %d: sem_init(): %s", (int)s->pid, strerror(errno));
	e = pthread_attr_init(&attr);
	if (!e)
		e = pthread_attr_setstack(&attr, (char *)s->stack + STEP_GUARD_SIZE,
					  STEP_STACK_SIZE);
	if (!e)
		e = pthread_create(&s->thread, &attr, step_main, s);
	pthread_attr_destroy(&attr);
	if (!e) {
		s->running = 1;
		return 0;
	}
	sem_destroy(&s->planned);
	sem_destroy(&s->go);
	return pyhot_err_set(err, PYHOT_ERR_FAILED, e, s->pid, "multi",
			     "pid %d: pthread_create(): %s", (int)s->pid, strerror(e));
}

/* Wait until the step's first phase is over (its dry run, for two-phase). */
static void step_wait_planned(struct cli_step *s)
{
	if (!s->running || s->planned_seen)
		return;
	while (sem_wait(&s->planned) < 0 && errno == EINTR)
		;
	s->planned_seen = 1;
}

/* Let a step that waits for cli_steps_go() go on (apply) or end. */
static void step_release_go(struct cli_step *s, int apply)
{
	step_wait_planned(s);
	if (!s->running || !s->awaits_go)
		return;
	s->apply = apply;
	s->awaits_go = 0;
	sem_post(&s->go);
}

/* End the step's thread: told not to apply if it still waits. */
static void step_join(struct cli_step *s)
{
	if (!s->running)
		return;
	step_release_go(s, 0);
	pthread_join(s->thread, NULL);
	s->running = 0;
	sem_destroy(&s->planned);
	sem_destroy(&s->go);
}

/* The step's arguments and streams. 0, or -PYHOT_ERR_FAILED with err set
 * (no streams). */
static int step_init(struct cli_step *s, const struct cli_args *b, cli_cmd_fn fn,
		     int two_phase, struct pyhot_err *err)
{
	int w;

	s->json = b->json;
	s->fn = fn;
	s->two_phase = two_phase;
	s->args = *b;
	s->args.pid = s->pid;
	s->args.npids = 0;
	s->args.tree = 0;
	s->call.conn.fd = -1;
	for (w = 0; w < 2; w++) {
		s->f[w] = open_memstream(&s->text[w], &s->len[w]);
		if (!s->f[w]) {
			pyhot_err_set(err, PYHOT_ERR_FAILED, errno, s->pid, "multi",
				      "pid %d: open_memstream(): %s", (int)s->pid,
				      strerror(errno));
			return -PYHOT_ERR_FAILED;
		}
	}
	return 0;
}

/* A step that could not start: no streams; the caller puts the reason as
 * its stderr text. */
static void step_init_undo(struct cli_step *s)
{
	int w;

	step_take_text(s, 1);
	for (w = 0; w < 2; w++) {
		free(s->text[w]);
		s->text[w] = NULL;
		s->len[w] = 0;
	}
}

int cli_step_start(struct cli_step *s, const struct cli_args *b, cli_cmd_fn fn,
		   int two_phase, struct pyhot_err *err)
{
	if (step_init(s, b, fn, two_phase, err) == 0 && thread_start(s, err) == 0)
		return 0;
	step_init_undo(s);
	return -PYHOT_ERR_FAILED;
}

/* ----- Inline steps: their requests from the caller's thread ----- */

/* Send an inline step's request (its dry run, or with args.dry_run 0 the
 * command itself). One that cannot be sent has its report at once. */
static void inline_send(struct cli_step *s)
{
	const char *kv[CLI_SPLIT_KV_MAX];
	size_t n;
	int r;

	/* A dry run to be followed: the agent keeps the connection for the
	 * command itself (no second connect, judgement and accept), when the
	 * request has room for the key beside timeout_ms. */
	n = s->split->kv(&s->args, kv);
	if (s->two_phase && s->args.dry_run && n / 2 + 2 <= PYHOT_CLIENT_MAX_ARGS) {
		kv[n++] = "keep";
		kv[n++] = "1";
	}
	run_begin(s);
	pyhot_err_init(&s->err);
	r = cli_agent_call_start(&s->ctx, s->split->verb, kv, n, s->args.timeout_ms,
				 &s->call, &s->err);
	if (r < 0) {
		s->code = run_end(s, r, &s->err);
		return;
	}
	s->calling = 1;
}

/* Its answer came, or the request failed: the command's report of it. A
 * dry run that found nobody at the socket starts over in a thread. */
static void inline_end(struct cli_step *s)
{
	struct json_object *resp;
	struct pyhot_err err;
	int r;

	if (s->two_phase && s->args.dry_run)
		cli_call_keep(&s->ctx, &s->call);
	r = cli_agent_call_end(&s->ctx, &s->call, &resp, &s->err);
	s->calling = 0;
	r = s->split->report(&s->ctx, r, resp, &s->err);
	s->code = run_end(s, r, &s->err);
	/* A step's first phase is always a dry run (cli_steps_go() ends it). */
	if (!s->code || !s->ctx.no_agent || !s->args.dry_run)
		return;
	s->inline_call = 0;
	if (start_over(s) < 0)
		return;
	pyhot_err_init(&err);
	if (thread_start(s, &err) == 0)
		return;
	run_begin(s);
	s->code = run_end(s, -PYHOT_ERR_FAILED, &err);
}

/* Every inline step's request under way, until each is answered, failed or
 * past its deadline: one poll() over them all. */
static void inline_wait(struct cli_step *s, size_t n)
{
	struct pollfd pf[CLI_MAX_PIDS];
	size_t at[CLI_MAX_PIDS], i, k, m;
	int tmo, w, e;

	for (;;) {
		m = 0;
		tmo = -1;
		for (i = 0; i < n && m < CLI_MAX_PIDS; i++) {
			if (!s[i].calling)
				continue;
			if (s[i].call.r != 0) {
				inline_end(&s[i]);
				continue;
			}
			pf[m].fd = s[i].call.conn.fd;
			pf[m].events = pyhot_client_conn_events(&s[i].call.conn);
			pf[m].revents = 0;
			at[m++] = i;
			w = pyhot_client_conn_remaining(&s[i].call.conn);
			if (tmo < 0 || w < tmo)
				tmo = w;
		}
		if (!m)
			return;
		w = poll(pf, m, tmo);
		e = errno;
		for (k = 0; k < m; k++) {
			struct cli_call *c = &s[at[k]].call;

			if (w < 0 && e != EINTR)
				c->r = pyhot_client_conn_poll_failed(&c->conn, e, &c->e);
			else if (w <= 0 || pf[k].revents)
				cli_call_continue(c);
		}
	}
}

void cli_steps_collect(struct cli_step *s, size_t n, int want)
{
	size_t i;

	inline_wait(s, n);
	for (i = 0; i < n; i++) {
		if (want)
			step_wait_planned(&s[i]);
		else
			step_join(&s[i]);
		step_take_text(&s[i], !want);
	}
}

/* Two-phase steps whose dry run succeeded: the command itself, on the
 * context the dry run made, or nothing. The inline steps' requests go
 * first: they take no thread's time to start. */
void cli_steps_go(struct cli_step *s, size_t n, int apply)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (!s[i].inline_call)
			continue;
		if (apply && s[i].two_phase && s[i].code == 0) {
			s[i].args.dry_run = 0;
			inline_send(&s[i]);
		} else {
			cli_ctx_release(&s[i].ctx);   /* its agent's slot back at once */
		}
	}
	for (i = 0; i < n; i++)
		if (!s[i].inline_call)
			step_release_go(&s[i], apply);
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

void cli_step_release(struct cli_step *s)
{
	step_join(s);
	cli_ctx_release(&s->ctx);
	step_take_text(s, 1);
	free(s->text[0]);
	free(s->text[1]);
	free(s->warnings);
	if (s->stack_map)
		munmap(s->stack, s->stack_map);
	if (s->doc)
		json_object_put(s->doc);
	if (s->doc2)
		json_object_put(s->doc2);
	memset(s, 0, sizeof(*s));
}

void cli_steps_release(struct cli_step *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		step_join(&s[i]);
	for (i = 0; i < n; i++)
		cli_step_release(&s[i]);
}

/*
 * Start fn in every step's process at once, with the arguments b; with
 * two_phase, each stops after its dry run (cli_steps_collect(.., 1), then
 * cli_steps_go()). A step that could not start has code 1 and its reason in
 * its stderr text. With split, a step that assumes its agent and finds its
 * socket is inline (steps.h): its context made here and its request sent
 * at once, so that its process works while the next context is made. It
 * passes the gate without waiting: the gate keeps the first plans of new
 * agents (tens of milliseconds of CPU) from slowing an attach, and an
 * inline step's agent is an old one (its plan about a millisecond).
 */
void cli_steps_start(struct cli_step *s, size_t n, const struct cli_args *b,
		     cli_cmd_fn fn, const struct cli_cmd_split *split, int two_phase,
		     struct cli_gate *gate)
{
	struct pyhot_err err;
	char *block;
	size_t i, nthreads = 0, k = 0, first = n;

	for (i = 0; i < n; i++) {
		s[i].gate = gate;
		s[i].split = split;
		pyhot_err_init(&err);
		if (step_init(&s[i], b, fn, two_phase, &err) < 0) {
			step_init_undo(&s[i]);
			s[i].code = PYHOT_ERR_FAILED;
			s[i].text[1] = strdup(err.msg);
			s[i].ctx.attach_gate = gate;   /* no thread to pass it */
			cli_ctx_gate_pass(&s[i].ctx, 0);
			continue;
		}
		if (split && s[i].assume_agent)
			s[i].inline_call = step_assume(&s[i]);
		if (s[i].inline_call) {
			cli_ctx_gate_pass(&s[i].ctx, 0);
			inline_send(&s[i]);
			continue;
		}
		if (first == n)
			first = i;
		nthreads++;
	}
	/* The first thread's step holds the block of stacks and unmaps it,
	 * once cli_steps_release() has joined every thread. Without it each
	 * maps its own. */
	block = nthreads > 1 ? stacks_map(nthreads) : NULL;
	if (block)
		s[first].stack_map = nthreads * STEP_SLOT_SIZE;
	for (i = 0; i < n; i++) {
		if (s[i].inline_call || !s[i].f[0])
			continue;
		if (block)
			s[i].stack = block + k++ * STEP_SLOT_SIZE;
		pyhot_err_init(&err);
		if (thread_start(&s[i], &err) < 0) {
			run_begin(&s[i]);
			s[i].code = run_end(&s[i], -PYHOT_ERR_FAILED, &err);
			cli_ctx_gate_pass(&s[i].ctx, 0);   /* no thread to pass it */
		}
	}
}
