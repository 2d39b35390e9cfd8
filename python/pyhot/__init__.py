"""pyhot from inside the program: the engine and agent of `pyhot attach`,
in-process.

    import pyhot
    pyhot.refresh()              # patch every module whose file changed
    pyhot.rollback("app.views")  # undo its newest refresh
    w = pyhot.watch(); ...; w.stop()
    pyhot.start_agent()          # every `pyhot` command works, no ptrace

The functions run the payload's own engine (the extension pyhot._pyhot is
the payload file), at once, on the calling thread. Importing pyhot records
the source of every user module loaded so far and, from then on, of each
module as it is imported: that is what a refresh compares against.
docs/hooks.md describes the hooks and callbacks.
"""

import json
import os
import sys

from . import _pyhot
from ._watch import Watcher

__all__ = ["RefreshError", "refresh", "rollback", "history", "watch",
           "start_agent", "on_refresh", "on_class_update", "refreshing"]

_STDLIB = os.path.dirname(os.__file__)


class RefreshError(Exception):
    """A refresh or rollback was refused; the process is unchanged.

    message: the engine's message ("refresh: app.py:3: SyntaxError: ...");
    report: the engine's answer as Python objects (a "traceback" when
    Python raised); hint: what to do, or None."""

    def __init__(self, message, report=None, hint=None):
        super().__init__(message)
        self.message = message
        self.report = report if report is not None else {}
        self.hint = hint


def _answer(result):
    ok, text, message, hint = result
    report = json.loads(text)
    if not ok:
        raise RefreshError(message or "failed without a message", report, hint)
    return report


def refresh(modules=None, *, dry_run=False):
    """Patch modules in place, as `pyhot refresh` does: every module whose
    file changed since its baseline (modules None), or the named ones (a
    name or a list). All or nothing. Returns the report ({"modules": [...],
    "dry_run": bool}); raises RefreshError when refused."""
    if isinstance(modules, str):
        modules = [modules]
    return _answer(_pyhot.refresh(None if modules is None else list(modules),
                                  bool(dry_run)))


def rollback(module, to=None, *, dry_run=False):
    """Undo module's newest refresh (to=None), or every refresh after
    generation `to` (0: as loaded), as `pyhot rollback` does. Returns the
    report; raises RefreshError when refused."""
    return _answer(_pyhot.rollback(module, -1 if to is None else int(to),
                                   bool(dry_run)))


def history():
    """The generations, newest first, as `pyhot status` lists them:
    {"limit", "bytes", "generations": [...]}."""
    return _answer(_pyhot.history())["history"]


def watch(paths=None, *, interval=0.25):
    """Refresh on save: a thread polls the files' mtimes (every user module's
    file when paths is None; else the .py files under each path) and
    refreshes the modules whose file changed. Returns a Watcher: stop()
    ends it; .reports and .errors hold what each refresh did."""
    return Watcher(paths, interval, refresh, RefreshError, _user_file)


def start_agent(history=None):
    """Start the agent `pyhot attach` would start (the same socket, the same
    verbs), so that every `pyhot` command works on this process without
    ptrace. Returns the socket path; a second call, or an agent already
    injected, leaves the running one alone."""
    _started, sock = _pyhot.start_agent(int(history or 0))
    return sock


_refresh_callbacks = []
_class_callbacks = []


def on_refresh(callback):
    """Call callback({module: (qualified names changed, ...)}) after every
    refresh that changed something (in-process or from the command). Usable
    as a decorator."""
    _refresh_callbacks.append(callback)
    return callback


def on_class_update(callback):
    """Call callback(cls) for each class a refresh patched in place. Usable
    as a decorator."""
    _class_callbacks.append(callback)
    return callback


def refreshing():
    """True while a refresh re-runs module statements (a module body can
    tell a refresh from its first import)."""
    return _pyhot.refreshing()


def _callback_name(kind, cb):
    return "%s:%s.%s" % (kind, getattr(cb, "__module__", "?"),
                         getattr(cb, "__qualname__", repr(cb)))


def _dispatch(event, arg):
    """Called by the engine: run the callbacks of event, report each one as
    (name, error text or None)."""
    kind = "on_class_update" if event == "class" else "on_refresh"
    done = []
    for cb in list(_class_callbacks if event == "class" else _refresh_callbacks):
        try:
            cb(arg)
            done.append((_callback_name(kind, cb), None))
        except Exception as e:
            done.append((_callback_name(kind, cb), "%s: %s" % (type(e).__name__, e)))
    return done


def _user_file(path):
    """Whether a module file is the program's: the engine's rule (outside
    the standard library and site-packages), and not pyhot's own."""
    return (path.endswith(".py") and not path.startswith(_STDLIB + os.sep)
            and "/site-packages/" not in path and "/dist-packages/" not in path
            and not path.startswith(os.path.dirname(__file__) + os.sep))


def _record_baseline(name, path):
    """Record path as the baseline of module name (`python -m pyhot run`
    records the script it runs as __main__)."""
    _pyhot.baseline_record(name, os.path.abspath(path), _STDLIB)


_pyhot.set_dispatch(_dispatch)
# The baseline: every module loaded now, and (through the engine's import
# watch, which wraps importlib's source loader) every module loaded later,
# recorded from the very bytes it was compiled from (docs/engine.md).
_pyhot.baseline_take()
