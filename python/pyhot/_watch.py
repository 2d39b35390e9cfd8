"""pyhot.watch(): refresh on save, by polling the files' mtimes (as the
command's `pyhot watch` does, without inotify)."""

import os
import sys
import threading


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

    def _files(self):
        if self._paths is None:
            for mod in list(sys.modules.values()):
                f = getattr(mod, "__file__", None)
                if isinstance(f, str) and self._user_file(os.path.abspath(f)):
                    yield os.path.abspath(f)
            return
        for p in self._paths:
            if os.path.isdir(p):
                for root, _dirs, names in os.walk(p):
                    for n in names:
                        if n.endswith(".py"):
                            yield os.path.join(root, n)
            else:
                yield p

    def _scan(self):
        seen = {}
        for f in self._files():
            try:
                st = os.stat(f)
            except OSError:
                continue
            seen[f] = (st.st_mtime_ns, st.st_size)
        return seen

    @staticmethod
    def _modules_of(files):
        names = []
        for name, mod in list(sys.modules.items()):
            f = getattr(mod, "__file__", None)
            if isinstance(f, str) and os.path.abspath(f) in files:
                names.append(name)
        return sorted(names)

    def _run(self):
        while not self._stopping.wait(self._interval):
            now = self._scan()
            changed = {f for f, v in now.items() if self._seen.get(f) != v}
            self._seen = now
            names = self._modules_of(changed) if changed else []
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
