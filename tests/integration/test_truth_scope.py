"""Truthful refresh: which modules a refresh covers, and what it does to
them. Real `pyhot` against a real Python process (targets/truth/app.py) on
every interpreter; each test checks what the process runs afterwards (the
target evaluates code the test sends it, in its own main thread) and what the
report says (`--json`).

  - a module imported after the attach is refreshed, named or not;
  - a module under a site-packages directory is refreshed, constants too;
  - a file edited before the attach: the function whose code differs is
    patched, a statement whose old text is unknown is reported as not re-run;
  - unchanged standard-library modules named on the command line change
    nothing.

The helpers here (start_app, Probe, refresh, changes, ...) are shared by the
other test_truth_*.py files.
"""
import json
import os
import textwrap

import pytest

from conftest import TARGETS, pyhot

APP = os.path.join(TARGETS, "truth", "app.py")


class Probe:
    """Runs code in the target's main thread through its stdin (see app.py)
    and returns the value, as JSON gives it back."""

    def __init__(self, t):
        self.t, self.seq = t, 0

    def __call__(self, code, timeout=10):
        self.seq += 1
        with self.t.cond:
            start = len(self.t.lines)
        self.t.proc.stdin.write("%d %s\n" % (self.seq, json.dumps(textwrap.dedent(code))))
        self.t.proc.stdin.flush()
        line = self.t.wait_for(r"^(done|fail) %d " % self.seq, timeout, start)
        verb, _, rest = line.split(" ", 2)
        assert verb == "done", "in the target:\n" + json.loads(rest)
        return json.loads(rest)


def write(d, files):
    """Write {relative path: source} under directory d (sources dedented)."""
    for rel, src in files.items():
        path = d / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(src))


def edit(path, old, new, count=1):
    text = path.read_text()
    assert text.count(old) >= count, (old, text)
    path.write_text(text.replace(old, new, count))


def start_app(target, d, python, imports=(), dirs=(), attach=True, env=None):
    """The app target with d (and dirs) first on sys.path and imports
    imported; attached (baseline taken) unless attach is False. t.run is its
    Probe, t.dir is d."""
    path = os.pathsep.join([str(d)] + [str(x) for x in dirs])
    t = target(script=APP, python=python, mode=path, args=imports, cwd=str(d), env=env)
    t.run, t.dir = Probe(t), d
    if attach:
        attach_to(t)
    return t


def attach_to(t):
    r = pyhot("attach", t.pid)
    assert r.rc == 0, r
    # A round trip after the attach: the baseline has been taken.
    assert pyhot("status", t.pid).rc == 0


def refresh(t, *modules, dry_run=False, json_out=True):
    args = ["refresh", t.pid] + list(modules) + (["--dry-run"] if dry_run else [])
    return pyhot(*args, json_out=json_out)


def module_report(r, name):
    """The report of module name in a refresh's --json, or None."""
    for mod in r.json["modules"]:
        if mod["module"] == name:
            return mod
    return None


def changes(r, name):
    """[(action, kind, name)] of module name in a refresh's --json, in
    order, without the "kept" entries."""
    mod = module_report(r, name)
    assert mod is not None, "module %s not in the report: %r" % (name, r)
    return [(c["action"], c["kind"], c["name"]) for c in mod["changes"]
            if c["action"] != "kept"]


def alive(t):
    assert t.proc.poll() is None, t.output()
    assert "Traceback" not in t.output(), t.output()


# -- 1. a module imported after the attach ----------------------------------

LATE = """\
    LIMIT = 10
    GONE = "bye"


    class Box:
        def keep(self):
            return "keep"

        def drop(self):
            return "drop"


    def calc(x):
        return x + 1
    """


def edit_late(path):
    edit(path, "LIMIT = 10", "LIMIT = 99")
    edit(path, 'GONE = "bye"\n', "")
    edit(path, '    def drop(self):\n        return "drop"\n', "")
    edit(path, "return x + 1", "return x + 2")


LATE_STATE = "(m('late').LIMIT, hasattr(m('late'), 'GONE'), hasattr(box, 'drop'), calc(1))"


@pytest.mark.parametrize("how", ["all", "named"])
def test_module_imported_after_attach_is_refreshed(target, tmp_path, python, how):
    write(tmp_path, {"late.py": LATE})
    t = start_app(target, tmp_path, python)
    # Imported by the program after pyhot attach returned.
    t.run("box = m('late').Box(); calc = m('late').calc")
    assert t.run(LATE_STATE) == [10, True, True, 2]
    edit_late(tmp_path / "late.py")

    r = refresh(t, *(["late"] if how == "named" else []))
    assert r.rc == 0, r
    got = changes(r, "late")
    assert {("changed", "value", "late.LIMIT"),
            ("removed", "value", "late.GONE"),
            ("removed", "method", "late.Box.drop"),
            ("changed", "function", "late.calc")} <= set(got), r
    # Box.keep did not change, and nothing failed.
    assert not any(name == "late.Box.keep" or action == "failed"
                   for action, _, name in got), r
    # The constant changed, the name and the method are gone, and the
    # function the program held runs the new code.
    assert t.run(LATE_STATE) == [99, False, False, 3]
    alive(t)


# -- 2. a module under site-packages ----------------------------------------

def test_site_packages_module_is_refreshed_by_name(target, tmp_path, python):
    site = tmp_path / "venv" / "lib" / "site-packages"
    write(site, {"vendored.py": """\
        TIMEOUT = 5


        def mode():
            return "slow"
        """})
    t = start_app(target, tmp_path, python, imports=["vendored"], dirs=[site])
    assert t.run("(m('vendored').TIMEOUT, m('vendored').mode())") == [5, "slow"]
    edit(site / "vendored.py", "TIMEOUT = 5", "TIMEOUT = 30")
    edit(site / "vendored.py", 'return "slow"', 'return "fast"')

    r = refresh(t, "vendored")
    assert r.rc == 0, r
    assert {("changed", "function", "vendored.mode"),
            ("changed", "value", "vendored.TIMEOUT")} <= set(changes(r, "vendored")), r
    assert t.run("(m('vendored').TIMEOUT, m('vendored').mode())") == [30, "fast"]
    alive(t)


# -- 3. a file edited before the attach -------------------------------------

def not_rerun(mod):
    """What a module report says was not re-run for want of a baseline.
    Proposed (not in today's report): a change with action "skipped" and a
    detail that says "no baseline", or a list "not_rerun" in the module's
    report; either is accepted."""
    said = [c for c in mod["changes"] if c["action"] == "skipped"
            and "no baseline" in (c.get("detail") or "")]
    return said + list(mod.get("not_rerun") or [])


@pytest.mark.parametrize("view", ["json", "text"])
def test_file_edited_before_attach(target, tmp_path, python, view):
    write(tmp_path, {"early.py": """\
        RATE = 1


        def price():
            return "old"


        def other():
            return "same"
        """})
    t = start_app(target, tmp_path, python, imports=["early"], attach=False)
    t.run("price = m('early').price")
    edit(tmp_path / "early.py", "RATE = 1", "RATE = 2")
    edit(tmp_path / "early.py", 'return "old"', 'return "new"')
    attach_to(t)

    r = refresh(t, "early", json_out=view == "json")
    assert r.rc == 0, r
    # The live code differs from the file: patched, and said so.
    assert t.run("price()") == "new"
    # RATE = 2: the old text is unknown, so the statement is not re-run.
    assert t.run("m('early').RATE") == 1
    if view == "text":
        assert "changed  function  early.price" in r.out, r
        assert "no baseline" in r.out and "RATE" in r.out, r
        assert "0 changed" not in r.out and "unchanged" not in r.out, r
        assert "no module changed" not in r.out, r
    else:
        mod = module_report(r, "early")
        assert mod is not None, r
        got = changes(r, "early")
        assert ("changed", "function", "early.price") in got, r
        assert not any(name == "early.other" for _, _, name in got), r
        # Reported as not re-run, never as "no change".
        skipped = not_rerun(mod)
        assert skipped and "RATE" in json.dumps(skipped), r
        assert mod["summary"]["changed"] >= 1, r
    alive(t)


# -- 4. unchanged standard-library modules named ----------------------------

STDLIB_IDS = """\
import os, logging, json, threading
[id(os.path.join), id(logging.getLogger), id(logging.root), id(json.dumps),
 id(threading.excepthook), id(os.environ), logging.root.level]
"""


def test_unchanged_stdlib_modules_named(target, tmp_path, python):
    t = start_app(target, tmp_path, python, imports=["logging", "json"])
    before = t.run(STDLIB_IDS)
    r = refresh(t, "os", "logging", "json", "threading")
    assert r.rc == 0, r
    for mod in r.json["modules"]:
        assert changes(r, mod["module"]) == [], r
        s = mod["summary"]
        assert s["changed"] == s["added"] == s["removed"] == s["failed"] == 0, r
    assert t.run(STDLIB_IDS) == before
    assert t.run("import os; os.path.join('a', 'b')") == "a/b"
    alive(t)


# -- what the baselines for every module bring along ----------------------------

HEARTBEAT = """\
import threading, time
hb = [0]
def beat():
    while True:
        hb[0] += 1
        time.sleep(0.005)
threading.Thread(target=beat, daemon=True).start()
"""


def test_fifo_as_module_file_never_blocks(target, tmp_path, python):
    """A module whose file became a FIFO: the refresh refuses it at once,
    saying why, and the target never stops (a heartbeat thread runs on)."""
    write(tmp_path, {"piped.py": "def f():\n    return 1\n"})
    t = start_app(target, tmp_path, python, imports=["piped"])
    t.run(HEARTBEAT)
    os.unlink(str(tmp_path / "piped.py"))
    os.mkfifo(str(tmp_path / "piped.py"))
    before = t.run("hb[0]")

    r = refresh(t, "piped")
    assert r.rc == 1, r
    assert "not a regular file" in r.json["error"]["message"], r
    every = refresh(t)                 # the scan of every module skips it
    assert every.rc == 0 and module_report(every, "piped") is None, every
    assert t.run("import time; time.sleep(0.05); hb[0]") > before
    assert t.run("m('piped').f()") == 1
    alive(t)


def test_rerun_statements_on_request(target, tmp_path, python):
    write(tmp_path, {"early.py": "RATE = 1\n\n\ndef price():\n    return 'old'\n"})
    t = start_app(target, tmp_path, python, imports=["early"], attach=False)
    edit(tmp_path / "early.py", "RATE = 1", "RATE = 2")
    attach_to(t)

    r = pyhot("refresh", t.pid, "early", "--rerun-statements", json_out=True)
    assert r.rc == 0, r
    assert ("changed", "value", "early.RATE") in changes(r, "early"), r
    assert not any(c["action"] == "skipped" for c in module_report(r, "early")["changes"]), r
    # price() runs the file's code: not reported.
    assert not any(name == "early.price" for _, _, name in changes(r, "early")), r
    assert t.run("m('early').RATE") == 2
    # After it the file is the trusted baseline: nothing more to do.
    again = refresh(t)
    assert again.rc == 0 and module_report(again, "early") is None, again
    alive(t)


def test_status_shows_the_baselines(target, tmp_path, python):
    t = start_app(target, tmp_path, python, imports=["json", "logging"])
    st = pyhot("status", t.pid, json_out=True)
    assert st.rc == 0, st
    b = st.json["status"]["baselines"]
    # the standard library too: os, json, logging, threading, ...
    assert b["modules"] >= 10 and b["bytes"] > 100000 and b["untrusted"] == 0, b
    text = pyhot("status", t.pid)
    assert "baselines:" in text.out and "modules: %d" % b["modules"] in text.out, text
    alive(t)


def test_module_imported_after_attach_rolled_back(target, tmp_path, python):
    write(tmp_path, {"late.py": LATE})
    t = start_app(target, tmp_path, python)
    t.run("box = m('late').Box(); calc = m('late').calc")
    edit_late(tmp_path / "late.py")
    r = refresh(t, "late")
    assert r.rc == 0, r
    assert t.run(LATE_STATE) == [99, False, False, 3]

    back = pyhot("rollback", t.pid, "late", json_out=True)
    assert back.rc == 0, back
    assert t.run(LATE_STATE) == [10, True, True, 2]
    alive(t)
