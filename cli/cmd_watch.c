/*
 * cmd_watch.c: pyhot watch, refresh a module of the target when its source
 * file is saved.
 *
 * The target's modules come from the agent ("exec" with list=modules); the
 * directories of those under the watched roots, and the roots themselves,
 * get an inotify watch. Events on "*.py" names are debounced per file
 * (WATCH_QUIET_MS without a further event) so that an editor's save (write
 * a temporary file and rename it, or several writes in a row) gives one
 * refresh. SIGINT, SIGTERM and SIGHUP are blocked and read from a signalfd:
 * they end the loop cleanly, never in the middle of a request.
 */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json.h>

#include "client.h"
#include "cmd_util.h"

#define WATCH_QUIET_MS 100
#define WATCH_MAX_ROOTS CLI_MAX_MODULES

struct watch_mod {
	char *file;               /* absolute path, symlinks resolved */
	char *name;               /* module name in sys.modules */
};

struct watch_dir {
	int wd;
	char *path;
};

struct watch_pending {
	char *file;
	long long due;            /* CLOCK_MONOTONIC ms */
};

struct watch {
	struct cli_ctx *c;
	char cwd[PATH_MAX];       /* the target's working directory */
	size_t nroots;
	char *roots[WATCH_MAX_ROOTS];
	struct watch_mod *mods;
	size_t nmods;
	struct watch_dir *dirs;
	size_t ndirs;
	struct watch_pending *pend;
	size_t npend;
	int ifd, sfd;
	struct json_object *events;   /* --json: one object per event */
	unsigned int refreshed, failed;
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "12:34:56.789", local time. */
static void stamp(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	snprintf(buf, len, "%02d:%02d:%02d.%03ld", tm.tm_hour, tm.tm_min, tm.tm_sec,
		 ts.tv_nsec / 1000000);
}

/* A line of the watch log: on stdout (stderr with --json, nothing with -q). */
static void say(struct watch *w, const char *color, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void say(struct watch *w, const char *color, const char *fmt, ...)
{
	struct cli_out *o = w->c->out;
	FILE *f = o->json ? stderr : stdout;
	int on = o->json ? o->color_err : o->color_out;
	char ts[32];
	va_list ap;

	if (o->quiet)
		return;
	stamp(ts, sizeof(ts));
	fprintf(f, "%s[%s]%s %s", cli_color(on, "dim"), ts, cli_color(on, "reset"),
		color ? cli_color(on, color) : "");
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fprintf(f, "%s\n", color ? cli_color(on, "reset") : "");
	fflush(f);
}

/* Every line of text through say(), indented; with changes_only, the lines
 * of a refresh report that say something (its changes and its summary, not
 * the module headers: the event line names the module). */
static void say_lines(struct watch *w, const char *text, int changes_only)
{
	const char *p = text, *nl;
	int len;

	while (p && *p) {
		nl = strchr(p, '\n');
		len = nl ? (int)(nl - p) : (int)strlen(p);
		if (!changes_only || p[0] == ' ' || !nl || !nl[1])
			say(w, NULL, "  %.*s", len, p);
		p = nl ? nl + 1 : NULL;
	}
}

/* A request; its failure is the caller's to report (one event among
 * others). */
static int call(struct watch *w, const char *verb, const char *const *kv, size_t nkv,
		struct json_object **resp, struct pyhot_err *err)
{
	return cli_call(w->c, verb, kv, nkv, resp, err);
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

int cli_watch_path_under(const char *path, const char *root)
{
	size_t n = strlen(root);

	if (strcmp(root, "/") == 0)
		return path[0] == '/';
	return strncmp(path, root, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

int cli_watch_name_wanted(const char *name)
{
	return name[0] != '.' && strlen(name) > 3 && ends_with(name, ".py");
}

/* The root path is under, or NULL. */
static const char *root_of(struct watch *w, const char *path)
{
	size_t i;

	for (i = 0; i < w->nroots; i++)
		if (cli_watch_path_under(path, w->roots[i]))
			return w->roots[i];
	return NULL;
}

static void mods_free(struct watch *w)
{
	size_t i;

	for (i = 0; i < w->nmods; i++) {
		free(w->mods[i].file);
		free(w->mods[i].name);
	}
	free(w->mods);
	w->mods = NULL;
	w->nmods = 0;
}

/* Ask the agent for sys.modules and keep those loaded from .py files under
 * the roots (site-packages and dist-packages below a root excepted). */
static int load_modules(struct watch *w, struct pyhot_err *err)
{
	const char *kv[2] = { "list", "modules" };
	struct json_object *resp = NULL, *mods = NULL;
	char abs[PATH_MAX * 2], real[PATH_MAX];
	struct watch_mod *arr;
	size_t n, k = 0;
	int r;

	r = call(w, "exec", kv, 2, &resp, err);
	if (r < 0)
		goto out;
	if (!json_object_object_get_ex(resp, "modules", &mods) ||
	    !json_object_is_type(mods, json_type_object)) {
		r = pyhot_err_set(err, PYHOT_ERR_FAILED, 0, w->c->args->pid, "watch",
				  "the agent sent no module list");
		goto out;
	}
	n = (size_t)json_object_object_length(mods);
	arr = calloc(n ? n : 1, sizeof(*arr));
	if (!arr) {
		r = pyhot_err_set(err, PYHOT_ERR_FAILED, ENOMEM, w->c->args->pid, "watch",
				  "out of memory");
		goto out;
	}
	{
		json_object_object_foreach(mods, name, jfile) {
			const char *file = json_object_get_string(jfile), *root;

			if (!file || !ends_with(file, ".py"))
				continue;
			if (file[0] == '/')
				snprintf(abs, sizeof(abs), "%s", file);
			else
				snprintf(abs, sizeof(abs), "%s/%s", w->cwd, file);
			if (!realpath(abs, real))
				snprintf(real, sizeof(real), "%.*s", PATH_MAX - 1, abs);
			root = root_of(w, real);
			if (!root)
				continue;
			if (strstr(real + strlen(root), "/site-packages/") ||
			    strstr(real + strlen(root), "/dist-packages/"))
				continue;
			arr[k].file = strdup(real);
			arr[k].name = strdup(name);
			if (!arr[k].file || !arr[k].name) {
				free(arr[k].file);
				free(arr[k].name);
				continue;
			}
			k++;
		}
	}
	mods_free(w);
	w->mods = arr;
	w->nmods = k;
out:
	if (resp)
		json_object_put(resp);
	return r;
}

/* The modules loaded from file (indexes into w->mods). */
static size_t mods_of(struct watch *w, const char *file, size_t *idx, size_t max)
{
	size_t i, n = 0;

	for (i = 0; i < w->nmods && n < max; i++)
		if (strcmp(w->mods[i].file, file) == 0)
			idx[n++] = i;
	return n;
}

static int add_dir(struct watch *w, const char *dir, struct pyhot_err *err)
{
	struct watch_dir *nd;
	size_t i;
	int wd;

	for (i = 0; i < w->ndirs; i++)
		if (strcmp(w->dirs[i].path, dir) == 0)
			return 0;
	wd = inotify_add_watch(w->ifd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM |
			       IN_DELETE | IN_CREATE | IN_MODIFY | IN_DELETE_SELF |
			       IN_MOVE_SELF | IN_ONLYDIR);
	if (wd < 0) {
		int e = errno;

		pyhot_err_set(err, PYHOT_ERR_FAILED, e, w->c->args->pid, "watch",
			      "inotify_add_watch('%s'): %s", dir, strerror(e));
		if (e == ENOSPC)
			pyhot_err_hint(err, "raise fs.inotify.max_user_watches, or watch "
				       "fewer paths");
		return -PYHOT_ERR_FAILED;
	}
	nd = realloc(w->dirs, (w->ndirs + 1) * sizeof(*nd));
	if (!nd)
		return pyhot_err_set(err, PYHOT_ERR_FAILED, ENOMEM, w->c->args->pid, "watch",
				     "out of memory");
	w->dirs = nd;
	w->dirs[w->ndirs].wd = wd;
	w->dirs[w->ndirs].path = strdup(dir);
	if (!w->dirs[w->ndirs].path)
		return pyhot_err_set(err, PYHOT_ERR_FAILED, ENOMEM, w->c->args->pid, "watch",
				     "out of memory");
	w->ndirs++;
	return 0;
}

/* Watch the roots (their directory when a root is a file) and the
 * directory of every module found under them. */
static int add_dirs(struct watch *w, struct pyhot_err *err)
{
	char dir[PATH_MAX], *slash;
	struct stat st;
	size_t i;
	int r;

	for (i = 0; i < w->nroots; i++) {
		snprintf(dir, sizeof(dir), "%s", w->roots[i]);
		if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
			slash = strrchr(dir, '/');
			if (slash)
				*(slash == dir ? slash + 1 : slash) = '\0';
		}
		r = add_dir(w, dir, err);
		if (r < 0)
			return r;
	}
	for (i = 0; i < w->nmods; i++) {
		snprintf(dir, sizeof(dir), "%s", w->mods[i].file);
		slash = strrchr(dir, '/');
		if (!slash)
			continue;
		*(slash == dir ? slash + 1 : slash) = '\0';
		if (stat(dir, &st) < 0)
			continue;
		r = add_dir(w, dir, err);
		if (r < 0)
			return r;
	}
	return 0;
}

static void pending_add(struct watch *w, const char *file)
{
	struct watch_pending *np;
	size_t i;

	for (i = 0; i < w->npend; i++) {
		if (strcmp(w->pend[i].file, file) == 0) {
			w->pend[i].due = now_ms() + WATCH_QUIET_MS;
			return;
		}
	}
	np = realloc(w->pend, (w->npend + 1) * sizeof(*np));
	if (!np)
		return;
	w->pend = np;
	w->pend[w->npend].file = strdup(file);
	if (!w->pend[w->npend].file)
		return;
	w->pend[w->npend].due = now_ms() + WATCH_QUIET_MS;
	w->npend++;
}

static struct json_object *event_new(const char *file, const char *what)
{
	struct json_object *e = json_object_new_object();
	char ts[32];

	stamp(ts, sizeof(ts));
	json_object_object_add(e, "time", json_object_new_string(ts));
	json_object_object_add(e, "file", json_object_new_string(file));
	json_object_object_add(e, "event", json_object_new_string(what));
	return e;
}

static void event_add(struct watch *w, struct json_object *e)
{
	if (w->events)
		json_object_array_add(w->events, e);
	else
		json_object_put(e);
}

static struct json_object *names_json(struct watch *w, const size_t *idx, size_t n)
{
	struct json_object *a = json_object_new_array();
	size_t i;

	for (i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(w->mods[idx[i]].name));
	return a;
}

/* Refresh the modules loaded from file. A failure is an event, not the end
 * of the watch, except when the agent is gone (returned). */
static int refresh_file(struct watch *w, const char *file, const size_t *idx, size_t n,
			struct pyhot_err *fatal)
{
	const char *kv[2 * 16];
	struct json_object *resp = NULL, *ev, *v, *jerr;
	struct pyhot_err e;
	char names[512] = "";
	size_t i, nkv = 0;
	int r;

	for (i = 0; i < n && i < 16; i++) {
		kv[nkv++] = "module";
		kv[nkv++] = w->mods[idx[i]].name;
		snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
			 i ? ", " : "", w->mods[idx[i]].name);
	}
	pyhot_err_init(&e);
	r = call(w, "refresh", kv, nkv, &resp, &e);
	if (r < 0 && !resp && (pyhot_client_no_agent(&e) || e.kind == PYHOT_ERR_FAILED)) {
		/* No answer at all: the agent (or the target) is gone. */
		*fatal = e;
		if (pyhot_client_no_agent(&e))
			pyhot_err_hint(fatal, "the agent in pid %d stopped (detached?); run "
				       "pyhot watch again", (int)w->c->args->pid);
		return r;
	}
	ev = event_new(file, r == 0 ? "refreshed" : "failed");
	json_object_object_add(ev, "modules", names_json(w, idx, n));
	if (r == 0) {
		char *text = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&text, &len);

		w->refreshed++;
		if (json_object_object_get_ex(resp, "modules", &v))
			json_object_object_add(ev, "result", json_object_get(v));
		if (f) {
			cli_fmt_refresh(f, resp, w->c->args->pid, w->c->args->verbose,
					w->c->out->json ? 0 : w->c->out->color_out);
			fclose(f);
		}
		say(w, "green", "%s saved: refreshed %s", file, names);
		if (text)
			say_lines(w, text, 1);
		free(text);
	} else {
		const char *tb = NULL;
		struct json_object *eo = NULL;

		w->failed++;
		if (resp && json_object_object_get_ex(resp, "traceback", &v))
			tb = json_object_get_string(v);
		if (!tb && resp && json_object_object_get_ex(resp, "error", &eo) &&
		    json_object_object_get_ex(eo, "traceback", &v))
			tb = json_object_get_string(v);
		jerr = json_object_new_object();
		json_object_object_add(jerr, "kind", json_object_new_string(
			pyhot_errkind_name(e.kind)));
		json_object_object_add(jerr, "message", json_object_new_string(e.msg));
		if (tb)
			json_object_object_add(jerr, "traceback", json_object_new_string(tb));
		json_object_object_add(ev, "error", jerr);
		say(w, "red", "%s saved: refresh of %s failed: %s", file, names, e.msg);
		if (tb && w->c->args->verbose)
			say_lines(w, tb, 0);
		say(w, NULL, "pid %d is unchanged; still watching", (int)w->c->args->pid);
	}
	event_add(w, ev);
	if (resp)
		json_object_put(resp);
	return 0;
}

/* The quiet time of file is over: see what it is now. */
static int settle(struct watch *w, const char *file, struct pyhot_err *fatal)
{
	struct pyhot_err e;
	struct stat st;
	size_t idx[16], n;
	int found = stat(file, &st) == 0, exists = found && S_ISREG(st.st_mode);

	if (found && !exists) {
		/* A FIFO or a device named *.py: watch only stats, never reads,
		 * so nothing blocks; such a thing is no module's source. */
		say(w, "yellow", "%s is not a regular file; skipped", file);
		event_add(w, event_new(file, "not-a-file"));
		return 0;
	}
	n = mods_of(w, file, idx, 16);
	if (n == 0 && exists) {
		/* Imported since we looked? */
		pyhot_err_init(&e);
		if (load_modules(w, &e) == 0)
			n = mods_of(w, file, idx, 16);
	}
	if (n == 0) {
		if (exists) {
			say(w, "yellow", "%s saved: no module of pid %d was loaded from it; "
			    "skipped (it is refreshed once the program imports it)", file,
			    (int)w->c->args->pid);
			event_add(w, event_new(file, "not-loaded"));
		}
		return 0;
	}
	if (!exists) {
		struct json_object *ev = event_new(file, "deleted");

		json_object_object_add(ev, "modules", names_json(w, idx, n));
		event_add(w, ev);
		say(w, "yellow", "%s deleted: module %s stays loaded as it is", file,
		    w->mods[idx[0]].name);
		return 0;
	}
	return refresh_file(w, file, idx, n, fatal);
}

static const char *dir_of_wd(struct watch *w, int wd)
{
	size_t i;

	for (i = 0; i < w->ndirs; i++)
		if (w->dirs[i].wd == wd)
			return w->dirs[i].path;
	return NULL;
}

static void read_events(struct watch *w)
{
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	char full[PATH_MAX * 2];
	const struct inotify_event *ev;
	const char *dir;
	ssize_t n;
	char *p;

	for (;;) {
		n = read(w->ifd, buf, sizeof(buf));
		if (n <= 0)
			return;
		for (p = buf; p < buf + n; p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			if (ev->mask & IN_Q_OVERFLOW) {
				say(w, "yellow", "too many file events at once; some saves "
				    "may have been missed");
				continue;
			}
			dir = dir_of_wd(w, ev->wd);
			if (!dir)
				continue;
			if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
				say(w, "yellow", "%s was removed or moved; no longer watched", dir);
				continue;
			}
			if (!ev->len || (ev->mask & IN_ISDIR) || !cli_watch_name_wanted(ev->name))
				continue;
			snprintf(full, sizeof(full), "%s%s%s", dir,
				 ends_with(dir, "/") ? "" : "/", ev->name);
			if (root_of(w, full))
				pending_add(w, full);
		}
	}
}

static int watch_loop(struct watch *w, struct pyhot_err *err)
{
	struct pollfd pfd[2];
	struct signalfd_siginfo si;
	long long next, now;
	size_t i;
	int timeout, r;

	for (;;) {
		now = now_ms();
		next = now + 1000;
		for (i = 0; i < w->npend; i++)
			if (w->pend[i].due < next)
				next = w->pend[i].due;
		timeout = next > now ? (int)(next - now) : 0;
		pfd[0].fd = w->sfd;
		pfd[0].events = POLLIN;
		pfd[1].fd = w->ifd;
		pfd[1].events = POLLIN;
		r = poll(pfd, 2, timeout);
		if (r < 0 && errno != EINTR)
			return pyhot_err_set(err, PYHOT_ERR_FAILED, errno, w->c->args->pid,
					     "watch", "poll: %s", strerror(errno));
		if (r > 0 && (pfd[0].revents & POLLIN)) {
			if (read(w->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				say(w, NULL, "%s: stopped watching pid %d (%u refreshed, %u "
				    "failed)", strsignal((int)si.ssi_signo), (int)w->c->args->pid,
				    w->refreshed, w->failed);
			return 0;
		}
		if (r > 0 && (pfd[1].revents & POLLIN))
			read_events(w);
		now = now_ms();
		for (i = 0; i < w->npend;) {
			if (w->pend[i].due > now) {
				i++;
				continue;
			}
			{
				char *file = w->pend[i].file;

				w->pend[i] = w->pend[--w->npend];
				r = settle(w, file, err);
				free(file);
				if (r < 0)
					return r;
			}
			/* settle() took time: the others may have moved on. */
			now = now_ms();
			i = 0;
		}
		if (pyhot_target_exited(w->c->args->pid)) {
			pyhot_err_set(err, PYHOT_ERR_FAILED, 0, w->c->args->pid, "watch",
				      "pid %d exited", (int)w->c->args->pid);
			pyhot_err_hint(err, "nothing left to watch");
			return -PYHOT_ERR_FAILED;
		}
	}
}

/* The roots: the arguments, or the target's working directory. */
static int set_roots(struct watch *w, struct pyhot_err *err)
{
	const struct cli_args *a = w->c->args;
	char path[64], real[PATH_MAX];
	ssize_t n;
	size_t i;

	snprintf(path, sizeof(path), "/proc/%d/cwd", (int)a->pid);
	n = readlink(path, w->cwd, sizeof(w->cwd) - 1);
	if (n < 0) {
		int e = errno;

		pyhot_err_set(err, PYHOT_ERR_FAILED, e, a->pid, "watch", "readlink('%s'): %s",
			      path, strerror(e));
		return -PYHOT_ERR_FAILED;
	}
	w->cwd[n] = '\0';
	if (a->npaths == 0) {
		w->roots[0] = strdup(w->cwd);
		w->nroots = w->roots[0] ? 1 : 0;
		return w->nroots ? 0 : pyhot_err_set(err, PYHOT_ERR_FAILED, ENOMEM, a->pid,
						     "watch", "out of memory");
	}
	for (i = 0; i < a->npaths; i++) {
		if (!realpath(a->paths[i], real)) {
			int e = errno;

			pyhot_err_set(err, PYHOT_ERR_FAILED, e, a->pid, "watch",
				      "path '%s': %s", a->paths[i], strerror(e));
			pyhot_err_hint(err, "give directories or files that exist; pid %d is "
				       "unchanged", (int)a->pid);
			return -PYHOT_ERR_FAILED;
		}
		w->roots[w->nroots] = strdup(real);
		if (!w->roots[w->nroots])
			return pyhot_err_set(err, PYHOT_ERR_FAILED, ENOMEM, a->pid, "watch",
					     "out of memory");
		w->nroots++;
	}
	return 0;
}

static void watch_release(struct watch *w)
{
	size_t i;

	mods_free(w);
	for (i = 0; i < w->ndirs; i++)
		free(w->dirs[i].path);
	free(w->dirs);
	for (i = 0; i < w->npend; i++)
		free(w->pend[i].file);
	free(w->pend);
	for (i = 0; i < w->nroots; i++)
		free(w->roots[i]);
	if (w->ifd >= 0)
		close(w->ifd);
	if (w->sfd >= 0)
		close(w->sfd);
}

int cli_cmd_watch(struct cli_ctx *c, struct pyhot_err *err)
{
	struct json_object *jroots, *jdirs, *jmods;
	struct watch w;
	sigset_t stop;
	size_t i;
	int reused, r;

	memset(&w, 0, sizeof(w));
	w.c = c;
	w.ifd = w.sfd = -1;
	/* From here on, Ctrl-C ends the watch between two steps. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGHUP);
	sigprocmask(SIG_BLOCK, &stop, NULL);
	w.sfd = signalfd(-1, &stop, SFD_CLOEXEC | SFD_NONBLOCK);
	if (w.sfd < 0) {
		r = pyhot_err_set(err, PYHOT_ERR_FAILED, errno, c->args->pid, "watch",
				  "signalfd: %s", strerror(errno));
		goto out;
	}
	/* Bad paths are told before anything is done to the target. */
	r = set_roots(&w, err);
	if (r < 0)
		goto out;
	r = cli_attach_ensure(c, &reused, err);
	if (r < 0)
		goto out;
	w.ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (w.ifd < 0) {
		r = pyhot_err_set(err, PYHOT_ERR_FAILED, errno, c->args->pid, "watch",
				  "inotify_init1: %s", strerror(errno));
		goto out;
	}
	r = load_modules(&w, err);
	if (r < 0)
		goto out;
	r = add_dirs(&w, err);
	if (r < 0)
		goto out;
	if (c->out->json)
		w.events = json_object_new_array();
	jroots = json_object_new_array();
	for (i = 0; i < w.nroots; i++)
		json_object_array_add(jroots, json_object_new_string(w.roots[i]));
	jdirs = json_object_new_array();
	for (i = 0; i < w.ndirs; i++)
		json_object_array_add(jdirs, json_object_new_string(w.dirs[i].path));
	jmods = json_object_new_object();
	for (i = 0; i < w.nmods; i++)
		json_object_object_add(jmods, w.mods[i].name,
				       json_object_new_string(w.mods[i].file));
	cli_out_set(c->out, "roots", jroots);
	cli_out_set(c->out, "directories", jdirs);
	cli_out_set(c->out, "modules", jmods);
	for (i = 0; c->out->verbose && i < w.nmods; i++)
		say(&w, NULL, "module %s: %s", w.mods[i].name, w.mods[i].file);
	say(&w, "bold", "watching %zu module%s of pid %d in %zu director%s under %s%s "
	    "(Ctrl-C stops)", w.nmods, w.nmods == 1 ? "" : "s", (int)c->args->pid, w.ndirs,
	    w.ndirs == 1 ? "y" : "ies", w.roots[0], w.nroots > 1 ? " and more" : "");
	r = watch_loop(&w, err);
out:
	if (w.events)
		cli_out_set(c->out, "events", w.events);
	if (c->out->json) {
		cli_out_set(c->out, "refreshed", json_object_new_int((int)w.refreshed));
		cli_out_set(c->out, "failed", json_object_new_int((int)w.failed));
	}
	watch_release(&w);
	/* SIGINT and SIGTERM stay blocked: pyhot ends right after this, and a
	 * second Ctrl-C must not turn a clean stop into a kill. */
	return r;
}
