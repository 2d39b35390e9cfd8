"""pytest -p pyhot.pytest --pyhot-loop: fix a failing test without leaving
the session.

When tests fail, the loop prints the failures (pytest's own report), waits
for a saved .py file under the rootdir (or any loaded user module's file),
refreshes the modules saved in place with pyhot.refresh() (the engine of
`pyhot refresh`: no re-import, module state kept), and runs the failed tests
again in the same process, until they pass (the session then ends as pytest
would) or Ctrl-C (pytest's "interrupted" exit, 2). A refused refresh (a
SyntaxError, a hook that refuses) is printed and the loop keeps waiting.
Messages go through pytest's terminal reporter, so it works without -s.
docs/pytest.md has the details.
"""

import os
import signal
import sys
import time

import pytest

import pyhot
from pyhot import _rewrite, _watch

_SKIP_DIRS = ("site-packages", "dist-packages", "node_modules", "venv")


def pytest_addoption(parser):
    group = parser.getgroup("pyhot", "pyhot: refresh in place, run the failed tests again")
    group.addoption("--pyhot-loop", action="store_true", default=False,
                    help="when tests fail, wait for a saved edit, refresh the saved "
                         "modules in place and run the failed tests again, until "
                         "they pass or Ctrl-C")
    group.addoption("--pyhot-interval", type=float, default=0.25, metavar="SECONDS",
                    help="how often --pyhot-loop looks at the files' mtimes "
                         "(default 0.25)")


def pytest_configure(config):
    if not config.getoption("pyhot_loop"):
        return
    if getattr(config.option, "numprocesses", None):
        raise pytest.UsageError("--pyhot-loop refreshes and runs the tests in this "
                                "process: it cannot work with pytest-xdist's -n")
    config.pluginmanager.register(Loop(config), "pyhot-loop")


def _module_of(collector):
    """The module a pytest Module collector imported, or None."""
    mod = getattr(collector, "_obj", None)
    if mod is not None:
        return mod
    path = os.path.abspath(str(getattr(collector, "path", None) or collector.fspath))
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if isinstance(f, str) and os.path.abspath(f) == path:
            return mod
    return None


def _describe(mod):
    """One line for one module of a refresh report."""
    done = {}
    for c in mod.get("changes", ()):
        if c.get("action") in ("changed", "added", "removed", "skipped", "failed"):
            done.setdefault(c["action"], []).append(c.get("name", "?"))
    text = "; ".join("%s %s" % (k, ", ".join(v)) for k, v in done.items())
    return "%s: %s" % (mod.get("module", "?"), text or "no change")


class Loop:
    """The --pyhot-loop plugin object: it wraps pytest's run-test loop."""

    def __init__(self, config):
        self.config = config
        self.interval = max(0.05, config.getoption("pyhot_interval"))
        self.seen = {}        # {file: (mtime, size)} at the last look
        self.failed = set()   # nodeids with a failed report in this round
        self.ran = set()      # nodeids that got as far as setup

    @property
    def tr(self):
        return self.config.pluginmanager.get_plugin("terminalreporter")

    def say(self, text, **markup):
        tr = self.tr
        if tr is None:
            print(text, file=sys.stderr, flush=True)
            return
        tr.ensure_newline()
        tr.write_line(text, **markup)

    # -- baselines: pytest's assertion rewriter imports test modules and
    # conftest.py itself (not through importlib's SourceLoader, which pyhot
    # watches), so their baselines are recorded here, right after import.

    @pytest.hookimpl(hookwrapper=True)
    def pytest_make_collect_report(self, collector):
        yield
        if isinstance(collector, pytest.Module):
            mod = _module_of(collector)
            f = getattr(mod, "__file__", None)
            if isinstance(f, str) and f.endswith(".py"):
                pyhot._record_baseline(mod.__name__, f)

    def pytest_collection_finish(self, session):
        # conftest.py files and whatever else was imported some other way:
        # the engine records every loaded module it has no baseline for.
        pyhot._pyhot.baseline_take()
        # the files as they were when the tests first ran
        self.seen = _watch.snapshot(self.watched_files(self.rootdir()))

    # -- the loop

    def pytest_runtest_logreport(self, report):
        if report.when == "setup":
            self.ran.add(report.nodeid)
        if report.failed:
            self.failed.add(report.nodeid)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtestloop(self, session):
        outcome = yield
        if session.config.option.collectonly:
            return
        if outcome.excinfo is not None and not isinstance(outcome.excinfo[1], session.Failed):
            return   # collection errors, a stop asked for: pytest's way
        while True:
            todo = [it for it in session.items
                    if it.nodeid in self.failed or it.nodeid not in self.ran]
            if not todo:
                break
            self.wait_and_refresh(session, todo)
            self.forget(session, todo)
            self.run(session, todo)
        outcome.force_result(True)

    def forget(self, session, items):
        """Drop what the last round reported about items, so that the
        summary and the exit status are those of their new run."""
        ids = {it.nodeid for it in items}
        for it in items:
            if hasattr(it, "_report_sections"):
                it._report_sections = []   # captured output of the last run
        self.failed -= ids
        self.ran -= ids
        session.testsfailed = 0
        # pytest 8 refuses to unset these through the property (a stop is
        # final for its own loop): the loop that starts now is ours.
        for flag in ("shouldfail", "shouldstop"):
            setattr(session, "_" + flag if hasattr(session, "_" + flag) else flag, False)
        tr = self.tr
        if tr is not None:
            for key in list(tr.stats):
                tr.stats[key] = [r for r in tr.stats[key]
                                 if getattr(r, "nodeid", None) not in ids]
                if not tr.stats[key]:
                    del tr.stats[key]   # a "failed" key, even empty, colours the summary red
            if hasattr(tr, "_set_main_color"):
                tr._set_main_color()
            tr.currentfspath = None

    def run(self, session, items):
        """Run items as pytest's loop does (fixtures shared between
        neighbours, all torn down after the last)."""
        for i, item in enumerate(items):
            nextitem = items[i + 1] if i + 1 < len(items) else None
            item.config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
            if (session.shouldfail or session.shouldstop) and nextitem is not None:
                # -x or --maxfail: stop this round here, as pytest would
                # (pytest's own run tears the fixtures down at session end).
                session._setupstate.teardown_exact(None)
                break

    def wait_and_refresh(self, session, todo):
        """Print the failures, wait for a save, refresh in place: return
        when the tests should run again. Ctrl-C ends the session."""
        try:
            self.show(todo)
            while not self.refresh(self.wait_for_save(self.rootdir())):
                pass
        except KeyboardInterrupt:
            raise session.Interrupted("pyhot loop: stopped by Ctrl-C while waiting "
                                      "for an edit") from None

    def show(self, todo):
        """The failures as pytest's report shows them, and what we wait for."""
        tr = self.tr
        failed = [it.nodeid for it in todo if it.nodeid in self.failed]
        if tr is not None:
            if failed:
                tr.summary_errors()
                tr.summary_failures()
            left = len(todo) - len(failed)
            tr.write_sep("=", "pyhot: %d failed%s" % (len(failed), ", %d not run yet" % left
                                                      if left else ""), yellow=True, bold=True)
        self.say("pyhot: waiting for a saved edit under %s (Ctrl-C to stop)" % self.rootdir(),
                 yellow=True, bold=True)

    def keep_rewriting(self, mod):
        """A test module refreshed keeps pytest's assertion rewriting."""
        live = sys.modules.get(mod.get("module"))
        names = [c["name"] for c in mod.get("changes", ())
                 if c.get("action") in ("changed", "added") and "name" in c]
        if live is None or not names or not _rewrite.rewritten(live):
            return
        try:
            _rewrite.rewrite_changed(live, names, self.config)
        except Exception as e:
            self.say("pyhot: %s: its changed tests run without pytest's assert "
                     "rewriting (%s: %s)" % (mod.get("module"), type(e).__name__, e),
                     yellow=True)

    def rootdir(self):
        return str(getattr(self.config, "rootpath", None) or self.config.rootdir)

    def watched_files(self, rootdir):
        """Every loaded user module's file and the .py files under rootdir
        (not in virtual environments or node_modules)."""
        files = set(_watch.python_files(None, pyhot._user_file))
        files.update(_watch.python_files([rootdir], pyhot._user_file, skip=_SKIP_DIRS))
        return sorted(files)

    def wait_for_save(self, rootdir):
        """Sleep (the GIL released) and look at the mtimes until a file
        changes since the last look (a save during a test run counts):
        the set of files saved."""
        files = self.watched_files(rootdir)
        now = _watch.snapshot(files)
        seen = {f: self.seen.get(f, v) for f, v in now.items()}
        while True:
            if _watch.changed_files(seen, now):
                now = _watch.settle(files, now, time.sleep)
                changed = _watch.changed_files(seen, now)
                if changed:
                    self.seen.update(now)
                    return changed
            time.sleep(self.interval)
            now = _watch.snapshot(files)

    def refresh(self, changed):
        """Refresh the loaded modules among the files saved and say what
        changed; False (and why) when the refresh is refused."""
        names = _watch.modules_of(changed)
        shown = ", ".join(sorted(os.path.relpath(f) for f in changed))
        if not names:
            self.say("pyhot: saved %s (no module loaded from it): running again" % shown)
            return True
        # A Ctrl-C during the refresh must not become the refresh's error:
        # it waits until the refresh is done, then stops the loop.
        old = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT])
        try:
            report = pyhot.refresh(names)
        except pyhot.RefreshError as e:
            report = e
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        if isinstance(report, pyhot.RefreshError):
            self.say("pyhot: saved %s: refresh refused, nothing changed: %s"
                     % (shown, report.message), red=True)
            tb = report.report.get("traceback") if isinstance(report.report, dict) else None
            if tb:
                self.say(tb.rstrip("\n"))
            if report.hint:
                self.say("hint: %s" % report.hint)
            self.say("pyhot: still waiting for a saved edit (Ctrl-C to stop)",
                     yellow=True, bold=True)
            return False
        for mod in report.get("modules", ()):
            self.say("pyhot: refreshed %s" % _describe(mod), green=True)
            self.keep_rewriting(mod)
            for h in mod.get("hooks", ()):
                if not h.get("ok", True):
                    error = str(h.get("error", "?"))
                    self.say("pyhot: %s: hook %s raised %s (the refresh stays applied)"
                             % (mod.get("module"), h.get("name"), error[len("refresh: "):]
                                if error.startswith("refresh: ") else error), red=True)
        if not report.get("modules"):
            self.say("pyhot: saved %s: no change to refresh" % shown)
        self.say("pyhot: running the failed tests again", bold=True)
        return True
