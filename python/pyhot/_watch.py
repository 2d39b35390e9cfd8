"""pyhot.watch(): refresh on save, by polling the files' mtimes (as the
command's `pyhot watch` does, without inotify)."""

import os
import sys
import threading


def python_files(paths, user_file, skip=()):
    """The files to watch: every loaded user module's file (paths None),
    else the .py files under each path (a file path is taken as it is).
    Folders whose name starts with a dot, __pycache__ and those named in
    skip are not walked."""
    if paths is None:
        for mod in list(sys.modules.values()):
            f = getattr(mod, "__file__", None)
            if isinstance(f, str) and user_file(os.path.abspath(f)):
                yield os.path.abspath(f)
        return
    for p in paths:
        if not os.path.isdir(p):
            yield p
            continue
        for root, dirs, names in os.walk(p):
            dirs[:] = [d for d in dirs
                       if not d.startswith(".") and d != "__pycache__" and d not in skip]
            for n in names:
                if n.endswith(".py"):
                    yield os.path.join(root, n)


def snapshot(files):
    """{file: (mtime_ns, size)} of the files that exist."""
    seen = {}
    for f in files:
        try:
            st = os.stat(f)
        except OSError:
            continue
        seen[f] = (st.st_mtime_ns, st.st_size)
    return seen


def changed_files(before, after):
    """The files saved (or created) between two snapshots."""
    return {f for f, v in after.items() if before.get(f) != v}


# An editor's save can be several writes (truncate, write, utime, rename):
# a file is taken once two looks this far apart agree (as `pyhot watch`
# waits for 100 ms without an inotify event), never half written.
QUIET = 0.1


def settle(files, now, sleep):
    """Look at files again until two looks QUIET apart agree: that last
    snapshot. sleep(seconds) sleeps, and returns True to give up (None)."""
    while True:
        if sleep(QUIET):
            return None
        later = snapshot(files)
        if later == now:
            return now
        now = later


def modules_of(files):
    """The names of the loaded modules whose file is one of files, sorted."""
    names = []
    for name, mod in list(sys.modules.items()):
        f = getattr(mod, "__file__", None)
        if isinstance(f, str) and os.path.abspath(f) in files:
            names.append(name)
    return sorted(names)


class Watcher:
    """A thread that refreshes the modules whose file was saved. stop()
    ends it and waits for it; reports and errors keep what each refresh
    returned or raised (the errors are also printed to stderr)."""

    def __init__(self, paths, interval, refresh, error_type, user_file):
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self._paths = None if paths is None else [os.path.abspath(p) for p in paths]
        self._interval = interval
        self._refresh = refresh
        self._error_type = error_type
        self._user_file = user_file
        self.reports = []
        self.errors = []
        self._stopping = threading.Event()
        self._seen = self._scan()
        self._thread = threading.Thread(target=self._run, name="pyhot-watch",
                                        daemon=True)
        self._thread.start()

    def _scan(self):
        return snapshot(python_files(self._paths, self._user_file))

    def _run(self):
        while not self._stopping.wait(self._interval):
            now = self._scan()
            changed = changed_files(self._seen, now)
            if changed:
                now = settle(list(now), now, self._stopping.wait)
                if now is None:
                    return
                changed = changed_files(self._seen, now)
            self._seen = now
            names = modules_of(changed) if changed else []
            if not names:
                continue
            try:
                self.reports.append(self._refresh(names))
            except self._error_type as e:
                self.errors.append(e)
                print("pyhot watch: %s" % e, file=sys.stderr, flush=True)

    def stop(self, timeout=10):
        """Stop watching and wait for the thread (a refresh under way ends
        first)."""
        self._stopping.set()
        self._thread.join(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
